"""The house rules, checked statically on every import -- module level and inside function bodies alike.

Floors (``docs/architecture.md``): data flows down, imports only go down or sideways within a package.

====  =====================================================================================
0     ground floor: errors states schema fileio checkpoints rng features io yamlfile devices cents
      fixed_order threads lazy (import nothing of creditsim but each other)
1     datasets, nn, examples, pretrained
2     macro, ratings
3     transitions
4     loans
5     deal (imports the ground floor only: a deal never depends on a model), ifrs9, validation, harness
6     risk
7     cli, demo, __main__, the package root
====  =====================================================================================

Also: packages on one floor (above the ground) do not import each other, no private name (``_x``) is
imported from another file, no function runs over 80 lines, and only the top floor imports the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "creditsim"
GROUND = {"errors", "states", "schema", "fileio", "checkpoints", "rng", "features", "io", "cents", "yamlfile", "devices",
          "fixed_order", "threads", "lazy", "userwarn"}
FLOOR = {
    **{g: 0 for g in GROUND},
    "datasets": 1, "nn": 1, "examples": 1, "pretrained": 1,
    "macro": 2, "ratings": 2,
    "transitions": 3,
    "loans": 4,
    "deal": 5, "ifrs9": 5, "validation": 5, "harness": 5,
    "risk": 6,
    "cli": 7, "demo": 7, "__main__": 7, "__init__": 7,
}


def _room(module: str) -> str:
    """``creditsim.loans.engine`` -> ``loans``; ``creditsim`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """Every ``creditsim...`` module named by an import statement anywhere in ``path`` -> imported names."""
    module = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("creditsim"):
                    out.setdefault(a.name, set())
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("creditsim"):
                out.setdefault(name, set()).update(a.name for a in node.names)
    return out


GRAPH = {p: _imports(p) for p in PACKAGE.rglob("*.py")}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_the_scan_sees_imports_inside_function_bodies(tmp_path: Path) -> None:
    pkg = tmp_path / "creditsim"
    (pkg / "deal").mkdir(parents=True)
    lazy = pkg / "deal" / "lazy.py"
    lazy.write_text("def f():\n    from ..transitions.markov import MarkovTransitionModel\n    import creditsim.risk\n")
    assert set(_imports(lazy, pkg)) >= {"creditsim.transitions.markov", "creditsim.risk"}


def test_every_room_has_a_floor() -> None:
    rooms = {_room(_module(p)) for p in GRAPH}
    assert not rooms - set(FLOOR), f"give these a floor in FLOOR and docs/architecture.md: {rooms - set(FLOOR)}"


@pytest.mark.parametrize("room", sorted(set(FLOOR) - {"__init__", "__main__", "demo", "cli"}))
def test_no_import_runs_up_a_floor(room: str) -> None:
    files = [p for p in GRAPH if _room(_module(p)) == room]
    bad = [f"{p.relative_to(PACKAGE)} imports {m}" for p in files for m in GRAPH[p]
           if m != "creditsim" and FLOOR[_room(m)] > FLOOR[room]]
    # the package root (``import creditsim``) is the top floor too
    bad += [f"{p.relative_to(PACKAGE)} imports creditsim" for p in files if "creditsim" in GRAPH[p]]
    assert not bad, bad


@pytest.mark.parametrize("room", sorted({r for r, f in FLOOR.items() if 0 < f < 7}))
def test_packages_on_one_floor_do_not_import_each_other(room: str) -> None:
    files = [p for p in GRAPH if _room(_module(p)) == room]
    bad = [f"{p.relative_to(PACKAGE)} imports {m}" for p in files for m in GRAPH[p]
           if m != "creditsim" and _room(m) != room and FLOOR[_room(m)] == FLOOR[room]]
    assert not bad, bad


def test_ground_floor_modules_are_where_the_floors_say() -> None:
    for name in GROUND:
        assert (PACKAGE / f"{name}.py").is_file(), name


def test_the_deal_imports_only_the_ground_floor() -> None:
    files = [p for p in GRAPH if _room(_module(p)) == "deal"]
    assert files
    bad = [f"{p.relative_to(PACKAGE)} imports {m}" for p in files for m in GRAPH[p]
           if FLOOR[_room(m)] not in (0,) and _room(m) != "deal"]
    assert not bad, bad


def test_only_the_top_floor_imports_the_cli() -> None:
    files = [p for p in GRAPH if _room(_module(p)) not in ("cli", "__main__", "demo")]
    bad = [f"{p.relative_to(PACKAGE)} imports {m}" for p in files for m in GRAPH[p] if _room(m) == "cli"]
    assert not bad, bad


def _compiled_extensions() -> set[str]:
    """Dotted names of the package's C++ extensions (setup.py builds each ``_name.cpp`` as ``..._name``)."""
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in PACKAGE.rglob("_*.cpp")}


def test_no_private_name_is_imported_from_another_file() -> None:
    """The one exception: a compiled extension (private by convention, ``_name``) imported by the Python
    module beside it that wraps it (the wrapper checks what the C++ code trusts)."""
    extensions = _compiled_extensions()
    assert extensions, "no creditsim/**/_*.cpp: the kernels' names were not found"
    bad = []
    for p, imports in GRAPH.items():
        for module, names in imports.items():
            names = [n for n in names if f"{module}.{n}" not in extensions or p.parent.name != module.split(".")[-1]]
            private = sorted(n for n in names if n.startswith("_") and not n.startswith("__"))
            if private or any(part.startswith("_") and part != "__init__" for part in module.split(".")):
                bad.append(f"{p.relative_to(PACKAGE)}: from {module} import {private}")
    assert not bad, bad


#: functions allowed over the limit, with the reason (none today)
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}
MAX_FUNCTION_LINES = 80


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    first = node.body[0]
    doc = (first.end_lineno - first.lineno + 1) if (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)) else 0
    return node.end_lineno - node.lineno + 1 - doc


def test_no_function_is_longer_than_one_sitting() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(PACKAGE)}:{node.name}"
                if _code_lines(node) > MAX_FUNCTION_LINES and where not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{where} ({_code_lines(node)} lines)")
    assert not long, long
