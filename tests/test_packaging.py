"""Every import is declared, and the built wheel works outside the source tree (issue 10).

Defect fixed: ``click`` was imported by the CLI but not declared, so a plain ``pip install .`` gave a
broken ``creditsim`` command.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "creditsim"
#: imported only on optional paths: dask and the private cluster's threadpoolctl (``pip install
#: creditsim[distributed]``) and the harness's logit / gradient-boosting baselines (``pip install
#: creditsim[eval]``, a one-line error without it)
OPTIONAL = {"distributed": {"dask", "distributed", "threadpoolctl"}, "eval": {"sklearn"}}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it (module level and inside functions alike)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "creditsim" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}

    extras = {k: names(v) for k, v in meta.get("optional-dependencies", {}).items()}
    return names(meta["dependencies"]), extras


def test_every_third_party_import_is_a_declared_dependency() -> None:
    dists = packages_distributions()
    required, extras = _declared()
    missing = []
    for module, files in sorted(_third_party_imports().items()):
        optional = [e for e, mods in OPTIONAL.items() if module in mods]
        allowed = required | set().union(*(extras.get(e, set()) for e in optional)) if optional else required
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not owners & allowed:
            missing.append(f"{module} (distribution {sorted(owners)}, imported in {sorted(files)[:3]})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_built_wheel_runs_the_cli_outside_the_source_tree(tmp_path: Path) -> None:
    """Build the wheel, install it (no deps: they come from the test venv) into a bare venv and run it."""
    wheels = tmp_path / "wheels"
    # build from a copy of the files git knows (tracked, or new and not ignored): setuptools reuses the
    # checkout's build/ folder and never deletes what it once copied there, so a wheel built in place
    # can carry files removed from the package since (measured: the restricted series, after git rm)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, timeout=60).stdout.decode().split("\0")
    src = tmp_path / "src"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("creditsim-*.whl"))
    _check_wheel_contents(wheel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # the test venv's third-party packages, but not its editable creditsim (a plain path entry runs no .pth)
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "zz_deps.pth").write_text(deps + "\n")
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = tmp_path / "cwd"
    run.mkdir()
    where = subprocess.run([py, "-c", "import creditsim; print(creditsim.__file__)"], cwd=run, env=env,
                           capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert where.startswith(str(site)), f"imported {where}, not the installed wheel"
    helped = subprocess.run([py, "-m", "creditsim", "--help"], cwd=run, env=env, capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0 and "simulate" in helped.stdout, helped.stderr[-1500:]
    exported = subprocess.run([py, "-m", "creditsim", "examples", "--out", "ex"], cwd=run, env=env, capture_output=True,
                              text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr[-1500:]
    assert (run / "ex" / "loans_example.parquet").is_file() and (run / "ex" / "run_config.yaml").is_file()
    # the demo's BSL pair travels in the wheel too
    assert (run / "ex" / "loans_bsl.parquet").is_file() and (run / "ex" / "bsl_clo.yaml").is_file()
    code = ("from creditsim.examples import example_path; import pandas as pd; import creditsim as cs; "
            "loans = pd.read_parquet(example_path('loans_example.parquet')).head(50); "
            "r = cs.simulate(loans, cs.load_deal(example_path('example_clo.yaml')), n_simulations=8, "
            "macro='synthetic', horizon=6, progress=False); "
            # the report's Jinja2 templates are found in the installed package, not the source tree
            "from creditsim.risk.report import build_report_html; "
            "assert 'id=\"loss_distribution\"' in build_report_html(r, plotly_js='file'); "
            # a rated tape: the rating chain's rho and lifetime-PD mixture come from the shipped fits, not
            # from the S&P tables the wheel may not carry (issue 18)
            "b = cs.simulate(pd.read_parquet(example_path('loans_bsl.parquet')).head(40), "
            "cs.load_deal(example_path('bsl_clo.yaml')), n_simulations=8, macro='synthetic', horizon=6, "
            "progress=False); assert 0.0 <= b.expected_loss < 1.0; print(r.expected_loss)")
    sim = subprocess.run([py, "-c", code], cwd=run, env=env, capture_output=True, text=True, timeout=300)
    assert sim.returncode == 0, sim.stderr[-2000:]
    assert 0.0 <= float(sim.stdout.strip().splitlines()[-1]) < 1.0
    _check_restricted_data_outside_the_wheel(py, run, env, tmp_path)


def _check_restricted_data_outside_the_wheel(py: str, run: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Issue 18: the installed wheel has no restricted series and never looks beside site-packages; with
    nothing fetched the macro history is a one-line error saying how to fetch, and a data directory named
    by CREDITSIM_DATA_DIR (here ../shared/data/macro, when the checkout has it) is used."""
    bare = {k: v for k, v in env.items() if k != "CREDITSIM_DATA_DIR"}
    bare["XDG_CACHE_HOME"] = str(tmp_path / "empty-cache")
    missing = subprocess.run([py, "-m", "creditsim", "data", "macro"], cwd=run, env=bare, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2, missing.stderr[-1500:]
    err = missing.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err[-1500:]
    assert "not shipped with creditsim" in err and "creditsim data fetch" in err, err
    counts = subprocess.run([py, "-m", "creditsim", "ratings", "fit"], cwd=run, env=bare, capture_output=True,
                            text=True, timeout=300)
    err = counts.stderr.strip()
    assert counts.returncode == 2 and len(err.splitlines()) == 1, err[-1500:]
    assert "SP-COUNTS" in err and "CREDITSIM_DATA_DIR" in err, err
    shared = ROOT.parent / "shared" / "data" / "macro"
    if shared.is_dir():
        found = subprocess.run([py, "-m", "creditsim", "data", "macro", "--rows", "1"], cwd=run,
                               env={**bare, "CREDITSIM_DATA_DIR": str(shared)}, capture_output=True, text=True,
                               timeout=300)
        assert found.returncode == 0 and "1980-01" in found.stdout, found.stderr[-1500:]


def _check_wheel_contents(wheel: Path) -> None:
    """The licence travels with the wheel (an SPDX expression in the metadata, the text in dist-info),
    the version is the package's one ``__version__``, the package is marked typed, the report's Jinja2
    templates are in it, every bundled dataset folder carries its PROVENANCE.md (publisher, licence,
    citation), and no series whose publisher forbids republication is in it (issue 18: ICE BofA spreads,
    Case-Shiller, FRED-MD, and the S&P counts and cumulative table: every key of RESTRICTED_FILES)."""
    import zipfile

    from creditsim import __version__
    from creditsim.datasets.restricted import RESTRICTED_FILES

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"\nVersion: {__version__}\n" in meta
    assert "\nLicense-Expression: Apache-2.0\n" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
    assert "creditsim/py.typed" in names
    templates = {f"creditsim/risk/templates/{p.name}" for p in (PACKAGE / "risk" / "templates").glob("*.j2")}
    assert templates and templates <= set(names), sorted(templates - set(names))  # the report's page markup
    data_dirs = {n.split("/")[2] for n in names if n.startswith("creditsim/datasets/") and n.count("/") >= 3}
    provenance = {n.split("/")[2] for n in names if n.startswith("creditsim/datasets/") and n.endswith("/PROVENANCE.md")}
    assert data_dirs and data_dirs <= provenance, sorted(data_dirs - provenance)
    restricted = {Path(spec.relpath).name for spec in RESTRICTED_FILES.values()}
    shipped = [n for n in names if Path(n).name.removesuffix(".gz") in restricted or "fred_md" in Path(n).name]
    assert not shipped, f"restricted data in the wheel: {shipped}"
