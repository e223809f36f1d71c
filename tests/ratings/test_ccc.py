"""CCC expansion 7x7 -> 8x8: the reference rule reproduced from its description, the calibrated
method against the S&P 8x8, conditioning of the 8x8 (z > 0 is a good year)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, DataError
from creditsim.ratings.ccc import GRADES_7, GRADES_8, collapse_to_7x7, expand_conditional_tm, expand_to_8x8
from creditsim.ratings.zfactor import conditional_matrix, gauss_hermite

FRACTIONS = np.array([0.02, 0.06, 0.12, 0.18, 0.24, 0.30])  # AAA..B, as the reference code computes


@pytest.fixture(scope="module")
def sp():
    return load_sp_ratings()


def random_7x7(seed: int, monotone_pd: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.gamma(0.7, size=(7, 7))
    p[rng.random((7, 7)) < 0.15] = 0.0
    p[np.arange(7), np.arange(7)] += 4.0
    p[:-1] /= p[:-1].sum(axis=1, keepdims=True)
    if monotone_pd:
        pds = np.sort(rng.uniform(1e-5, 0.25, 6))
        p[:-1, :-1] *= (1 - pds[:, None]) / p[:-1, :-1].sum(axis=1, keepdims=True)
        p[:-1, -1] = pds
    p[-1] = np.eye(7)[-1]
    return p


def test_grade_constants():
    assert GRADES_7 == ("AAA", "AA", "A", "BBB", "BB", "B", "D")
    assert GRADES_8 == ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "D")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["geometric", "linear"]), alpha=st.floats(0, 1))
def test_expand_to_8x8_is_stochastic_with_absorbing_default_for_any_valid_input(seed, method, alpha):
    p8 = expand_to_8x8(random_7x7(seed), alpha=alpha, method=method)
    assert p8.shape == (8, 8) and (p8 >= 0).all()
    np.testing.assert_allclose(p8.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p8[-1], np.eye(8)[-1])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_calibrated_expansion_is_stochastic_and_keeps_pds_for_any_monotone_input(seed):
    p7 = random_7x7(seed, monotone_pd=True)
    p8 = expand_to_8x8(p7, method="calibrated", b_includes_ccc=False)
    np.testing.assert_allclose(p8.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p8[-1], np.eye(8)[-1])
    np.testing.assert_allclose(p8[:6, -1], p7[:6, -1], rtol=1e-12)  # every original PD kept
    assert (np.diff(p8[:-1, -1]) >= 0).all()


# ----------------------------------------------------------------------------- reference behaviour
def _reference_ccc_row(p7: np.ndarray, alpha: float, method: str) -> np.ndarray:
    """CCC row as the reference description states it, before the final renormalisation."""
    pd_b = p7[5, 6]
    if method == "geometric":
        d_cell = np.exp(alpha * np.log(max(pd_b, 1e-10)))  # log(1) = 0 for the D unit row
        rest = sum(np.exp(alpha * np.log(max(x, 1e-10)) + (1 - alpha) * np.log(1e-10)) for x in p7[5, :6])
        ccc_cell = np.exp(alpha * np.log(1e-10) + (1 - alpha) * np.log(1e-10))
    else:
        d_cell = alpha * pd_b + (1 - alpha)
        rest = alpha * p7[5, :6].sum()
        ccc_cell = 0.0
    ccc_pd = min(max(d_cell, 1.5 * pd_b), 0.60)
    stay = max(1 - ccc_pd - rest - ccc_cell, 0.30)
    row = np.zeros(8)
    row[:5] = 0.3 * p7[5, :5]
    row[5] = 0.5 * p7[5, 5]
    row[6] = stay
    row[7] = ccc_pd
    return row


@pytest.mark.parametrize("method", ["geometric", "linear"])
def test_reference_rule_moves_a_fixed_fraction_of_each_pd_to_ccc(sp, method):
    p7 = sp.matrix_7x7.to_numpy()
    p8 = expand_to_8x8(p7, method=method)
    # rows AAA..B sum to 1 before renormalisation, so the split is visible exactly
    np.testing.assert_allclose(p8[:6, 6], FRACTIONS * p7[:6, 6], rtol=1e-12)
    np.testing.assert_allclose(p8[:6, 7], (1 - FRACTIONS) * p7[:6, 6], rtol=1e-12)
    np.testing.assert_allclose(p8[:6, :6], p7[:6, :6], rtol=1e-12)
    # documented flaw 1: every one-year PD drops (BB by 24 %, BBB by 18 %)
    assert p8[4, 7] / p7[4, 6] == pytest.approx(0.76)
    assert p8[3, 7] / p7[3, 6] == pytest.approx(0.82)


@pytest.mark.parametrize("method,alpha", [("geometric", 0.5), ("geometric", 0.3), ("linear", 0.5), ("linear", 0.8)])
def test_reference_ccc_row_follows_the_documented_recipe(sp, method, alpha):
    p7 = sp.matrix_7x7.to_numpy()
    row = _reference_ccc_row(p7, alpha, method)
    np.testing.assert_allclose(expand_to_8x8(p7, alpha, method)[6], row / row.sum(), rtol=1e-10)


def test_reference_geometric_pd_is_sqrt_pd_b_and_cure_is_half_b_diagonal(sp):
    p7 = sp.matrix_7x7.to_numpy()
    p8 = expand_to_8x8(p7)
    raw = _reference_ccc_row(p7, 0.5, "geometric")
    assert raw[7] == pytest.approx(np.sqrt(p7[5, 6]), rel=1e-6)
    assert raw[5] == pytest.approx(0.5 * p7[5, 5])
    # renormalised: the CCC -> B cure rate ~0.30, about twice the S&P 0.15 (documented flaw 3)
    assert 0.28 < p8[6, 5] < 0.32


def test_reference_ccc_pd_cap_and_floor():
    p7 = np.eye(7)
    p7[5] = [0, 0, 0, 0, 0.1, 0.4, 0.5]  # sqrt(0.5) = 0.707 -> capped at 0.60
    raw = _reference_ccc_row(p7, 0.5, "geometric")
    assert raw[7] == 0.60
    np.testing.assert_allclose(expand_to_8x8(p7)[6], raw / raw.sum(), rtol=1e-12)
    p7[5] = [0, 0, 0, 0, 0.1, 0.9 - 1e-4, 1e-4]  # sqrt = 0.01 > 1.5 PD_B
    assert expand_to_8x8(p7)[6, 7] * _reference_ccc_row(p7, 0.5, "geometric").sum() == pytest.approx(0.01)


def test_reference_rejects_wrong_shape():
    with pytest.raises(DataError, match="7x7"):
        expand_to_8x8(np.eye(8))
    with pytest.raises(ConfigError):
        expand_to_8x8(np.eye(7), method="cubic")


def test_expand_conditional_tm_without_ttc_8x8_applies_reference_rule_to_each_matrix(sp):
    p7 = sp.matrix_7x7.to_numpy()
    cond = conditional_matrix(p7, np.array([-1.5, 0.0, 1.0]), 0.08)
    out = expand_conditional_tm(cond)
    assert out.shape == (3, 8, 8)
    for i in range(3):
        np.testing.assert_allclose(out[i], expand_to_8x8(cond[i]))


# ----------------------------------------------------------------------------- calibrated (acceptance)
def test_calibrated_round_trip_on_sp_keeps_pds_and_ccc_row(sp, capsys):
    # The literal acceptance test. It is circular for the CCC row: the default anchor IS the
    # S&P 8x8 the result is compared with, so "within 0.02" holds by construction. The independent
    # check is test_calibrated_with_independent_jlt_anchor_against_sp_8x8 below.
    p8 = sp.matrix_8x8.to_numpy()
    w = sp.ccc_share_of_b
    p7 = collapse_to_7x7(p8, w)
    np.testing.assert_allclose(p7, sp.matrix_7x7.to_numpy())
    cal = expand_to_8x8(p7, method="calibrated")
    geo = expand_to_8x8(p7, method="geometric")
    # one-year PDs of AAA..BB unchanged (those of the 7x7 = those of S&P); B's pure PD recovered
    np.testing.assert_allclose(cal[:5, 7], p7[:5, 6], rtol=1e-12, atol=0)
    assert cal[5, 7] == pytest.approx(p8[5, 7], abs=1e-12)
    # the obligor-weighted B+CCC pool reproduces the 7x7 B row
    np.testing.assert_allclose(collapse_to_7x7(cal, w)[5], p7[5], atol=1e-12)
    cal_err = np.abs(cal[6] - p8[6])
    geo_err = np.abs(geo[6] - p8[6])
    assert cal_err.max() < 0.02
    pd_err_geo = np.abs(geo[:6, 7] - p8[:6, 7])
    with capsys.disabled():
        print("\nCCC row |error| vs S&P 8x8 (AAA..B, CCC, D):")
        print("  calibrated:", np.array2string(cal_err, precision=4, suppress_small=True))
        print("  geometric: ", np.array2string(geo_err, precision=4, suppress_small=True))
        print("  one-year PD |error| AAA..B, geometric:", np.array2string(pd_err_geo, precision=5, suppress_small=True))
    # the reference rule misses the CCC row badly (cure rate and PD)
    assert geo_err.max() > 0.1 and geo_err[7] > 0.1


def test_calibrated_with_other_anchor_keeps_pds_and_reproduces_pooled_b(sp):
    jlt = np.array(
        [
            [0.891, 0.0963, 0.0078, 0.0019, 0.003, 0.0, 0.0, 0.0],
            [0.0086, 0.901, 0.0747, 0.0099, 0.0029, 0.0029, 0.0, 0.0],
            [0.0009, 0.0291, 0.8894, 0.0649, 0.0101, 0.0045, 0.0, 0.0011],
            [0.0006, 0.0043, 0.0656, 0.8427, 0.0644, 0.016, 0.0018, 0.0046],
            [0.0004, 0.0022, 0.0079, 0.0719, 0.7764, 0.1043, 0.0127, 0.0242],
            [0.0, 0.0019, 0.0031, 0.0066, 0.0517, 0.8246, 0.0435, 0.0686],
            [0.0, 0.0, 0.0116, 0.0116, 0.0203, 0.0754, 0.6493, 0.2318],
            [0, 0, 0, 0, 0, 0, 0, 1.0],
        ]
    )
    jlt /= jlt.sum(axis=1, keepdims=True)
    p7 = sp.matrix_7x7.to_numpy()
    out = expand_to_8x8(p7, method="calibrated", anchor_8x8=jlt, ccc_weight=0.05)
    np.testing.assert_allclose(out[:5, 7], p7[:5, 6], rtol=1e-12)
    np.testing.assert_allclose(collapse_to_7x7(out, 0.05)[5], p7[5], atol=1e-12)
    np.testing.assert_allclose(out[6], jlt[6])
    with pytest.raises(ConfigError, match="ccc_weight"):
        expand_to_8x8(p7, method="calibrated", anchor_8x8=jlt)


def test_calibrated_with_user_ccc_pd(sp):
    out = expand_to_8x8(sp.matrix_7x7, method="calibrated", ccc_pd=0.40)
    assert out[6, 7] == pytest.approx(0.40)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


def test_calibrated_raises_when_anchor_inconsistent(sp):
    p7 = sp.matrix_7x7.to_numpy().copy()
    # merged B PD 2 % (above PD_BB, so the input is in order) but below w * PD_CCC ~ 3 %
    p7[5, 6], p7[5, 5] = 0.02, p7[5, 5] + p7[5, 6] - 0.02
    with pytest.raises(DataError, match="de-merge"):
        expand_to_8x8(p7, method="calibrated")


def test_calibrated_names_the_non_monotone_input_row_not_its_output(sp):
    """Defect: a B row with PD below BB's was reported as 'calibrated 8x8 ... violated at [BB->B]'
    (the output); the input row and column are named now."""
    p7 = sp.matrix_7x7.to_numpy().copy()
    p7[5, 6], p7[5, 5] = 0.001, p7[5, 5] + p7[5, 6] - 0.001  # PD_B 0.1 % < PD_BB 0.8 %
    with pytest.raises(DataError, match=r"tm_7x7: .*row 'B' has PD 0\.001 < row 'BB'") as exc:
        expand_to_8x8(p7, method="calibrated")
    assert "calibrated 8x8" not in str(exc.value) and "\n" not in str(exc.value)
    p7 = sp.matrix_7x7.to_numpy().copy()
    p7[3, 6], p7[3, 3] = p7[2, 6] / 2, p7[3, 3] + p7[3, 6] - p7[2, 6] / 2  # PD_BBB below PD_A
    with pytest.raises(DataError, match="row 'BBB' has PD .* < row 'A'"):
        expand_to_8x8(p7, method="calibrated")


# ----------------------------------------------------------------------------- conditioning the 8x8
def test_expand_conditional_with_ttc_8x8_keeps_expectation_equal_to_ttc(sp):
    p8 = sp.matrix_8x8.to_numpy()
    p7 = sp.matrix_7x7.to_numpy()
    rho = 0.06
    x, w = gauss_hermite(40)
    cond7 = conditional_matrix(p7, x, rho)
    out = expand_conditional_tm(cond7, p8, z=x, rho=rho)
    np.testing.assert_allclose(np.tensordot(w, out, axes=1), p8, atol=1e-10)
    # z recovered from the conditional 7x7 matrices gives the same 8x8s
    pick = np.flatnonzero(np.abs(x) < 3)[::4]
    rec = expand_conditional_tm(cond7[pick], p8, rho=rho, ttc_7x7=p7)
    np.testing.assert_allclose(rec, out[pick], atol=1e-4)
    # the reference route does not keep E_Z[M_8] = any of these
    ref = np.tensordot(w, expand_conditional_tm(cond7), axes=1)
    assert np.abs(ref - p8).max() > 0.05


def test_expand_conditional_rejects_7x7_as_ttc_8x8(sp):
    p7 = sp.matrix_7x7.to_numpy()
    with pytest.raises(DataError, match="8x8"):
        expand_conditional_tm(p7, p7, z=0.0, rho=0.1)


def test_expand_conditional_spec_signature_infers_z_and_rho_on_sp_data(sp):
    """Defect: the spec's ``expand_conditional_tm(cond_7x7, ttc_8x8)`` raised 'needs rho'. Now z and
    rho are recovered from the 7x7 against the TTC (probit regression) on the bundled S&P matrices."""
    p7, p8 = sp.matrix_7x7, sp.matrix_8x8
    z = np.array([-2.0, -0.7, 0.0, 0.4, 1.8])  # z > 0 = good year
    cond7 = conditional_matrix(p7, z, 0.056)
    # the spec call with a single matrix and no keywords; a bad year has higher B and CCC PDs than TTC
    bad = expand_conditional_tm(cond7[0], p8)
    assert bad.shape == (8, 8) and bad[6, 7] > p8.to_numpy()[6, 7] and bad[5, 7] > p8.to_numpy()[5, 7]
    out, z_hat, rho_hat = expand_conditional_tm(cond7, p8, return_params=True)
    assert rho_hat == pytest.approx(0.056, abs=1e-9)
    np.testing.assert_allclose(z_hat, z, atol=1e-8)
    np.testing.assert_allclose(out, conditional_matrix(p8, z, 0.056), atol=1e-12)
    # the TTC 7x7 itself carries no cycle: rho = 0 and the 8x8 TTC comes back
    same, _, r0 = expand_conditional_tm(p7.to_numpy(), p8, return_params=True)
    assert r0 == 0.0
    np.testing.assert_allclose(same, p8.to_numpy(), atol=1e-14)
    # given rho, only z is inferred (no ttc_7x7 needed any more)
    _, z1, _ = expand_conditional_tm(cond7[-1], p8, rho=0.056, return_params=True)
    assert z1[0] == pytest.approx(1.8, abs=1e-8)


# Jarrow, Lando & Turnbull (1997) one-year 8x8 (AAA..CCC, D), exactly as shipped by transitionMatrix
# 0.5.1 (shared/data/ratings/transitionmatrix-0.5.1/JLT.csv): S&P data of an earlier period, an
# anchor independent of the S&P 1981-2016 8x8 it is compared with.
JLT_8X8 = np.array(
    [
        [0.891, 0.0963, 0.0078, 0.0019, 0.003, 0.0, 0.0, 0.0],
        [0.0086, 0.901, 0.0747, 0.0099, 0.0029, 0.0029, 0.0, 0.0],
        [0.0009, 0.0291, 0.8894, 0.0649, 0.0101, 0.0045, 0.0, 0.0009],
        [0.0006, 0.0043, 0.0656, 0.8427, 0.0644, 0.016, 0.0018, 0.0045],
        [0.0004, 0.0022, 0.0079, 0.0719, 0.7764, 0.1043, 0.0127, 0.0241],
        [0.0, 0.0019, 0.0031, 0.0066, 0.0517, 0.8246, 0.0435, 0.0685],
        [0.0, 0.0, 0.0116, 0.0116, 0.0203, 0.0754, 0.6493, 0.2319],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    ]
)
_JLT_FILE = Path(__file__).resolve().parents[3] / "shared/data/ratings/transitionmatrix-0.5.1/JLT.csv"


def test_calibrated_with_independent_jlt_anchor_against_sp_8x8(sp, capsys):
    """Collapse S&P 8x8 -> 7x7 (CCC weight from the 1981-2000 obligor counts), expand back anchored
    on JLT instead of S&P, compare with S&P. Honest tolerances, from what the anchors allow:

    - AAA..BB one-year PDs: exact (the method keeps them; the reference rule moves 6-24 % of each
      PD to CCC).
    - i -> CCC column (AAA..B): within 0.01 (the anchor only supplies the CCC share of the B+CCC
      mass, which is stable across the two data sets; measured max 0.006).
    - CCC row: within 0.15 on every cell. It IS the anchor's row, so its error is the distance
      between the two anchors (JLT CCC PD 0.232 vs S&P 0.317, cure to B 0.075 vs 0.153); no
      expansion method can recover CCC behaviour that the 7x7 does not contain. The calibrated
      row is still closer than the reference rule on the worst cell, the PD and the cure rate.
    - Not better everywhere: B's de-merged PD is 0.009 off (it inherits JLT's CCC PD), the reference
      rule's B PD 0.005, and the reference CCC stay cell is closer (0.012 vs 0.130); printed below.
    """
    if _JLT_FILE.exists():
        np.testing.assert_array_equal(np.loadtxt(_JLT_FILE, delimiter=",", skiprows=1), JLT_8X8)
    jlt = JLT_8X8 / JLT_8X8.sum(axis=1, keepdims=True)  # published rows sum to 1 +- 2e-4 (rounding)
    p8 = sp.matrix_8x8.to_numpy()
    w = sp.ccc_share_of_b
    p7 = collapse_to_7x7(p8, w)
    cal = expand_to_8x8(p7, method="calibrated", anchor_8x8=jlt, ccc_weight=w)
    # user CCC statistics instead: the count-pooled 1981-2000 CCC default rate on top of the JLT row
    ccc_pd_counts = float(sp.defaults["CCC"].sum() / sp.obligors["CCC"].sum())
    cal_pd = expand_to_8x8(p7, method="calibrated", anchor_8x8=jlt, ccc_weight=w, ccc_pd=ccc_pd_counts)
    geo = expand_to_8x8(p7, method="geometric")
    err = {name: np.abs(m - p8) for name, m in (("calibrated/JLT", cal), ("calibrated/JLT+counts PD", cal_pd), ("geometric", geo))}
    with capsys.disabled():
        print("\n|error| vs S&P 8x8 with an independent anchor (JLT 1997; CCC weight from counts):")
        for name, e in err.items():
            print(f"  {name:<26} CCC row {np.array2string(e[6], precision=4, suppress_small=True)}")
            print(f"  {'':<26} PD AAA..CCC {np.array2string(e[:7, 7], precision=4, suppress_small=True)}")
            print(f"  {'':<26} AAA..B -> CCC {np.array2string(e[:6, 6], precision=4, suppress_small=True)}")
    e_cal, e_geo = err["calibrated/JLT"], err["geometric"]
    np.testing.assert_allclose(cal[:5, 7], p8[:5, 7], rtol=1e-12, atol=0)
    assert e_geo[:5, 7].max() > 1e-3  # the reference rule moves PD mass to CCC
    assert e_cal[:6, 6].max() < 0.01 < e_geo[5, 6]
    assert e_cal[6].max() < 0.15
    assert e_cal[6].max() < e_geo[6].max()
    assert e_cal[6, 7] < e_geo[6, 7] and e_cal[6, 5] < e_geo[6, 5]  # CCC PD and CCC -> B cure
    assert err["calibrated/JLT+counts PD"][6, 7] < e_geo[6, 7]
    # the anchor, not the method, bounds the CCC row: its error is the JLT-vs-S&P distance
    np.testing.assert_allclose(e_cal[6], np.abs(jlt[6] - p8[6]), atol=1e-12)
