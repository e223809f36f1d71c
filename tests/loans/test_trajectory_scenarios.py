"""LoanTrajectoryModel.generate_scenarios: several scenarios in one batched month loop.

A scenario's paths must be what ``generate`` gives for that scenario alone (its matrices, macro path and
seed), bit for bit on the CPU, whatever the scenarios beside it, the loan chunking or the grouping the
pool engine picks (``scenario_groups``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.errors import ConfigError, DataError
from creditsim.loans.trajectory import (GROUP_PATHS, RNG_LOAN_BLOCK, LoanTrajectoryModel, TrajectoryConfig,
                                        scenario_groups)
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _scenarios(S: int, G: int, B: int, T: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features with remaining terms of 1..3 T months, ``(S, G, T, 7, 7)`` random cohort matrices that differ
    by scenario (sizeable default and prepayment rates), each loan's cohort, ``(S, T, 9)`` macro paths."""
    from creditsim.features import LOAN_FEATURES

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, size=(B, 24))
    i_term, (_, mu, sd) = next((i, f) for i, f in enumerate(LOAN_FEATURES) if f[0] == "remaining_term_years")
    x[:, i_term] = (rng.integers(1, 3 * T, B) / 12.0 - mu) / sd
    x[:, 19:23] = np.eye(4)[rng.integers(0, 4, B)]
    w = rng.gamma(0.5, size=(S, G, T, N_STATES, N_STATES)) * ALLOWED_TRANSITIONS
    w[..., np.arange(N_STATES), np.arange(N_STATES)] += 0.5
    w[..., 0, 0] += 6.0
    cohort = torch.tensor(w / w.sum(-1, keepdims=True), dtype=torch.float32)
    macro = torch.tensor(rng.normal(0.03, 0.02, size=(S, T, 9)), dtype=torch.float32)
    return torch.tensor(x, dtype=torch.float32), cohort, torch.as_tensor(rng.integers(0, G, B)), macro


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))


def _small_model() -> LoanTrajectoryModel:
    torch.manual_seed(0)
    return LoanTrajectoryModel(TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=6,
                                                diffusion_hidden=18, idio_scale=0.3)).eval()


@pytest.mark.parametrize("shipped", [True, False])
def test_each_scenario_is_generate_of_that_scenario_alone(shipped):
    """Bit for bit against one generate per scenario, with loan chunks cutting the book (chunk_size 256 of
    600 loans); the frailty (idio_scale > 0 in the small model) draws from the scenario's own stream too."""
    model = LoanTrajectoryModel.from_pretrained() if shipped else _small_model()
    feats, cohort, index, macro = _scenarios(3, 2, 600, 14, seed=4)
    seeds = [5, 912, 5]  # a repeated seed under another scenario: the same draws, other matrices
    both = model.generate_scenarios(feats, cohort, macro, seeds, cohort_index=index, chunk_size=256)
    for s in range(3):
        alone = model.generate(feats, cohort[s], macro[s], 1, seed=seeds[s], cohort_index=index)
        for k, v in alone.items():
            want = v if k == "opening_balance" else v[0]
            got = both[k] if k == "opening_balance" else both[k][s]
            assert _same(got, want), (s, k)
    assert not torch.equal(both["states"][0], both["states"][1])
    assert not torch.equal(both["losses"][0], both["losses"][2])  # seed 5 twice, matrices differ


def test_per_loan_matrices_and_no_macro():
    """The ``(S, B, T, 7, 7)`` form (no cohort_index) and ``macro_paths=None`` (the anchors)."""
    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort, index, _ = _scenarios(2, 3, 90, 8, seed=9)
    per_loan = cohort[:, index]  # (S, B, T, 7, 7)
    both = model.generate_scenarios(feats, per_loan, None, np.array([3, 4]))
    for s in range(2):
        alone = model.generate(feats, per_loan[s], None, 1, seed=[3, 4][s])
        assert _same(both["payments"][s], alone["payments"][0])
        assert torch.equal(both["states"][s], alone["states"][0])


