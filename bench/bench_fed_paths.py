"""How diverse the MacroVAE's paths through a supervisory table are, against the particle count and the
rejuvenation moves (issue 12, item 3: "model-based dispersion around" the table; prints, no assertions).

A table anchors five variables every quarter (:data:`creditsim.macro.scenarios.FED_ANCHORED_VARS`);
each anchor's resampling coalesces the particles' genealogy, so without moves the paths share their
early months and one run's spread of the unanchored variables is far too small. Printed per particle
count and number of pCN sweeps (:mod:`creditsim.macro.rejuvenation`): distinct histories up to months
1 / 6 / 12 / 24 / last, the month-12 and month-24 standard deviations of the unanchored variables (bp,
mean over the seeds) and CPU seconds per run. ``--reference R`` adds the law's own spread: the pooled
standard deviation over R independent runs of 8,000 particles without moves (pooling adds the
between-run variance that one coalesced run misses; slow).

Measured 2026-12-05 (2-core CPU, ``fed:2026:baseline`` from 2025-09, 500 paths, 39 months, seeds 0-2;
sds of policy rate / IG / HY / default rate, bp):

    particles moves  histories to months 1/6/12/24/38  month-12 sd               month-24 sd               CPU s
         2048     0  3 / 58 / 133 / 337 / 470          29.8 21.0 80.1  7.7       37.7 18.6 78.5 13.6       0.9
         2048    20  500 / 500 / 500 / 500 / 500       33.3 21.3 80.7 14.6       39.1 19.7 80.0 20.2       5.9
         8000     0  11 / 88 / 181 / 386 / 489         36.3 20.6 76.4 15.5       41.3 19.5 74.5 24.2       3.6
         8000    20  500 / 500 / 500 / 500 / 500       37.0 19.1 75.8 14.8       41.7 20.1 77.3 21.3       8.5
    reference: 16 runs x 8000 pooled                   44.8 18.3 69.4 18.0       47.2 21.4 81.0 26.5

One run's sd is noisy (its paths are clustered): the reference itself gave 37.0 / 17.7 / 67.6 / 16.8 at
month 12 in an earlier 16-run pooling.

    .venv/bin/python bench/bench_fed_paths.py [--scenario baseline] [--year 2026] [--paths 500]
        [--months 39] [--particles 2048 8000] [--moves 0 20] [--seeds 0 1 2] [--reference 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="baseline")
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--paths", type=int, default=500)
    ap.add_argument("--months", type=int, default=39)
    ap.add_argument("--particles", type=int, nargs="+", default=[2048, 8000])
    ap.add_argument("--moves", type=int, nargs="+", default=[0, 20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--reference", type=int, default=0, help="independent runs pooled for the reference spread")
    args = ap.parse_args()
    from creditsim.datasets import macro_state
    from creditsim.macro.scenarios import FED_ANCHORED_VARS, _anchor_conditions, fed_anchors
    from creditsim.macro.vae import ConditionRangeWarning, MacroVAE
    from creditsim.states import MACRO_VARS

    model = MacroVAE.from_pretrained()
    start = macro_state()
    conditions = _anchor_conditions(fed_anchors(args.year, args.scenario, args.months),
                                    start[list(MACRO_VARS)].to_numpy(float))  # as macro_paths builds them
    free = [MACRO_VARS.index(v) for v in MACRO_VARS if v not in FED_ANCHORED_VARS]
    order = [list(model.config.variables).index(v) for v in MACRO_VARS]
    marks = [m for m in (1, 6, 12, 24, args.months - 1) if m < args.months]
    sd_months = [m for m in (12, 24) if m < args.months]

    def run(n_particles: int, moves: int, seed: int) -> tuple[np.ndarray, float]:
        c0 = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConditionRangeWarning)
            x = model.generate_conditional(conditions, seq_length=args.months, n_samples=args.paths, seed=seed,
                                           scenario=args.scenario, start="model",
                                           n_particles=max(n_particles, args.paths), n_moves=moves)
        return x.double().numpy()[..., order], time.process_time() - c0

    print(f"fed:{args.year}:{args.scenario}, {args.paths} paths x {args.months} months from {start.name:%Y-%m}, "
          f"seeds {args.seeds}; sd columns: {', '.join(MACRO_VARS[j] for j in free)} (bp)")
    print(f"{'particles':>9} {'moves':>5}  {'distinct histories to months ' + ' / '.join(map(str, marks)):<44}  "
          + "  ".join(f"month-{m} sd" + " " * 14 for m in sd_months) + "  CPU s")
    for n_particles in args.particles:
        for moves in args.moves:
            runs = [run(n_particles, moves, seed) for seed in args.seeds]
            hist = np.mean([[len(np.unique(v[:, :m + 1].reshape(args.paths, -1), axis=0)) for m in marks]
                            for v, _ in runs], axis=0)
            sds = np.mean([[v[:, m, free].std(axis=0) * 1e4 for m in sd_months] for v, _ in runs], axis=0)
            cols = "  ".join(" ".join(f"{x:5.1f}" for x in row) for row in sds)
            print(f"{n_particles:>9} {moves:>5}  {' / '.join(f'{h:.0f}' for h in hist):<44}  {cols}  "
                  f"{np.mean([c for _, c in runs]):.1f}")
    if args.reference:
        pooled = np.concatenate([run(8000, 0, 100 + r)[0] for r in range(args.reference)])
        cols = "  ".join(" ".join(f"{x:5.1f}" for x in pooled[:, m, free].std(axis=0) * 1e4) for m in sd_months)
        print(f"{'reference':>15}  {f'{args.reference} runs x 8000 particles pooled':<44}  {cols}")


if __name__ == "__main__":
    main()
