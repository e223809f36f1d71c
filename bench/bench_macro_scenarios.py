"""What each macro scenario means from today's economy: the issue-12 acceptance statistics.

For each source (default: the pretrained VAE, the VAR(1) and block-bootstrap baselines) and scenario,
draws ``--paths`` paths of ``--months`` months from the latest real month (``macro_state()``) and prints
medians of: unemployment peak and rise, HY spread widening (peak - start), real activity fall peak to
trough (from y/y GDP growth), house-price fall (cumulative from y/y growth), inflation and policy-rate
gaps to baseline at months 12-24, and P(stress statistic > baseline statistic); then the Fed's
2026 (proposed) supervisory paths for reference.

Two readings of the issue's distributional bars are printed. The lenient one, which the tests use:
P on the unemployment peak (``P(u_peak>base)``) and the diversity ratio's median over the nine variables
(``disp36_ratio``). The strict one: the smallest P over every statistic that is worse for a stress
(higher unemployment peak and rise, wider HY, deeper GDP and house-price falls; for stagflation also
higher inflation and policy rate), ``P_min`` and the statistic, and the smallest per-variable ratio,
``disp36_min`` and the variable. Measured 2026-12-05 (VAE, 1,000 paths, seed 11, from 2025-09): the
lenient bars hold everywhere; strictly, stagflation's HY widening reaches P = 0.76 and 10 of 36
scenario-variable ratios are below 0.6 (GDP 0.41-0.56 in every scenario, baseline house prices 0.34).

    .venv/bin/python bench/bench_macro_scenarios.py [--paths 1000] [--months 39] [--sources vae var bootstrap]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import creditsim as cs
from creditsim.datasets import load_fed_scenarios
from creditsim.macro.scenarios import fed_table_path
from creditsim.macro.synthetic import activity_level_drawdown
from creditsim.states import MACRO_VARS, SCENARIOS

J = {v: i for i, v in enumerate(MACRO_VARS)}


def level_fall(growth_yoy: np.ndarray) -> np.ndarray:
    """Largest peak-to-trough fall of a level implied by monthly y/y growth (P, T) -> (P,) <= 0."""
    return activity_level_drawdown(growth_yoy)


def house_price_fall(hpg: np.ndarray) -> np.ndarray:
    """Peak-to-trough fall of a price index whose y/y growth is ``hpg`` (same convention as GDP)."""
    return activity_level_drawdown(hpg, trend=0.0)


def stats(v: np.ndarray) -> dict[str, np.ndarray]:
    u, hy = v[:, :, J["unemployment_rate"]], v[:, :, J["credit_spread_hy"]]
    return {
        "u_peak": u.max(1), "u_rise": u.max(1) - u[:, 0], "hy_widen_bp": 1e4 * (hy.max(1) - hy[:, 0]),
        "gdp_fall": level_fall(v[:, :, J["gdp_growth"]]), "hpi_fall": house_price_fall(v[:, :, J["house_price_growth"]]),
        "infl_12_24": v[:, 12:25, J["inflation_rate"]].mean(1), "policy_12_24": v[:, 12:25, J["policy_rate"]].mean(1),
    }


def worse_probabilities(stress: dict[str, np.ndarray], base: dict[str, np.ndarray],
                        stagflation: bool) -> dict[str, float]:
    """P(stress statistic worse than baseline statistic) over all path pairs, per statistic: higher for
    unemployment, HY widening (and, for stagflation, inflation and policy rate), lower (deeper) for the
    GDP and house-price falls."""
    higher = ["u_peak", "u_rise", "hy_widen_bp"] + (["infl_12_24", "policy_12_24"] if stagflation else [])
    out = {k: float(np.mean(stress[k][:, None] > base[k][None, :])) for k in higher}
    out.update({k: float(np.mean(stress[k][:, None] < base[k][None, :])) for k in ("gdp_fall", "hpi_fall")})
    return out


def historical_change_sd(months: int = 36, window: int = 39) -> np.ndarray:
    """(4, 9) std of the ``months``-month changes of the historical ``window``-month windows of each
    scenario type (the VAE's own labelling of its training windows): the issue's diversity bar compares a
    scenario with history's windows *of the same type*, as tests/macro/test_anchors.py does."""
    from creditsim.datasets import load_recession_indicator
    from creditsim.macro.train import label_windows, make_windows

    hist = cs.load_macro_history()
    windows, starts = make_windows(hist, window)
    labels = label_windows(windows, starts, load_recession_indicator()["recession"], hist)
    change = windows[:, months] - windows[:, 0]
    return np.stack([change[labels == k].std(0) for k in range(len(SCENARIOS))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--months", type=int, default=39)
    ap.add_argument("--sources", nargs="+", default=["vae", "var", "bootstrap"])
    args = ap.parse_args()
    rows = []
    hist_sd = historical_change_sd(36) if args.months > 36 else None
    for src in args.sources:
        per, paths = {}, {}
        for s in SCENARIOS:
            mp = cs.macro_paths(src, s, n_paths=args.paths, months=args.months, seed=11)
            per[s], paths[s] = stats(mp.values), mp.values
        for s in SCENARIOS:
            row = {"source": src, "scenario": s, "start": mp.start.split(",")[0]}
            row.update({k: float(np.median(x)) for k, x in per[s].items()})
            if hist_sd is not None:  # diversity: 36-month change dispersion over history's windows of the type
                v = paths[s]
                ratio = (v[:, 36] - v[:, 0]).std(0) / hist_sd[SCENARIOS.index(s)]
                row["disp36_ratio"] = float(np.median(ratio))
                row["disp36_min"], row["disp36_min_var"] = float(ratio.min()), MACRO_VARS[int(ratio.argmin())]
            if s != "baseline":
                row["P(u_peak>base)"] = float(np.mean(per[s]["u_peak"][:, None] > per["baseline"]["u_peak"][None, :200]))
                p_worse = worse_probabilities(per[s], per["baseline"], stagflation=s == "stagflation")
                row["P_min_stat"] = min(p_worse, key=p_worse.get)
                row["P_min"] = p_worse[row["P_min_stat"]]
            rows.append(row)
    for scen in ("baseline", "severely_adverse"):
        # the published table itself (fed:... sources are now VAE paths through it, with dispersion)
        table_path = fed_table_path(2026, scen, args.months)[None]
        first = load_fed_scenarios(2026, scen, monthly=True).index[0]
        row = {"source": "fed 2026 table", "scenario": scen, "start": str(first.date())}
        row.update({k: float(x[0]) for k, x in stats(table_path).items()})
        rows.append(row)
    table = pd.DataFrame(rows).set_index(["source", "scenario"])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table)


if __name__ == "__main__":
    main()
