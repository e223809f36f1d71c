"""Supervisory-style loss accounting: nine-quarter cumulative loss rates by asset class (DFAST convention).

:func:`stress_losses` runs a loan tape through named macro scenarios (by default the Federal Reserve's
2025 baseline and severely adverse paths) with the Markov engine and reports, per scenario and asset
class (and ``"all"``), the losses of each quarter and the cumulative loss rate over ``quarters``
quarters as the supervisors publish it: the sum of the quarters' credit losses divided by the average
loan balance over the same quarters.

Definitions (decisions)
-----------------------
*Loss.* The pool's ``loss`` column (:data:`creditsim.states.POOL_CF_TYPES`): ``LGD x default_par``
booked in the month of default, i.e. the charge-off net of the recovery the workout will bring. DFAST
reports net charge-offs; the supervisory models project them as PD x LGD x EAD at default (expected
loss net of recoveries), which is what this column is. The cash view -- ``default_par`` charged off in
the default month minus the recovery cash received inside the window -- would count a default in
quarter 8 as a near-total loss because its recovery (lag 12 months) falls after the window; it is
reported alongside (``default_par`` and ``recovery`` in :meth:`StressResult.quarterly`) but not used
for the rates. The same definition as :func:`creditsim.risk.simulate.simulate`'s portfolio loss.

*Average balance (the denominator).* The time average of the outstanding balance over the window:
for each month the balance at its start (the cut-off balance for month 0, the previous month's
closing ``balance`` after it), averaged over the three months of a quarter (the quarter's average
balance) and then over the quarters. A tape is a closed run-off pool (no new originations replace
maturing loans, unlike the supervisors' balance-sheet assumption), so the average balance is below
the cut-off balance and short-lived classes (receivables) have small denominators; the loss over the
cut-off balance is reported too (``loss_rate_initial``).

*Quarterly loss rate.* The quarter's losses over the window's average balance, so the quarterly rates
add up to the cumulative rate; ``loss_rate_annualised`` is ``4 x`` the quarter's losses over the
quarter's own average balance (the usual annualised charge-off rate).

*"all"*: losses and balances summed over the classes, so per path its rate is the balance-weighted
combination of the class rates (weights = the classes' average balances).

*Randomness.* Each scenario gets ``n_paths`` macro paths from :func:`creditsim.macro.paths.macro_paths`
(for a ``fed:YEAR:SCENARIO`` source: MacroVAE paths through the published variables of the supervisory
table at each quarter, with model-based dispersion between the anchors and in the unpublished
variables; month 0 is the table's own first quarter -- the Fed's jump-off, not the tape's cut-off -- so the
window is the one the published DFAST loss rates cover), and the loan-level draws of path ``i`` come from
the stream keyed by (seed, ``i``, loan block) in every scenario: common random numbers, so the
difference between scenarios is the macro effect, not sampling noise. Means and 5 % / 95 % quantiles are
taken over paths. Money is the engine's cent-exact pool cashflows (summed over classes and months in
whole cents); rates are fractions here, percent only in :meth:`StressResult.table`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.cents import from_cents, to_cents
from creditsim.datasets.fed import available_fed_scenarios
from creditsim.errors import ConfigError, DataError, check_positive_int
from creditsim.fileio import atomic_write
from creditsim.io import atomic_write_frame, read_frame
from creditsim.loans.engine import simulate_pool_chunk
from creditsim.macro.paths import macro_paths
from creditsim.macro.scenarios import GENERATED_SOURCES, parse_macro_source, resolve_macro_start
from creditsim.risk.pool_engine import PoolEngine
from creditsim.schema import as_loan_tape
from creditsim.states import ASSET_CLASSES, POOL_CF_TYPES, SCENARIOS, scenario_index
from creditsim.transitions.transformer import TransitionTransformer

__all__ = ["StressResult", "stress_losses", "parse_stress_scenario", "DEFAULT_STRESS_SCENARIOS", "ALL_CLASSES"]

#: the scenarios of ``creditsim stress`` when none are named
DEFAULT_STRESS_SCENARIOS: tuple[str, ...] = ("fed:2025:baseline", "fed:2025:severely_adverse")
#: asset class -> the charge-off column (:func:`~creditsim.datasets.load_bank_loss_rates`) of
#: :meth:`StressResult.bank_reference`
BANK_REFERENCE_SERIES: dict[str, str] = {"corporate": "business", "consumer": "consumer", "real_estate": "real_estate",
                                         "receivables": "business", "all": "all"}
#: label of the whole-tape row
ALL_CLASSES = "all"
#: engines whose cohort matrices the stress run can aggregate per asset class
STRESS_ENGINES: tuple[str, ...] = ("markov", "transformer")
#: longest window (quarters) of generated sources (vae, var, bootstrap, synthetic): the 60-month
#: horizon their generators are fitted and run at
GENERATED_HORIZON_QUARTERS = 20
#: paths per engine call (memory ~ chunk x loans x 70 bytes; results do not depend on it)
PATH_CHUNK = 50
_MONTHS_PER_QUARTER = 3
_K = {name: i for i, name in enumerate(POOL_CF_TYPES)}


# ---------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class StressScenario:
    """A parsed ``--scenarios`` entry.

    Attributes:
        name: the entry as given (normalised to lower case), e.g. ``"fed:2025:severely_adverse"``.
        source: the :func:`~creditsim.macro.paths.macro_paths` source (``"fed:2025:severely_adverse"``,
            ``"vae"``, ...).
        scenario: the scenario type (a :data:`SCENARIOS` name).
        horizon_quarters: the longest window the source's paths cover.
    """

    name: str
    source: str
    scenario: str
    horizon_quarters: int


def parse_stress_scenario(spec: str) -> StressScenario:
    """``"fed:YEAR:SCENARIO"`` (a bundled supervisory path) or ``"SOURCE:SCENARIO"`` with SOURCE one of
    vae / var / bootstrap / synthetic (generated paths of that scenario type); ConfigError otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"scenario must be a non-empty string such as 'fed:2025:severely_adverse', got {spec!r}")
    name = spec.strip().lower()
    parts = [p.strip() for p in name.split(":")]
    generated = (*GENERATED_SOURCES, "synthetic")
    if parts[0] == "fed":
        if len(parts) != 3:
            raise ConfigError(f"scenario {spec!r}: name one supervisory path as 'fed:YEAR:SCENARIO', "
                              f"e.g. 'fed:2025:severely_adverse'")
        tables = {(y, s) for y, s, kind in available_fed_scenarios() if kind == "domestic"}
        years = sorted({y for y, _ in tables})
        if not parts[1].isdigit() or int(parts[1]) not in years:
            raise ConfigError(f"scenario {spec!r}: no bundled supervisory scenarios for year {parts[1]!r}; "
                              f"bundled years: {years}")
        year = int(parts[1])
        have = sorted(f"fed:{y}:{s}" for y, s in tables if y == year)
        try:
            scen = parse_macro_source(name)[2]
        except ConfigError:  # not a scenario name at all: say what this year has, not the generator's four
            scen = parts[2]
        if (year, scen) not in tables:
            raise ConfigError(f"scenario {spec!r}: no bundled supervisory path {scen!r} for {year}; bundled: {have}")
        return StressScenario(name, name, str(scen), _fed_horizon_quarters(year, str(scen)))
    if parts[0] in generated and len(parts) == 2:
        try:
            scen = SCENARIOS[scenario_index(parts[1])]
        except ConfigError as exc:
            raise ConfigError(f"scenario {spec!r}: {exc}") from None
        return StressScenario(name, parts[0], scen, GENERATED_HORIZON_QUARTERS)
    raise ConfigError(f"unknown scenario {spec!r}: expected 'fed:YEAR:SCENARIO' (e.g. 'fed:2025:baseline') or "
                      f"'SOURCE:SCENARIO' with SOURCE in {list(generated)} and SCENARIO in {list(SCENARIOS)}")


