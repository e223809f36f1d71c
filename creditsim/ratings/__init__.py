"""Rating migration: estimation, CCC expansion, one-factor credit-cycle model, lifetime PD.

Sign convention everywhere: the credit-cycle index **z > 0 is a good year** (fewer defaults and
downgrades). Grades are ordered best -> worst with the absorbing default state D last.

Modules: :mod:`~creditsim.ratings.estimate` (cohort / Aalen-Johansen estimators, TTC, validation,
generators, monthly matrices), :mod:`~creditsim.ratings.ccc` (7x7 -> 8x8), :mod:`~creditsim.ratings.zfactor`
(thresholds, conditional matrices, Z_t and rho), :mod:`~creditsim.ratings.lifetime` (PD term
structures, scenario weighting, macro link, monthly scenario matrices), :mod:`~creditsim.ratings.term_structure`
(a Markov-mixture lifetime PD model fitted to published multi-year cumulative default rates: seasoning and
heterogeneity that matrix powers miss), :mod:`~creditsim.ratings.limits`
(resource limits: horizons up to ``MAX_YEARS`` = 200 years, a 2 GiB memory estimate per call; larger
requests are refused with a one-line ConfigError naming the parameter).
"""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "GRADES_7": "creditsim.ratings.ccc",
    "GRADES_8": "creditsim.ratings.ccc",
    "collapse_to_7x7": "creditsim.ratings.ccc",
    "expand_conditional_tm": "creditsim.ratings.ccc",
    "expand_to_8x8": "creditsim.ratings.ccc",
    "aalen_johansen": "creditsim.ratings.estimate",
    "cohort_matrix": "creditsim.ratings.estimate",
    "generator": "creditsim.ratings.estimate",
    "monthly_matrix": "creditsim.ratings.estimate",
    "ttc_matrix": "creditsim.ratings.estimate",
    "validate_matrix": "creditsim.ratings.estimate",
    "PDTermStructure": "creditsim.ratings.lifetime",
    "ZMacroLink": "creditsim.ratings.lifetime",
    "matrices_term_structure": "creditsim.ratings.lifetime",
    "monthly_pd_curves": "creditsim.ratings.lifetime",
    "monthly_scenario_matrices": "creditsim.ratings.lifetime",
    "path_term_structure": "creditsim.ratings.lifetime",
    "scenario_weighted": "creditsim.ratings.lifetime",
    "ttc_term_structure": "creditsim.ratings.lifetime",
    "MarkovMixtureTermStructure": "creditsim.ratings.term_structure",
    "ZFactorModel": "creditsim.ratings.zfactor",
    "ZFactorResult": "creditsim.ratings.zfactor",
    "conditional_matrix": "creditsim.ratings.zfactor",
    "conditional_pd": "creditsim.ratings.zfactor",
    "expected_matrix": "creditsim.ratings.zfactor",
    "thresholds": "creditsim.ratings.zfactor",
})
