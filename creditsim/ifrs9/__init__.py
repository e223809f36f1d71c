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
    "TermStructurePD": "creditsim.ifrs9.pd",
    "ScenarioMatrixPD": "creditsim.ifrs9.pd",
    "HazardCurvePD": "creditsim.ifrs9.pd",
    "GroupedPD": "creditsim.ifrs9.pd",
    "chain_default_hazard": "creditsim.ifrs9.pd",
    "annual_pds": "creditsim.ifrs9.pd",
    "FlatLGD": "creditsim.ifrs9.lgd",
    "PeriodLGD": "creditsim.ifrs9.lgd",
    "CollateralLGD": "creditsim.ifrs9.lgd",
    "stage_loans": "creditsim.ifrs9.staging",
    "EclResult": "creditsim.ifrs9.ecl",
    "expected_credit_loss": "creditsim.ifrs9.ecl",
    "audit_chunks": "creditsim.ifrs9.ecl",
    "allowance_movement": "creditsim.ifrs9.reporting",
    "exposure_by_grade_and_stage": "creditsim.ifrs9.reporting",
    "scenario_table": "creditsim.ifrs9.reporting",
    "disclosures_to_excel": "creditsim.ifrs9.reporting",
    "stage_summary": "creditsim.ifrs9.reporting",
    "Ifrs7Report": "creditsim.ifrs9.reporting",
    "build_report": "creditsim.ifrs9.reporting",
})
