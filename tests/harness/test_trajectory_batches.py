"""The harness trajectory loss runs a batch in groups of similar sequence length (issue 14, training
time): the loss and its gradient are the whole padded batch's, to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import creditsim.harness.trajectory as traj
from creditsim.harness import build_moves, split_moves


@pytest.fixture(scope="module")
def fitted():
    import creditsim as cs

    loans, panel = cs.LoanTapeGenerator(200, 20, random_seed=4).generate()
    moves = build_moves(panel, loans, ["current_balance"])
    train, _ = split_moves(moves, "account", 0.3, seed=0)
    model = traj.TrajectoryContestant(loans, seed=0, settings=traj.TrajectorySettings(epochs=1, window=12)).fit(train)
    return model, model._sequences(train)[0]


def _loss_and_grad(model, batch):
    model.model_.zero_grad(set_to_none=True)
    loss = traj._sequence_nll(model.model_, batch, 0)["loss"]
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.model_.parameters() if p.grad is not None])
    return float(loss), grads


def test_length_groups_give_the_whole_batch_loss_and_gradient(fitted, monkeypatch) -> None:
    model, tensors = fitted
    w = tensors[5] + tensors[6]
    lengths = (w > 0).sum(1)
    assert lengths.min() < 6 and lengths.max() == w.shape[1]  # short and full-length sequences in the batch
    model.model_.eval()  # no dropout: the two computations see the same network
    grouped = _loss_and_grad(model, tensors)
    monkeypatch.setattr(traj, "LENGTH_GROUPS", 1)  # one group: the full padded batch
    whole = _loss_and_grad(model, tensors)
    np.testing.assert_allclose(grouped[0], whole[0], rtol=1e-5)
    np.testing.assert_allclose(grouped[1].numpy(), whole[1].numpy(), rtol=1e-3, atol=1e-6)


def test_a_tiny_batch_with_fewer_sequences_than_groups(fitted) -> None:
    model, tensors = fitted
    model.model_.eval()
    loss = traj._sequence_nll(model.model_, [t[:2] for t in tensors], 0)["loss"]
    assert torch.isfinite(loss) and float(loss) > 0