def _fed_horizon_quarters(year: int, scenario: str) -> int:
    """Quarters covered by the bundled supervisory table (13 for the Fed's tables)."""
    from creditsim.datasets import load_fed_scenarios  # the loader reads the bundled CSV on use

    return len(load_fed_scenarios(year, scenario=scenario, monthly=True)) // _MONTHS_PER_QUARTER


# ---------------------------------------------------------------------------- result
@dataclass
class StressResult:
    """Per-path quarterly losses and balances of a stress run.

    Axes: N scenarios (``scenarios`` order), S paths, Q quarters, G asset classes (``asset_classes``
    order, the tape's classes in ASSET_CLASSES order followed by ``"all"``). Money in currency units.

    Attributes:
        scenarios: N scenario names as given (e.g. ``"fed:2025:baseline"``).
        asset_classes: G labels, the last one ``"all"``.
        losses: ``(N, S, Q, G)`` credit losses booked in each quarter (``LGD x default_par``).
        default_par: ``(N, S, Q, G)`` balance that defaulted in each quarter.
        recovery: ``(N, S, Q, G)`` recovery cash received in each quarter.
        quarter_balance: ``(N, S, Q, G)`` average balance of each quarter (mean of its month-start balances).
        initial_balance: ``(G,)`` balance at the cut-off.
        settings: JSON-serialisable record of the run (tape size, seed, engine, seconds, ...).
    """

    scenarios: tuple[str, ...]
    asset_classes: tuple[str, ...]
    losses: np.ndarray
    default_par: np.ndarray
    recovery: np.ndarray
    quarter_balance: np.ndarray
    initial_balance: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def quarters(self) -> int:
        """Window length Q in quarters."""
        return int(self.losses.shape[2])

    @property
    def avg_balance(self) -> np.ndarray:
        """``(N, S, G)`` average balance over the window (mean of the quarters' average balances)."""
        return self.quarter_balance.mean(axis=2)

    @property
    def loss_rates(self) -> np.ndarray:
        """``(N, S, Q, G)`` quarterly loss rates (fractions): quarter losses / window average balance."""
        return self.losses / self.avg_balance[:, :, None, :]

    @property
    def cumulative_rates(self) -> np.ndarray:
        """``(N, S, G)`` cumulative loss rates (fractions): window losses / window average balance."""
        return self.losses.sum(axis=2) / self.avg_balance

    def summary(self) -> pd.DataFrame:
        """Tidy frame, one row per (scenario, asset class): ``initial_balance``, ``avg_balance`` (mean
        over paths), ``losses`` (mean cumulative, currency), ``loss_rate_mean`` / ``_p05`` / ``_p95``
        (cumulative rate over the average balance, fractions) and ``loss_rate_initial`` (mean
        cumulative losses / cut-off balance)."""
        rates, cum = self.cumulative_rates, self.losses.sum(axis=2)
        rows = []
        for n, scen in enumerate(self.scenarios):
            for g, cls in enumerate(self.asset_classes):
                r = rates[n, :, g]
                rows.append({"scenario": scen, "asset_class": cls, "initial_balance": float(self.initial_balance[g]),
                             "avg_balance": float(self.avg_balance[n, :, g].mean()), "losses": float(cum[n, :, g].mean()),
                             "loss_rate_mean": float(r.mean()), "loss_rate_p05": float(np.quantile(r, 0.05)),
                             "loss_rate_p95": float(np.quantile(r, 0.95)),
                             "loss_rate_initial": float(cum[n, :, g].mean() / self.initial_balance[g])})
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Cumulative loss rate in PERCENT: rows asset classes (``"all"`` last), columns
        ``(scenario, mean | p05 | p95)`` over paths."""
        s = self.summary()
        s = s.rename(columns={"loss_rate_mean": "mean", "loss_rate_p05": "p05", "loss_rate_p95": "p95"})
        wide = s.pivot(index="asset_class", columns="scenario", values=["mean", "p05", "p95"]) * 100.0
        wide = wide.swaplevel(0, 1, axis=1)
        cols = pd.MultiIndex.from_product([list(self.scenarios), ["mean", "p05", "p95"]], names=["scenario", "stat"])
        out = wide.reindex(index=list(self.asset_classes), columns=cols)
        out.index.name = "asset_class"
        return out

    def bank_reference(self) -> pd.Series:
        """What US commercial banks charged off on the matching loan type over the same window at their
        recent pace: the mean annualised net charge-off rate of 2024H1 (the last two quarters of the
        bundled release table, :func:`~creditsim.datasets.load_bank_loss_rates`) times ``quarters / 4``,
        PERCENT, indexed like :meth:`table`. Corporate and receivables: C&I loans; consumer: all consumer
        loans; real estate: all real-estate loans; "all": total loans. A yardstick for the baseline column
        (the supervisors compare projected losses with pre-stress charge-offs the same way), not a target:
        a tape's own risk (the spec's base-case roll rates are those of leveraged corporate and
        sub-prime consumer credit) can sit well above the banking system's."""
        from creditsim.datasets import load_bank_loss_rates

        rates = load_bank_loss_rates("charge_off").loc["2024-01-01":"2024-04-01"].mean()
        out = {cls: float(rates[BANK_REFERENCE_SERIES[cls]]) * self.quarters / 4.0 * 100.0 for cls in self.asset_classes}
        return pd.Series(out, name="bank_2024h1", dtype=np.float64).rename_axis("asset_class")

    def quarterly(self) -> pd.DataFrame:
        """Tidy frame, one row per (scenario, asset class, quarter 1..Q): ``loss_rate_mean`` / ``_p05`` /
        ``_p95`` (quarter losses / window average balance, fractions), ``loss_rate_annualised`` (mean of
        4 x quarter losses / quarter average balance), and means over paths of ``losses``,
        ``default_par``, ``recovery`` and ``balance`` (the quarter's average balance), currency units."""
        rates = self.loss_rates
        # a quarter after a class has run off has no balance and no losses: its annualised rate is 0
        annual = np.divide(4.0 * self.losses, self.quarter_balance, out=np.zeros_like(self.losses),
                           where=self.quarter_balance > 0)
        lo, hi = np.quantile(rates, [0.05, 0.95], axis=1)  # (N, Q, G)
        n_s, _, n_q, n_g = rates.shape
        idx = pd.MultiIndex.from_product([list(self.scenarios), list(self.asset_classes), range(1, n_q + 1)],
                                         names=["scenario", "asset_class", "quarter"])

        def flat(a: np.ndarray) -> np.ndarray:  # (N, Q, G) -> N x G x Q order of idx
            return np.transpose(a, (0, 2, 1)).reshape(-1)

        frame = pd.DataFrame({
            "loss_rate_mean": flat(rates.mean(axis=1)), "loss_rate_p05": flat(lo), "loss_rate_p95": flat(hi),
            "loss_rate_annualised": flat(annual.mean(axis=1)),
            "losses": flat(self.losses.mean(axis=1)), "default_par": flat(self.default_par.mean(axis=1)),
            "recovery": flat(self.recovery.mean(axis=1)), "balance": flat(self.quarter_balance.mean(axis=1)),
        }, index=idx)
        return frame.reset_index()

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Quarterly loss rate (% of the window's average balance) per scenario: mean line and 5-95 %
        band over paths, one panel per asset class. Returns the matplotlib Figure; with ``path`` the
        PNG is written atomically."""
        import matplotlib  # optional plotting dependency, imported when a chart is asked for

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        rates = self.loss_rates * 100.0
        q = np.arange(1, self.quarters + 1)
        n_g = len(self.asset_classes)
        cols = min(3, n_g)
        fig, axes = plt.subplots(-(-n_g // cols), cols, figsize=(4.4 * cols, 3.0 * -(-n_g // cols)),
                                 squeeze=False)
        for g, (ax, cls) in enumerate(zip(axes.ravel(), self.asset_classes)):
            for n, scen in enumerate(self.scenarios):
                lo, hi = np.quantile(rates[n, :, :, g], [0.05, 0.95], axis=0)
                line, = ax.plot(q, rates[n, :, :, g].mean(axis=0), marker="o", ms=3, label=scen)
                ax.fill_between(q, lo, hi, color=line.get_color(), alpha=0.15)
            ax.set_title(cls, fontsize=9)
            ax.set_xlabel("quarter")
            ax.set_ylabel(f"quarterly loss, % of {self.quarters}-quarter avg balance", fontsize=8)
        for ax in axes.ravel()[n_g:]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle(f"Quarterly credit losses over {self.quarters} quarters (mean, 5-95 % band over paths)",
                     fontsize=10)
        fig.tight_layout()
        if path is not None:
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".tmp.png")
        return fig

    def to_csv(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``stress_summary.csv``, ``stress_table.csv`` (percent) and ``stress_quarterly.csv``
        into ``directory`` (created if missing), each atomically; returns the paths."""
        out = Path(directory)
        table = self.table()
        table.columns = [f"{scen}:{stat}_pct" for scen, stat in table.columns]
        return [atomic_write_frame(self.summary(), out / "stress_summary.csv"),
                atomic_write_frame(table.reset_index(), out / "stress_table.csv"),
                atomic_write_frame(self.quarterly(), out / "stress_quarterly.csv")]


# ---------------------------------------------------------------------------- computation
def quarterly_measures(cashflows: np.ndarray, initial: np.ndarray, quarters: int) -> dict[str, np.ndarray]:
    """Quarter sums and balances of grouped pool cashflows, with an ``"all"`` group appended.

    Args:
        cashflows: ``(S, T, G, K)`` pool cashflows by group (currency, POOL_CF_TYPES order), T = 3 Q.
        initial: ``(G,)`` cut-off balances.
        quarters: Q.

    Returns:
        ``losses``, ``default_par``, ``recovery``, ``quarter_balance``: ``(S, Q, G + 1)`` currency
        (sums over groups and months in whole cents, so independent of order).
    """
    cents = to_cents(cashflows)
    cents = np.concatenate([cents, cents.sum(axis=2, keepdims=True)], axis=2)  # (S, T, G+1, K)
    init = to_cents(np.asarray(initial, dtype=np.float64))
    init = np.append(init, init.sum())
    s, t_len, g = cents.shape[:3]
    if t_len != quarters * _MONTHS_PER_QUARTER:
        raise DataError(f"cashflows cover {t_len} months, {quarters} quarters need {quarters * _MONTHS_PER_QUARTER}")

    def per_quarter(col: str) -> np.ndarray:
        return from_cents(cents[..., _K[col]].reshape(s, quarters, _MONTHS_PER_QUARTER, g).sum(axis=2))

    opening = np.concatenate([np.broadcast_to(init, (s, 1, g)), cents[:, :-1, :, _K["balance"]]], axis=1)
    q_bal = from_cents(opening.reshape(s, quarters, _MONTHS_PER_QUARTER, g).sum(axis=2)) / _MONTHS_PER_QUARTER
    return {"losses": per_quarter("loss"), "default_par": per_quarter("default_par"),
            "recovery": per_quarter("recovery"), "quarter_balance": q_bal}


def _class_selection(book: Any, asset_classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes of the reported classes in ASSET_CLASSES order, (4,) cut-off balance per class)``."""
    init = from_cents(np.bincount(book.asset_class, weights=to_cents(book.balance), minlength=len(ASSET_CLASSES)))
    present = [i for i in range(len(ASSET_CLASSES)) if (book.asset_class == i).any()]
    if asset_classes is None:
        return np.array(present, dtype=np.int64), init
    names = [asset_classes] if isinstance(asset_classes, str) else list(asset_classes)
    unknown = [a for a in names if a not in ASSET_CLASSES]
    if unknown or not names:
        raise ConfigError(f"asset classes {unknown or names} are not asset classes; expected some of {list(ASSET_CLASSES)}")
    missing = [a for a in names if ASSET_CLASSES.index(a) not in present]
    if missing:
        raise DataError(f"loan tape: no loans of asset class {missing}; the tape has "
                        f"{[ASSET_CLASSES[i] for i in present]}")
    return np.array(sorted({ASSET_CLASSES.index(a) for a in names}), dtype=np.int64), init


def _transition_model(engine: str, model: Any, tape: Any, device: str) -> Any:
    """The object whose ``scenario_matrices`` drives the engine (None: the default Markov model)."""
    if engine not in STRESS_ENGINES:
        raise ConfigError(f"engine must be one of {list(STRESS_ENGINES)} for a stress run, got {engine!r}")
    if engine == "transformer" and model is None:
        model = TransitionTransformer.from_pretrained(device=device)
    if isinstance(model, TransitionTransformer):
        return model.for_tape(tape)
    return model


def _scenario_paths(scen: StressScenario, n_paths: int, months: int, seed: int, start: Any, device: str) -> np.ndarray:
    """``(n_paths, months, 9)`` macro paths of one scenario (see the module docstring)."""
    if scen.source.startswith("fed"):
        paths = macro_paths(scen.source, n_paths=n_paths, months=months, seed=seed, device=device)
    else:
        paths = macro_paths(scen.source, scenario=scen.scenario, n_paths=n_paths, months=months, start=start,
                            seed=seed, device=device)
    return np.asarray(paths.values, dtype=np.float64)


def _run_scenario(engine: PoolEngine, macro: np.ndarray, months: int, on_paths: Callable[[int], None] | None) -> np.ndarray:
    """``(S, T, 4, K)`` pool cashflows by asset class for the paths ``macro`` ``(S, T, 9)``; path ``i``
    draws from the loan streams of scenario id ``i`` (common random numbers across scenarios)."""
    n = macro.shape[0]
    parts = []
    with torch.no_grad():
        for start in range(0, n, PATH_CHUNK):
            ids = np.arange(start, min(n, start + PATH_CHUNK), dtype=np.int64)
            mats = engine.cohort_matrices(macro[ids])
            parts.append(simulate_pool_chunk(engine.book, mats, ids, engine.seed, months, loan_chunk=engine.loan_chunk,
                                             group_by="asset_class", device=engine.device,
                                             recovery_scale=engine.recovery_scale(macro[ids]),
                                             index_shift=engine.index_shift(macro[ids], months),
                                             index_level=engine.index_level(macro[ids])))
            if on_paths is not None:
                on_paths(len(ids))
    return np.concatenate(parts, axis=0)


def _check_settings(scenarios: Sequence[str], quarters: int, n_paths: int, seed: int) -> list[StressScenario]:
    """Parse the scenarios and check the sizes (before any work)."""
    if isinstance(scenarios, str):
        scenarios = [s for s in scenarios.split(",") if s.strip()]
    parsed = [parse_stress_scenario(s) for s in scenarios]
    if not parsed:
        raise ConfigError("scenarios: name at least one, e.g. 'fed:2025:baseline,fed:2025:severely_adverse'")
    names = [p.name for p in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"scenarios: {dup} named more than once")
    q = check_positive_int(quarters, "quarters")
    check_positive_int(n_paths, "n_paths")
    check_positive_int(seed, "seed", minimum=0)
    short = [p for p in parsed if q > p.horizon_quarters]
    if short:
        p = min(short, key=lambda x: x.horizon_quarters)
        raise ConfigError(f"quarters={q} is beyond the path horizon of scenario {p.name!r} "
                          f"({p.horizon_quarters} quarters); choose quarters <= {p.horizon_quarters}")
    return parsed


def stress_losses(tape: Any, scenarios: Sequence[str] = DEFAULT_STRESS_SCENARIOS, quarters: int = 9,
                  n_paths: int = 200, seed: int = 0, engine: str = "markov", device: str = "cpu",
                  macro_start: Any = None, *, asset_classes: Sequence[str] | None = None,
                  transition_model: Any = None, cutoff: Any = None,
                  progress: Callable[[int, int], None] | None = None) -> StressResult:
    """Nine-quarter (``quarters``) loss rates by asset class under named macro scenarios (DFAST style).

    Args:
        tape: loan tape (DataFrame, validated :class:`~creditsim.schema.LoanTape` or a CSV / Parquet path).
        scenarios: ``"fed:YEAR:SCENARIO"`` or ``"SOURCE:SCENARIO"`` names (:func:`parse_stress_scenario`),
            a sequence or one comma-separated string.
        quarters: window Q (>= 1, at most the scenarios' path horizon: 13 for the Fed tables).
        n_paths: macro paths (and loan-level draws) per scenario, S.
        seed: master seed (macro streams per scenario type, loan streams per path id).
        engine: ``"markov"`` (default Markov model, or ``transition_model``) or ``"transformer"``.
        device: torch device of the engine.
        macro_start: start state of generated paths (see :func:`creditsim.macro.scenarios.resolve_macro_start`;
            None: the observed state of the cut-off month); supervisory paths start from their table's
            first quarter (the supervisory jump-off), whatever ``macro_start`` says.
        asset_classes: classes to report (None: every class of the tape); ``"all"`` (added always) sums
            the reported classes.
        transition_model: a MarkovTransitionModel (or TransitionTransformer) instead of the default.
        cutoff: cut-off date of the tape (None: its latest origination date, as in ``simulate``).
        progress: called as ``progress(paths done, paths total)`` over all scenarios.

    Returns:
        :class:`StressResult` (per-path ``(N, S, Q, G)`` losses and balances).
    """
    parsed = _check_settings(scenarios, quarters, n_paths, seed)
    months = quarters * _MONTHS_PER_QUARTER
    t0 = time.perf_counter()
    if isinstance(tape, (str, os.PathLike)):
        tape = read_frame(tape, "loan tape")
    loans = as_loan_tape(tape)
    cut = loans.frame["origination_date"].max() if cutoff is None else cutoff
    model = _transition_model(engine, transition_model, loans, device)
    pool = PoolEngine.from_tape(loans, seed=seed, horizon=months, cutoff=cut, transition_model=model, device=device)
    codes, init = _class_selection(pool.book, asset_classes)
    start = None
    if any(p.source in GENERATED_SOURCES for p in parsed):
        vec, _ = resolve_macro_start(macro_start, cut)
        start = "scenario" if vec is None else vec
    total, done = len(parsed) * n_paths, 0
    keys = ("losses", "default_par", "recovery", "quarter_balance")
    acc: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for scen in parsed:
        macro = _scenario_paths(scen, n_paths, months, seed, start, device)

        def tick(k: int) -> None:
            nonlocal done
            done += k
            if progress is not None:
                progress(done, total)

        cf = _run_scenario(pool, macro, months, tick)[:, :, codes]  # (S, T, G, K) reported classes
        measures = quarterly_measures(cf, init[codes], quarters)
        for k in keys:
            acc[k].append(measures[k])
    labels = tuple(ASSET_CLASSES[i] for i in codes) + (ALL_CLASSES,)
    initial = np.append(init[codes], from_cents(to_cents(init[codes]).sum()))
    settings = {"n_loans": pool.n_loans, "pool_balance": pool.initial_balance, "quarters": int(quarters),
                "n_paths": int(n_paths), "seed": int(seed), "engine": engine, "device": device,
                "cutoff": str(cut), "transition_model": pool.describe(),
                "seconds": round(time.perf_counter() - t0, 3)}
    return StressResult(tuple(p.name for p in parsed), labels, *(np.stack(acc[k]) for k in keys),
                        initial_balance=initial, settings=settings)
