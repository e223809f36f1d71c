"""TermStructurePD: the Markov-mixture term structure as an ECL PD provider (``sp_term_structure`` is the
fitted model of tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, NotFittedError
from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, TermStructurePD, TTCMatrixPD, expected_credit_loss
from creditsim.ratings.term_structure import MarkovMixtureTermStructure

TTC = load_sp_ratings().matrix_8x8
GRADES = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC"]


def _loans(months_on_book: int = 0, remaining: int = 120) -> EclLoans:
    return EclLoans(balance=np.full(7, 1e6), annual_rate=0.06, remaining_months=remaining, amortization="bullet",
                    grade=np.array(GRADES), origination_grade=np.array(GRADES), months_on_book=months_on_book)


def test_one_type_of_speed_one_gives_the_ttc_provider_s_numbers_bit_for_bit():
    single = TermStructurePD(MarkovMixtureTermStructure.from_params(TTC, [1.0], [1.0]))
    loans, settings = _loans(), EclSettings()
    assert np.array_equal(single.survival(loans, 180, settings), TTCMatrixPD(TTC).survival(loans, 180, settings))
    start, length = np.arange(7) * 12, np.full(7, 60)
    assert np.array_equal(single.origination_pd(loans, start, length), TTCMatrixPD(TTC).origination_pd(loans, start, length))


def test_survival_is_the_model_s_curve_of_the_loan_s_grade(sp_term_structure):
    provider = TermStructurePD(sp_term_structure)
    order = np.array([6, 0, 3, 3, 5])  # any order, repeated grades
    loans = EclLoans(balance=np.ones(5), annual_rate=0.05, remaining_months=120, grade=np.array(GRADES)[order])
    surv = provider.survival(loans, 120, EclSettings())
    assert surv.shape == (121, 1, 5)
    np.testing.assert_allclose(1.0 - surv[12::12, 0], sp_term_structure.cumulative_pd(10).cumulative[:, order],
                               rtol=1e-10, atol=1e-15)


def test_lifetime_ecl_of_speculative_grades_is_below_the_markov_powers(sp_term_structure):
    settings = EclSettings(sicr_relative=None, sicr_absolute=None)
    loans = _loans()
    mixture = expected_credit_loss(loans, TermStructurePD(sp_term_structure), FlatLGD(0.45), settings=settings)
    markov = expected_credit_loss(loans, TTCMatrixPD(TTC), FlatLGD(0.45), settings=settings)
    # the published 10-year B and CCC default rates are about half the matrix powers'
    assert (mixture.lifetime_pd[0, 4:] < 0.75 * markov.lifetime_pd[0, 4:]).all()
    assert (mixture.ecl_lifetime[0, 4:] < markov.ecl_lifetime[0, 4:]).all()
    lifetime = 1.0 - sp_term_structure.monthly_survival(120)[-1]
    np.testing.assert_allclose(mixture.lifetime_pd[0], lifetime, rtol=1e-12)


def test_origination_pd_includes_seasoning(sp_term_structure):
    provider = TermStructurePD(sp_term_structure)
    loans = _loans()
    fresh = provider.origination_pd(loans, np.zeros(7, dtype=np.int64), np.full(7, 36))
    seasoned = provider.origination_pd(loans, np.full(7, 84, dtype=np.int64), np.full(7, 36))
    # three more years of a CCC or B name that has survived seven are far safer than its first three
    assert (seasoned[5:] < 0.6 * fresh[5:]).all()
    surv = sp_term_structure.monthly_survival(120)
    np.testing.assert_allclose(seasoned, 1.0 - surv[120] / surv[84], rtol=1e-12)


def test_an_unfitted_model_or_a_foreign_object_is_refused():
    with pytest.raises(NotFittedError, match="not fitted"):
        TermStructurePD(MarkovMixtureTermStructure(TTC))
    with pytest.raises(ConfigError, match="MarkovMixtureTermStructure"):
        TermStructurePD(TTC)
