"""Length-bucketed batches for the harness trajectory model (issue 14, training time): the batch order
is a permutation drawn from the seed, equal lengths give the plain shuffled batches, and cutting a batch
after its longest sequence leaves the loss unchanged (the cut positions are padding)."""

from __future__ import annotations

import numpy as np
import torch

from creditsim.harness import build_moves, split_moves
from creditsim.nn.trainer import batch_order


def test_equal_lengths_give_the_plain_shuffled_batches() -> None:
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    plain = torch.randperm(1000, generator=g1)
    got = batch_order(1000, 64, g2, torch.full((1000,), 6))
    assert torch.equal(torch.cat(got), plain) and [len(b) for b in got] == [64] * 15 + [40]


def test_bucketed_batches_cover_every_row_once_with_similar_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = torch.as_tensor(rng.integers(1, 25, 5000))
    batches = batch_order(5000, 256, torch.Generator().manual_seed(1), lengths)
    assert torch.equal(torch.sort(torch.cat(batches)).values, torch.arange(5000))
    spread = [int(lengths[b].max() - lengths[b].min()) for b in batches]
    assert max(spread) <= 2  # 24 lengths over 20 batches: a batch spans at most two or three
    # the padded work of the batches against one batch of everything
    work = sum(len(b) * int(lengths[b].max()) for b in batches)
    assert work < 0.6 * 5000 * 24
    again = batch_order(5000, 256, torch.Generator().manual_seed(1), lengths)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(batches[0], batch_order(5000, 256, torch.Generator().manual_seed(2), lengths)[0])


def test_cutting_the_padding_leaves_the_trajectory_loss_unchanged() -> None:
    import creditsim as cs
    from creditsim.harness.trajectory import TrajectoryContestant, TrajectorySettings, _sequence_nll

    loans, panel = cs.LoanTapeGenerator(200, 20, random_seed=4).generate()
    moves = build_moves(panel, loans, ["current_balance"])
    train, _ = split_moves(moves, "account", 0.3, seed=0)
    model = TrajectoryContestant(loans, seed=0, settings=TrajectorySettings(epochs=1, window=12)).fit(train)
    tensors = model._sequences(train)[0]
    w = tensors[5] + tensors[6]
    short = (w > 0).sum(1) < 6  # sequences that end early
    assert short.any() and (~short).any()
    batch = [t[short] for t in tensors]
    model.model_.eval()
    with torch.no_grad():
        cut = _sequence_nll(model.model_, batch, 0)["loss"]  # computed on the short sequences' months only
        # beside one full-length sequence the same short sequences run over all 12 months; the loss is
        # a mean per move, so the mixed batch's loss is the move-weighted mean of the two parts
        full_batch = [torch.cat([t[short], t[~short][:1]]) for t in tensors]
        both = _sequence_nll(model.model_, full_batch, 0)["loss"]
        alone = _sequence_nll(model.model_, [t[~short][:1] for t in tensors], 0)["loss"]
    n_short, n_full = float(w[short].gt(0).sum()), float(w[~short][:1].gt(0).sum())
    np.testing.assert_allclose(float(both), (float(cut) * n_short + float(alone) * n_full) / (n_short + n_full), rtol=1e-5)
