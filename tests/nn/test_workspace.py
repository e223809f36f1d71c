"""The key/value buffer workspace (creditsim.nn.workspace): reuse within, release on exit, per thread, and runs
on reused buffers give the bits of runs on fresh ones."""

from __future__ import annotations

import threading

import torch

from creditsim.loans.trajectory import LoanTrajectoryModel
from creditsim.nn import workspace
from creditsim.nn.workspace import kv_storage, kv_workspace
from creditsim.states import ALLOWED_TRANSITIONS


def test_storage_is_kept_within_the_outermost_workspace_and_released_after():
    assert kv_storage(0, (8, 5, 4, 8)) is None  # outside: the caller allocates
    with kv_workspace():
        k, v = kv_storage(0, (8, 5, 4, 8))
        assert k.shape == (8, 5, 4, 8) and k.is_contiguous() and k.data_ptr() != v.data_ptr()
        with kv_workspace():  # nested: the same store
            k2, _ = kv_storage(0, (6, 5, 4, 8))  # fewer rows: the first rows of the same storage
            assert k2.data_ptr() == k.data_ptr() and k2.shape == (6, 5, 4, 8) and k2.is_contiguous()
        assert workspace.held_bytes() == 2 * 8 * 5 * 32 * 4  # the inner exit released nothing
        k3, _ = kv_storage(0, (9, 5, 4, 8))  # more rows: a new storage replaces the old
        assert k3.shape[0] == 9 and k3.data_ptr() != k.data_ptr()
        assert kv_storage(1, (9, 5, 4, 8))[0].data_ptr() != k3.data_ptr()  # another slot, its own
        assert kv_storage(0, (9, 6, 4, 8))[0].shape == (9, 6, 4, 8)  # another month count: new
    assert workspace.held_bytes() == 0 and kv_storage(0, (8, 5, 4, 8)) is None


def test_each_thread_has_its_own_workspace():
    seen = {}

    def other():
        seen["outside"] = kv_storage(0, (4, 3, 2, 8))  # this thread opened none
        with kv_workspace():
            seen["ptr"] = kv_storage(0, (4, 3, 2, 8))[0].data_ptr()

    with kv_workspace():
        mine = kv_storage(0, (4, 3, 2, 8))[0].data_ptr()
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["outside"] is None and seen["ptr"] != mine


def test_generate_on_reused_buffers_gives_the_fresh_buffers_bits(monkeypatch):
    """A run on buffers an earlier run (other loans, other seed, more paths) filled with its own keys and
    values reads none of them: its paths are the bits of the same run on fresh buffers."""
    from creditsim.loans import trajectory

    model = LoanTrajectoryModel.from_pretrained()
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(300, 24, generator=g) * 0.5
    feats[:, 0] = 0.5  # a plausible remaining term (standardised) for every loan
    allowed = torch.as_tensor(ALLOWED_TRANSITIONS, dtype=torch.float32)
    weights = torch.rand(300, 18, 7, 7, generator=g) * allowed
    weights[..., 0, 0] += 8.0  # mostly performing loans, so paths live through the months
    cohort = weights / weights.sum(-1, keepdim=True)
    with monkeypatch.context() as m:
        m.setattr(trajectory, "kv_storage", lambda *args: None)  # every chunk's buffers freshly allocated
        fresh = model.generate(feats[:200], cohort[:200], None, n_samples=2, seed=9)
    with kv_workspace():
        model.generate(feats, cohort, None, n_samples=3, seed=1)  # fills the workspace's buffers first
        assert workspace.held_bytes() > 0
        reused = model.generate(feats[:200], cohort[:200], None, n_samples=2, seed=9)
    assert (fresh["states"][..., -1] <= 3).any()  # some paths lived to the end
    for k, v in fresh.items():
        assert torch.equal(v.nan_to_num(-7.0), reused[k].nan_to_num(-7.0)), k
