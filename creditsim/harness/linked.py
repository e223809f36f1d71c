"""``markov_link``: the practitioner's top-down baseline for the harness transformer's credit link.

A risk team without a deep model would take the book's recent transition matrix and scale it with a
satellite model of the economy. This contestant is that: the segment chain (:func:`segment_chain`,
shrunk to the pooled chain) fitted on the last :data:`WINDOW_MONTHS` months of training moves, its odds
of leaving CURRENT for a worse state scaled in each test period by the same bank credit link the
transformer uses (:mod:`creditsim.harness.cycle`). It exists so that the transformer's margin is
measured against a baseline that is given the link too: on the SBA 7(a) panel the two tie (a
fresh-clone review found the network's last-month level times the link *is* such a chain).

Why 24 months: long enough for a few hundred defaults in a mid-sized book, short enough to carry the
level the book had reached at the split; the review measured 6 and 12 months giving the same result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.contestants import segment_chain
from creditsim.harness.cycle import fit_cycle_tilt, last_training_month, resolve_link, tilt_rows
from creditsim.harness.moves import MoveTable, month_number

__all__ = ["LinkedChainContestant", "WINDOW_MONTHS"]

#: months of training moves the chain is fitted on (the most recent ones)
WINDOW_MONTHS = 24


class LinkedChainContestant:
    """The recent segment chain times the credit link (module docstring).

    Args:
        segment_by: categorical covariates of the segment chain.
        credit_link: the bank delinquency series, or ``"auto"`` (:func:`creditsim.harness.cycle.resolve_link`;
            where no link can be fitted the chain is left unscaled, with the resolver's warning).
        macro: the monthly macro frame the link is projected on.
        window_months: months of the most recent training moves the chain is fitted on.
    """

    name = "markov_link"

    def __init__(self, segment_by: tuple[str, ...], credit_link: str | None, macro: pd.DataFrame | None,
                 window_months: int = WINDOW_MONTHS) -> None:
        if credit_link is None or macro is None:
            raise ConfigError("markov_link needs a macro frame (macro=... / --macro) and a credit link (not none)")
        self.chain = segment_chain(tuple(segment_by))
        self.chain.name = self.name
        self.credit_link, self.macro, self.window_months = credit_link, macro, window_months

    def fit(self, train: MoveTable) -> "LinkedChainContestant":
        self.last_month_ = last_training_month(train)
        recent = month_number(train.month) > self.last_month_ - self.window_months
        self.chain.fit(train.take(recent) if recent.any() else train)
        series = resolve_link(self.credit_link, self.macro, self.last_month_)
        self.cycle_ = None if series is None else fit_cycle_tilt(series, self.macro, self.last_month_)
        return self

    def predict(self, moves: MoveTable) -> np.ndarray:
        p = self.chain.predict(moves)
        if self.cycle_ is None:
            return p
        months, index = np.unique(month_number(moves.month), return_inverse=True)
        per_month = np.array([self.cycle_.period_tilt(int(m), moves.period_months, 1)[0] for m in months])
        return tilt_rows(p, moves.from_state, per_month[index.reshape(-1)] if len(months) else np.zeros(0))
