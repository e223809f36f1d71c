"""docs/: the getting-started page runs as written, and the API reference builds from the docstrings.

The page's Python blocks run in a subprocess: a fresh session as a reader's, from an empty temporary
directory (the relative paths the page writes land there), with the restricted macro series out of
reach -- the page promises to run on shipped data only, and CI has ``../shared`` beside the checkout,
which would otherwise hide a block that needs them. The reference is built by ``scripts/build_docs.py``
(what ``make docs`` runs) with pdoc from the ``docs`` extra; without pdoc that test skips.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"
BUILD_SCRIPT = ROOT / "scripts" / "build_docs.py"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

# The subprocess: first no directory is searched for the restricted series (env dir, user cache,
# ../shared), so a block that needs them fails with RestrictedDataMissing as it would for a reader who has
# not fetched them; then the blocks, each compiled at its own line of the page so that a traceback points
# into the page. Argument: a JSON file of [file name, first line, code] blocks.
RUNNER = """
import json, sys
import creditsim.datasets.restricted as restricted
restricted.search_dirs = lambda: []
blocks = json.loads(open(sys.argv[1], encoding="utf-8").read())
namespace = {"__name__": "__main__"}
for name, line, code in blocks:
    exec(compile("\\n" * (line - 1) + code, name, "exec"), namespace)
