"""Example files shipped with creditsim (deal YAML files, small tapes).

``example_path("example_clo.yaml")`` returns the installed path of an example; the CLI and the demo use
it, e.g. ``creditsim deal run $(python -c "from creditsim.examples import example_path;
print(example_path('example_clo.yaml'))") --cdr 0.02``.
"""

from __future__ import annotations

from pathlib import Path

from creditsim.errors import ConfigError

__all__ = ["EXAMPLES_DIR", "example_path", "list_examples"]

EXAMPLES_DIR: Path = Path(__file__).resolve().parent


def list_examples() -> list[str]:
    """Names of the shipped example files (no Python modules)."""
    return sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_file() and p.suffix != ".py" and not p.name.startswith("."))


def example_path(name: str) -> Path:
    """Path of the shipped example ``name``; ConfigError listing the available ones if unknown."""
    path = EXAMPLES_DIR / name
    if Path(name).name != name or not path.is_file():
        raise ConfigError(f"unknown example {name!r}; available: {list_examples()}")
    return path
