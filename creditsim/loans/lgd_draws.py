"""Realised LGDs of the Markov engine: one Beta draw per (scenario, loan), made only where the loan defaults.

A loan's realised LGD in a scenario is ``Beta(mu kappa, (1 - mu) kappa)`` (mean ``mu``, the book's LGD
assumption; concentration ``kappa``, :attr:`LoanBook.lgd_concentration`), and is needed only in the month
the loan defaults -- a few per cent of (scenario, loan) pairs over a 60-month horizon. The engine used to
draw it for every pair before the month loop (numpy's ``beta``, ~50 ns a draw: a tenth of a 10k x 60 x
10,000 simulate). Here each pair has a *counter-based* stream of its own, so a draw can be made when and
where the default happens and depends on nothing else:

- key: ``(k0, k1) = SeedSequence(seed, spawn_key=(LGD,)).generate_state(2, uint64)`` (``creditsim.rng``);
- the pair's stream: ``h = mix(mix(k0 + sid G) ^ (k1 + loan G))`` with ``sid`` the global scenario id,
  ``loan`` the loan's position in the book, ``G = 0x9E3779B97F4A7C15`` and ``mix`` SplitMix64's finaliser;
  its ``n``-th 64-bit output is ``mix(h + (n + 1) G)`` (SplitMix64 started at ``h``), and its uniforms
  ``((x >> 11) + 1/2) 2**-53``, in (0, 1] (never 0, whose log the draw takes; 1.0 only when the sum rounds
  up, with probability 2**-53, and harmless: ``log 1 = 0``, and the polar step rejects it);
- the draw: two gamma variates by Marsaglia & Tsang (2000, ACM TOMS 26(3)) with normals by Marsaglia's
  polar method, shapes below 1 boosted (``G(a) = G(a + 1) U**(1/a)``), combined in logs as
  ``X / (X + Y) = 1 / (1 + exp(log Y - log X))``, so tiny shapes give 0 or 1, never NaN;
- an LGD assumption of 0 or 1, ``kappa = inf``, or a shape ``mu kappa`` / ``(1 - mu) kappa`` at or below
  1e-300 (:data:`_MIN_SHAPE`) is the assumption itself (no draw).

The pair's numbers therefore depend only on (seed, scenario id, loan position): not on chunking, threads,
device, or on which other loans default. Every consumer calls the same compiled :func:`stressed_draw` on
the host -- the CPU kernel when the default happens, the torch steps and loan-level output through
:func:`realised_lgd`, the GPU kernel's defaults through :func:`book_default_losses` -- so the numbers are
the same bit for bit on every path. On a GPU only each default's par and month are recorded on the device
and the loss is booked on the host after the month loop, because CUDA's ``log`` / ``exp`` may round
differently from the host's. (A first version recorded par and month on the CPU too and booked them
afterwards: the two stores in the kernel's event branch cost more than the draws they saved, measured
2.2 s against 1.7 s CPU for 10k loans x 60 months x 500 scenarios; drawing in the kernel costs nothing
measurable on the quiet path.)

The collateral channel's factor on the recovered share (:func:`creditsim.loans.collateral.stressed_lgd`)
is applied to the draw with the same three operations, a factor of exactly 1 leaving it bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from creditsim.loans.splitmix import GOLDEN as _GOLDEN, mix64 as _mix
from creditsim.rng import LGD, stream

__all__ = ["LgdDraws", "book_default_losses", "draw_lgd", "lgd_key", "realised_lgd", "stressed_draw"]

_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO_M53 = 1.0 / 9007199254740992.0
#: Beta shapes at or below this are not drawn (the draw is the assumption): below ~1e-308 the boost
#: ``log(U) / shape`` of both gammas can reach -inf and their ratio NaN (review of 959d167); 1e-300 keeps
#: every log finite. Such shapes mean a concentration or LGD assumption below ~1e-300: nonsense inputs.
_MIN_SHAPE = 1e-300


def lgd_key(seed: int) -> np.ndarray:
    """``(2,)`` uint64 ``(k0, k1)``: the run's key of every LGD stream (module docstring)."""
    return stream(seed, LGD).generate_state(2, np.uint64)


@njit(cache=True, inline="always")
def _uniform(h, n):  # pragma: no cover - compiled
    """The stream ``h``'s ``n``-th uniform in (0, 1] and ``n + 1``."""
    n += _ONE
    return (np.float64(_mix(h + n * _GOLDEN) >> _S11) + 0.5) * _TWO_M53, n


@njit(cache=True, inline="always")
def _normal(h, n):  # pragma: no cover - compiled
    """A standard normal by Marsaglia's polar method (the pair's second value is not used)."""
    while True:
        u, n = _uniform(h, n)
        v, n = _uniform(h, n)
        x, y = 2.0 * u - 1.0, 2.0 * v - 1.0
        r = x * x + y * y
        if 0.0 < r < 1.0:
            return x * math.sqrt(-2.0 * math.log(r) / r), n


@njit(cache=True, inline="always")
def _log_gamma_variate(h, n, shape):  # pragma: no cover - compiled
    """``log`` of a Gamma(shape, 1) variate (Marsaglia-Tsang; shape < 1 boosted by ``U**(1/shape)``)."""
    boost = 0.0
    if shape < 1.0:
        u, n = _uniform(h, n)
        boost = math.log(u) / shape
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x, n = _normal(h, n)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, n = _uniform(h, n)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return math.log(d * v) + boost, n


