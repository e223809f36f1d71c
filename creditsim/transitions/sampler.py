"""Monthly state sampling from transition matrices: validation, risk shifts, thresholds, RNG streams.

The sampler turns transition matrices into next states with one uniform draw per loan-month:
``next = #{j : u >= cum_j}`` where ``cum_j`` (j = 0..5) are the cumulative row probabilities of the
loan's current state. Forbidden moves stay impossible exactly: a zero-probability target has an empty
interval ``[cum_{j-1}, cum_j)``, and every threshold at or after the row's last positive entry is set
to 2.0 so float rounding of the cumulative sum can never select a trailing zero-probability state.

Random streams
--------------
Every uniform comes from ``numpy.random.Generator(SFC64(SeedSequence(seed, spawn_key=(scenario_id,
block))))`` where ``scenario_id`` is the GLOBAL scenario index and ``block`` the index of a fixed block
of :data:`RNG_LOAN_BLOCK` consecutive loans of the book. Each stream draws one float32 uniform per loan
of the block each month (month-major), so a loan's numbers
depend only on (seed, scenario id, loan position, month; and the book size for loans of the book's
last, partial block) -- never on how scenarios or loans are chunked, nor on the device (uniforms are
drawn on the CPU and moved to the device). SFC64 is used because it is
about four times faster than PCG64 for float32 draws; quality is ample for Monte Carlo.
"""

from __future__ import annotations

import numpy as np
import torch

from creditsim.errors import DataError, check_positive_int, format_labels
from creditsim.states import ALLOWED_TRANSITIONS, N_LIVE_STATES, LoanState, N_STATES
from creditsim.rng import sfc64_generator, sfc64_seed_states

__all__ = [
    "RNG_LOAN_BLOCK",
    "ADVERSE_MOVES",
    "validate_matrices",
    "apply_risk_shift",
    "shift_rows",
    "risk_bins",
    "cumulative_thresholds",
    "sample_next",
    "block_stream",
    "BlockStreams",
]

#: Loans per random stream. Fixed: changing it changes every simulated number.
RNG_LOAN_BLOCK: int = 1024

_ALLOWED_T = torch.from_numpy(ALLOWED_TRANSITIONS.copy())


def _adverse_moves() -> np.ndarray:
    """(7, 7) bool: moves a positive risk shift makes more likely (roll one bucket forward, default)."""
    adv = np.zeros((N_STATES, N_STATES), dtype=bool)
    for i in (LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60):
        adv[i, i + 1] = True
    for i in (LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90):
        adv[i, LoanState.DEFAULT] = True
    return adv


#: (7, 7) bool mask of the moves shifted by a loan-level risk shift (log-odds).
ADVERSE_MOVES: np.ndarray = _adverse_moves()
ADVERSE_MOVES.setflags(write=False)


_FORBIDDEN_WEIGHTS = (~ALLOWED_TRANSITIONS).astype(np.float64).reshape(-1)  # 1 on the forbidden moves


def _absorbed_thresholds() -> np.ndarray:
    """``(3, 6)`` float32 thresholds of the unit rows of DEFAULT, PREPAID and MATURED: 0 below the
    state itself, 2.0 from it on (above any uniform), as :func:`cumulative_thresholds` defines them."""
    out = np.zeros((N_STATES - N_LIVE_STATES, N_STATES - 1), dtype=np.float32)
    for row, state in enumerate(range(N_LIVE_STATES, N_STATES)):
        out[row, state:] = 2.0
    return out


ABSORBED_THRESHOLDS: np.ndarray = _absorbed_thresholds()
ABSORBED_THRESHOLDS.setflags(write=False)


