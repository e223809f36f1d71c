"""Gather the chunks of a Monte Carlo run into whole-run arrays as each chunk arrives.

:func:`creditsim.risk.simulate.simulate` runs its scenarios in chunks (:func:`~creditsim.risk.simulate.run_chunk`)
and used to keep every chunk's result until the last one had finished, then concatenate them. With
``keep_cashflows`` a run's arrays are large (80,000 scenarios x 60 months: ~1.2 GB of pool, tranche and
coverage-test paths), so that doubled the peak memory and put ~1.6 s of copying and first-touch page
faults after the last chunk, on one core. :class:`ChunkResults` allocates each whole-run array when the
first chunk shows its shape and copies every chunk into its rows ``task.start .. task.stop - 1`` when it
arrives; on the dask backend that happens while the workers compute the remaining chunks. The values are
the chunks' own, so the result is the same bits as the concatenation, in any order of arrival.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from creditsim.errors import ConfigError
from creditsim.risk.results import SimulationResults, TrancheResult

__all__ = ["ChunkResults", "CASHFLOW_KEYS"]

#: the ``(s, T, k)`` cashflow arrays a chunk returns with ``keep_cashflows`` (those it has)
CASHFLOW_KEYS: tuple[str, ...] = ("pool", "tranche_interest", "tranche_principal", "tranche_balance", "oc_ratio",
                                  "ic_ratio", "reinvestment_criteria")
_TRANCHE_ARRAYS: tuple[str, ...] = ("losses", "irr", "wal", "pv_losses")
_TRANCHE_SCALARS: tuple[str, ...] = ("balance", "coupon", "attachment", "detachment", "equity")


class ChunkResults:
    """Whole-run result arrays filled chunk by chunk.

    The arrays (S = ``n_scenarios``; each allocated with the shape and dtype of the first chunk's, which
    every later chunk must match): ``portfolio_losses`` ``(S,)`` fraction of the initial pool balance; per
    tranche ``losses`` ``(S,)`` fraction of the note balance, ``irr`` ``(S,)`` annual decimal, ``wal``
    ``(S,)`` years, ``pv_losses`` ``(S,)`` or absent; with ``keep_cashflows`` the :data:`CASHFLOW_KEYS` a
    chunk has: ``pool`` ``(S, T, 7)`` and the tranche flows ``(S, T, n_tranches)`` in currency units, the
    coverage ratios ``(S, T, n_debt)``, the reinvestment criteria ``(S, T, 4)``.

    Args:
        n_scenarios: scenarios of the run (the arrays' first axis).
        tranche_names: the deal's tranche names, in deal order.
    """

    def __init__(self, n_scenarios: int, tranche_names: list[str]):
        self.n = int(n_scenarios)
        self.tranche_names = list(tranche_names)
        self._arrays: dict[str, np.ndarray] = {}  # "portfolio_losses", cashflow keys, "<tranche>/<field>"
        self._scalars: dict[str, dict[str, Any]] = {}
        self._filled = np.zeros(self.n, dtype=bool)
        self._keys: frozenset[str] | None = None  # the arrays every chunk brings: the first chunk's

    def add(self, start: int, stop: int, chunk: dict[str, Any]) -> None:
        """Copy one chunk's result (:func:`~creditsim.risk.simulate.run_chunk`'s dict) into rows
        ``start .. stop - 1``; rows already filled, or arrays of another shape or dtype, are refused."""
        if not 0 <= start < stop <= self.n:
            raise ConfigError(f"chunk rows {start}..{stop - 1} lie outside the run's {self.n} scenarios")
        if self._filled[start:stop].any():
            raise ConfigError(f"chunk rows {start}..{stop - 1}: row {start + int(self._filled[start:stop].argmax())} "
                              "has already arrived")
        arrays = {"portfolio_losses": chunk["portfolio_losses"]}
        for name in self.tranche_names:
            part = chunk["tranches"][name]
            arrays.update((f"{name}/{f}", part[f]) for f in _TRANCHE_ARRAYS if part.get(f) is not None)
        arrays.update((key, chunk[key]) for key in CASHFLOW_KEYS if key in chunk)
        keys = frozenset(arrays)
        if self._keys is None:
            self._keys = keys
            self._scalars = {name: {k: chunk["tranches"][name][k] for k in _TRANCHE_SCALARS}
                             for name in self.tranche_names}
        elif keys != self._keys:  # a missing array would leave its rows unwritten
            raise ConfigError(f"chunk rows {start}..{stop - 1} bring arrays {sorted(keys)}, the chunks before "
                              f"them {sorted(self._keys)}")
        for key, values in arrays.items():
            self._put(key, start, stop, values)
        self._filled[start:stop] = True

    def _put(self, key: str, start: int, stop: int, values: np.ndarray) -> None:
        values = np.asarray(values)
        if values.shape[:1] != (stop - start,):
            raise ConfigError(f"chunk {key} has shape {values.shape}, expected {stop - start} scenarios first")
        out = self._arrays.get(key)
        if out is None:
            out = self._arrays[key] = np.empty((self.n, *values.shape[1:]), dtype=values.dtype)
        elif values.shape[1:] != out.shape[1:] or values.dtype != out.dtype:
            raise ConfigError(f"chunk {key} is {values.dtype} {values.shape}, expected {out.dtype} "
                              f"{(stop - start, *out.shape[1:])} like the chunks before it")
        out[start:stop] = values

    def results(self, labels: np.ndarray, macro_paths: np.ndarray, p0: float,
                clusters: np.ndarray | None = None) -> SimulationResults:
        """The run's :class:`~creditsim.risk.results.SimulationResults` once every row has arrived."""
        if not self._filled.all():
            raise ConfigError(f"{int(self._filled.sum())} of {self.n} scenarios arrived; the run is incomplete")
        arrays = self._arrays
        tranches = [TrancheResult(name=name, losses=arrays[f"{name}/losses"], irr=arrays[f"{name}/irr"],
                                  wal=arrays[f"{name}/wal"], pv_losses=arrays.get(f"{name}/pv_losses"),
                                  **self._scalars[name])
                    for name in self.tranche_names]
        cashflows = {key: arrays[key] for key in CASHFLOW_KEYS if key in arrays}
        return SimulationResults(portfolio_losses=arrays["portfolio_losses"], tranche_results=tranches,
                                 cashflows=cashflows, scenarios=labels, macro_paths=macro_paths, initial_balance=p0,
                                 clusters=clusters)
