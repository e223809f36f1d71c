"""Throughput of the IFRS 9 ECL engine: 100,000 loans x 360 months x 3 scenarios.

Book: amortising loans (annuity, linear, interest-only, bullet), 1-360 months left, CPR 0-20 %
prepayment (competing risk), 20 % with an undrawn limit (CCF 0.5), grades BBB..CCC on the bundled S&P
8x8, three Z-path scenarios (reverting linearly to TTC after 36 months), per-loan flat LGD, monthly
periods, weighted staging with every SICR rule on. Prints loan-month-scenarios per second (counting
each loan's remaining months) and peak memory (traced numpy allocations during the run and the
process's peak RSS).

Run: ``.venv/bin/python bench/bench_ecl.py [n_loans] [chunk_size] [workers]``. Target (issue 16): >= 3e7 / s on
2 cores, < 1 GB.

Measured 2026-12-04 on the shared 2-core machine (load ~1.5-1.8 from other sessions), 100,000 loans,
chunk 2048: one thread 3.0-3.2 s = 3.3-3.6e7 loan-month-scenarios/s, peak traced numpy memory 97 MiB,
process peak RSS 457 MiB; two worker threads 3.4-3.5 s = 3.1-3.2e7/s, 176 MiB traced, 570 MiB RSS (the
second core was busy with other work, so threads did not pay there).
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, ScenarioMatrixPD, expected_credit_loss


def book(n: int, seed: int = 16) -> EclLoans:
    rng = np.random.default_rng(seed)
    grade = rng.integers(3, 7, n)
    return EclLoans(
        balance=rng.uniform(5e3, 1e6, n).round(2), annual_rate=rng.uniform(0.02, 0.09, n),
        remaining_months=360,
        amortization=rng.choice(["annuity", "linear", "interest_only", "bullet"], n, p=[0.6, 0.2, 0.1, 0.1]),
        io_months=rng.integers(0, 60, n), prepayment_cpr=rng.uniform(0.0, 0.2, n),
        undrawn=np.where(rng.random(n) < 0.2, rng.uniform(1e3, 1e5, n), 0.0), ccf=0.5,
        grade=grade, origination_grade=np.clip(grade - rng.integers(0, 3, n), 0, 6), months_on_book=rng.integers(0, 120, n),
        days_past_due=rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 45, 120], n), watch_list=rng.random(n) < 0.03,
        rate_type=rng.choice(["fixed", "floating"], n), current_eir=0.07)


def main(n: int = 100_000, chunk_size: int = 2048, workers: int = 1) -> None:
    ttc = load_sp_ratings().matrix_8x8
    z = np.array([[0.8] * 30, [0.0] * 30, [-1.8, -1.2, -0.4] + [0.0] * 27])
    provider = ScenarioMatrixPD.from_z_paths(ttc, z, rho=0.06)
    loans = book(n)
    lgd = FlatLGD(np.random.default_rng(1).uniform(0.1, 0.7, n))
    settings = EclSettings(period="month")
    provider.survival(loans.subset(slice(0, 1)), 360, settings)  # build the 360-month survival table once
    work = int(loans.remaining_months.sum()) * 3
    tracemalloc.start()
    t0 = time.perf_counter()
    res = expected_credit_loss(loans, provider, lgd, ["up", "base", "down"], [0.25, 0.5, 0.25], settings, chunk_size=chunk_size, workers=workers)
    dt = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    full = n * 360 * 3
    print(f"{n} loans x 360 months x 3 scenarios, chunk {chunk_size}, {workers} worker threads: {dt:.2f} s")
    print(f"  {work / dt:.3g} loan-month-scenarios/s over remaining lives ({work:.3g}), "
          f"{full / dt:.3g}/s on the full 360-month grid")
    print(f"  peak traced numpy memory {traced / 2**20:.0f} MiB, process peak RSS {rss:.0f} MiB")
    print(f"  allowance {res.total:,.0f}; stages {np.bincount(res.stage, minlength=4)[1:].tolist()}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
