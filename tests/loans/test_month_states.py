"""The fused next-state draw (creditsim.loans.month_states) against the trajectory model's eager draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.loans.month_states import next_states
from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES, LoanState
from creditsim.transitions.sampler import ADVERSE_MOVES, cumulative_thresholds

S = LoanState


def _eager(model, corr, log_rows, prev, rem, t, shift, unif):
    """The eager path of LoanTrajectoryModel._sample_states, from the correction on."""
    logits = model._apply_rules(log_rows + corr, prev, rem, torch.full_like(prev, t))
    logits = logits + shift[torch.arange(prev.shape[0]), prev]
    thr = cumulative_thresholds(torch.softmax(logits.double(), dim=-1).unsqueeze(1))[:, 0]
    return (unif.view(-1, 1) >= thr).sum(-1), thr


def _case(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    corr = torch.randn(n, N_STATES, generator=g) * 2
    probs = torch.rand(n, N_STATES, generator=g) ** 3 + 1e-9
    log_rows = torch.log(probs / probs.sum(1, keepdim=True)).float()
    prev = torch.randint(0, N_STATES, (n,), generator=g)
    rem = torch.randint(1, 40, (n,), generator=g)
    frail = torch.randn(n, 1, 1, generator=g)
    shift = (0.7 * frail - 0.245) * torch.from_numpy(ADVERSE_MOVES.copy()).float()
    unif = torch.rand(n, generator=g)
    return corr, log_rows, prev, rem, shift, unif


@pytest.mark.parametrize("t", [0, 5, 17, 28])
def test_fused_draw_takes_the_eager_draws_states(t):
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=8, n_heads=2, n_layers=1, diffusion_steps=4,
                                                 diffusion_hidden=8))
    corr, log_rows, prev, rem, shift, unif = _case(20_000, seed=t)
    fused = next_states(corr, log_rows, prev, rem, t, shift, unif)
    eager, thr = _eager(model, corr, log_rows, prev, rem, t, shift, unif)
    assert fused.dtype == torch.int64 and fused.shape == prev.shape
    # the probabilities agree to rounding: only a uniform within rounding of a threshold may fall otherwise
    near = ((unif.view(-1, 1) - thr).abs() < 1e-5).any(1)
    assert int(near.sum()) < 20
    assert torch.equal(fused[~near], eager[~near])
    # every kind of move happens in the case, so the comparison is not vacuous
    assert set(fused.tolist()) == set(range(N_STATES))
    live = prev <= S.DPD90
    assert torch.equal(fused[~live], prev[~live])
    assert ALLOWED_TRANSITIONS[prev.numpy(), fused.numpy()].all()


def test_maturity_relabels_the_payoff_and_the_last_instalment():
    """Before the maturity month (t < rem - 1) a payoff is a prepayment and MATURED is never drawn; from it
    on CURRENT is never drawn and its weight goes to MATURED."""
    n = 4000
    g = torch.Generator().manual_seed(3)
    corr = torch.zeros(n, N_STATES)
    row = torch.tensor([0.6, 0.1, 0.0, 0.0, 0.05, 0.1, 0.15]).clamp(min=1e-12)
    log_rows = torch.log(row).expand(n, N_STATES).contiguous()
    prev = torch.zeros(n, dtype=torch.int64)
    shift = torch.zeros(n, N_STATES, N_STATES)
    unif = torch.rand(n, generator=g)
    before = next_states(corr, log_rows, prev, torch.full((n,), 10), 3, shift, unif)
    at = next_states(corr, log_rows, prev, torch.full((n,), 4), 3, shift, unif)
    assert not (before == S.MATURED).any() and (before == S.CURRENT).float().mean() > 0.5
    assert not (at == S.CURRENT).any() and (at == S.MATURED).float().mean() > 0.65
    # the payoff's probability moved, not lost: prepaid before = prepaid + matured weights
    assert abs(float((before == S.PREPAID).float().mean()) - 0.25) < 0.03


def test_a_paths_draw_reads_its_own_row_only():
    corr, log_rows, prev, rem, shift, unif = _case(500, seed=2)
    whole = next_states(corr, log_rows, prev, rem, 7, shift, unif)
    idx = torch.tensor([3, 0, 499, 250, 251])
    part = next_states(corr[idx], log_rows[idx], prev[idx], rem[idx], 7, shift[idx], unif[idx])
    assert torch.equal(part, whole[idx])


def test_bad_shapes_are_refused():
    corr, log_rows, prev, rem, shift, unif = _case(10, seed=1)
    with pytest.raises(ValueError, match="next_states"):
        next_states(corr[:, :6], log_rows, prev, rem, 0, shift, unif)
    with pytest.raises(ValueError, match="next_states"):
        next_states(corr, log_rows, prev, rem, 0, shift[:, 0], unif)
    with pytest.raises(ValueError, match="1-D integer"):
        next_states(corr, log_rows, prev.float(), rem, 0, shift, unif)
    with pytest.raises(ValueError, match="1-D integer"):
        next_states(corr, log_rows, prev.view(2, 5), rem, 0, shift, unif)
    assert np.array_equal(next_states(corr, log_rows, prev, rem, 0, shift, unif).numpy() <= N_STATES - 1,
                          np.ones(10, dtype=bool))


def test_non_finite_probabilities_are_refused_not_drawn_as_current():
    """A NaN correction (or a row with no finite logit) on a live path is a NumericalError naming the month,
    the count and the states; before, its comparisons with the uniform all failed and the path went to
    CURRENT. An absorbed path is not computed, so a NaN on it changes nothing."""
    from creditsim.errors import NumericalError

    corr, log_rows, prev, rem, shift, unif = _case(10, seed=2)
    prev[:] = S.CURRENT
    prev[7] = S.PREPAID
    bad = corr.clone()
    bad[7] = float("nan")  # absorbed: skipped
    assert torch.equal(next_states(bad, log_rows, prev, rem, 4, shift, unif),
                       next_states(corr, log_rows, prev, rem, 4, shift, unif))
    bad[3, 1] = float("nan")  # DPD30: allowed from CURRENT (a NaN on a masked move is masked away)
    with pytest.raises(NumericalError, match=r"month 4: .* 1 of 9 live paths \(from CURRENT\)"):
        next_states(bad, log_rows, prev, rem, 4, shift, unif)
    inf = corr.clone()
    inf[5, 0] = float("inf")
    with pytest.raises(NumericalError, match="1 of 9 live"):
        next_states(inf, log_rows, prev, rem, 4, shift, unif)
    none = log_rows.clone()
    none[1] = float("-inf")  # no finite logit left
    with pytest.raises(NumericalError, match="1 of 9 live"):
        next_states(corr, none, prev, rem, 4, shift, unif)


@pytest.mark.parametrize("poison, message", [
    ("correction.bias", "month 0"),  # the next-state head: CURRENT (index 0), a move every live state may make
    ("diffusion.out.bias", r"month \d+: the diffusion head's values of (\d+) of \1 paths are NaN"),  # values
])
def test_generate_refuses_a_checkpoint_that_gives_nan(poison, message):
    """End to end: a model with one NaN weight in its next-state correction or in its value sampler's output
    layer raises, instead of drawing CURRENT or writing NaN into the ledger's cash -- the compiled and the
    eager path with the same message (the same month, the same counts of live paths)."""
    from creditsim.errors import NumericalError

    model = LoanTrajectoryModel(TrajectoryConfig(d_model=8, n_heads=2, n_layers=1, diffusion_steps=4,
                                                 diffusion_hidden=8, max_months=12)).eval()
    with torch.no_grad():
        model.get_parameter(poison)[0] = float("nan")
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(6, model.config.n_loan_features, generator=g)
    cohort = torch.softmax(torch.randn(6, 12, N_STATES, N_STATES, generator=g), -1) * \
        torch.from_numpy(ALLOWED_TRANSITIONS.astype(np.float32))
    cohort = cohort / cohort.sum(-1, keepdim=True)
    messages = []
    for fused in (True, False):
        model.fused_kernels = fused
        with pytest.raises(NumericalError, match=message) as err:
            model.generate(feats, cohort, None, seed=1)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
