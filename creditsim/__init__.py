"""creditsim: credit portfolio and SPV analytics with deep generative models.

The public names below are imported lazily (PEP 562) so that ``import creditsim`` stays cheap and a
command that needs only the data layer does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_PUBLIC: dict[str, str] = {
    # domain core
    "CreditSimError": "creditsim.errors",
    "DataError": "creditsim.errors",
    "ConfigError": "creditsim.errors",
    "CheckpointError": "creditsim.errors",
    "LoanState": "creditsim.states",
    "MACRO_VARS": "creditsim.states",
    "SCENARIOS": "creditsim.states",
    "validate_loan_tape": "creditsim.schema",
    "validate_panel": "creditsim.schema",
    "validate_macro": "creditsim.schema",
    # data
    "LoanTapeGenerator": "creditsim.data.synthetic",
    "MacroScenarioGenerator": "creditsim.data.synthetic",
    "read_loan_tape": "creditsim.data.io",
    "read_panel": "creditsim.data.io",
    "load_fred_md": "creditsim.datasets",
    "load_macro_history": "creditsim.datasets",
    "load_fed_scenarios": "creditsim.datasets",
    "load_sp_ratings": "creditsim.datasets",
    "load_credit_card_panel": "creditsim.datasets",
    # models
    "MacroVAE": "creditsim.models.macro_vae",
    "MacroVAEConfig": "creditsim.models.macro_vae",
    "MarkovTransitionModel": "creditsim.models.markov",
    # structure and simulation
    "WaterfallConfig": "creditsim.structure.deal",
    "load_deal": "creditsim.structure.deal",
    "PortfolioAggregator": "creditsim.structure.aggregator",
    "SimulationResults": "creditsim.simulation.results",
    "TrancheResult": "creditsim.simulation.results",
    "simulate": "creditsim.simulation.monte_carlo",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'creditsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
