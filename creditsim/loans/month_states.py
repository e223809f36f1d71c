"""The trajectory model's next-state draw for one month, fused into one pass per path (numba, CPU).

:meth:`LoanTrajectoryModel._sample_states <creditsim.loans.trajectory.LoanTrajectoryModel>` turns a
month's hidden states into next states: cohort log row + learned correction, the maturity relabelling
and the allowed-move mask (``_apply_rules``), the frailty shift on adverse moves, a float64 softmax,
the cumulative sampling thresholds (:func:`creditsim.transitions.sampler.cumulative_thresholds`) and
the comparison with the month's uniform. In torch eager that is about 25 passes over ``(N, 7)``
tensors (and the thresholds of three absorbing rows built and thrown away every month): on the
trajectory bench (2,000 loans x 60 months x 4 scenarios, one thread) 0.2 s of a 2.2 s run. Here
each path is one short loop, and an absorbed path (DEFAULT, PREPAID, MATURED) is not computed at all:
its one allowed move is to stay, which is what the full computation gives it.

The arithmetic is the eager path's, operation for operation, in the same precisions: float32 logits
and ``logaddexp`` (``max + log1p(exp(-|a - b|))``, as torch computes it), float64 softmax and cumulative
sums, float32 thresholds (2.0 from the last positive probability on), ``u >= threshold`` counted. The
transcendental functions are numba's (LLVM / libm) rather than torch's vectorised ones, so the
probabilities agree to rounding, not bit for bit, and a path whose uniform falls within rounding of a
threshold could take the other side (the model's ``fused_kernels = False`` runs the eager path; the tests
compare the two). Each path reads only its own row, so its draw does not depend on the batch, the chunk
or the thread.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from creditsim.errors import NumericalError
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES, LoanState

__all__ = ["next_states", "non_finite_draw"]

_CUR, _DPD90, _PRE, _MAT = int(LoanState.CURRENT), int(LoanState.DPD90), int(LoanState.PREPAID), int(LoanState.MATURED)
_ALLOWED = np.ascontiguousarray(ALLOWED_TRANSITIONS)


@njit(cache=True, inline="always")
def _logaddexp32(a, b):  # pragma: no cover - compiled
    """torch's float32 ``logaddexp``: ``max + log1p(exp(-|a - b|))``; equal infinities return themselves."""
    if np.isinf(a) and a == b:
        return a
    m = a if a > b else b
    return np.float32(m + np.log1p(np.exp(-np.abs(a - b))))


@njit(cache=True, nogil=True)
def _next_states(corr, log_rows, prev, rem, t, shift, allowed, unif, out):  # pragma: no cover - compiled
    n_states = corr.shape[1]
    logit = np.empty(n_states, dtype=np.float32)
    prob = np.empty(n_states, dtype=np.float64)
    neg_inf = np.float32(-np.inf)
    for i in range(corr.shape[0]):
        s = prev[i]
        if s > _DPD90:  # absorbed: staying is the only allowed move
            out[i] = s
            continue
        for j in range(n_states):
            logit[j] = log_rows[i, j] + corr[i, j]
        if t < rem[i] - 1:  # before the maturity month a payoff is a prepayment
            logit[_PRE] = _logaddexp32(logit[_PRE], logit[_MAT])
            logit[_MAT] = neg_inf
        else:  # from it on, paying the last instalment is maturity
            logit[_MAT] = _logaddexp32(logit[_MAT], logit[_CUR])
            logit[_CUR] = neg_inf
        top = -np.inf
        for j in range(n_states):
            if not allowed[s, j]:
                logit[j] = neg_inf
            logit[j] = logit[j] + shift[i, s, j]
            if logit[j] > top:
                top = logit[j]
        total = 0.0
        for j in range(n_states):
            prob[j] = np.exp(np.float64(logit[j]) - top)
            total += prob[j]
        if not (total > 0.0 and total < np.inf):  # a NaN or infinite logit, or no finite one: flagged, not drawn
            out[i] = -1
            continue
        last = 0
        for j in range(n_states):
            prob[j] = prob[j] / total
            if prob[j] > 0:
                last = j
        u = unif[i]
        cum = 0.0
        k = 0
        for j in range(n_states - 1):
            cum += prob[j]
            thr = np.float32(2.0) if j >= last else np.float32(cum)
            if u >= thr:
                k += 1
        out[i] = k


