"""What each macro scenario means from today's economy: the issue-12 acceptance statistics.

For each source (default: the pretrained VAE, the VAR(1) and block-bootstrap baselines) and scenario,
draws ``--paths`` paths of ``--months`` months from the latest real month (``macro_state()``) and prints
medians of: unemployment peak and rise, HY spread widening (peak - start), real activity fall peak to
trough (from y/y GDP growth), house-price fall (cumulative from y/y growth), inflation and policy-rate
gaps to baseline at months 12-24, and P(stress statistic > baseline statistic); then the Fed's
2026 (proposed) supervisory paths for reference.

The issue's distributional bars are printed in the readings below (VAE, 1,000 paths from 2025-09,
seeds 11 and 5, measured 2026-12-06).

* Separation, P(stress statistic worse than baseline statistic) over all path pairs: ``P_named_min``
  over the statistics the issue names per scenario (adverse and severely adverse: unemployment peak,
  GDP and house-price falls, HY widening; stagflation: inflation, policy rate, unemployment rise):
  0.87-0.88 (adverse GDP fall), 0.97, 0.89. ``P_min`` over every statistic that is worse for a stress:
  stagflation's HY widening, not one of its named statistics, reaches 0.76.
* Diversity, the 36-month change's sd over history's windows of the same type
  (:func:`creditsim.macro.evaluate.scenario_diversity`; COVID windows out, as in training): the total
  standardised ratio ``disp36_total`` 0.72-0.91; per variable ``disp36_min`` 0.34-0.51 (9-10 of 36
  below 0.6: GDP growth in every scenario, baseline house prices 0.34); per variable against history's
  spread once each window's start is known, ``disp36_cond_min``, 0.60-0.62 at its smallest (baseline
  policy rate; severely adverse inflation 0.70-0.72).
* ``--frontier``: every innovation sd times c. Per-variable ratios all >= 0.6 need c = 2, where the
  named P falls to 0.74 (adverse GDP fall) and the baseline's unemployment peak rises 0.6 pp; P >= 0.8
  holds to c = 1.5, where 2-4 ratios are still short. No width meets both readings at once:

  ====== ================= ============== ============= ===========
  c      ratios below 0.6  smallest ratio smallest total P_named_min
  ====== ================= ============== ============= ===========
  1.0    9 / 10            0.34 / 0.34    0.73 / 0.72   0.88 / 0.87
  1.25   6 / 4             0.42 / 0.40    0.84 / 0.84   0.84 / 0.83
  1.5    2 / 4             0.48 / 0.49    0.94 / 0.90   0.80 / 0.80
  2.0    0 / 0             0.69 / 0.69    1.10 / 1.07   0.74 / 0.74
  2.5    0 / 0             0.85 / 0.84    1.28 / 1.25   0.69 / 0.69
  ====== ================= ============== ============= ===========

  (seed 11 / seed 5.)

    .venv/bin/python bench/bench_macro_scenarios.py [--paths 1000] [--months 39] [--sources vae var bootstrap]
    .venv/bin/python bench/bench_macro_scenarios.py --frontier [1 1.25 1.5 2 2.5]
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


NAMED = {"adverse": ("u_peak", "gdp_fall", "hpi_fall", "hy_widen_bp"),
         "severely_adverse": ("u_peak", "gdp_fall", "hpi_fall", "hy_widen_bp"),
         "stagflation": ("infl_12_24", "policy_12_24", "u_rise")}
"""the statistics the issue names per stress scenario (its sizes, its 'adverse between' and stagflation bullets)"""


def readings(paths: dict[str, np.ndarray], seed_stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Per scenario: diversity readings (36-month change, :func:`creditsim.macro.evaluate.scenario_diversity`)
    and the smallest P(stress worse than baseline) over the named statistics and over all of them."""
    from creditsim.datasets import load_recession_indicator
    from creditsim.macro.evaluate import scenario_diversity

    div = scenario_diversity(paths, cs.load_macro_history(), load_recession_indicator()["recession"])
    out = {}
    for s in SCENARIOS:
        unc, cond = div.loc[("unconditional", s), list(MACRO_VARS)], div.loc[("start_conditional", s), list(MACRO_VARS)]
        row = {"disp36_total": float(div.loc[("unconditional", s), "total"]), "disp36_median": float(unc.median()),
               "disp36_min": float(unc.min()), "disp36_min_var": str(unc.idxmin()),
               "disp36_cond_min": float(cond.min()), "disp36_cond_min_var": str(cond.idxmin()),
               "n_short": int((unc < 0.6).sum())}
        if s != "baseline":
            p_worse = worse_probabilities(seed_stats[s], seed_stats["baseline"], stagflation=s == "stagflation")
            named = {k: p_worse[k] for k in NAMED[s]}
            row["P_named_min"], row["P_named_stat"] = min(named.values()), min(named, key=named.get)
            row["P_min"], row["P_min_stat"] = min(p_worse.values()), min(p_worse, key=p_worse.get)
        out[s] = row
    return out


