"""IFRS 9 / CECL expected credit loss: settings, loans, PD and LGD providers, staging, the ECL engine.

Conventions are named settings (:class:`EclSettings`) and documented in each module; the maths follow
``docs/IFRS9.md`` §6-7.
"""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "EclSettings": "creditsim.ifrs9.settings",
    "SupervisoryFindingWarning": "creditsim.ifrs9.settings",
    "EclLoans": "creditsim.ifrs9.loans",
    "TTCMatrixPD": "creditsim.ifrs9.pd",
    "ScenarioMatrixPD": "creditsim.ifrs9.pd",
    "HazardCurvePD": "creditsim.ifrs9.pd",
    "FlatLGD": "creditsim.ifrs9.lgd",
    "PeriodLGD": "creditsim.ifrs9.lgd",
    "CollateralLGD": "creditsim.ifrs9.lgd",
    "stage_loans": "creditsim.ifrs9.staging",
    "EclResult": "creditsim.ifrs9.ecl",
    "expected_credit_loss": "creditsim.ifrs9.ecl",
    "audit_chunks": "creditsim.ifrs9.ecl",
})
