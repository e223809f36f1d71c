"""The public API: every lazily exported name resolves, and `import creditsim as cs` carries the
spec's classes (models, configs, ratings) without importing torch up front."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["creditsim", "creditsim.macro", "creditsim.transitions", "creditsim.loans", "creditsim.deal",
            "creditsim.risk", "creditsim.nn", "creditsim.ratings", "creditsim.datasets", "creditsim.ifrs9"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [n for n in module.__all__ if n != "__version__" and getattr(module, n, None) is None]
    assert not missing, missing
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="has no attribute"):
        getattr(module, "no_such_name")


def test_the_spec_classes_are_at_the_top() -> None:
    import creditsim as cs

    for name in ("MacroVAE", "TransitionTransformer", "LoanTrajectoryModel", "MarkovTransitionModel",
                 "MacroVAEConfig", "TransitionConfig", "TrajectoryConfig",  # the spec's configs, beside their models
                 "PortfolioAggregator", "WaterfallConfig", "SimulationResults", "RunConfig", "simulate",
                 "NotFittedError", "ZFactorModel", "PDTermStructure", "ZMacroLink", "cohort_matrix",
                 "expand_to_8x8", "pool_cashflows"):
        assert name in cs.__all__, name
        assert getattr(cs, name) is not None


def test_import_creditsim_stays_light() -> None:
    code = "import sys, creditsim, creditsim.deal, creditsim.risk; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
