"""Model-validation tests for PD models and Monte Carlo VaR (IFRS 9 / CECL model validation).

Each test returns a :class:`ValidationResult` (statistic, p-value, decision, inputs). Calibration:
:func:`binomial_test`, :func:`jeffreys_test`, :func:`vasicek_binomial_test`, :func:`pd_traffic_light`, :func:`hosmer_lemeshow`,
:func:`spiegelhalter`, :func:`brier_score`. Discrimination: :func:`auc_test` (DeLong variance),
:func:`compare_auc`, :func:`ks_test`. Stability: :func:`psi`. VaR back-testing: :func:`kupiec_pof`,
:func:`christoffersen`, :func:`basel_traffic_light`. Portfolio: :func:`concentration` (Herfindahl, CV),
:func:`migration_bandwidth`, :func:`migration_z_tests`, :func:`lgd_t_test`, :func:`sicr_effectiveness`.
"""

from creditsim.validation.backtest import basel_traffic_light, christoffersen, kupiec_pof
from creditsim.validation.calibration import (binomial_test, brier_score, hosmer_lemeshow, jeffreys_test, pd_traffic_light,
                                              spiegelhalter, vasicek_binomial_test)
from creditsim.validation.discrimination import auc_test, compare_auc, ks_test
from creditsim.validation.portfolio import (concentration, lgd_t_test, migration_bandwidth, migration_z_tests,
                                            sicr_effectiveness)
from creditsim.validation.results import ValidationResult
from creditsim.validation.stability import psi

__all__ = ["ValidationResult", "binomial_test", "jeffreys_test", "vasicek_binomial_test", "pd_traffic_light", "hosmer_lemeshow",
           "spiegelhalter", "brier_score", "auc_test", "compare_auc", "ks_test", "psi", "kupiec_pof",
           "christoffersen", "basel_traffic_light", "concentration", "migration_bandwidth", "migration_z_tests",
           "lgd_t_test", "sicr_effectiveness"]
