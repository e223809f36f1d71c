"""The contestants by name: which model each name of ``creditsim eval transitions --models`` builds."""

from __future__ import annotations

import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.contestants import (ChainContestant, ClassifierContestant, Contestant, segment_calendar_chain,
                                           segment_chain)
from creditsim.harness.deep import TransformerContestant, TransformerSettings
from creditsim.harness.linked import LinkedChainContestant
from creditsim.harness.moves import CohortKey
from creditsim.harness.trajectory import TrajectoryContestant

__all__ = ["CONTESTANT_NAMES", "applicable_contestants", "check_names", "make_contestant"]

CONTESTANT_NAMES: tuple[str, ...] = ("markov", "markov_segment", "markov_calendar", "markov_segment_calendar",
                                     "markov_cohort_calendar", "markov_link", "logit", "gbm", "transformer", "trajectory")


def check_names(models: list[str]) -> None:
    """A ConfigError naming the first model that is not a contestant."""
    for name in models:
        if name not in CONTESTANT_NAMES:
            raise ConfigError(f"model {name!r}: expected one of {list(CONTESTANT_NAMES)}")


def applicable_contestants(tape: pd.DataFrame | None, linked: bool) -> tuple[list[str], dict[str, str]]:
    """Every contestant a call can run, and why each other one is left out: the trajectory model needs a
    tape in the loan-tape contract (a table of loan features, as ``creditsim data sba`` writes, serves the
    other models' tape features, not its contract fields), ``markov_link`` a macro frame and a credit link
    (``linked``)."""
    from creditsim.schema import REQUIRED_LOAN_COLUMNS

    left_out = {}
    if not linked:
        left_out["markov_link"] = "no macro frame or no credit link"
    if tape is None:
        left_out["trajectory"] = "no loan tape"
    else:
        missing = [c for c in REQUIRED_LOAN_COLUMNS if c not in tape.columns]
        if missing:
            left_out["trajectory"] = (f"the tape is not a loan tape in the data contract (no {', '.join(missing[:4])}"
                                      f"{' ...' if len(missing) > 4 else ''})")
    return [m for m in CONTESTANT_NAMES if m not in left_out], left_out


def make_contestant(name: str, segment_by: tuple[str, ...] = ("prev_state",), seed: int = 0,
                    cohort_by: tuple[str, ...] = (), n_bins: int = 5, progress: bool = False,
                    tape: pd.DataFrame | None = None, credit_link: str | None = None,
                    macro: pd.DataFrame | None = None) -> Contestant:
    """A fresh contestant by name (:data:`CONTESTANT_NAMES`).

    ``segment_by`` (categorical) and ``cohort_by`` (numeric, binned at ``n_bins`` training quantiles) make
    the cohort key of ``markov_cohort_calendar`` and ``transformer``; ``markov_segment`` uses
    ``segment_by`` alone. ``tape`` (the contract fields) reaches the trajectory model. The macro path
    comes with the moves (:attr:`~creditsim.harness.moves.MoveTable.macro`): the transformer and the
    trajectory model read it as their macro input, the classifiers as any ``macro_*`` covariate.
    ``credit_link`` (a bank delinquency series, :data:`creditsim.harness.cycle.LINK_SERIES`) with the
    monthly ``macro`` frame: the transformer reads the economy through that link instead of the path
    (:mod:`creditsim.harness.cycle`), and ``markov_link`` scales the recent segment chain by it
    (:mod:`creditsim.harness.linked`; refused without both); other contestants ignore them.
    """
    seg = tuple(segment_by)
    if name == "markov":
        return ChainContestant("markov")
    if name == "markov_segment":
        return segment_chain(seg)
    if name == "markov_calendar":
        return ChainContestant("markov_calendar", CohortKey(("period",)), ChainContestant("markov"))
    if name == "markov_segment_calendar":
        return segment_calendar_chain(seg)
    if name == "markov_cohort_calendar":
        return ChainContestant(name, CohortKey((*seg, "period"), tuple(cohort_by), n_bins), segment_calendar_chain(seg))
    if name == "markov_link":
        return LinkedChainContestant(seg, credit_link, macro)
    if name in ("logit", "gbm"):
        return ClassifierContestant(name, seed)
    if name == "transformer":
        return TransformerContestant(seg, tuple(cohort_by), seed, TransformerSettings(n_bins=n_bins), progress,
                                     credit_link, macro)
    if name == "trajectory":
        return TrajectoryContestant(tape, seg, seed, progress=progress)
    raise ConfigError(f"model {name!r}: expected one of {list(CONTESTANT_NAMES)}")