def validate_matrices(matrices: object, name: str = "matrices", atol: float = 1e-5) -> np.ndarray:
    """Check transition matrices ``(..., 7, 7)`` and return them as a float64 numpy array.

    Rows must be finite, non-negative, sum to 1 within ``atol`` and put exactly 0 on forbidden moves
    (:data:`creditsim.states.ALLOWED_TRANSITIONS`; absorbing rows are therefore unit rows).

    Raises:
        DataError: naming the offending shape, or the (index..., from_state, to_state) positions.
    """
    if isinstance(matrices, torch.Tensor):
        arr = matrices.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            arr = np.asarray(matrices, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name}: expected a numeric array of shape (..., 7, 7), got {type(matrices).__name__}") from exc
    if arr.ndim < 2 or arr.shape[-2:] != (N_STATES, N_STATES):
        raise DataError(f"{name}: expected shape (..., {N_STATES}, {N_STATES}), got {arr.shape}")
    # three passes for the common case, two of them torch matrix-vector products (a numpy reduction over
    # a length-7 axis is slow; torch keeps to the caller's thread count): the row sums (a non-finite
    # entry makes its row's sum non-finite), the minimum, and the sum of the forbidden entries (zero iff
    # all are, once none is negative). Checks only: the positions of a failure come from the passes below
    flat = torch.from_numpy(np.ascontiguousarray(arr)).view(-1, N_STATES * N_STATES)
    if flat.numel():
        sums = flat.view(-1, N_STATES) @ torch.ones(N_STATES, dtype=torch.float64)
        if (bool(torch.isfinite(sums).all()) and float((sums - 1.0).abs().max()) <= atol and float(flat.amin()) >= 0
                and not bool((flat @ torch.from_numpy(_FORBIDDEN_WEIGHTS.copy())).any())):
            return arr
    axes = "(from, to)" if arr.ndim == 2 else "(index..., from, to)"  # how the positions below read
    if not np.isfinite(arr).all():
        pos = np.argwhere(~np.isfinite(arr))
        raise DataError(f"{name}: non-finite entries at {axes} "
                        f"{format_labels([tuple(int(v) for v in p) for p in pos])}")
    if (arr < 0).any():
        pos = np.argwhere(arr < 0)
        raise DataError(f"{name}: negative probabilities at {axes} "
                        f"{format_labels([tuple(int(v) for v in p) for p in pos])}")
    forbidden = arr * ~ALLOWED_TRANSITIONS
    if (forbidden != 0).any():
        pos = np.argwhere(forbidden != 0)
        raise DataError(
            f"{name}: forbidden moves must have probability exactly 0, found non-zero at {axes} "
            f"{format_labels([tuple(int(v) for v in p) for p in pos])}"
        )
    sums = arr.sum(-1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        pos = np.argwhere(bad)
        raise DataError(
            f"{name}: rows must sum to 1 (stochastic), rows at (index..., from_state) "
            f"{format_labels([tuple(int(v) for v in p) for p in pos])} sum to "
            f"{format_labels([round(float(v), 6) for v in sums[bad]])}"
        )
    return arr


def apply_risk_shift(matrices: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift the log-odds of adverse moves by ``shift`` and renormalise each row by a masked softmax.

    Args:
        matrices: ``(..., 7, 7)`` stochastic rows (float64 preferred).
        shift: ``(R,)`` log-odds shifts; positive = riskier (more roll-forward and default).

    Returns:
        ``(..., R, 7, 7)``: for each shift, ``softmax(log P + shift * ADVERSE)`` over the entries with
        ``P > 0``. Zero entries (forbidden or never observed) stay exactly 0 because their logit is
        ``-inf``; absorbing unit rows stay unit rows. A bin with shift exactly 0 returns ``P`` itself
        (bit for bit), so an unshifted book samples from the given matrices unchanged.
    """
    r = shift.shape[0]
    expanded = matrices.unsqueeze(-3).expand(*matrices.shape[:-2], r, N_STATES, N_STATES)
    return shift_rows(expanded, shift)


def shift_rows(matrices: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift the adverse-move log-odds of each matrix along the third-to-last axis by its own shift.

    Args:
        matrices: ``(..., G, 7, 7)`` stochastic rows; shift: ``(G,)`` log-odds, one per matrix.

    Returns:
        ``(..., G, 7, 7)`` masked-softmax rows (see :func:`apply_risk_shift`); exactly ``matrices``
        where the shift is 0.
    """
    if not bool(shift.any()):  # an unshifted book (the usual case): the matrices themselves, no pass
        return matrices
    adv = torch.from_numpy(ADVERSE_MOVES.copy()).to(device=matrices.device, dtype=matrices.dtype)
    # softmax(log p + delta) = p e^delta / sum_k p_k e^delta_k: the same masked softmax without logs
    # (zero-probability moves stay exactly 0, absorbing unit rows stay unit rows)
    factor = torch.exp(shift.to(matrices.dtype).view(-1, 1, 1) * adv)  # (G, 7, 7)
    weighted = matrices * factor
    shifted = weighted / weighted.sum(-1, keepdim=True)
    zero = (shift == 0).view(-1, 1, 1)
    return torch.where(zero, matrices, shifted)


def risk_bins(shift: np.ndarray, max_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Discretise loan-level risk shifts so matrices are shifted per bin, not per loan-scenario.

    Returns ``(bin_values (R,), loan_bin (L,) int64)``. If there are at most ``max_bins`` distinct
    values they are used exactly; otherwise loans are split into ``max_bins`` equal-count quantile bins
    and each bin uses the mean shift of its loans (the error is a within-bin spread of log-odds, small
    against the shifts themselves). Per-bin matrices cost O(R) per month instead of O(S x L).
    """
    max_bins = check_positive_int(max_bins, "max_risk_bins")
    shift = np.asarray(shift, dtype=np.float64)
    values, inverse = np.unique(shift, return_inverse=True)
    if len(values) <= max_bins:
        return values, inverse.astype(np.int64)
    order = np.argsort(shift, kind="stable")
    loan_bin = np.empty(len(shift), dtype=np.int64)
    loan_bin[order] = np.arange(len(shift)) * max_bins // len(shift)
    means = np.bincount(loan_bin, weights=shift, minlength=max_bins) / np.bincount(loan_bin, minlength=max_bins)
    return means, loan_bin


def cumulative_thresholds(matrices: torch.Tensor) -> torch.Tensor:
    """``(..., 7, 7)`` stochastic rows -> ``(..., 7, 6)`` float32 sampling thresholds.

    ``threshold[..., i, j] = sum_{k <= j} P[i, k]``, except that every threshold from the row's last
    positive entry onward is 2.0 (above any uniform in [0, 1)), so rounding in the cumulative sum can
    never reach a trailing zero-probability state. Computed in float64, stored in float32.
    """
    # the live rows (0..3) only: an absorbing row of a validated matrix is a unit row, whose thresholds
    # are the constants ABSORBED_THRESHOLDS (the same values the general rule gives it)
    p = matrices[..., :N_LIVE_STATES, :].to(torch.float64)
    cum = torch.cumsum(p, dim=-1)[..., : N_STATES - 1]
    positive = p > 0
    idx = torch.arange(N_STATES, device=p.device)
    last = torch.where(positive, idx, torch.zeros_like(idx)).amax(dim=-1, keepdim=True)  # (..., 4, 1)
    cum = torch.where(idx[: N_STATES - 1] >= last, torch.full_like(cum, 2.0), cum)
    absorbed = torch.from_numpy(ABSORBED_THRESHOLDS.copy()).to(cum.device).expand(*cum.shape[:-2], *ABSORBED_THRESHOLDS.shape)
    return torch.cat([cum.to(torch.float32), absorbed], dim=-2)


def sample_next(uniform: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Next states from uniforms ``(...)`` and the current rows' thresholds ``(..., 6)`` -> int64 ``(...)``."""
    return (uniform.unsqueeze(-1) >= rows).sum(-1)


def block_stream(seed: int, scenario_id: int, block: int) -> np.random.Generator:
    """The random generator of one (global scenario id, loan block): see the module docstring."""
    return sfc64_generator(seed, scenario_id, block)


class BlockStreams:
    """The random streams of a scenario chunk x a contiguous range of whole RNG loan blocks.

    :meth:`next_month` fills one month of float32 uniforms for every (scenario, block) stream. Numbers
    are generated month by month (the streams stay alive), which gives the same numbers as one
    ``(T, block)`` draw but needs memory for one month only. (The realised LGDs have streams of their
    own, drawn only where a loan defaults: :mod:`creditsim.loans.lgd_draws`.)

    Args:
        scenario_ids: ``(s,)`` global scenario ids.
        blocks: consecutive RNG block indices; their loans start at ``blocks[0] * RNG_LOAN_BLOCK``
            and the first ``n_loans`` of them are used.
    """

    def __init__(self, seed: int, scenario_ids: np.ndarray, blocks: range, n_loans: int):
        s, nb = len(scenario_ids), len(blocks)
        self.n_loans = n_loans
        self._s = s
        # loans per stream: full blocks, except the book's last block which holds the remainder
        self._widths = [min(RNG_LOAN_BLOCK, n_loans - j * RNG_LOAN_BLOCK) for j in range(nb)]
        # every stream's starting state at once (block_stream's, bit for bit): building a generator per
        # stream costs more than a month of its draws
        keys = np.stack(np.broadcast_arrays(np.asarray(scenario_ids, dtype=np.int64)[:, None],
                                            np.asarray(blocks, dtype=np.int64)[None, :]), axis=-1)
        self._words = sfc64_seed_states(seed, keys.reshape(-1, 2))  # (s * nb, 4), stream k = i * nb + j
        self._buffered = np.zeros((s * nb, 2), dtype=np.uint64)
        self._streams: list[np.random.Generator] | None = None  # built from the states on first next_month
        self._buffer = np.empty((s, n_loans), dtype=np.float32)
        self._nb = nb

    @property
    def widths(self) -> np.ndarray:
        """``(n_blocks,)`` int64 loans per RNG block of this range (the last may be short)."""
        return np.asarray(self._widths, dtype=np.int64)

    def sfc64_states(self) -> tuple[np.ndarray, np.ndarray]:
        """The streams' current SFC64 states, for a kernel that draws the uniforms itself.

        Returns ``(words (s, n_blocks, 4) uint64, buffered (s, n_blocks, 2) uint64)``, fresh arrays: the
        generator's ``a, b, c, counter`` and numpy's half-used 64-bit draw (``has_uint32``, ``uinteger``),
        which a float32 draw takes before it advances the state. A kernel that continues from these states
        and draws ``(next_uint32 >> 8) * 2**-24`` per loan and month reproduces :meth:`next_month` bit for
        bit (numpy's ``random(dtype=float32)`` on SFC64; a test checks it against numpy). The streams
        are not advanced, so only one of the two may be used from here on.
        """
        words, buffered = self._words.copy(), self._buffered.copy()
        if self._streams is not None:  # next_month has moved the generators on: read their states
            for k, rng in enumerate(self._streams):
                words[k], buffered[k] = _sfc64_state(rng.bit_generator)
        return words.reshape(self._s, self._nb, 4), buffered.reshape(self._s, self._nb, 2)

    def next_month(self) -> np.ndarray:
        """``(s, n_loans)`` float32 uniforms in [0, 1) of the next month (a reused buffer)."""
        if self._streams is None:
            self._streams = [_generator_at(w, h) for w, h in zip(self._words, self._buffered)]
        buf, nb, blk, widths = self._buffer, self._nb, RNG_LOAN_BLOCK, self._widths
        for k, rng in enumerate(self._streams):
            i, j = divmod(k, nb)
            rng.random(out=buf[i, j * blk : j * blk + widths[j]], dtype=np.float32)
        return buf


def _set_sfc64_state(bit_generator: np.random.SFC64, words: np.ndarray, buffered: np.ndarray) -> None:
    """Put ``bit_generator`` in the state ``words`` ``(4,)`` uint64 with the buffered half-draw ``(2,)``."""
    bit_generator.state = {"bit_generator": "SFC64", "state": {"state": words},
                           "has_uint32": int(buffered[0]), "uinteger": int(buffered[1])}


def _sfc64_state(bit_generator: np.random.SFC64) -> tuple[np.ndarray, tuple[int, int]]:
    """``(words (4,) uint64, (has_uint32, uinteger))`` of an SFC64 generator."""
    st = bit_generator.state
    return st["state"]["state"], (st["has_uint32"], st["uinteger"])


def _generator_at(words: np.ndarray, buffered: np.ndarray) -> np.random.Generator:
    """A new SFC64 generator in the given state (its construction seed is overwritten)."""
    bit_generator = np.random.SFC64(0)
    _set_sfc64_state(bit_generator, words, buffered)
    return np.random.Generator(bit_generator)


def check_states(states: np.ndarray, name: str) -> np.ndarray:
    """Integer states in 0..6 or a DataError naming the offending positions."""
    arr = np.asarray(states)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"{name}: expected integer loan states 0..6, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= N_STATES)
    if bad.any():
        pos = np.argwhere(bad)
        raise DataError(
            f"{name}: states must be in 0..{N_STATES - 1}, found {format_labels(arr[bad].tolist())} at "
            f"{format_labels([tuple(int(v) for v in p) if len(p) > 1 else int(p[0]) for p in pos])}"
        )
    return arr.astype(np.int64)
