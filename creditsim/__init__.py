"""creditsim: credit portfolio and SPV analytics with deep generative models.

The pipeline, one package per stage (``docs/architecture.md`` draws it)::

    datasets -> macro -> transitions -> loans -> deal -> risk        (ratings beside, for rated exposures;
                                                                      ifrs9 for expected credit loss)

Public names are imported lazily (PEP 562, :mod:`creditsim.lazy`) so that ``import creditsim`` stays
cheap and a command that needs only the data layer does not pay for torch.
"""

from creditsim.lazy import attach

__version__ = "0.1.0"

__getattr__, __dir__, _public = attach(__name__, {
    # ground floor
    "CreditSimError": "creditsim.errors",
    "DataError": "creditsim.errors",
    "ConfigError": "creditsim.errors",
    "CheckpointError": "creditsim.errors",
    "NotFittedError": "creditsim.errors",
    "NumericalError": "creditsim.errors",
    "LoanState": "creditsim.states",
    "MACRO_VARS": "creditsim.states",
    "SCENARIOS": "creditsim.states",
    "validate_loan_tape": "creditsim.schema",
    "validate_panel": "creditsim.schema",
    "validate_macro": "creditsim.schema",
    "loan_features": "creditsim.features",
    "read_loan_tape": "creditsim.io",
    "read_panel": "creditsim.io",
    # bundled real data
    "load_fred_md": "creditsim.datasets.fred",
    "load_macro_history": "creditsim.datasets.macro",
    "load_fed_scenarios": "creditsim.datasets.fed",
    "load_sp_ratings": "creditsim.datasets.ratings",
    "load_credit_card_panel": "creditsim.datasets.credit_card",
    # 1 macro scenarios
    "MacroVAE": "creditsim.macro.vae",
    "MacroVAEConfig": "creditsim.macro.vae",
    "MacroScenarioGenerator": "creditsim.macro.synthetic",
    "macro_paths": "creditsim.macro.paths",
    "MacroPaths": "creditsim.macro.paths",
    # 2 transition matrices
    "MarkovTransitionModel": "creditsim.transitions.markov",
    "TransitionTransformer": "creditsim.transitions.transformer",
    "TransitionConfig": "creditsim.transitions.transformer",
    # 3 loans
    "LoanTapeGenerator": "creditsim.transitions.synthetic",
    "LoanTrajectoryModel": "creditsim.loans.trajectory",
    "TrajectoryConfig": "creditsim.loans.trajectory",
    "pool_cashflows": "creditsim.loans.pool",
    # 4 the deal
    "WaterfallConfig": "creditsim.deal.config",
    "Tranche": "creditsim.deal.config",
    "load_deal": "creditsim.deal.config",
    "run_waterfall": "creditsim.deal.waterfall",
    # 5 risk
    "simulate": "creditsim.risk.simulate",
    "RunConfig": "creditsim.risk.config",
    "SimulationResults": "creditsim.risk.results",
    "TrancheResult": "creditsim.risk.results",
    "PortfolioAggregator": "creditsim.risk.aggregator",
    "reverse_stress": "creditsim.risk.reverse_stress",
    "fit_transitions": "creditsim.harness.fit",
    "evaluate_transitions": "creditsim.harness.run",
    "note_ecl": "creditsim.risk.note_ecl",
    "ReverseStressResult": "creditsim.risk.reverse_stress",
    "ExpectedLossPath": "creditsim.risk.expected",
    "size_tranches": "creditsim.risk.sizing",
    "SizingResult": "creditsim.risk.sizing",
    # 6 rated exposures
    "cohort_matrix": "creditsim.ratings.estimate",
    "ttc_matrix": "creditsim.ratings.estimate",
    "expand_to_8x8": "creditsim.ratings.ccc",
    "ZFactorModel": "creditsim.ratings.zfactor",
    "ZMacroLink": "creditsim.ratings.lifetime",
    "PDTermStructure": "creditsim.ratings.lifetime",
    "ttc_term_structure": "creditsim.ratings.lifetime",
    "path_term_structure": "creditsim.ratings.lifetime",
    # 7 expected credit loss (IFRS 9 / CECL)
    "expected_credit_loss": "creditsim.ifrs9.ecl",
    "EclResult": "creditsim.ifrs9.ecl",
    "EclSettings": "creditsim.ifrs9.settings",
    "EclLoans": "creditsim.ifrs9.loans",
    # 8 model validation
    "ValidationResult": "creditsim.validation.results",
})
__all__ = ["__version__", *_public]