"""

# Run in the page's namespace after its last block: what the page says, as JSON on one marked line.
FACTS = """
import json as _json
print("FACTS " + _json.dumps({
    "n_loans": len(loans), "pool_balance": float(loans["current_balance"].sum()),
    "grades": sorted(loans["rating"].unique().tolist()),
    "tranches": [t.name for t in deal.tranches],
    "equity_share": deal.tranches[-1].balance / float(loans["current_balance"].sum()),
    "risk_columns": risk.columns.tolist(), "var_99_9_all": float(risk.loc["var_99_9", "all"]),
    "summary_index": summary.index.tolist(), "pool_pd_5y": pool_pd_5y, "hazard_shape": list(hazard.shape),
    "n_sims": res.n_sims, "months": res.n_months, "tranche_el": summary["expected_loss"].iloc[1:].tolist(),
}))
"""


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block, in page order; ``line`` is the block's first code line
    (1-based), so that a traceback can point into the page."""
    return [(markdown.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(markdown)]


def run_page(page: Path, workdir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the page's blocks in order, in one namespace, in a fresh interpreter whose working directory is
    ``workdir``; then print :data:`FACTS`. Tracebacks name ``page`` and the page's own line numbers."""
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    blocks = [(str(page), line, code) for line, code in blocks] + [("<facts of tests/test_docs.py>", 1, FACTS)]
    (workdir / ".page_blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    (workdir / ".run_page.py").write_text(RUNNER, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, ".run_page.py", ".page_blocks.json"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_python_blocks_are_found_with_their_lines() -> None:
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n\n```python\nb = a + 1\nc = 2\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (10, "b = a + 1\nc = 2\n")]


@pytest.fixture(scope="module")
def page_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The page run once (~15 s) for the tests below."""
    workdir = tmp_path_factory.mktemp("getting_started")
    return run_page(PAGE, workdir), workdir


def test_getting_started_runs_on_shipped_data(page_run) -> None:
    proc, workdir = page_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(python_blocks(PAGE.read_text(encoding="utf-8"))) >= 6
    # what step 6 writes, relative to the working directory
    assert (workdir / "first_run.xlsx").stat().st_size > 0
    assert 'id="loss_distribution"' in (workdir / "report" / "first_run.html").read_text(encoding="utf-8")
    assert (workdir / "runs" / "first" / "meta.json").is_file()


def test_getting_started_says_what_it_shows(page_run) -> None:
    proc, _ = page_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    facts = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("FACTS "))[6:])
    # step 2: "340 first-lien floating-rate loans with $500m of par, rated BB, B and CCC", "10 % equity"
    assert facts["n_loans"] == 340 and facts["pool_balance"] == 500_000_000
    assert facts["grades"] == ["B", "BB", "CCC"]
    assert facts["tranches"] == ["AAA", "AA", "A", "BBB", "BB", "Equity"] and facts["equity_share"] == 0.10
    # step 3: a 5-year PD between the BB and CCC grades' own; 60 monthly rates for 7 grades
    assert 0.01 < facts["pool_pd_5y"] < 0.4 and facts["hazard_shape"] == [60, 7]
    # step 4: 300 scenarios over 60 months; the printed result lists every tranche
    assert facts["n_sims"] == 300 and facts["months"] == 60
    assert all(re.search(rf"^\s+{name}\s+[\d,]+\s", proc.stdout, re.MULTILINE) for name in facts["tranches"])
    # step 5: columns "all, then the scenario names"; 99.9 % of 300 scenarios is NaN; a row per tranche
    assert facts["risk_columns"] == ["all", "baseline", "adverse", "severely_adverse", "stagflation"]
    assert math.isnan(facts["var_99_9_all"])
    assert facts["summary_index"] == ["portfolio", *facts["tranches"]]
    # the equity is first loss: no senior note loses more of its balance than a junior one
    el = facts["tranche_el"]
    assert all(a <= b + 1e-12 for a, b in zip(el, el[1:])) and el[-1] > 0
    assert "peak unemployment rate" in proc.stdout


def test_a_broken_block_fails_and_names_its_line(tmp_path: Path) -> None:
    """The runner is not blind: a page whose second block raises fails, the traceback at the page's line."""
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + 1\nraise ValueError('broken page')\n```\n")
    proc = run_page(page, tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "ValueError: broken page" in proc.stderr and f'File "{page}", line 11' in proc.stderr


# ------------------------------------------------------------------------------------------ API reference
def _build_script():
    """scripts/build_docs.py as a module (scripts/ is not a package and not shipped)."""
    spec = importlib.util.spec_from_file_location("build_docs", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def test_every_subpackage_is_documented_or_excluded_with_a_reason() -> None:
    import creditsim

    script = _build_script()
    subpackages = {f"creditsim.{m.name}" for m in pkgutil.iter_modules(creditsim.__path__) if m.ispkg}
    assert subpackages <= set(script.MODULES) | set(script.NOT_DOCUMENTED)
    assert not set(script.MODULES) & set(script.NOT_DOCUMENTED)
    assert all(reason.strip() for reason in script.NOT_DOCUMENTED.values())


def test_sphinx_leftovers_are_rewritten() -> None:
    fix = _build_script().sphinx_leftovers
    assert fix("see :class:`~creditsim.risk.results.SimulationResults`") == \
        "see :class:`creditsim.risk.results.SimulationResults`"
    assert fix("The pipeline::\n\n    a -> b\nratio a::b stays") == "The pipeline:\n\n    a -> b\nratio a::b stays"
    assert fix("text\n\n.. note::\n    kept for pdoc\n") == "text\n\n.. note::\n    kept for pdoc\n"


def test_api_reference_builds_with_the_public_names(tmp_path: Path) -> None:
    pytest.importorskip("pdoc", reason="pdoc is not installed: pip install -e '.[docs]' (make test installs it)")
    import creditsim

    script = _build_script()
    out = tmp_path / "site"
    proc = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = {name: out / f"{name.replace('.', '/')}.html" for name in script.MODULES}
    assert all(p.is_file() for p in pages.values()), [n for n, p in pages.items() if not p.is_file()]
    assert "creditsim.html" in (out / "index.html").read_text(encoding="utf-8")
    for name, path in pages.items():
        html = path.read_text(encoding="utf-8")
        missing = [n for n in getattr(importlib.import_module(name), "__all__", []) if f'id="{n}"' not in html]
        # creditsim.risk exports `simulate`, the function of its submodule `simulate`: once that module is
        # imported, the package attribute is the module (for pdoc as for `from creditsim.risk import
        # simulate`), so the function is documented on the submodule's page
        moved = [n for n in missing if f'id="{n}"' in _read(path.with_suffix("") / f"{n}.html")]
        assert not set(missing) - set(moved), f"{name}: {missing}"
        # the Sphinx roles' "~" and the literal-block "::" of the docstrings are rewritten on every page
        assert ":`~" not in html and not re.search(r"\w::</p>", html), name
    top = pages["creditsim"].read_text(encoding="utf-8")
    assert set(creditsim.__all__) - {"__version__"} <= set(re.findall(r'<section id="([^"]+)"', top))
    for module, ids in {"creditsim": ["simulate", "MacroVAE", "SimulationResults.risk_table"],
                        "creditsim.deal": ["WaterfallConfig", "Tranche", "run_waterfall"],
                        "creditsim.risk": ["SimulationResults.to_excel", "write_report"],
                        "creditsim.macro": ["MacroVAE.generate", "macro_paths"]}.items():
        html = pages[module].read_text(encoding="utf-8")
        assert all(f'id="{i}"' in html for i in ids), module
    # Google "Args:" sections become argument lists, not a paragraph of text
    assert "Args:" not in re.sub(r"<pre.*?</pre>", "", top, flags=re.DOTALL)
    guide = (out / "getting-started.html").read_text(encoding="utf-8")
    assert "<h2" in guide and "Read the risk table" in guide
    assert 'href="creditsim.html#simulate"' in guide and 'href="creditsim/risk.html"' in guide