def frontier(factors: list[float], n_paths: int, months: int, seeds: list[int]) -> pd.DataFrame:
    """The pretrained VAE with every variable's innovation sd times ``c`` (:meth:`MacroVAE.set_dispersion`):
    how many of the 36 scenario-variable diversity ratios stay below 0.6, against the smallest
    P(stress worse than baseline) over the named statistics. Wider paths keep more of history's spread
    but separate the scenarios less; the table shows whether any width meets both bars."""
    from creditsim.macro.vae import MacroVAE

    vae = MacroVAE.from_pretrained()
    rows = []
    for seed in seeds:
        for c in factors:
            vae.set_dispersion(np.full(len(MACRO_VARS), c))
            paths = {s: cs.macro_paths(vae, s, n_paths=n_paths, months=months, seed=seed).values for s in SCENARIOS}
            r = readings(paths, {s: stats(v) for s, v in paths.items()})
            named = {s: r[s]["P_named_min"] for s in SCENARIOS[1:]}
            worst = min(named, key=named.get)
            rows.append({"seed": seed, "factor": c, "ratios_below_0.6": sum(r[s]["n_short"] for s in SCENARIOS),
                         "smallest_ratio": min(r[s]["disp36_min"] for s in SCENARIOS),
                         "smallest_total": min(r[s]["disp36_total"] for s in SCENARIOS),
                         "P_named_min": named[worst], "at": f"{worst}/{r[worst]['P_named_stat']}",
                         "baseline_u_peak": float(np.median(paths["baseline"][:, :, J["unemployment_rate"]].max(1)))})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--months", type=int, default=39)
    ap.add_argument("--sources", nargs="+", default=["vae", "var", "bootstrap"])
    ap.add_argument("--frontier", nargs="*", type=float, metavar="FACTOR",
                    help="print the width/separation frontier of the VAE for these dispersion factors "
                         "(default 1 1.25 1.5 2 2.5) at seeds 11 and 5, and nothing else")
    args = ap.parse_args()
    if args.frontier is not None:
        with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
            print(frontier(args.frontier or [1.0, 1.25, 1.5, 2.0, 2.5], args.paths, args.months, [11, 5]).to_string(index=False))
        return
    rows = []
    for src in args.sources:
        per, paths = {}, {}
        for s in SCENARIOS:
            mp = cs.macro_paths(src, s, n_paths=args.paths, months=args.months, seed=11)
            per[s], paths[s] = stats(mp.values), mp.values
        extra = readings(paths, per) if args.months > 36 else {}
        for s in SCENARIOS:
            row = {"source": src, "scenario": s, "start": mp.start.split(",")[0]}
            row.update({k: float(np.median(x)) for k, x in per[s].items()})
            row.update({k: v for k, v in extra.get(s, {}).items() if k != "n_short"})
            if s != "baseline":
                row["P(u_peak>base)"] = float(np.mean(per[s]["u_peak"][:, None] > per["baseline"]["u_peak"][None, :200]))
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