def next_states(corr: torch.Tensor, log_rows: torch.Tensor, prev: torch.Tensor, rem: torch.Tensor, t: int,
                shift: torch.Tensor, unif: torch.Tensor) -> torch.Tensor:
    """Next states of ``N`` paths for month ``t``.

    Args:
        corr: ``(N, 7)`` float32, the model's learned correction of the log cohort row.
        log_rows: ``(N, 7)`` float32, the log cohort rows of the previous states.
        prev: ``(N,)`` int64 previous states.
        rem: ``(N,)`` int64 remaining terms at the cut-off, months (the maturity month is ``rem - 1``).
        t: the month.
        shift: ``(N, 7, 7)`` float32 frailty shift of each path's moves (``-inf`` stays ``-inf``).
        unif: ``(N,)`` float32 uniforms in [0, 1).

    Returns:
        ``(N,)`` int64 next states.

    Raises:
        NumericalError: a path's probabilities are NaN or infinite (NaN in ``corr``, or no finite logit).
    """
    if prev.ndim != 1 or prev.dtype.is_floating_point or prev.dtype == torch.bool or rem.dtype.is_floating_point:
        raise ValueError(f"next_states: prev and rem must be 1-D integer tensors, got {prev.dtype} "
                         f"{tuple(prev.shape)} and {rem.dtype}")
    n = prev.shape[0]
    # one dtype per argument, so numba compiles the kernel once (a new dtype would cost ~0.4 s)
    arrays = [x.detach().to(device="cpu", dtype=dt).contiguous().numpy()
              for x, dt in ((corr, torch.float32), (log_rows, torch.float32), (prev, torch.int64), (rem, torch.int64),
                            (shift, torch.float32), (unif, torch.float32))]
    corr_a, rows_a, prev_a, rem_a, shift_a, unif_a = arrays
    if (corr_a.shape != (n, N_STATES) or rows_a.shape != (n, N_STATES) or rem_a.shape != (n,)
            or shift_a.shape != (n, N_STATES, N_STATES) or unif_a.shape != (n,)):
        raise ValueError(f"next_states: corr and log_rows ({n}, 7), rem and unif ({n},), shift ({n}, 7, 7) expected, "
                         f"got {corr_a.shape}, {rows_a.shape}, {rem_a.shape}, {unif_a.shape}, {shift_a.shape}")
    out = np.empty(n, dtype=np.int64)
    _next_states(corr_a, rows_a, prev_a, rem_a, int(t), shift_a, _ALLOWED, unif_a, out)
    bad = np.flatnonzero(out < 0)
    if bad.size:
        raise non_finite_draw(t, bad.size, int((prev_a <= _DPD90).sum()), prev_a[bad])
    return torch.from_numpy(out).to(prev.device)


def non_finite_draw(t: int, n_bad: int, n_live: int, states: np.ndarray) -> NumericalError:
    """The error for a month whose transition probabilities are NaN or infinite on ``n_bad`` of the ``n_live``
    paths not yet absorbed (``states`` their states before the draw): raised, never drawn as CURRENT, which is
    where a NaN probability's comparisons would otherwise land every such path."""
    names = sorted({LoanState(int(s)).name for s in states})
    return NumericalError(f"trajectory model, month {t}: the next-state probabilities of {n_bad} of {n_live} live "
                          f"paths (from {', '.join(names)}) are NaN or infinite; {NumericalError.CAUSE}")
