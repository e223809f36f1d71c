"""The credit-cycle index is bounded where it becomes a rating matrix: an extreme macro path (reverse stress
went to z = -50 / -100) gives the 8-sd year's matrices instead of a failed matrix root."""

from __future__ import annotations

import numpy as np

from creditsim.ratings.lifetime import Z_LIMIT, bounded_z, monthly_matrices_from_z
from creditsim.ratings.lifetime import ZMacroLink


def test_extreme_z_gives_the_bounded_years_matrices_and_inside_nothing_changes():
    link = ZMacroLink.from_bundled()
    z = np.array([-100.0, -50.0, -Z_LIMIT, -2.5, 0.0, 1.7, Z_LIMIT, 50.0, 100.0])
    got = monthly_matrices_from_z(z, link)
    assert got.shape == (9, 8, 8) and np.isfinite(got).all()
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-10)
    np.testing.assert_array_equal(got[0], got[2])  # below the bound: the bound's matrix
    np.testing.assert_array_equal(got[8], got[6])
    inside = monthly_matrices_from_z(z[3:6], link)
    np.testing.assert_array_equal(inside, got[3:6])  # inside the bound: untouched
    assert got[2][5, 7] > got[3][5, 7] > got[4][5, 7] > got[6][5, 7]  # worse years: B defaults more
    np.testing.assert_array_equal(bounded_z(np.array([-9.0, 3.0, 9.0])), [-Z_LIMIT, 3.0, Z_LIMIT])


def test_extreme_macro_paths_become_finite_scenario_matrices():
    link = ZMacroLink.from_bundled()
    from creditsim.states import MACRO_VARS

    paths = np.zeros((2, 24, len(MACRO_VARS)))
    paths[:, :, MACRO_VARS.index("gdp_growth")] = [[-0.9], [0.02]]  # a -90 % GDP year and a normal one
    paths[:, :, MACRO_VARS.index("credit_spread_hy")] = [[0.9], [0.04]]
    annual = link.scenario_matrices(paths, frequency="monthly")
    assert np.isfinite(annual).all()
    assert annual[0, 0, 5, 7] > annual[1, 0, 5, 7]
