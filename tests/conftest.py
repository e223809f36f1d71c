"""Suite-wide test settings: deterministic hypothesis, headless plotting, modest thread counts."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# The restricted series (ICE BofA spreads, Case-Shiller, FRED-MD) are not shipped; the suite's pinned
# numbers come from their copies in ../shared/data/macro (the checkout's sibling, as in CI). Point the
# search there first, so that a developer's own `creditsim data fetch` (a newer vintage in the user
# cache) cannot move them. Without ../shared the normal search order applies.
_SHARED_MACRO = Path(__file__).resolve().parents[2] / "shared" / "data" / "macro"
if _SHARED_MACRO.is_dir():
    os.environ["CREDITSIM_DATA_DIR"] = str(_SHARED_MACRO)
# The suite runs with 2 pytest workers on a 2-core machine; more threads per worker only thrash.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# derandomize: the same examples on every run, so a red CI is reproducible and a green one is not luck.
settings.register_profile(
    "creditsim",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "creditsim"))

try:  # torch is a hard dependency, but keep conftest importable for data-only runs
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_deal_yaml():
    """``small_deal_yaml(name, tranche_names) -> str``: a four-class deal file (70 / 15 / 10 / 5 of a 100m
    pool, OC triggers 1.20 / 1.10 / 1.05, the third class deferrable, 6-month reinvestment) for CLI runs."""

    def text(name: str, names: tuple[str, str, str, str] = ("A", "B", "C", "Equity")) -> str:
        a, b, c, e = names
        return (f"name: {name}\nreinvestment_period: 6\ntranches:\n"
                f"  - {{name: {a}, balance: 70_000_000, coupon: 0.055, oc_trigger: 1.20, ic_trigger: 1.20}}\n"
                f"  - {{name: {b}, balance: 15_000_000, coupon: 0.075, oc_trigger: 1.10}}\n"
                f"  - {{name: {c}, balance: 10_000_000, coupon: 0.10, oc_trigger: 1.05, deferrable: true}}\n"
                f"  - {{name: {e}, balance: 5_000_000, equity: true}}\n")

    return text


@pytest.fixture
def run_cli():
    """``run_cli(argv) -> exit code`` of the ``creditsim`` command (typer exits via SystemExit)."""
    from creditsim.cli import main

    def run(argv: list[str]) -> int:
        with pytest.raises(SystemExit) as e:
            main(argv)
        return int(e.value.code)

    return run


@pytest.fixture
def one_thread():
    """torch on one thread for the test (small step-by-step ops; the thread count restored after)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def one_line_error(capsys):
    """``one_line_error() -> str``: the captured stderr, asserted to be one line and no traceback."""
    def read() -> str:
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err
        assert len(err.splitlines()) == 1, err
        return err

    return read


@pytest.fixture
def check_gradient():
    """``check(fn, x, rel)``: autograd's gradient of the scalar ``fn(x)`` against central finite
    differences (step 1e-6 of each coordinate), both finite and equal to ``rel``; returns the finite
    differences ``(len(x),)``."""
    import numpy as np
    import torch

    def check(fn, sizes: "torch.Tensor", rel: float) -> "np.ndarray":
        x = sizes.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x), x)
        assert torch.all(torch.isfinite(grad))
        fd = np.empty(len(sizes))
        for k in range(len(sizes)):
            h = 1e-6 * float(sizes[k])
            e = torch.zeros_like(sizes)
            e[k] = h
            with torch.no_grad():
                fd[k] = float(fn(sizes + e) - fn(sizes - e)) / (2 * h)
        np.testing.assert_allclose(grad.numpy(), fd, rtol=rel, atol=rel * np.abs(fd).max())
        return fd

    return check


@pytest.fixture(scope="session")
def sp_term_structure():
    """The Markov-mixture term structure fitted once on the bundled S&P data (1981-2016 one-year matrix,
    1981-2024 cumulative default rates; ~3 s): shared by the ratings and the IFRS 9 tests."""
    from creditsim.datasets.ratings import load_sp_cumulative_default_rates, load_sp_ratings
    from creditsim.ratings.term_structure import MarkovMixtureTermStructure

    return MarkovMixtureTermStructure(load_sp_ratings().matrix_8x8).fit(load_sp_cumulative_default_rates())


@pytest.fixture(scope="session")
def synthetic_book():
    """``synthetic_book(folder, n_loans, n_months, seed) -> (loans, panel, folder)``: a LoanTapeGenerator book
    from 2022-01 (inside the bundled macro history), also written to ``folder`` as loans/panel.parquet."""

    def make(folder, n_loans: int, n_months: int, seed: int):
        import creditsim as cs

        loans, panel = cs.LoanTapeGenerator(n_loans, n_months, random_seed=seed, cutoff="2022-01-01").generate()
        loans.to_parquet(folder / "loans.parquet")
        panel.to_parquet(folder / "panel.parquet")
        return loans, panel, folder

    return make


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@pytest.fixture
def kernel_levels(tmp_path):
    """``build(source)`` -> ``[(march, module), ...]``: the package's C++ kernel at ``source`` (a path under
    creditsim/) built alone for each x86-64 level this CPU runs -- baseline (libm's fmaf), v3 (AVX2 + FMA),
    v4 (AVX-512) -- with the package's flags and no load-time pick among clones (CS_NO_CLONES), each loaded
    as its own module. Skips off Linux x86-64, without g++, or where the CPU runs one level only."""
    import importlib.util
    import platform
    import shutil
    import subprocess
    import sys
    import sysconfig

    if not sys.platform.startswith("linux") or platform.machine() != "x86_64" or shutil.which("g++") is None:
        pytest.skip("needs g++ on Linux x86-64")
    flags = _cpu_flags()
    levels = ["x86-64"] + (["x86-64-v3"] if {"avx2", "fma"} <= flags else []) + \
        (["x86-64-v4"] if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags else [])
    if len(levels) < 2:
        pytest.skip("this CPU runs one instruction-set level only")

    def build(source: Path) -> list[tuple[str, object]]:
        name = source.stem  # the module name PyInit_<name> expects
        out = []
        for march in levels:
            so = tmp_path / march / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
            so.parent.mkdir(exist_ok=True)
            subprocess.run(["g++", "-O3", "-fno-wrapv", "-ffp-contract=off", "-fno-math-errno", f"-march={march}",
                            "-DCS_NO_CLONES", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", str(source),
                            "-o", str(so)], check=True, capture_output=True)
            spec = importlib.util.spec_from_file_location(name, so)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            out.append((march, module))
        return out

    return build