def test_bad_inputs_are_named():
    model = _small_model()
    feats, cohort, index, macro = _scenarios(2, 2, 20, 5, seed=1)
    with pytest.raises(ConfigError, match="seeds: expected 2 non-negative integers"):
        model.generate_scenarios(feats, cohort, macro, [1], cohort_index=index)
    with pytest.raises(ConfigError, match="seeds"):
        model.generate_scenarios(feats, cohort, macro, [1, -2], cohort_index=index)
    with pytest.raises(DataError, match=r"macro_paths: expected \(2, T, 9\)"):
        model.generate_scenarios(feats, cohort, macro[:1], [1, 2], cohort_index=index)
    both = model.generate_scenarios(feats, cohort, macro, [torch.tensor(1), np.int64(2)], cohort_index=index)
    assert both["states"].shape == (2, 20, 5)  # 0-d integer tensors and numpy integers as seeds
    with pytest.raises(DataError, match=r"expected \(S, G, T, 7, 7\)"):
        model.generate_scenarios(feats, cohort[0], macro, [1, 2], cohort_index=index)
    with pytest.raises(ConfigError, match=r"got \[0, 1, 2, 3, 4, 5, \.\.\.\]"):  # a long list is not echoed whole
        model.generate_scenarios(feats, cohort, macro, list(range(10_000)), cohort_index=index)
    with pytest.raises(DataError, match=r"S >= 1 scenarios, got \(0, 2"):
        model.generate_scenarios(feats, cohort[:0], macro[:0], [], cohort_index=index)
    for short in (macro[:, :3], macro[:, :, :8]):
        with pytest.raises(DataError, match=r"macro_paths: expected \(2, T, 9\) \(one path per scenario"):
            model.generate_scenarios(feats, cohort, short, [1, 2], cohort_index=index)
    nan = macro.clone()
    nan[1, 2, 3] = float("nan")
    with pytest.raises(DataError, match=r"NaN or infinite values in scenarios \[1\]"):
        model.generate_scenarios(feats, cohort, nan, [1, 2], cohort_index=index)
    bad = cohort.clone()
    bad[1, 0, 2, 0, 0] = -0.1
    with pytest.raises(DataError, match=r"scenario 1: cohort_transitions: negative probability at \(cohort 0, month 2"):
        model.generate_scenarios(feats, bad, macro, [1, 2], cohort_index=index)


