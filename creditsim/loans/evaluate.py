"""Evaluate the LoanTrajectoryModel on held-out synthetic loans against the data and a cohort baseline.

    python -m creditsim.loans.evaluate [--checkpoint DIR] [--n-loans N] [--samples K]

Held-out set: for each evaluated scenario a fresh macro path and a fresh tape + panel (seeds disjoint
from training). Both generators receive the same cohort matrices, the empirical monthly matrices of
each loan's cohort in the held-out panel (:func:`creditsim.loans.train.empirical_cohort_matrices`),
so the comparison isolates what the loan-level model adds to its cohort: calibration by loan, the
within-cohort dynamics and the values.

Generators compared (EVALUATION.md, "Loan trajectories"):

- ``data``: the held-out panel itself (one realisation; ``se_*`` give its binomial standard errors).
- ``model``: :meth:`LoanTrajectoryModel.generate`, ``n_samples`` paths per loan.
- ``cohort_baseline``: every loan follows its cohort's matrices alone (a Markov chain with the
  cashflow engine's maturity relabelling: CURRENT at or after the maturity month becomes MATURED, an
  early MATURED becomes PREPAID), ``n_samples`` paths per loan. This is exactly the distribution of
  the model with its learned correction set to 0, so the gap between the two rows is what the
  loan-level transformer adds.

Metrics (per scenario): ``default_12m`` / ``prepay_12m`` share of loans absorbed in DEFAULT / PREPAID
by the end of month 12; ``dq_occupancy`` mean share of loan-months in DPD30..DPD90; ``state_tv`` mean
over months of the total-variation distance between the per-month state distributions of data and
generator; ``default_auc`` AUC of each loan's generated 12-month default frequency against its
realised default (loan-level discrimination); ``roll_rate_err`` occupancy-weighted mean absolute
error of the pooled transition matrix of the generated paths against the data's; ``lgd_w1``
Wasserstein-1 distance between realised and generated LGDs at default; ``acct_violations`` share of
generated loan-months breaking an accounting rule (negative or increasing balance, flows that do not
reconcile opening to closing balance, cash after absorption, loss above exposure, forbidden move).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError
from creditsim.features import loan_features
from creditsim.loans.train import CUTOFF, empirical_cohort_matrices, panel_arrays
from creditsim.loans.trajectory import LoanTrajectoryModel, remaining_term
from creditsim.macro.synthetic import MacroScenarioGenerator
from creditsim.states import (
    ALLOWED_TRANSITIONS,
    N_STATES,
    SCENARIOS,
    LoanState,
    scenario_index,
)
from creditsim.transitions.cohorts import cohort_keys
from creditsim.transitions.synthetic import LoanTapeGenerator

__all__ = [
    "TrajectoryEvaluation",
    "state_path_metrics",
    "accounting_violations",
    "sample_cohort_baseline",
    "evaluate_trajectory_model",
    "main",
]

METRICS = ("default_12m", "prepay_12m", "dq_occupancy", "state_tv", "roll_rate_err", "default_auc", "lgd_w1",
           "acct_violations")


@dataclass
class TrajectoryEvaluation:
    """Result of :func:`evaluate_trajectory_model`: ``table`` (one row per scenario x generator x
    seed, columns :data:`METRICS` + ``se_default_12m``, ``se_prepay_12m``) and the settings used."""

    table: pd.DataFrame
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def mean(self) -> pd.DataFrame:
        """Metrics averaged over seeds, one row per scenario x generator."""
        return self.table.groupby(level=["scenario", "generator"], sort=False).mean()

    def sd(self) -> pd.DataFrame:
        """Standard deviation of the metrics over seeds (NaN with one seed)."""
        return self.table.groupby(level=["scenario", "generator"], sort=False).std()

    def summary(self) -> pd.DataFrame:
        """``"mean ± sd"`` strings over seeds (just the mean with one seed), metrics as columns."""
        mean, sd = self.mean()[list(METRICS)], self.sd()[list(METRICS)]
        if self.table.index.get_level_values("seed").nunique() < 2:
            return mean.round(4)
        fmt = lambda m, s: "" if pd.isna(m) else f"{m:.4f} ± {s:.4f}"  # noqa: E731
        return pd.DataFrame({c: [fmt(m, v) for m, v in zip(mean[c], sd[c])] for c in METRICS}, index=mean.index)


def _occupancy(states: np.ndarray) -> np.ndarray:
    """``(T, 7)`` share of loans in each state per month; ``states`` ``(n, L, T)``."""
    T = states.shape[-1]
    flat = states.reshape(-1, T)
    return np.stack([np.bincount(flat[:, t], minlength=N_STATES) / flat.shape[0] for t in range(T)])


def _pooled_matrix(states: np.ndarray, initial: int = LoanState.CURRENT) -> tuple[np.ndarray, np.ndarray]:
    """Pooled empirical transition matrix ``(7, 7)`` and its row counts ``(7,)``."""
    flat = states.reshape(-1, states.shape[-1]).astype(np.int64)
    prev = np.concatenate([np.full((flat.shape[0], 1), initial), flat[:, :-1]], axis=1)
    counts = np.bincount((prev * N_STATES + flat).ravel(), minlength=N_STATES * N_STATES).reshape(N_STATES, N_STATES)
    rows = counts.sum(1)
    return counts / np.maximum(rows, 1)[:, None], rows


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN when one class is empty."""
    from scipy.stats import rankdata

    label = label.astype(bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(score)
    return float((r[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def state_path_metrics(real: np.ndarray, generated: np.ndarray, horizon: int = 12) -> dict[str, float]:
    """Path statistics of ``generated`` ``(n, L, T)`` against ``real`` ``(L, T)`` states.

    Returns ``default_12m``, ``prepay_12m``, ``dq_occupancy`` (of ``generated``), ``state_tv``,
    ``roll_rate_err`` and ``default_auc`` (both against ``real``; the AUC scores each loan by its
    share of generated paths in default at the horizon).
    """
    generated = np.asarray(generated).astype(np.int64)
    real = np.asarray(real).astype(np.int64)
    if generated.ndim == 2:
        generated = generated[None]
    if generated.shape[1:] != real.shape:
        raise ConfigError(f"generated states {generated.shape[1:]} do not match real {real.shape}")
    h = min(horizon, real.shape[1]) - 1
    occ_g, occ_r = _occupancy(generated), _occupancy(real[None])
    p_g, _ = _pooled_matrix(generated)
    p_r, rows_r = _pooled_matrix(real[None])
    live = list(range(LoanState.DPD90 + 1))
    w = rows_r[live] / rows_r[live].sum()
    pd_loan = (generated[:, :, h] == LoanState.DEFAULT).mean(axis=0)
    return {
        "default_12m": float((generated[:, :, h] == LoanState.DEFAULT).mean()),
        "prepay_12m": float((generated[:, :, h] == LoanState.PREPAID).mean()),
        "dq_occupancy": float(np.isin(generated, [LoanState.DPD30, LoanState.DPD60, LoanState.DPD90]).mean()),
        "state_tv": float(0.5 * np.abs(occ_g - occ_r).sum(axis=1).mean()),
        "roll_rate_err": float((w * np.abs(p_g[live] - p_r[live]).sum(axis=1)).sum()),
        "default_auc": _auc(pd_loan, real[:, h] == LoanState.DEFAULT),
    }


def accounting_violations(gen: dict[str, torch.Tensor], tol: float = 1e-6) -> float:
    """Share of generated loan-months breaking an accounting rule (see the module docstring)."""
    s = gen["states"].cpu().numpy().astype(np.int64)
    n, L, T = s.shape
    bal = gen["balances"].cpu().numpy()
    opening = np.broadcast_to(gen["opening_balance"].cpu().numpy()[None, :, None], (n, L, 1))
    before = np.concatenate([opening, bal[..., :-1]], axis=-1)
    prev = np.concatenate([np.zeros((n, L, 1), np.int64), s[..., :-1]], axis=-1)
    outflow = gen["scheduled_principal"].cpu().numpy() + gen["prepayment"].cpu().numpy() + gen["default_par"].cpu().numpy()
    scale = np.maximum(before, 1.0)
    absorbed = prev >= LoanState.DEFAULT
    cash = gen["payments"].cpu().numpy() + gen["losses"].cpu().numpy()
    bad = (
        (bal < -tol * scale)
        | (bal > before + tol * scale)
        | (np.abs(before - outflow - bal) > tol * scale)
        | (absorbed & (np.abs(cash) > 0))
        | (gen["losses"].cpu().numpy() > gen["default_par"].cpu().numpy() + tol * scale)
        | ~ALLOWED_TRANSITIONS[prev, s]
    )
    return float(bad.mean())


def sample_cohort_baseline(cohort: np.ndarray, remaining_term: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """States ``(n_samples, L, T)`` int8 drawn from each loan's cohort matrices alone.

    ``cohort`` ``(L, T, 7, 7)``; the maturity relabelling of the cashflow engine is applied: with
    maturity month ``m = remaining_term - 1``, a CURRENT draw at ``t >= m`` is MATURED and a MATURED
    draw before ``m`` is PREPAID.
    """
    rng = np.random.default_rng(seed)
    L, T = cohort.shape[:2]
    cum = np.cumsum(cohort, axis=-1)
    out = np.empty((n_samples, L, T), dtype=np.int8)
    state = np.zeros((n_samples, L), dtype=np.int64)
    m = np.asarray(remaining_term, dtype=np.int64) - 1
    li = np.arange(L)[None, :]
    for t in range(T):
        c = cum[li, t, state]  # (n, L, 7)
        u = rng.random((n_samples, L, 1))
        new = np.minimum((u >= c[..., :-1]).sum(-1), N_STATES - 1)
        # rounding can leave u above the last cumulative value; never select a zero-probability state
        p_new = cohort[li, t, state, new]
        new = np.where(p_new > 0, new, state)
        live = state <= LoanState.DPD90
        new = np.where(live & (t >= m) & (new == LoanState.CURRENT), LoanState.MATURED, new)
        new = np.where(live & (t < m) & (new == LoanState.MATURED), LoanState.PREPAID, new)
        out[:, :, t] = new
        state = new
    return out


def evaluate_trajectory_model(model: LoanTrajectoryModel, scenarios: tuple = ("baseline", "severely_adverse"),
                              n_loans: int = 1000, n_months: int = 24, n_samples: int = 5, seed: int = 12345,
                              idio_scale: float | None = None, n_seeds: int = 1) -> TrajectoryEvaluation:
    """Compare the model with the held-out data and the cohort baseline (see the module docstring).

    Args:
        model: a trained model.
        scenarios: scenario names or indices to evaluate.
        n_loans: held-out loans per scenario.
        n_months: months per panel (<= model.config.max_months).
        n_samples: generated paths per loan.
        seed: seed of the held-out macro paths, tapes and samples (disjoint from training seeds).
        idio_scale: frailty sd for generation (default the model's config).
        n_seeds: repetitions with seeds ``seed + 1000 i`` (new held-out tapes, paths and samples);
            EVALUATION.md asks for mean +- sd over 5.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ConfigError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    t0 = time.perf_counter()
    tables = [_evaluate_once(model, scenarios, n_loans, n_months, n_samples, seed + 1000 * i, idio_scale)
              .assign(seed=seed + 1000 * i).set_index("seed", append=True) for i in range(n_seeds)]
    settings = {"scenarios": [SCENARIOS[scenario_index(s)] for s in scenarios], "n_loans": n_loans,
                "n_months": n_months, "n_samples": n_samples, "seeds": [seed + 1000 * i for i in range(n_seeds)],
                "idio_scale": model.config.idio_scale if idio_scale is None else idio_scale}
    return TrajectoryEvaluation(table=pd.concat(tables), settings=settings, seconds=time.perf_counter() - t0)


def _evaluate_once(model, scenarios, n_loans, n_months, n_samples, seed, idio_scale) -> pd.DataFrame:
    from scipy.stats import wasserstein_distance

    rows = []
    gen = MacroScenarioGenerator(n_months, start=CUTOFF)
    for k, sc in enumerate(scenarios):
        s = scenario_index(sc)
        macro = gen.generate_scenario(s, 1, seed=seed + 7919 * (k + 1))[0]
        loans, panel = LoanTapeGenerator(n_loans, n_months, random_seed=seed + k, macro_path=macro, cutoff=CUTOFF).generate()
        feats = torch.from_numpy(np.array(loan_features(loans, as_of=CUTOFF).to_numpy(np.float32)))
        arr = panel_arrays(loans, panel)
        real = arr["states"]
        codes, labels = pd.factorize(cohort_keys(loans), sort=True)
        cohort = empirical_cohort_matrices(real, codes, len(labels))[codes]  # (L, T, 7, 7)
        terms = {
            "balance": loans["current_balance"].to_numpy(np.float64),
            "interest_rate": loans["interest_rate"].to_numpy(np.float64),
            "remaining_term": remaining_term(feats).numpy(),
            "amortization": loans["amortization_type"].to_numpy(),
        }
        out = model.generate(feats, torch.from_numpy(cohort).float(), torch.from_numpy(macro).float(), n_samples,
                             loan_terms=terms, seed=seed + k, idio_scale=idio_scale)
        g_states = out["states"].cpu().numpy()
        base = sample_cohort_baseline(cohort, terms["remaining_term"], n_samples, seed + 100 + k)
        real_lgd = arr["values"][..., 1][arr["value_mask"][..., 1]]
        g_lgd = out["lgd"].cpu().numpy()
        g_lgd = g_lgd[np.isfinite(g_lgd)]
        name = SCENARIOS[s]
        data_row = state_path_metrics(real, real[None])
        p_d, p_p = data_row["default_12m"], data_row["prepay_12m"]
        data_row.update(se_default_12m=float(np.sqrt(p_d * (1 - p_d) / n_loans)),
                        se_prepay_12m=float(np.sqrt(p_p * (1 - p_p) / n_loans)), default_auc=float("nan"))
        rows.append({"scenario": name, "generator": "data", **data_row})
        rows.append({"scenario": name, "generator": "model", **state_path_metrics(real, g_states),
                     "lgd_w1": float(wasserstein_distance(real_lgd, g_lgd)) if len(real_lgd) and len(g_lgd)
                     else float("nan"),
                     "acct_violations": accounting_violations(out)})
        rows.append({"scenario": name, "generator": "cohort_baseline", **state_path_metrics(real, base)})

    table = pd.DataFrame(rows).set_index(["scenario", "generator"])
    return table.reindex(columns=[*METRICS, "se_default_12m", "se_prepay_12m"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--n-loans", type=int, default=1000)
    parser.add_argument("--n-months", type=int, default=24)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--idio-scale", type=float, default=None)
    parser.add_argument("--seeds", type=int, default=5, help="repetitions (mean ± sd)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = LoanTrajectoryModel.from_pretrained(args.checkpoint)
    res = evaluate_trajectory_model(model, n_loans=args.n_loans, n_months=args.n_months, n_samples=args.samples,
                                    seed=args.seed, idio_scale=args.idio_scale, n_seeds=args.seeds)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(res.summary())
    print(f"settings {res.settings}; {res.seconds:.1f} s")


if __name__ == "__main__":
    main()
