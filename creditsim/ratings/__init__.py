"""Rating migration: estimation, CCC expansion, one-factor credit-cycle model, lifetime PD.

Sign convention everywhere: the credit-cycle index **z > 0 is a good year** (fewer defaults and
downgrades). Grades are ordered best -> worst with the absorbing default state D last.

Modules: :mod:`~creditsim.ratings.estimate` (cohort / Aalen-Johansen estimators, TTC, validation,
generators, monthly matrices), :mod:`~creditsim.ratings.ccc` (7x7 -> 8x8), :mod:`~creditsim.ratings.zfactor`
(thresholds, conditional matrices, Z_t and rho), :mod:`~creditsim.ratings.lifetime` (PD term
structures, scenario weighting, macro link, monthly scenario matrices), :mod:`~creditsim.ratings.limits`
(resource limits: horizons up to ``MAX_YEARS`` = 200 years, a 2 GiB memory estimate per call; larger
requests are refused with a one-line ConfigError naming the parameter).
"""

from creditsim.ratings.ccc import GRADES_7, GRADES_8, collapse_to_7x7, expand_conditional_tm, expand_to_8x8
from creditsim.ratings.estimate import (
    aalen_johansen,
    cohort_matrix,
    generator,
    monthly_matrix,
    ttc_matrix,
    validate_matrix,
)
from creditsim.ratings.lifetime import (
    PDTermStructure,
    ZMacroLink,
    matrices_term_structure,
    monthly_pd_curves,
    monthly_scenario_matrices,
    path_term_structure,
    scenario_weighted,
    ttc_term_structure,
)
from creditsim.ratings.zfactor import (
    ZFactorModel,
    ZFactorResult,
    conditional_matrix,
    conditional_pd,
    expected_matrix,
    thresholds,
)

__all__ = [
    "GRADES_7",
    "GRADES_8",
    "aalen_johansen",
    "cohort_matrix",
    "collapse_to_7x7",
    "conditional_matrix",
    "conditional_pd",
    "expand_conditional_tm",
    "expand_to_8x8",
    "expected_matrix",
    "generator",
    "matrices_term_structure",
    "monthly_matrix",
    "monthly_pd_curves",
    "monthly_scenario_matrices",
    "path_term_structure",
    "PDTermStructure",
    "scenario_weighted",
    "thresholds",
    "ttc_matrix",
    "ttc_term_structure",
    "validate_matrix",
    "ZFactorModel",
    "ZFactorResult",
    "ZMacroLink",
]