@pytest.mark.parametrize("n_scenarios,n_loans,threads,device", [
    (4, 2000, 1, "cpu"), (4, 2000, 2, "cpu"), (7, 300, 2, "cpu"), (1, 300, 1, "cpu"), (3, 9000, 1, "cpu"),
    (40, 2000, 1, "cuda"), (500, 100, 2, "cpu"),
])
def test_scenario_groups_cover_every_scenario_in_order_within_the_path_budget(n_scenarios, n_loans, threads,
                                                                              device, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    groups = scenario_groups(n_scenarios, n_loans, device)
    assert [s for scen, _ in groups for s in scen] == list(range(n_scenarios))
    budget = GROUP_PATHS[device]
    padded = -(-n_loans // RNG_LOAN_BLOCK) * RNG_LOAN_BLOCK
    for scen, chunk in groups:  # paths per month step: the group's scenarios x the loans of a chunk
        assert len(scen) * min(padded, -(-chunk // RNG_LOAN_BLOCK) * RNG_LOAN_BLOCK) <= budget
    if device == "cpu" and threads > 1 and n_scenarios > 1 and n_loans >= 200:
        assert len(groups) >= 2  # every thread gets a group
    if device == "cuda":
        assert len(groups[0][0]) == budget // padded  # one large batch, threads or not


def test_pool_cashflows_do_not_depend_on_the_grouping(monkeypatch):
    """LoanTrajectoryModel.pool_cashflows of four scenarios, grouped as scenario_groups picks (several per
    group here) and one scenario per group: the same pool, bit for bit."""
    import creditsim.loans.trajectory as trajectory

    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort, index, macro = _scenarios(4, 2, 300, 10, seed=2)
    grouped = model.pool_cashflows(feats, cohort, macro, cohort_index=index, seed=8)
    assert len(trajectory.scenario_groups(4, 300)[0][0]) > 1
    monkeypatch.setattr(trajectory, "scenario_groups", lambda S, L, *a: [(range(s, s + 1), 4096) for s in range(S)])
    alone = model.pool_cashflows(feats, cohort, macro, cohort_index=index, seed=8)
    assert np.array_equal(grouped["cashflows"], alone["cashflows"])
    assert np.array_equal(grouped["pending_recovery"], alone["pending_recovery"])
    assert grouped["cashflows"][..., 0].sum() > 0


def _wide_model() -> LoanTrajectoryModel:
    """A 128-wide model: its torch linears are the ones MKL's AVX2 kernels round by batch size (helper-104)."""
    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=128, n_heads=4, n_layers=1, diffusion_steps=6,
                                                 diffusion_hidden=18, idio_scale=0.3)).eval()
    with torch.no_grad():
        model.correction.weight.normal_(0, 0.3)  # an untrained head would draw the cohort rows whatever the logits
    return model


def test_a_wide_models_paths_do_not_depend_on_the_book_around_them():
    """A loan's paths are the same bits in a book of 49 or 97 loans as in the whole book, and in chunks of 256
    loans (run on MKL's AVX2 kernels too, by the subprocess test below; it fails there with 48-row padding)."""
    model = _wide_model()
    feats, cohort, index, macro = _scenarios(1, 3, 400, 12, seed=11)
    whole = model.generate(feats, cohort[0], macro[0], 1, seed=3, cohort_index=index)
    for L in (49, 97):
        part = model.generate(feats[:L], cohort[0], macro[0], 1, seed=3, cohort_index=index[:L])
        for k, v in part.items():
            if k != "opening_balance":
                assert torch.equal(v.nan_to_num(-7.0), whole[k][:, :L].nan_to_num(-7.0)), (L, k)
    chunked = model.generate(feats, cohort[0], macro[0], 1, seed=3, cohort_index=index, chunk_size=256)
    for k, v in chunked.items():
        assert torch.equal(v.nan_to_num(-7.0), whole[k].nan_to_num(-7.0)), k


def test_a_paths_head_logits_do_not_depend_on_the_book_around_them(monkeypatch):
    """The logits that set each month's draw (the head's correction, handed to next_states) are the same bits
    for a loan in a book of 49 loans, in the whole book and in chunks of 256. A one-ulp change rarely flips a
    state, so the paths alone would not show it (helper-105: the correction run on the cut live rows passed
    the test above but not this one)."""
    from creditsim.loans import trajectory

    model = _wide_model()
    feats, cohort, index, macro = _scenarios(1, 3, 400, 12, seed=11)
    where: dict[str, object] = {}
    seen: dict[tuple[int, int], torch.Tensor] = {}
    chunk, sample, draw = (LoanTrajectoryModel._generate_chunk, LoanTrajectoryModel._sample_states,
                           trajectory.next_states)

    def spy_chunk(self, feats, cohort, macro, init, terms, n_samples, sigma, seeds, first_block, *rest):
        where["first"] = first_block * RNG_LOAN_BLOCK  # n_samples = 1, one seed: path i is the chunk's loan i
        return chunk(self, feats, cohort, macro, init, terms, n_samples, sigma, seeds, first_block, *rest)

    def spy_sample(self, t, paths, state, pasts, *rest):
        live = pasts[0].live if pasts and pasts[0].live is not None else torch.arange(state.shape[0])
        where["t"], where["rows"] = t, live
        return sample(self, t, paths, state, pasts, *rest)

    def spy_draw(corr, *rest):
        for loan, row in zip((where["rows"] + where["first"]).tolist(), corr):
            seen[(loan, where["t"])] = row.clone()
        return draw(corr, *rest)

    monkeypatch.setattr(LoanTrajectoryModel, "_generate_chunk", spy_chunk)
    monkeypatch.setattr(LoanTrajectoryModel, "_sample_states", spy_sample)
    monkeypatch.setattr(trajectory, "next_states", spy_draw)
    runs = []
    for L, chunk_size in ((400, 4096), (49, 4096), (400, 256)):
        seen = {}
        model.generate(feats[:L], cohort[0], macro[0], 1, seed=3, cohort_index=index[:L], chunk_size=chunk_size)
        runs.append(seen)
    whole = runs[0]
    assert len(whole) > 400 * 3  # live loan-months were seen beyond month 0
    for run in runs[1:]:
        assert run.keys() <= whole.keys()
        assert all(torch.equal(v, whole[k]) for k, v in run.items())


def test_scenarios_stay_bit_for_bit_on_mkl_avx2_kernels():
    """The claims above on a CPU without AVX-512, where MKL runs its AVX2 kernels: there a torch linear rounds
    the rows of a last partial 6-row panel another way, so a batch of live paths of the wrong size would change
    a path's numbers (helper-103 found the scenario tests failing that way). Run in a subprocess, since MKL
    reads MKL_ENABLE_INSTRUCTIONS once; without MKL (another BLAS) the variable changes nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, MKL_ENABLE_INSTRUCTIONS="AVX2")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "--import-mode=importlib", "-p", "no:cacheprovider",
           "-p", "no:warnings", "-p", "no:xdist",
           f"{__file__}::test_each_scenario_is_generate_of_that_scenario_alone",
           f"{__file__}::test_pool_cashflows_do_not_depend_on_the_grouping",
           f"{__file__}::test_a_wide_models_paths_do_not_depend_on_the_book_around_them",
           f"{__file__}::test_a_paths_head_logits_do_not_depend_on_the_book_around_them",
           str(Path(__file__).with_name("test_diffusion_sampling.py"))
           + "::test_generate_with_fewer_steps_is_seeded_chunk_free_and_reads_the_config"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