@njit(cache=True, nogil=True)
def draw_lgd(k0, k1, sid, loan, mu, kappa):  # pragma: no cover - compiled
    """The realised LGD of loan ``loan`` (its position in the book) in global scenario ``sid``:
    ``Beta(mu kappa, (1 - mu) kappa)``, or ``mu`` itself when ``mu`` is 0 or 1, ``kappa`` is infinite, or
    a shape is below :data:`_MIN_SHAPE`."""
    if not (mu * kappa > _MIN_SHAPE and (1.0 - mu) * kappa > _MIN_SHAPE) or not math.isfinite(kappa):
        return mu  # mu of 0 or 1, an infinite concentration, or shapes too small to draw (module docstring)
    h = _mix(_mix(k0 + np.uint64(sid) * _GOLDEN) ^ (k1 + np.uint64(loan) * _GOLDEN))
    n = np.uint64(0)
    log_x, n = _log_gamma_variate(h, n, mu * kappa)
    log_y, n = _log_gamma_variate(h, n, (1.0 - mu) * kappa)
    return 1.0 / (1.0 + math.exp(log_y - log_x))


@njit(cache=True, nogil=True)
def stressed_draw(k0, k1, sid, loan, mu, kappa, scale, i, k):  # pragma: no cover - compiled
    """:func:`draw_lgd` with the collateral factor ``scale[i, k]`` on the recovered share applied as
    :func:`creditsim.loans.collateral.stressed_lgd` applies it (a factor of 1 keeps the draw bit for bit);
    ``scale`` ``(0, 0)`` is no factor. The one function every consumer calls."""
    lgd = draw_lgd(k0, k1, sid, loan, mu, kappa)
    if scale.shape[0] == 0 or scale[i, k] == 1.0:
        return lgd
    return 1.0 - (1.0 - lgd) * scale[i, k]


@njit(cache=True, nogil=True)
def realised_lgd(k0, k1, sids, first_loan, mu, kappa, scale, out):  # pragma: no cover - compiled
    """``out`` ``(s, L_b)`` = every loan's realised LGD in every scenario (torch steps, loan-level output).

    ``sids`` ``(s,)`` int64 global scenario ids; the block's loans are book positions ``first_loan ..``;
    ``mu`` ``(L_b,)``; ``scale`` ``(s, L_b)`` collateral factors or ``(0, 0)`` for none."""
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            out[i, k] = stressed_draw(k0, k1, sids[i], first_loan + k, mu[k], kappa, scale, i, k)


@njit(cache=True, nogil=True)
def book_default_losses(default_par, default_month, loan_group, k0, k1, sids, first_loan, mu, kappa, scale,
                        loss):  # pragma: no cover - compiled
    """Add each default's loss ``rint(par x LGD)`` (whole cents, half to even) to ``loss[i, t, g]``.

    ``default_par`` ``(s, L_b)`` float64 whole cents, > 0 where loan ``k`` defaulted in scenario ``i``, in
    month ``default_month[i, k]``; ``loan_group`` ``(L_b,)``; ``loss`` ``(s, T, G)`` float64. The LGD is
    drawn only for those pairs. Every term is a whole number of cents, so the sums are exact in any order.
    """
    for i in range(default_par.shape[0]):
        for k in range(default_par.shape[1]):
            par = default_par[i, k]
            if par > 0.0:
                lgd = stressed_draw(k0, k1, sids[i], first_loan + k, mu[k], kappa, scale, i, k)
                loss[i, default_month[i, k], loan_group[k]] += float(round(par * lgd))


class LgdDraws:
    """The LGD streams of a scenario chunk x a contiguous range of the book's loans.

    Args:
        seed: the run's seed; scenario_ids ``(s,)`` global scenario ids; first_loan: book position of the
            range's first loan; lgd_mean ``(L_b,)`` LGD assumptions, decimals in [0, 1];
            lgd_concentration: Beta concentration ``kappa`` (``inf``: the assumption exactly);
            scale: optional ``(s, L_b)`` collateral factors on the recovered share ``1 - LGD``.
    """

    def __init__(self, seed: int, scenario_ids: np.ndarray, first_loan: int, lgd_mean: np.ndarray,
                 lgd_concentration: float, scale: np.ndarray | None = None):
        self._key = lgd_key(seed)  # (2,) uint64 (k0, k1)
        self._sids = np.ascontiguousarray(scenario_ids, dtype=np.int64)
        self._first = int(first_loan)
        self._mu = np.ascontiguousarray(lgd_mean, dtype=np.float64)
        self._kappa = float(lgd_concentration)
        self._scale = np.zeros((0, 0)) if scale is None else np.ascontiguousarray(scale, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        """``(s, L_b)``."""
        return len(self._sids), len(self._mu)

    def all(self) -> np.ndarray:
        """``(s, L_b)`` float64 realised LGD of every (scenario, loan), collateral factor applied."""
        out = np.empty(self.shape)
        realised_lgd(self._key[0], self._key[1], self._sids, self._first, self._mu, self._kappa, self._scale, out)
        return out

    def kernel_args(self) -> tuple:
        """``(key (2,) uint64, sids (s,), first_loan, mu (L_b,), kappa, scale)``: what a kernel that draws a
        default's LGD itself passes to :func:`stressed_draw`."""
        return self._key, self._sids, self._first, self._mu, self._kappa, self._scale

    def book_losses(self, default_par: np.ndarray, default_month: np.ndarray, loan_group: np.ndarray,
                    loss: np.ndarray) -> None:
        """Add the defaults' whole-cent losses to ``loss`` ``(s, T, G)`` (:func:`book_default_losses`)."""
        book_default_losses(default_par, default_month, loan_group, self._key[0], self._key[1], self._sids,
                            self._first, self._mu, self._kappa, self._scale, loss)
