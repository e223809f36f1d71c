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

__all__ = ["CONTESTANT_NAMES", "NEEDS_MACRO", "make_contestant"]

CONTESTANT_NAMES: tuple[str, ...] = ("markov", "markov_segment", "markov_calendar", "markov_segment_calendar",
                                     "markov_cohort_calendar", "markov_link", "logit", "gbm", "transformer", "trajectory")
#: contestants that need a macro frame (and a credit link)
NEEDS_MACRO: tuple[str, ...] = ("markov_link",)


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
