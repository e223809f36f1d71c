"""Lazy public names for a package (PEP 562): one style for every ``__init__`` of creditsim.

Each package lists its public names and the module defining each; a name is imported on first use, so
``import creditsim`` (or ``creditsim.deal``) stays cheap and a command that needs only the data layer
does not pay for torch. Usage in a package's ``__init__.py``::

    __getattr__, __dir__, __all__ = attach(__name__, {"LoanBook": "creditsim.loans.book", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(package: str, public: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``public`` (name -> defining module)."""
    table = dict(public)
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__, list(table)
