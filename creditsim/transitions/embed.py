"""The monthly chain behind moves observed every ``k`` months (quarterly panels, ``k = 3``).

A panel that reports each loan once a quarter shows where a loan is three months later, not the monthly
moves a simulation steps through. The monthly matrix ``P`` is estimated so that its ``k``-th power explains
the observed ``k``-month moves, by maximum likelihood::

    max_P  sum_ij n_ij log (P^k)_ij  +  sum_i m_i log(1 - (P^k)_{i,DEFAULT})  -  (lam / 2) |theta - theta_0|^2

over monthly matrices with the contract's support (:data:`~creditsim.states.ALLOWED_TRANSITIONS`: a loan
moves at most one delinquency bucket a month; DEFAULT, PREPAID and MATURED absorb). ``n_ij`` are the
``k``-month moves out of live states, ``m_i`` the censored periods (one more default-free period of
unknown end state, as in :func:`~creditsim.transitions.markov.row_mle`). Each live row is a softmax over
its allowed entries (``theta``, the stay entry the reference). Why this and not a matrix root: the
principal ``k``-th root of an empirical matrix is often not a transition matrix, and a regularised root
(:func:`creditsim.ratings.estimate.regularised_generator`) spreads mass onto moves the contract forbids in
one month (CURRENT -> DPD90); the constrained likelihood has neither problem, and it uses the paths a
quarter hides (CURRENT -> DPD30 -> CURRENT) only as far as the data identify them.

Off-cycle rows. A real quarterly file is not a clean grid: a payoff or default may be reported in the
month it happens, a quarter may be skipped. Moves are therefore counted by gap ``g`` (rows ``g`` months
apart) and scored by ``P^g``; and where the file dates absorptions, an absorption seen ``g`` months after
a live row is scored by the probability of *entering* that state in month ``g`` exactly,
``f_g(i, a) = sum_l (P^(g-1))_il P_la`` over live ``l`` (``= (P^g - P^(g-1))_ia``), because its timing is
the event's: a loan that defaulted a month after the quarter end would have shown up a month earlier.
Scoring such a row by ``P^g`` would count the earlier months' defaults again; dropping it (the rows are
not three months apart) understated the 12-month PD by a third on a test book
(``tests/transitions/test_embed.py``).

The pull. Quarterly data identify the monthly matrix only in part: a quarter that starts and ends in
DPD60 may have stayed there or gone DPD30 and back. The objective adds ``(lam / 2) |theta - theta_0|^2``.
For the pooled chain, ``theta_0`` is read from the data (each row's observed ``k``-month shares on its
allowed moves: :func:`data_theta`) and ``lam = 0.1``; each segment is pulled towards the pooled chain with ``lam = 1``, so a
thin segment borrows the book's shape. Identified parameters move by ``O(lam / n)``. Measured on 100
books of 5,000 loans x 36 months drawn from a known monthly chain and seen quarterly
(``tests/transitions/test_embed.py``'s chain): the CURRENT row's entries fell beyond 2 delta-method
standard errors of the truth in 3.8 % of cases, the delinquent rows' (seen far less often) in 5.6 %
(4.6 % if the errors were exact); with a pull of strength 1 towards a "stay with probability 0.9" start
instead, 25 % (30 books); with a pull towards the projected cube root (:func:`root_theta`), 15 % and
single entries 500 errors away (a noisy root puts entries at the floor). The root is a good *start*.

Standard errors are the delta method on the observed information (the Hessian of the penalised
negative log-likelihood; float64 autograd), so directions the data leave to the pull get the pull's
width rather than a false zero.

Deterministic: float64 on the CPU, starts read from the counts, L-BFGS-B (scipy) on a fixed number of
parameters with an analytic gradient (:func:`penalised_nll`; 7 x 7 products only), about 0.2 s a fit.
The likelihood of a matrix power is not concave: from the observed shares alone the optimiser stopped
at a local optimum for 6 of 60 random chains (:func:`root_theta` found every one's exact optimum), so the
fit runs from both starts and keeps the better.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import fractional_matrix_power
from scipy.optimize import minimize

from creditsim.errors import ConfigError
from creditsim.states import ABSORBING_STATES, ALLOWED_TRANSITIONS, N_LIVE_STATES, N_STATES, LoanState, reachable_states
from creditsim.threads import serial_torch

__all__ = ["EmbeddedChain", "embed_monthly_chain", "data_theta", "root_theta", "penalised_nll", "N_PARAMS"]

_D = int(LoanState.DEFAULT)


@dataclass(frozen=True)
class EmbeddedChain:
    """A fitted monthly chain.

    Attributes:
        matrix: ``(7, 7)`` monthly transition matrix (absorbing rows the identity).
        standard_errors: ``(7, 7)`` delta-method standard errors of ``matrix`` (0 on absorbing rows and
            forbidden entries).
        theta: the fitted parameters (the live rows' logits of their allowed non-reference entries), for
            use as another fit's ``theta_0``.
        nll: negative log-likelihood per observed period at the optimum (without the pull).
        gradient: largest absolute gradient of the penalised objective per observed period at the optimum
            (a convergence check).
    """

    matrix: np.ndarray
    standard_errors: np.ndarray
    theta: np.ndarray
    nll: float
    gradient: float


def _layout() -> tuple[list[np.ndarray], list[int]]:
    """Per live row: its allowed columns with the reference (the stay entry) first, and the row's number of
    free logits."""
    cols, sizes = [], []
    for i in range(N_LIVE_STATES):
        allowed = np.flatnonzero(ALLOWED_TRANSITIONS[i])
        ordered = np.concatenate([[i], allowed[allowed != i]])
        cols.append(ordered)
        sizes.append(len(ordered) - 1)
    return cols, sizes


_COLS, _SIZES = _layout()
N_PARAMS = int(sum(_SIZES))


#: (row, column) of each parameter in the live rows' logits, and the live rows' forbidden entries
_FREE = (np.repeat(np.arange(N_LIVE_STATES), _SIZES), np.concatenate([c[1:] for c in _COLS]))
_FORBIDDEN = torch.from_numpy(~ALLOWED_TRANSITIONS[:N_LIVE_STATES])
_ABSORBING_ROWS = torch.eye(N_STATES, dtype=torch.float64)[N_LIVE_STATES:]


def _matrix(theta: torch.Tensor) -> torch.Tensor:
    """``(7, 7)`` float64 monthly matrix of the parameters ``theta`` ``(N_PARAMS,)``: each live row a
    softmax over its allowed entries (stay entry 0), the absorbing rows the identity."""
    logits = theta.new_zeros(N_LIVE_STATES, N_STATES).index_put(
        (torch.from_numpy(_FREE[0]), torch.from_numpy(_FREE[1])), theta)
    live = torch.softmax(logits.masked_fill(_FORBIDDEN, float("-inf")), dim=1)
    return torch.cat([live, _ABSORBING_ROWS.to(theta.dtype)])


def _theta_of(matrix: np.ndarray) -> np.ndarray:
    """Parameters of a monthly matrix (entries floored at 1e-8, so a zero becomes a very small logit)."""
    out = []
    for i in range(N_LIVE_STATES):
        p = np.maximum(matrix[i, _COLS[i]], 1e-8)
        out.append(np.log(p[1:] / p[0]))
    return np.concatenate(out)


def _period_matrix(counts: np.ndarray) -> np.ndarray:
    """``(7, 7)`` observed ``k``-month shares; a live row never observed stays, absorbing rows the identity."""
    counts = np.asarray(counts, dtype=np.float64)
    q = np.eye(N_STATES)
    n = counts[:N_LIVE_STATES].sum(1)
    q[:N_LIVE_STATES] = np.where(n[:, None] > 0, counts[:N_LIVE_STATES] / np.maximum(n, 1.0)[:, None],
                                 np.eye(N_STATES)[:N_LIVE_STATES])
    return q


def data_theta(counts: np.ndarray) -> np.ndarray:
    """A start: each live row's observed ``k``-month shares on its allowed moves, plus 0.001 per entry."""
    q = _period_matrix(counts)
    m = np.where(ALLOWED_TRANSITIONS, q + 1e-3, 0.0)
    return _theta_of(m / m.sum(1, keepdims=True))


def root_theta(counts: np.ndarray, months: int) -> np.ndarray:
    """The second start (module docstring): the real part of the principal
    ``months``-th root of the observed ``k``-month shares, on the allowed support, floored at 1e-4 and
    renormalised. Often exact for a book that mostly stays put; a poor root only costs a start."""
    q = _period_matrix(counts)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = np.real(fractional_matrix_power(q, 1.0 / months)) if months > 1 else q
    if not np.isfinite(r).all():
        return data_theta(counts)
    m = np.where(ALLOWED_TRANSITIONS, np.maximum(r, 1e-4), 0.0)
    return _theta_of(m / m.sum(1, keepdims=True))


def _np_matrix(theta: np.ndarray) -> np.ndarray:
    """:func:`_matrix` in numpy (the optimiser's fast path; a test holds the two equal)."""
    logits = np.zeros((N_LIVE_STATES, N_STATES))
    logits[_FREE] = theta
    logits[_FORBIDDEN.numpy()] = -np.inf
    e = np.exp(logits - logits.max(1, keepdims=True))
    return np.vstack([e / e.sum(1, keepdims=True), _ABSORBING_ROWS.numpy()])


def gap_stack(counts: np.ndarray, months: int) -> np.ndarray:
    """``(K, 7, 7)`` float64 moves by gap (``[k - 1]``: rows ``k`` months apart) from ``counts``: a ``(7, 7)``
    array is the moves ``months`` apart; a ``(K, 7, 7)`` array is returned as float64."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 3:
        return counts
    out = np.zeros((months, N_STATES, N_STATES))
    out[months - 1] = counts
    return out


def _padded(counts: np.ndarray, entries: np.ndarray | None, months: int,
            mixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moves, first entries and on-grid absorptions as ``(K, 7, 7)`` stacks of one depth ``K >= months``."""
    empty = np.zeros((0, N_STATES, N_STATES))
    n = gap_stack(counts, months)
    e = empty if entries is None else gap_stack(entries, months)
    m = empty if mixed is None else gap_stack(mixed, months)
    depth = max(n.shape[0], e.shape[0], m.shape[0], months)
    def pad(a: np.ndarray) -> np.ndarray:  # the optimiser's stacks are already padded: returned, not copied
        return a if a.shape[0] == depth else np.concatenate([a, np.zeros((depth - a.shape[0], N_STATES, N_STATES))])

    return pad(n), pad(e), pad(m)


def _shares(dated_share: np.ndarray | None) -> np.ndarray:
    """``(7,)`` share of dated absorptions by to-state (0 on live states and where not given)."""
    out = np.zeros(N_STATES)
    if dated_share is not None:
        out[N_LIVE_STATES:] = np.asarray(dated_share, dtype=np.float64)[N_LIVE_STATES:]
    return out


def penalised_nll(theta: np.ndarray, counts: np.ndarray, censored: np.ndarray, months: int, theta0: np.ndarray,
                  lam: float, entries: np.ndarray | None = None, mixed: np.ndarray | None = None,
                  dated_share: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The penalised negative log-likelihood (module docstring) and its gradient in ``theta``.

    ``counts`` are the moves ``months`` apart ``(7, 7)`` or by gap ``(K, 7, 7)`` (scored by ``P^k``);
    ``entries`` ``(K, 7, 7)`` absorptions first seen ``k`` months on (scored by the first-entry probability
    ``f_k = sum_l (P^(k-1))_il P_la`` over live ``l``); ``mixed`` ``(K, 7, 7)`` absorptions on the reporting
    grid, dated with probability ``dated_share[a]`` ``(7,)``: scored by ``pi f_k + (1 - pi) (P^k)_ia``.
    Reverse mode through the powers ``Q_m = Q_(m-1) P``: ``dQ_(m-1) += dQ_m P'`` and
    ``dP += Q_(m-1)' dQ_m``, then through each live row's softmax. 7 x 7 products of a fixed shape: the
    same bits for any book."""
    n, e, mix = _padded(counts, entries, months, mixed)
    pi = _shares(dated_share)[None, :]
    depth = n.shape[0]
    p = _np_matrix(theta)
    powers = [np.eye(N_STATES)]
    for _ in range(depth):
        powers.append(powers[-1] @ p)
    bar = np.zeros((depth + 1, N_STATES, N_STATES))  # d ll / d P^m
    dp = np.zeros((N_STATES, N_STATES))
    ll = 0.0
    for k in range(1, depth + 1):
        q, nk = powers[k][:N_LIVE_STATES], n[k - 1, :N_LIVE_STATES]
        seen = nk > 0
        ll += float((nk[seen] * np.log(np.maximum(q[seen], 1e-300))).sum())
        bar[k, :N_LIVE_STATES] = np.where(seen, nk / np.maximum(q, 1e-300), 0.0)
        ek, mk = e[k - 1, :N_LIVE_STATES], mix[k - 1, :N_LIVE_STATES]
        if ek.any() or mk.any():  # first entries: f = A[:, live] P[live] with A = P^(k-1)
            f = powers[k - 1][:N_LIVE_STATES, :N_LIVE_STATES] @ p[:N_LIVE_STATES]
            hit = ek > 0
            ll += float((ek[hit] * np.log(np.maximum(f[hit], 1e-300))).sum())
            h = np.where(hit, ek / np.maximum(f, 1e-300), 0.0)
            both = mk > 0
            m = pi * f + (1.0 - pi) * q
            ll += float((mk[both] * np.log(np.maximum(m[both], 1e-300))).sum())
            hm = np.where(both, mk / np.maximum(m, 1e-300), 0.0)
            h = h + pi * hm
            bar[k, :N_LIVE_STATES] += (1.0 - pi) * hm
            dp[:N_LIVE_STATES] += powers[k - 1][:N_LIVE_STATES, :N_LIVE_STATES].T @ h
            bar[k - 1, :N_LIVE_STATES, :N_LIVE_STATES] += h @ p[:N_LIVE_STATES].T
    survive = 1.0 - np.minimum(powers[months][:N_LIVE_STATES, _D], 1.0 - 1e-15)
    ll += float((censored[:N_LIVE_STATES] * np.log(survive)).sum())
    bar[months, :N_LIVE_STATES, _D] -= censored[:N_LIVE_STATES] / survive
    for m in range(depth, 0, -1):
        dp += powers[m - 1].T @ bar[m]
        bar[m - 1] += bar[m] @ p.T
    live = p[:N_LIVE_STATES]
    dlogits = live * (dp[:N_LIVE_STATES] - (live * dp[:N_LIVE_STATES]).sum(1, keepdims=True))
    diff = theta - theta0
    return -ll + 0.5 * lam * float(diff @ diff), -dlogits[_FREE] + lam * diff


def _torch_nll(counts: np.ndarray, censored: np.ndarray, months: int, theta0: np.ndarray, lam: float,
               entries: np.ndarray | None = None, mixed: np.ndarray | None = None,
               dated_share: np.ndarray | None = None):
    """The same objective in torch, for the Hessian of the standard errors: ``(nll, penalised)``."""
    n, e, mix = (torch.from_numpy(a[:, :N_LIVE_STATES]) for a in _padded(counts, entries, months, mixed))
    pi = torch.from_numpy(_shares(dated_share))[None, :]
    cens = torch.from_numpy(censored[:N_LIVE_STATES])
    t0 = torch.from_numpy(theta0)

    def nll(theta: torch.Tensor) -> torch.Tensor:
        p = _matrix(theta)
        power, ll = torch.eye(N_STATES, dtype=p.dtype), p.new_zeros(())
        for k in range(1, n.shape[0] + 1):
            before, power = power, power @ p
            seen, hit, both = n[k - 1] > 0, e[k - 1] > 0, mix[k - 1] > 0
            ll = ll + (n[k - 1][seen] * torch.log(power[:N_LIVE_STATES][seen].clamp_min(1e-300))).sum()
            if hit.any() or both.any():
                f = before[:N_LIVE_STATES, :N_LIVE_STATES] @ p[:N_LIVE_STATES]
                ll = ll + (e[k - 1][hit] * torch.log(f[hit].clamp_min(1e-300))).sum()
                m = pi * f + (1.0 - pi) * power[:N_LIVE_STATES]
                ll = ll + (mix[k - 1][both] * torch.log(m[both].clamp_min(1e-300))).sum()
            if k == months:
                ll = ll + (cens * torch.log1p(-power[:N_LIVE_STATES, _D].clamp(max=1 - 1e-15))).sum()
        return -ll

    def penalised(theta: torch.Tensor) -> torch.Tensor:
        return nll(theta) + 0.5 * lam * ((theta - t0) ** 2).sum()

    return nll, penalised


@serial_torch()  # thousands of 7 x 7 products: threads only spin (creditsim.threads)
def embed_monthly_chain(counts: np.ndarray, months: int, censored: np.ndarray | None = None,
                        theta0: np.ndarray | None = None, lam: float | None = None,
                        entries: np.ndarray | None = None, mixed: np.ndarray | None = None,
                        dated_share: np.ndarray | None = None) -> EmbeddedChain:
    """Fit the monthly chain whose ``months``-step matrix explains ``counts`` (module docstring).

    Args:
        counts: ``(7, 7)`` moves observed ``months`` apart, from-state x to-state, or ``(K, 7, 7)`` moves
            by gap (``[k - 1]``: rows ``k`` months apart, scored by ``P^k``; a quarterly panel's off-cycle
            rows). Moves out of absorbing states are not read.
        months: months per observed period (3 for a quarterly panel; 1 gives the row MLE up to the pull);
            the length of a censored period.
        censored: ``(7,)`` periods ending default-free with an unknown state, per from-state.
        theta0: where the pull goes and the first start, ``(N_PARAMS,)`` (default :func:`data_theta`; the
            other start is always :func:`root_theta`).
        lam: strength of the pull (default 0.1 towards the data's own start, 1.0 towards a given
            ``theta0``: module docstring).
        entries: ``(K, 7, 7)`` absorptions (to DEFAULT, PREPAID, MATURED) *first* seen ``k`` months after
            the from-row, for panels that report an absorption in the month it happens: scored by the
            probability of entering the absorbing state in month ``k`` exactly (module docstring).
        mixed: ``(K, 7, 7)`` absorptions seen ``k`` months on at a report month, where the file dates a
            share ``dated_share[a]`` ``(7,)`` of its absorptions into ``a`` (and carries the rest to the
            report month): scored by the mixture of the two readings.

    Returns:
        The :class:`EmbeddedChain`.
    """
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise ConfigError(f"months must be a positive integer, got {months!r}")
    months = int(months)
    n, e, mix = _padded(counts, entries, months, mixed)
    _check_reachable(n, e + mix)
    cens = np.zeros(N_STATES) if censored is None else np.asarray(censored, dtype=np.float64)
    if lam is None:
        lam = 0.1 if theta0 is None else 1.0
    period = n[months - 1] + e[:months].sum(0) + mix[:months].sum(0)  # each live row a period on (the starts)
    root = root_theta(period, months)
    theta0 = data_theta(period) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    n_obs = float(n[:, :N_LIVE_STATES].sum() + e[:, :N_LIVE_STATES].sum() + mix[:, :N_LIVE_STATES].sum()
                  + cens[:N_LIVE_STATES].sum())
    scale = 1.0 / max(n_obs, 1.0)  # per observed period, so the tolerances mean the same for any book size

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = penalised_nll(x, n, cens, months, theta0, float(lam), e, mix, dated_share)
        return f * scale, g * scale

    # the likelihood of a matrix power is not concave: two starts, the better optimum kept (ties: the first)
    fits = [minimize(objective, x0.copy(), jac=True, method="L-BFGS-B",
                     options={"maxiter": 20_000, "gtol": 1e-11, "ftol": 1e-16}) for x0 in (theta0, root)]
    res = min(fits, key=lambda r: float(r.fun))
    nll, penalised = _torch_nll(n, cens, months, theta0, float(lam), e, mix, dated_share)
    theta = torch.from_numpy(res.x)
    return EmbeddedChain(matrix=_np_matrix(res.x), standard_errors=_delta_method(penalised, theta),
                         theta=res.x.copy(), nll=float(nll(theta)) * scale,
                         gradient=float(np.abs(objective(res.x)[1]).max()))


def _check_reachable(n: np.ndarray, e: np.ndarray) -> None:
    """ConfigError naming the first move (by gap) that no path of monthly moves reaches."""
    for k in range(1, n.shape[0] + 1):
        seen = (n[k - 1, :N_LIVE_STATES] > 0) | (e[k - 1, :N_LIVE_STATES] > 0)
        impossible = seen & ~reachable_states(k)[:N_LIVE_STATES]
        if impossible.any():
            i, j = np.argwhere(impossible)[0]
            moves = int(n[k - 1, i, j] + e[k - 1, i, j])
            raise ConfigError(f"counts: {moves} move(s) {LoanState(int(i)).name} -> {LoanState(int(j)).name} in "
                              f"{k} month(s), which the monthly moves cannot reach")


def _delta_method(penalised, theta: torch.Tensor) -> np.ndarray:
    """``(7, 7)`` delta-method standard errors of the monthly matrix at ``theta`` from the penalised
    objective's Hessian (0 on absorbing rows and forbidden entries)."""
    hess = torch.autograd.functional.hessian(penalised, theta).numpy()
    cov = np.linalg.pinv((hess + hess.T) / 2)
    jac = torch.autograd.functional.jacobian(lambda t: _matrix(t).reshape(-1), theta).numpy()
    var = np.einsum("ap,pq,aq->a", jac, cov, jac)
    se = np.sqrt(np.maximum(var, 0.0)).reshape(N_STATES, N_STATES)
    for a in ABSORBING_STATES:
        se[a] = 0.0
    se[~ALLOWED_TRANSITIONS] = 0.0
    return se
