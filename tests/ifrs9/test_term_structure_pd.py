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


def test_one_type_of_speed_one_gives_the_ttc_provider_s_numbers():
    single = TermStructurePD(MarkovMixtureTermStructure.from_params(TTC, [1.0], [1.0]))
    loans, settings = _loans(), EclSettings()
    assert np.array_equal(single.survival(loans, 180, settings), TTCMatrixPD(TTC).survival(loans, 180, settings))
    start, length = np.arange(7) * 12, np.full(7, 60)
    # the mix over the grades held at `start` of their curves = the chain's forward PD (Markov property)
    np.testing.assert_allclose(single.origination_pd(loans, start, length),
                               TTCMatrixPD(TTC).origination_pd(loans, start, length), rtol=1e-9, atol=1e-15)


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


def test_a_name_that_never_migrated_is_not_sent_to_stage_2_by_age(sp_term_structure):
    """Still in its origination grade after 3 and 7 years, with 5 years left: today's lifetime PD over
    the PD expected at origination for those 5 years stays near 1 for every grade (the Markov provider's
    own ratios run 0.53-1.74 here), so the default relative SICR threshold (2x) is not crossed by age alone."""
    for months_on_book in (36, 84):
        loans = _loans(months_on_book=months_on_book, remaining=60)
        res = expected_credit_loss(loans, TermStructurePD(sp_term_structure), FlatLGD(0.45), settings=EclSettings())
        ratio = res.lifetime_pd[0] / res.origination_pd
        assert ((ratio > 0.5) & (ratio < 1.6)).all(), (months_on_book, ratio)
        assert (res.stage == 1).all()


def test_origination_pd_mixes_the_curves_of_the_grades_held_at_the_start(sp_term_structure):
    provider = TermStructurePD(sp_term_structure)
    loans = _loans()
    start, length = np.full(7, 84, dtype=np.int64), np.full(7, 36)
    at = sp_term_structure.grade_distribution(84)[84, np.arange(7)]  # (7 start grades, 8 states)
    curve = 1.0 - sp_term_structure.monthly_survival(36)[36]  # (7,) 3-year PD by grade
    expected = (at[:, :-1] @ curve) / (1.0 - at[:, -1])
    np.testing.assert_allclose(provider.origination_pd(loans, start, length), expected, rtol=1e-12)
    fresh = provider.origination_pd(loans, np.zeros(7, dtype=np.int64), length)
    np.testing.assert_allclose(fresh, curve, rtol=1e-12)  # at origination: the grade's own curve


def test_an_unfitted_model_or_a_foreign_object_is_refused():
    with pytest.raises(NotFittedError, match="not fitted"):
        TermStructurePD(MarkovMixtureTermStructure(TTC))
    with pytest.raises(ConfigError, match="MarkovMixtureTermStructure"):
        TermStructurePD(TTC)
