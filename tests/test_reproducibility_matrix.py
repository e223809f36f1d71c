"""Same seed, same numbers: chunk sizes x BLAS code paths x thread counts, bit for bit.

Each configuration runs in a fresh subprocess (MKL reads ``MKL_CBWR`` and OpenMP its thread count at
start-up) and digests the engine's pool cashflows and ``simulate``'s results for chunk sizes 37, 333,
1000 and 7919. Within a configuration every chunk size must give the same digest. Because the engine
sums whole cents exactly (:mod:`creditsim.cents`) and the waterfall reduces column by
column, the digests must also agree *across* configurations: the BLAS kernel and the thread count
cannot reach an output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "repro" / "chunk_invariance_worker.py"
CHUNKS = ("37", "333", "1000", "7919")
CBWR = (None, "AVX2", "AVX512", "COMPATIBLE")
THREADS = ("1", "2")


def _run(cbwr: str | None, threads: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if cbwr is not None:
        env["MKL_CBWR"] = cbwr
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    proc = subprocess.run([sys.executable, str(WORKER), *CHUNKS], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"MKL_CBWR={cbwr} threads={threads}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def matrix() -> dict[tuple[str | None, str], dict]:
    return {(cbwr, threads): _run(cbwr, threads) for cbwr in CBWR for threads in THREADS}


def test_bit_identical_across_chunk_sizes_in_every_blas_and_thread_setting(matrix) -> None:
    for (cbwr, threads), out in matrix.items():
        assert out["threads"] == int(threads), "the worker did not run with the requested thread count"
        for part in ("engine", "simulate"):
            digests = out[part]
            assert set(digests) == set(CHUNKS)
            assert len(set(digests.values())) == 1, f"{part} differs across chunk sizes under MKL_CBWR={cbwr}, {threads} thread(s): {digests}"


def test_bit_identical_across_blas_code_paths_and_thread_counts(matrix) -> None:
    for part in ("engine", "simulate"):
        seen = {key: out[part][CHUNKS[0]] for key, out in matrix.items()}
        assert len(set(seen.values())) == 1, f"{part} depends on the BLAS code path or thread count: {seen}"
