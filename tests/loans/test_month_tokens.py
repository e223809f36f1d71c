"""The trajectory model's month tokens in one numba pass per path (creditsim.loans.month_tokens): the torch
path's bits, month by month in generate, its fall-back where the chunk's tables are not made, and its index checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.loans.month_tokens import month_tokens
from creditsim.loans.trajectory import LoanTrajectoryModel
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _inputs(B: int, T: int, G: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Features, G cohorts' random matrices (sizeable defaults and prepayments), a macro path and each loan's cohort."""
    rng = np.random.default_rng(seed)
    feats = torch.tensor(rng.normal(0, 0.5, size=(B, 24)), dtype=torch.float32)
    w = rng.gamma(0.5, size=(G, T, N_STATES, N_STATES)) * ALLOWED_TRANSITIONS
    w[:, :, np.arange(N_STATES), np.arange(N_STATES)] += 0.5
    w[:, :, 0, 0] += 6.0
    cohort = torch.tensor(w / w.sum(-1, keepdims=True), dtype=torch.float32)
    macro = torch.tensor(rng.normal(0.03, 0.02, size=(T, 9)), dtype=torch.float32)
    return feats, cohort, macro, rng.integers(0, G, B)


@pytest.mark.parametrize("G,scenarios", [(3, False), (3, True), (80, True)])
def test_generate_builds_the_torch_paths_tokens_bit_for_bit(monkeypatch, G, scenarios):
    """Every month of a generate with the compiled kernels: the fused tokens and log cohort rows equal the torch
    path's (_torch_tokens on the same padded live batch) bit for bit, over months where paths are absorbed (the
    live batch shrinks): generate (a macro path per loan: the batch's own macro rows) and generate_scenarios (the
    engine's form, two scenarios' macro paths tabulated by month). With 80 cohorts (2 x 80 x 7 rows > 600 paths)
    the chunk makes no cohort table and every month runs in torch. The paths are the eager run's either way."""
    from creditsim.loans import trajectory

    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort, macro, index = _inputs(300, 24, G)
    fused, tokens = LoanTrajectoryModel._fused_tokens, trajectory.month_tokens
    seen, by_row = [], []

    def both(self, t, paths, rows, state):
        got = fused(self, t, paths, rows, state)
        if got is not None:
            x, log_rows = self._torch_tokens(t, paths, state, rows)
            assert torch.equal(got[0], x[:, 0]) and torch.equal(got[1], log_rows[:, 0]), t
        seen.append((rows.numel(), got is not None))
        return got

    def spy(*args, macro_by_row=False):
        by_row.append(macro_by_row)
        return tokens(*args, macro_by_row=macro_by_row)

    def run():
        if scenarios:
            return model.generate_scenarios(feats, torch.stack([cohort, cohort.flip(0)]),
                                            torch.stack([macro, macro + 0.01]), [3, 4], cohort_index=index)
        return model.generate(feats, cohort, macro, seed=3, cohort_index=index)

    monkeypatch.setattr(LoanTrajectoryModel, "_fused_tokens", both)
    monkeypatch.setattr(trajectory, "month_tokens", spy)
    out = run()
    assert len(seen) == 24 and all(f == (G == 3) for _, f in seen)
    assert len(by_row) == (24 if G == 3 else 0) and all(b == (not scenarios) for b in by_row)
    assert min(n for n, _ in seen) < max(n for n, _ in seen)  # paths were absorbed: the batch shrank
    monkeypatch.setattr(LoanTrajectoryModel, "_fused_tokens", fused)
    model.fused_kernels = False
    eager = run()
    assert torch.equal(out["states"], eager["states"])
    torch.testing.assert_close(out["balances"], eager["balances"], rtol=1e-5, atol=1e-3)


def _tables(n: int = 5, T: int = 4, d: int = 3, R: int = 2, Q: int = 2):
    g = torch.Generator().manual_seed(0)
    f = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    rows = torch.tensor([4, 0, 2, 2])
    state = torch.tensor([0, 1, 3, 6, 2])
    cohort_row, macro_row = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([1, 0, 1, 1, 0])
    rem = torch.tensor([1, 5, 30, 2, 3])
    return dict(rows=rows, state=state, cohort_row=cohort_row, n_months=T, t=2, macro_row=macro_row, rem=rem,
                term_range=(-2, 3), emb=f(N_STATES, d), feat=f(n, d), row_tab=f(R * T * N_STATES, d),
                log_tab=f(R * T * N_STATES, N_STATES), macro_tab=f(Q * T, d), term_tab=f(6, d), pos=f(d))


