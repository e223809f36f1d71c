"""Layering, checked statically on every import -- module level and inside function bodies alike.

Replaces a runtime check (import a module, look at ``sys.modules``) that could not see lazy imports: a
deal-structure function importing a model inside its body passed it. Rules (ARCHITECTURE.md: data flows
down the floors; ``deal/`` never imports a model):

- the ground-floor modules import nothing of creditsim but each other;
- ``structure/`` (the deal) never imports the models, training, evaluation or the CLI;
- only the CLI itself and ``__main__`` import ``creditsim.cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "creditsim"
GROUND = {"errors", "states", "fileio", "fixed_order", "cents", "threads"}


def _imports(path: Path, package_dir: Path = PACKAGE) -> set[str]:
    """Every ``creditsim...`` module named by an import statement anywhere in ``path``."""
    module = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("creditsim")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("creditsim"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}
    return out


GRAPH = {p: _imports(p) for p in PACKAGE.rglob("*.py")}


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(PACKAGE)} imports {m}" for p in files for m in sorted(GRAPH[p])
            if any(m == f or m.startswith(f + ".") for f in forbidden)]


def test_the_scan_sees_imports_inside_function_bodies(tmp_path: Path) -> None:
    pkg = tmp_path / "creditsim"
    (pkg / "structure").mkdir(parents=True)
    lazy = pkg / "structure" / "lazy.py"
    lazy.write_text("def f():\n    from ..models.markov import MarkovTransitionModel\n    import creditsim.training\n")
    assert _imports(lazy, pkg) >= {"creditsim.models.markov", "creditsim.training"}


def test_structure_never_imports_models_training_evaluation_or_cli() -> None:
    files = [p for p in GRAPH if p.parent.name == "structure"]
    assert files
    bad = _violations(files, ("creditsim.models", "creditsim.training", "creditsim.evaluation", "creditsim.cli"))
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(GROUND))
def test_ground_floor_imports_only_the_ground_floor(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    allowed = {f"creditsim.{g}" for g in GROUND}
    bad = [m for m in GRAPH[path] if not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert not bad, f"{name}.py imports {sorted(bad)}"


def test_only_the_cli_imports_the_cli() -> None:
    # the entry points on the top floor (``python -m creditsim``, ``make demo``) may use it
    files = [p for p in GRAPH if p.parent.name != "cli" and p.name not in ("__main__.py", "demo.py")]
    bad = _violations(files, ("creditsim.cli",))
    assert not bad, bad
