"""Synthetic CCC grade: expand a 7x7 matrix (AAA..B, D) to 8x8 (AAA..B, CCC, D).

Three methods:

- ``"geometric"`` / ``"linear"``: the reference rule (shared/spec/ccc-interpolation-reference.txt),
  reproduced on purpose with its flaws, for comparison: a fraction
  ``f_i = max(0.30 - 0.06 (5 - i), 0.02)`` of each PD moves to the CCC column (so one-year PDs drop);
  the CCC row is PD ``min(max(g_D, 1.5 PD_B), 0.60)`` with ``g_D`` the D cell of the
  geometric (``sqrt(PD_B)`` for alpha=0.5) or linear interpolation between the B row and the D unit
  row, stay ``max(1 - PD - (tiny terms), 0.30)``, upgrades to AAA..BB ``0.3 x`` the B row and CCC->B
  ``0.5 x P(B->B)``; then every row is renormalised.
- ``"calibrated"`` (default recommendation): every original grade keeps its one-year PD; the
  i -> CCC column is the 7x7 B-column mass split with the anchor's CCC share
  ``A[i, CCC] / (A[i, B] + A[i, CCC])``; the CCC row comes from the anchor (default: the bundled
  S&P 8x8) or from user CCC statistics; when the 7x7 B grade contains CCC obligors
  (``b_includes_ccc=True``) the pure B row is de-merged so that the obligor-weighted pool of B and
  CCC reproduces the 7x7 B row exactly. The result is checked: rows stochastic, D absorbing, PD
  non-decreasing by grade and PD_CCC > PD_B.

To condition an 8x8 on the credit cycle, expand the TTC once and condition the 8x8 with the
one-factor model (:func:`expand_conditional_tm` with ``ttc_8x8``): ``E_Z[M_8(Z)] = TTC_8`` then holds
(z > 0 is a good year).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from creditsim.datasets.ratings import load_sp_ratings, merge_ccc_into_b
from creditsim.errors import ConfigError, DataError
from creditsim.ratings.estimate import validate_matrix
from creditsim.ratings.zfactor import check_rho, conditional_matrix
from creditsim.states import GRADES_7, GRADES_8

__all__ = ["GRADES_7", "GRADES_8", "expand_to_8x8", "expand_conditional_tm", "collapse_to_7x7", "check_8x8"]

_B7, _D7 = 5, 6
_B8, _CCC, _D8 = 5, 6, 7


def _as_7x7(tm: np.ndarray | pd.DataFrame, name: str = "tm_7x7") -> np.ndarray:
    a = np.asarray(tm.to_numpy() if isinstance(tm, pd.DataFrame) else tm, dtype=np.float64)
    if a.shape != (7, 7):
        raise DataError(f"{name} must be 7x7 (AAA, AA, A, BBB, BB, B, D), got shape {a.shape}")
    return validate_matrix(a, name=name, labels=GRADES_7, tol=1e-6)


def _as_8x8(tm: np.ndarray | pd.DataFrame, name: str = "ttc_8x8") -> np.ndarray:
    a = np.asarray(tm.to_numpy() if isinstance(tm, pd.DataFrame) else tm, dtype=np.float64)
    if a.shape != (8, 8):
        raise DataError(f"{name} must be 8x8 (AAA, AA, A, BBB, BB, B, CCC, D), got shape {a.shape}")
    return validate_matrix(a, name=name, labels=GRADES_8, tol=1e-6)


def _geometric_interp(row_a: np.ndarray, row_b: np.ndarray, alpha: float, eps: float = 1e-10) -> np.ndarray:
    return np.exp(alpha * np.log(np.maximum(row_a, eps)) + (1.0 - alpha) * np.log(np.maximum(row_b, eps)))


def _expand_reference(p7: np.ndarray, alpha: float, method: str) -> np.ndarray:
    out = np.zeros((8, 8))
    out[:6, :6] = p7[:6, :6]
    pd_i = p7[:6, _D7]
    frac = np.maximum(0.30 - 0.06 * (5 - np.arange(6)), 0.02)
    ccc = np.where(pd_i > 0, pd_i * frac, 0.0)
    out[:6, _CCC] = ccc
    out[:6, _D8] = pd_i - ccc
    b_row = np.zeros(8)
    b_row[:6] = p7[_B7, :6]
    b_row[_D8] = p7[_B7, _D7]
    d_row = np.zeros(8)
    d_row[_D8] = 1.0
    if method == "geometric":
        row = _geometric_interp(b_row, d_row, alpha)
    else:
        row = alpha * b_row + (1.0 - alpha) * d_row
    ccc_pd = min(max(row[_D8], 1.5 * b_row[_D8]), 0.60)
    ccc_stay = max(1.0 - ccc_pd - row[:6].sum() - row[_CCC], 0.30)
    row[:5] = 0.3 * b_row[:5]
    row[_B8] = 0.5 * b_row[_B8]
    row[_CCC] = ccc_stay
    row[_D8] = ccc_pd
    out[_CCC] = row
    out[_D8] = 0.0
    out[_D8, _D8] = 1.0
    s = out.sum(axis=1, keepdims=True)
    return np.where(s > 0, out / np.where(s > 0, s, 1.0), out)


def collapse_to_7x7(tm_8x8: np.ndarray | pd.DataFrame, ccc_weight: float) -> np.ndarray:
    """Merge CCC into B: (8, 8) -> (7, 7). Columns B and CCC are summed; the merged B row is the
    obligor-weighted mix ``(1 - w) row_B + w row_CCC`` with ``w = ccc_weight`` in [0, 1) the share of
    CCC obligors in the B+CCC pool."""
    return merge_ccc_into_b(_as_8x8(tm_8x8, "tm_8x8"), ccc_weight)


def check_8x8(p8: np.ndarray, *, name: str = "expanded 8x8", require_monotone_pd: bool = True) -> np.ndarray:
    """Validate an 8x8 rating matrix: stochastic rows (1e-9), D absorbing and, when asked, PD
    non-decreasing from AAA to B and PD_CCC > PD_B. Raises :class:`DataError` naming the grade."""
    a = validate_matrix(p8, name=name, n_states=8, labels=GRADES_8)
    if require_monotone_pd:
        pdv = a[:-1, -1]
        bad = [f"{GRADES_8[i]}->{GRADES_8[i + 1]}" for i in range(6) if pdv[i + 1] < pdv[i] - 1e-15]
        if pdv[_CCC] <= pdv[_B8]:
            bad.append(f"B->CCC (PD_B {pdv[_B8]:.4g} >= PD_CCC {pdv[_CCC]:.4g})")
        if bad:
            raise DataError(f"{name}: one-year PD must increase by grade; violated at {bad}")
    return a


def expand_to_8x8(
    tm_7x7: np.ndarray | pd.DataFrame,
    alpha: float = 0.5,
    method: str = "geometric",
    *,
    anchor_8x8: np.ndarray | pd.DataFrame | None = None,
    ccc_row: np.ndarray | None = None,
    ccc_pd: float | None = None,
    ccc_weight: float | None = None,
    b_includes_ccc: bool = True,
) -> np.ndarray:
    """Expand a 7x7 (AAA, AA, A, BBB, BB, B, D) one-year matrix to 8x8 (AAA..B, CCC, D).

    Args:
        tm_7x7: (7, 7) stochastic matrix, D absorbing (TTC or conditional on z; z > 0 = good year).
        alpha, method: ``"geometric"``/``"linear"`` reproduce the reference rule (alpha = weight of
            the B row in the interpolation); ``"calibrated"`` is the corrected method (module docstring).
        anchor_8x8: calibrated only; (8, 8) matrix giving the CCC row and the CCC share of the B+CCC
            column. Default: the bundled S&P 1981-2016 NR-adjusted 8x8.
        ccc_row: calibrated only; user CCC row (8,) replacing the anchor's (must sum to 1, D last).
        ccc_pd: calibrated only; user one-year CCC PD; the anchor's non-default CCC entries are scaled
            to ``1 - ccc_pd``.
        ccc_weight: share of CCC obligors in the 7x7 B pool (default: the S&P 1981-2000 pooled share
            0.0934 when the anchor is the bundled S&P matrix, else required when ``b_includes_ccc``).
        b_includes_ccc: True when the 7x7 B grade pools B and CCC obligors (a source without CCC);
            False when it is pure B (the B row then keeps its PD and only its B column is split).

    Returns:
        (8, 8) float64, rows stochastic, D absorbing.
    """
    p7 = _as_7x7(tm_7x7)
    if method in ("geometric", "linear"):
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        return _expand_reference(p7, float(alpha), method)
    if method != "calibrated":
        raise ConfigError(f"method must be 'geometric', 'linear' or 'calibrated', got {method!r}")
    return _expand_calibrated(p7, anchor_8x8, ccc_row, ccc_pd, ccc_weight, b_includes_ccc)


def _check_input_pd_order(p7: np.ndarray, name: str = "tm_7x7") -> None:
    """The calibrated method keeps every input PD, so a PD that falls from one grade to the next in
    the *input* would reappear in the output: name the input row instead of the output."""
    pdv = p7[:_D7, _D7]
    for i in range(_B7):
        if pdv[i + 1] < pdv[i] - 1e-15:
            raise DataError(
                f"{name}: one-year PD must not decrease from grade to grade; row {GRADES_7[i + 1]!r} has PD "
                f"{pdv[i + 1]:.6g} < row {GRADES_7[i]!r} PD {pdv[i]:.6g} (column 'D' of the input matrix)"
            )


def _expand_calibrated(p7, anchor_8x8, ccc_row, ccc_pd, ccc_weight, b_includes_ccc) -> np.ndarray:
    _check_input_pd_order(p7)
    if anchor_8x8 is None:
        sp = load_sp_ratings()
        anchor = sp.matrix_8x8.to_numpy()
        default_w = sp.ccc_share_of_b
    else:
        anchor = _as_8x8(anchor_8x8, "anchor_8x8")
        default_w = None
    crow = anchor[_CCC].copy()
    if ccc_row is not None:
        crow = np.asarray(ccc_row, dtype=np.float64)
        if crow.shape != (8,) or not np.isfinite(crow).all() or (crow < 0).any() or abs(crow.sum() - 1) > 1e-9:
            raise DataError(f"ccc_row must be 8 non-negative probabilities summing to 1, got {ccc_row}")
    if ccc_pd is not None:
        if not 0.0 < ccc_pd < 1.0:
            raise ConfigError(f"ccc_pd must be in (0, 1), got {ccc_pd}")
        rest = crow[:_D8].sum()
        if rest <= 0:
            raise DataError("CCC row has no non-default mass to rescale for ccc_pd")
        crow[:_D8] *= (1.0 - ccc_pd) / rest
        crow[_D8] = ccc_pd
    if b_includes_ccc:
        w = default_w if ccc_weight is None else float(ccc_weight)
        if w is None:
            raise ConfigError("ccc_weight (share of CCC obligors in the 7x7 B pool) is required with a custom anchor_8x8")
    else:
        w = 0.0
    if not 0.0 <= w < 1.0:
        raise ConfigError(f"ccc_weight must be in [0, 1), got {w}")

    # anchor share of CCC inside the merged B+CCC destination column, per origin grade (AAA..B)
    bc = anchor[:6, _B8] + anchor[:6, _CCC]
    share = np.where(bc > 0, anchor[:6, _CCC] / np.where(bc > 0, bc, 1.0), 0.0)
    out = np.zeros((8, 8))
    out[:5, :5] = p7[:5, :5]
    out[:5, _B8] = p7[:5, _B7] * (1.0 - share[:5])
    out[:5, _CCC] = p7[:5, _B7] * share[:5]
    out[:5, _D8] = p7[:5, _D7]  # PDs kept exactly

    # pure B row (7x7 layout) from the pooled one: pooled = (1 - w) B + w CCC (CCC merged in B column)
    c7 = np.concatenate([crow[:5], [crow[_B8] + crow[_CCC]], [crow[_D8]]])
    b7 = (p7[_B7] - w * c7) / (1.0 - w)
    if b7[_D7] <= 0 or b7[_D7] >= crow[_D8]:
        raise DataError(
            f"cannot de-merge B: implied pure-B PD {b7[_D7]:.4g} is not in (0, PD_CCC={crow[_D8]:.4g}); the CCC "
            "anchor is inconsistent with this 7x7 B row (lower ccc_weight or set b_includes_ccc=False)"
        )
    if b7[_D7] < p7[4, _D7] - 1e-15:
        raise DataError(
            f"cannot de-merge B: implied pure-B PD {b7[_D7]:.4g} is below the input BB PD {p7[4, _D7]:.4g} "
            f"(tm_7x7 row 'B' PD {p7[_B7, _D7]:.4g} with ccc_weight {w:.4g} and PD_CCC {crow[_D8]:.4g}); lower "
            "ccc_weight or set b_includes_ccc=False"
        )
    if (b7 < 0).any():
        # small inconsistencies (e.g. rare upgrades): clip and rescale the non-default part, PD kept
        nd = np.clip(b7[:_D7], 0.0, None)
        b7[:_D7] = nd * (1.0 - b7[_D7]) / nd.sum()
    out[_B8, :5] = b7[:5]
    # split B's merged B+CCC destination mass with the anchor's B-row share
    out[_B8, _B8] = b7[_B7] * (1.0 - share[5])
    out[_B8, _CCC] = b7[_B7] * share[5]
    out[_B8, _D8] = b7[_D7]
    out[_CCC] = crow
    out[_D8] = 0.0
    out[_D8, _D8] = 1.0
    return check_8x8(out, name="calibrated 8x8")


def _probit_cells(p7: np.ndarray, rows: int) -> np.ndarray:
    """``Phi^-1`` of the "j or worse" probabilities of rows ``:rows`` and columns 1..D of 7x7 matrices
    ``(..., 7, 7)`` -> ``(..., rows, 6)``; cells at exactly 0 or 1 (or within 1e-12) become NaN."""
    c = np.cumsum(p7[..., :rows, ::-1], axis=-1)[..., ::-1][..., 1:]  # columns AA..D: "j or worse"
    ok = (c > 1e-12) & (c < 1.0 - 1e-12)
    return np.where(ok, special.ndtri(np.clip(c, 1e-300, 1.0 - 1e-16)), np.nan)


def infer_z_rho(
    cond_7x7: np.ndarray, ttc_7x7: np.ndarray, *, rho: float | None = None, z: np.ndarray | None = None, rows: int = 6
) -> tuple[np.ndarray, float]:
    """Credit-cycle index ``z`` per matrix and common ``rho`` that make ``M_7(z; rho)`` match ``cond_7x7``.

    In the one-factor model ``Phi^-1(C_cond[i, j]) = (b[i, j] - sqrt(rho) z) / sqrt(1 - rho)`` with
    ``b = Phi^-1(C_ttc)``: a straight line in the thresholds with slope ``s = 1 / sqrt(1 - rho)``
    (common to all matrices) and intercept ``-s sqrt(rho) z``. Least squares over every cell with a
    finite probit (rows ``:rows``, fixed effect per matrix) gives ``rho = 1 - 1 / s^2`` and ``z``; exact
    (to ~1e-10) when ``cond_7x7`` is a one-factor conditional of ``ttc_7x7``, a probit-space least-squares
    fit otherwise. ``cond_7x7`` (N, 7, 7), ``ttc_7x7`` (7, 7); returns ``(z (N,), rho)``; z > 0 is a good
    year. A slope <= 1 (no more dispersion than TTC, e.g. the TTC matrix itself) gives ``rho = 0``
    and ``z = 0`` (then ``M(z) = TTC``). Raises :class:`DataError` when no cell is usable or the implied
    rho is >= 0.99 (not a conditional of this TTC matrix).
    """
    y = _probit_cells(cond_7x7, rows).reshape(cond_7x7.shape[0], -1)  # (N, cells)
    b = np.broadcast_to(_probit_cells(ttc_7x7, rows).reshape(1, -1), y.shape)
    ok = np.isfinite(y) & np.isfinite(b)
    if (ok.sum(axis=1) < 2).any():
        raise DataError("cond_7x7: fewer than 2 cells strictly between 0 and 1; cannot infer z and rho (pass z= and rho=)")
    n_ok = ok.sum(axis=1)
    bm = np.where(ok, b, 0.0).sum(axis=1) / n_ok
    ym = np.where(ok, y, 0.0).sum(axis=1) / n_ok
    if rho is None:
        db = np.where(ok, b - bm[:, None], 0.0)
        dy = np.where(ok, y - ym[:, None], 0.0)
        slope = float((db * dy).sum() / (db * db).sum())
        r = 1.0 - 1.0 / slope**2 if slope > 1.0 else 0.0
        if r >= 0.99:
            raise DataError(f"cond_7x7 implies rho = {r:.4g} >= 0.99 against the TTC matrix: not a one-factor conditional of it; pass rho=")
    else:
        r = float(rho)
    if z is not None:
        return np.broadcast_to(np.asarray(z, dtype=np.float64), (cond_7x7.shape[0],)).copy(), r
    if r <= 0.0:
        return np.zeros(cond_7x7.shape[0]), 0.0
    s = 1.0 / np.sqrt(1.0 - r)
    intercept = ym - s * bm
    return -intercept / (s * np.sqrt(r)), r


def expand_conditional_tm(
    cond_7x7: np.ndarray,
    ttc_8x8: np.ndarray | pd.DataFrame | None = None,
    *,
    z: float | np.ndarray | None = None,
    rho: float | None = None,
    ttc_7x7: np.ndarray | pd.DataFrame | None = None,
    method: str = "geometric",
    alpha: float = 0.5,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, float]:
    """Expand Z-conditional 7x7 matrices (..., 7, 7) to 8x8 (z > 0 = good year).

    Without ``ttc_8x8``: each conditional matrix is expanded with :func:`expand_to_8x8`
    (``method``, reference behaviour; note ``E_Z[M_8]`` then differs from any TTC 8x8). With
    ``ttc_8x8`` (the spec's ``expand_conditional_tm(cond_7x7, ttc_8x8)``): the 8x8 TTC is conditioned
    with the same Z, ``M_8(z) = conditional_matrix(ttc_8x8, z, rho)``, so ``E_Z[M_8(Z)] = ttc_8x8`` holds.

    Decision: ``z`` and ``rho`` need not be given. Whatever is missing is inferred from ``cond_7x7``
    against the 7x7 TTC (``ttc_7x7``, default: rows AAA..BB of ``ttc_8x8``, which are the same in any
    collapse to 7x7 because merging the B and CCC columns leaves "B or worse" unchanged) by the
    closed-form probit regression of :func:`infer_z_rho`: one common rho for the batch, one z per
    matrix. Exact for conditionals of the TTC (rho and z recovered to ~1e-8); the TTC 7x7 itself gives
    rho = 0 and returns ``ttc_8x8``. With ``rho`` and ``ttc_7x7`` given and ``z`` missing, z is the
    grid least-squares fit in probability space (previous behaviour). ``return_params=True`` returns
    ``(matrices, z (N,), rho)``.
    """
    c = np.asarray(cond_7x7, dtype=np.float64)
    if c.ndim < 2 or c.shape[-2:] != (7, 7):
        raise DataError(f"cond_7x7 must be (..., 7, 7), got shape {c.shape}")
    flat = c.reshape(-1, 7, 7)
    if flat.shape[0] == 0:
        raise DataError("cond_7x7 holds no matrices (shape {c.shape})")
    for i in range(flat.shape[0]):
        _as_7x7(flat[i], "cond_7x7" if flat.shape[0] == 1 else f"cond_7x7[{i}]")
    if ttc_8x8 is None:
        if z is not None or rho is not None or return_params:
            raise ConfigError("z=, rho= and return_params= apply only with ttc_8x8 (the one-factor expansion)")
        return np.stack([expand_to_8x8(m, alpha, method) for m in flat]).reshape(c.shape[:-2] + (8, 8))
    t8 = _as_8x8(ttc_8x8)
    if rho is not None:
        rho = check_rho(rho)
    if z is not None:
        zz = np.asarray(z, dtype=np.float64)
        if not np.isfinite(zz).all():
            raise DataError("z must be finite")
        try:
            zz = np.broadcast_to(zz, c.shape[:-2]).reshape(-1)
        except ValueError:
            raise DataError(f"z has shape {zz.shape} but cond_7x7 holds {c.shape[:-2]} matrices") from None
    else:
        zz = None
    if rho is not None and zz is None and ttc_7x7 is not None:
        t7 = _as_7x7(ttc_7x7, "ttc_7x7")
        grid = np.linspace(-6.0, 6.0, 2401)
        mats = conditional_matrix(t7, grid, rho)  # (G, 7, 7)
        err = ((flat[:, None] - mats[None]) ** 2).sum(axis=(-2, -1))
        zz = grid[np.argmin(err, axis=1)]
        # refine on a fine local grid
        fine = zz[:, None] + np.linspace(-0.005, 0.005, 101)[None, :]
        err = ((flat[:, None] - conditional_matrix(t7, fine, rho)) ** 2).sum(axis=(-2, -1))
        zz = fine[np.arange(len(zz)), np.argmin(err, axis=1)]
    elif rho is None or zz is None:
        if ttc_7x7 is not None:
            t7, rows = _as_7x7(ttc_7x7, "ttc_7x7"), 6
        else:  # rows AAA..BB of any 7x7 collapse of ttc_8x8 (B row needs a CCC weight: left out)
            t7, rows = collapse_to_7x7(t8, 0.0), 5
        zz, rho = infer_z_rho(flat, t7, rho=rho, z=zz, rows=rows)
    out = conditional_matrix(t8, zz, rho).reshape(c.shape[:-2] + (8, 8))
    return (out, zz, float(rho)) if return_params else out