def test_tokens_are_the_documented_sums():
    """Against the module docstring's formula, written out in torch for a tiny table set (terms clamped both ways)."""
    a = _tables()
    x, log_rows = month_tokens(**a)
    T, t, S = a["n_months"], a["t"], N_STATES
    for i, r in enumerate(a["rows"].tolist()):
        p = int(a["state"][r])
        flat = (int(a["cohort_row"][r]) * T + t) * S + p
        left = min(max(int(a["rem"][r]) - 1 - t, -2), 3) + 2
        want = ((((a["emb"][p] + a["feat"][r]) + a["row_tab"][flat]) + a["macro_tab"][int(a["macro_row"][r]) * T + t])
                + a["term_tab"][left]) + a["pos"]
        assert torch.equal(x[i], want) and torch.equal(log_rows[i], a["log_tab"][flat]), i


@pytest.mark.parametrize("field,value,match", [
    ("rows", torch.tensor([0, 5]), r"row 1 of the batch \(path 5\)"),
    ("rows", torch.tensor([-1]), r"row 0 of the batch"),
    ("state", torch.tensor([0, 1, 7, 6, 2]), r"row 2 of the batch \(path 2\)"),
    ("cohort_row", torch.tensor([2, 1, 1, 0, 1]), r"row 1 of the batch \(path 0\)"),
    ("macro_row", torch.tensor([1, 0, -1, 1, 0]), r"row 2 of the batch \(path 2\)"),
    # huge indices: checked before any product, which would wrap around (helper-113: a crash, or row 0 read)
    ("cohort_row", torch.tensor([3788170657994377216, 1, 1, 0, 1]), r"row 1 of the batch \(path 0\)"),
    ("cohort_row", torch.tensor([2**62, 1, 1, 0, 1]), r"row 1 of the batch \(path 0\)"),
    ("macro_row", torch.tensor([1, 0, 2**62, 1, 0]), r"row 2 of the batch \(path 2\)"),
])
def test_an_index_past_its_table_is_refused_by_name(field, value, match):
    a = _tables()
    a[field] = value
    with pytest.raises(ValueError, match=match):
        month_tokens(**a)


@pytest.mark.parametrize("field,value", [("rows", torch.tensor([1.9, 0.0])), ("state", torch.ones(5, dtype=torch.bool)),
                                         ("emb", torch.zeros(N_STATES, 3, dtype=torch.float64))])
def test_inputs_of_other_dtypes_are_refused(field, value):
    """Float rows would be truncated (1.9 -> 1) and a float64 table read as float32: refused, not converted."""
    a = _tables()
    a[field] = value
    with pytest.raises(ValueError, match="integer rows.*float32 tables"):
        month_tokens(**a)


def test_a_cohort_per_loan_makes_no_tables(monkeypatch):
    """One cohort per loan, eight samples: the (cohort, month, state) tables would hold 7 rows per path and month
    for the chunk's life, more than the live months compute (helper-113: 1.4x the time, +0.5 GB at 4,096 loans):
    the chunk builds the tokens in torch, the same paths."""
    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort, macro, _ = _inputs(60, 12, 60)
    made = []
    tables = LoanTrajectoryModel._token_tables

    def spy(self, paths):
        tab = tables(self, paths)
        made.append("row" in tab)
        return tab

    monkeypatch.setattr(LoanTrajectoryModel, "_token_tables", spy)
    model.generate(feats, cohort, macro, n_samples=8, seed=2, cohort_index=np.arange(60))
    assert made and not any(made)  # (7 x 60 rows against 480 paths: the gate before this made them)


def test_tables_that_do_not_fit_are_refused():
    a = _tables()
    a["term_tab"] = a["term_tab"][:5]
    with pytest.raises(ValueError, match="do not fit"):
        month_tokens(**a)
    a = _tables()
    a["t"] = 4
    with pytest.raises(ValueError, match="do not fit"):
        month_tokens(**a)


def test_an_empty_batch_gives_empty_tokens():
    """Every path absorbed: no rows, nothing read."""
    a = _tables()
    a["rows"] = torch.zeros(0, dtype=torch.int64)
    x, log_rows = month_tokens(**a)
    assert x.shape == (0, 3) and log_rows.shape == (0, N_STATES)
