"""SPV / CLO structure: deal model, waterfall, portfolio aggregator and tranche analytics.

Does not import ``creditsim.models`` (ARCHITECTURE boundaries); the heavy modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "Tranche": "creditsim.structure.deal",
    "WaterfallConfig": "creditsim.structure.deal",
    "load_deal": "creditsim.structure.deal",
    "dump_deal": "creditsim.structure.deal",
    "run_waterfall": "creditsim.structure.waterfall",
    "cash_conservation_error": "creditsim.structure.waterfall",
    "PortfolioAggregator": "creditsim.structure.aggregator",
    "level_pay_pool": "creditsim.structure.analytics",
    "irr": "creditsim.structure.analytics",
    "tranche_outcomes": "creditsim.structure.analytics",
    "tranche_summary": "creditsim.structure.analytics",
    "breakeven_cdr": "creditsim.structure.analytics",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'creditsim.structure' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
