"""LoanTrajectoryModel: allowed moves, cashflow accounting, reproducibility, training, checkpoints, errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import CheckpointError, ConfigError, DataError
from creditsim.loans.trajectory import (
    COHORT_PROB_FLOOR,
    LoanTrajectoryModel,
    TrajectoryConfig,
    loan_terms_from_features,
)
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES, LoanState

S = LoanState
TINY = TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=5, diffusion_hidden=16, dropout=0.0,
                        idio_scale=0.3, max_months=48)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _features(n: int, remaining_months: int = 40, balance: float = 10_000.0, rate: float = 0.06,
              amort: str = "annuity") -> torch.Tensor:
    """Standardised loan features for n identical loans with the given terms (LOAN_FEATURES constants)."""
    from creditsim.features import LOAN_FEATURES

    names = [f[0] for f in LOAN_FEATURES]
    raw = {name: centre for name, centre, _ in LOAN_FEATURES}
    raw.update(log_current_balance=np.log1p(balance), interest_rate=rate, remaining_term_years=remaining_months / 12.0,
               is_annuity=0.0, is_linear=0.0, is_bullet=0.0, is_interest_only=0.0)
    raw[f"is_{amort}"] = 1.0
    x = np.array([(raw[n_] - c) / s for n_, c, s in LOAN_FEATURES], dtype=np.float32)
    assert len(names) == 24
    return torch.from_numpy(np.tile(x, (n, 1)))


def _matrix(rows: dict[int, list[float]]) -> np.ndarray:
    p = np.eye(N_STATES)
    for i, r in rows.items():
        p[i] = r
    return p


BASE_P = _matrix({
    S.CURRENT: [0.90, 0.05, 0, 0, 0.01, 0.03, 0.01],
    S.DPD30: [0.30, 0.40, 0.25, 0, 0.02, 0.02, 0.01],
    S.DPD60: [0.20, 0.10, 0.30, 0.35, 0.03, 0.01, 0.01],
    S.DPD90: [0.10, 0.05, 0.05, 0.40, 0.38, 0.01, 0.01],
})


def _cohort(B: int, T: int, p: np.ndarray = BASE_P) -> torch.Tensor:
    return torch.from_numpy(np.broadcast_to(p, (B, T, N_STATES, N_STATES)).copy()).float()


def _model(seed: int = 0, **kw) -> LoanTrajectoryModel:
    torch.manual_seed(seed)
    return LoanTrajectoryModel(replace(TINY, **kw)).eval()


def _prev(states: np.ndarray) -> np.ndarray:
    n, B, _ = states.shape
    return np.concatenate([np.zeros((n, B, 1), np.int64), states[..., :-1]], axis=-1)


# ------------------------------------------------------------------------------------------- states
@st.composite
def _random_cohort(draw):
    T = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.gamma(0.5, size=(T, N_STATES, N_STATES)) * ALLOWED_TRANSITIONS
    # some allowed moves get exactly 0 (the floor must not make forbidden moves possible)
    w = w * (rng.random(w.shape) > 0.3)
    w[:, np.arange(N_STATES), np.arange(N_STATES)] += 1e-3
    return T, w / w.sum(-1, keepdims=True), seed


@settings(max_examples=25, deadline=None)
@given(case=_random_cohort(), remaining=st.integers(0, 14), sigma=st.sampled_from([0.0, 0.3, 2.0]))
def test_generated_states_never_make_a_forbidden_move_and_stay_absorbed(case, remaining, sigma):
    T, p, seed = case
    B = 6
    model = _model(seed % 7)
    # a non-zero correction, so the learned part is exercised too
    with torch.no_grad():
        model.correction.bias.copy_(torch.linspace(-2, 2, N_STATES))
    out = model.generate(_features(B, remaining), torch.from_numpy(p).float().expand(B, T, 7, 7), None,
                         n_samples=3, seed=seed, idio_scale=sigma)
    s = out["states"].numpy().astype(np.int64)
    prev = _prev(s)
    assert ALLOWED_TRANSITIONS[prev, s].all()
    absorbed = prev >= S.DEFAULT
    assert (s[absorbed] == prev[absorbed]).all()
    t = np.arange(T)[None, None, :]
    live_prev = prev <= S.DPD90
    # maturity rule: no MATURED before month m = remaining - 1, no CURRENT from m on
    assert not (live_prev & (t < remaining - 1) & (s == S.MATURED)).any()
    assert not (live_prev & (t >= remaining - 1) & (s == S.CURRENT)).any()


def test_untrained_model_samples_exactly_the_cohort_rows():
    """With the correction at 0, next-state probabilities are the cohort rows, MATURED masked before maturity."""
    model = _model()
    B, T = 4, 6
    states = torch.tensor([[0, 1, 2, 3, 4, 4], [0, 0, 1, 0, 5, 5], [1, 2, 1, 0, 0, 0], [0, 1, 2, 3, 3, 0]])
    out = model(_features(B, 40), _cohort(B, T), states)
    prob = torch.softmax(out["state_logits"].detach().double(), -1).numpy()
    prev = np.concatenate([np.zeros((B, 1), np.int64), states[:, :-1].numpy()], 1)
    floor = np.where(ALLOWED_TRANSITIONS & (BASE_P == 0), COHORT_PROB_FLOOR, BASE_P)
    # remaining term 40 months: no live loan can mature yet, a payoff is a prepayment
    floor[: S.DPD90 + 1, S.PREPAID] += floor[: S.DPD90 + 1, S.MATURED]
    floor[: S.DPD90 + 1, S.MATURED] = 0.0
    expected = floor[prev] / floor[prev].sum(-1, keepdims=True)
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    assert (prob[~ALLOWED_TRANSITIONS[prev]] == 0).all()


def test_incremental_generation_matches_the_teacher_forced_pass():
    """The key/value cache of generate computes the same hidden states as the full causal forward."""
    model = _model(3)
    B, T = 5, 7
    feats, cohort = _features(B, 30), _cohort(B, T)
    states = torch.tensor([[0, 0, 1, 2, 0, 0, 5], [0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 4],
                           [1, 2, 3, 4, 4, 4, 4], [0, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        full = model(feats, cohort, states)["hidden"]
    prev = torch.cat([torch.zeros(B, 1, dtype=torch.long), states[:, :-1]], 1)
    macro = torch.zeros(B, T, 9)
    from creditsim.loans.trajectory import remaining_term

    rem = remaining_term(feats)
    pasts = [None] * len(model.blocks)
    with torch.no_grad():
        for t in range(T):
            x, _ = model._embed(feats, cohort[:, t:t + 1], macro[:, t:t + 1], prev[:, t:t + 1], rem, t)
            for i, block in enumerate(model.blocks):
                x, pasts[i] = block(x, pasts[i])
            torch.testing.assert_close(model.ln_f(x)[:, 0], full[:, t], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------- cashflows
def _check_accounting(out: dict[str, torch.Tensor]) -> None:
    s = out["states"].numpy().astype(np.int64)
    bal = out["balances"].numpy()
    n, B, T = s.shape
    before = np.concatenate([np.broadcast_to(out["opening_balance"].numpy()[None, :, None], (n, B, 1)), bal[..., :-1]], -1)
    assert (bal >= 0).all()
    assert (bal <= before + 1e-9).all(), "balances never increase (no capitalisation)"
    flows = out["scheduled_principal"] + out["prepayment"] + out["default_par"]
    np.testing.assert_allclose(before - flows.numpy(), bal, atol=1e-6)
    absorbed_now = s >= S.DEFAULT
    assert (bal[absorbed_now] == 0).all()
    prev = _prev(s)
    after = prev >= S.DEFAULT
    for k in ("payments", "losses", "default_par", "interest"):
        assert (out[k].numpy()[after] == 0).all(), k
    losses, par = out["losses"].numpy(), out["default_par"].numpy()
    assert (losses <= par + 1e-9).all() and (losses >= 0).all()
    assert ((losses > 0) <= (s == S.DEFAULT)).all(), "losses only in the month of default"


def test_balances_nonnegative_nonincreasing_and_reconciled_with_partial_payments():
    model = _model(1)
    B, T = 40, 24
    feats = torch.cat([_features(10, 12), _features(10, 30, amort="linear"), _features(10, 20, amort="bullet"),
                       _features(10, 3)])
    out = model.generate(feats, _cohort(B, T), None, n_samples=4, seed=5)
    _check_accounting(out)
    s = out["states"].numpy()
    # the untrained value head draws payment ratios below 1, so shortfalls are exercised
    perf = (_prev(s.astype(np.int64)) == S.CURRENT) & (s == S.CURRENT)
    assert perf.any() and (s == S.DEFAULT).any() and (s == S.MATURED).any() and (s == S.PREPAID).any()


def _full_values(model: LoanTrajectoryModel) -> None:
    """Make the value head return payment ratio 1 and LGD 0.4 (to check the schedule arithmetic)."""
    def sample(value_params, noise, plan=None):
        out = torch.empty(value_params.shape[0], 2)
        out[:, 0], out[:, 1] = 1.0, 0.4
        return out

    model._sample_values = sample


def test_current_loan_follows_the_annuity_closed_form_and_matures():
    model = _model()
    _full_values(model)
    n, r, B0 = 12, 0.06 / 12, 10_000.0
    stay = _matrix({S.CURRENT: [1, 0, 0, 0, 0, 0, 0]})
    terms = {"balance": np.array([B0]), "interest_rate": np.array([0.06]), "remaining_term": np.array([n]),
             "amortization": np.array(["annuity"])}
    out = model.generate(_features(1, n, B0), _cohort(1, 15, stay), None, loan_terms=terms, seed=0)
    j = np.arange(1, 16)
    closed = B0 * ((1 + r) ** n - (1 + r) ** np.minimum(j, n)) / ((1 + r) ** n - 1)
    bal = out["balances"][0, 0].numpy()
    np.testing.assert_allclose(bal[: n - 1], closed[: n - 1], atol=0.01)
    states = out["states"][0, 0].numpy()
    assert (states[: n - 1] == S.CURRENT).all() and (states[n - 1:] == S.MATURED).all()
    assert (bal[n - 1:] == 0).all()
    instalment = B0 * r / (1 - (1 + r) ** -n)
    np.testing.assert_allclose(out["payments"][0, 0, : n].numpy(), instalment, atol=0.02)
    assert out["payments"][0, 0].sum().item() == pytest.approx(n * instalment, abs=0.1)


def test_delinquent_month_pays_nothing_and_the_cure_pays_the_arrears():
    model = _model()
    _full_values(model)
    T = 5
    p = np.stack([_matrix({S.CURRENT: [0, 1, 0, 0, 0, 0, 0]}),  # month 0: miss a payment
                  _matrix({S.DPD30: [1, 0, 0, 0, 0, 0, 0]}),  # month 1: cure, paying both instalments
                  *[_matrix({S.CURRENT: [1, 0, 0, 0, 0, 0, 0]})] * 3])
    terms = {"balance": np.array([5_000.0]), "interest_rate": np.array([0.12]), "remaining_term": np.array([24]),
             "amortization": np.array([0])}
    out = model.generate(_features(1, 24, 5_000.0, 0.12), torch.from_numpy(p).float()[None], None, loan_terms=terms)
    assert out["states"][0, 0].tolist() == [1, 0, 0, 0, 0]
    pay = out["payments"][0, 0].numpy()
    assert pay[0] == 0
    np.testing.assert_allclose(pay[1], 2 * pay[2], rtol=1e-3)
    assert out["balances"][0, 0, 0].item() == pytest.approx(5_000.0)


def test_loss_at_default_is_lgd_times_the_balance_before_default():
    model = _model()
    _full_values(model)
    p = np.stack([_matrix({S.CURRENT: [1, 0, 0, 0, 0, 0, 0]})] * 2 + [_matrix({S.CURRENT: [0, 0, 0, 0, 1, 0, 0]})] * 2)
    out = model.generate(_features(3, 24), torch.from_numpy(p).float().expand(3, 4, 7, 7), None)
    s, bal = out["states"][0].numpy(), out["balances"][0].numpy()
    assert (s[:, 2] == S.DEFAULT).all()
    np.testing.assert_allclose(out["default_par"][0, :, 2].numpy(), bal[:, 1])
    np.testing.assert_allclose(out["losses"][0, :, 2].numpy(), 0.4 * bal[:, 1])
    np.testing.assert_allclose(out["lgd"][0].numpy(), 0.4)
    _check_accounting(out)


def test_loan_terms_are_recovered_from_the_features():
    from creditsim.features import loan_features
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(200, 2, random_seed=3).generate()
    f = loan_features(loans, as_of="2025-01-01").to_numpy(np.float32)
    terms = loan_terms_from_features(f)
    seasoning = (pd.Timestamp("2025-01-01").to_period("M") - loans["origination_date"].dt.to_period("M")).map(lambda d: d.n)
    np.testing.assert_array_equal(terms["remaining_term"], loans["term_months"].to_numpy() - seasoning.to_numpy())
    np.testing.assert_allclose(terms["balance"], loans["current_balance"].to_numpy(), rtol=2e-6)
    names = np.array(["annuity", "linear", "bullet", "interest_only"])[terms["amortization"]]
    assert (names == loans["amortization_type"].to_numpy()).all()


# ---------------------------------------------------------------------------------- reproducibility
def test_generate_is_reproducible_with_a_seed_and_independent_of_chunk_size():
    model = _model(2)
    B, T = 300, 8
    feats, cohort = _features(B, 20), _cohort(B, T)
    a = model.generate(feats, cohort, None, n_samples=2, seed=11)
    b = model.generate(feats, cohort, None, n_samples=2, seed=11, chunk_size=256)
    c = model.generate(feats, cohort, None, n_samples=2, seed=12)
    assert torch.equal(a["states"], b["states"])
    # the random draws are identical; the network's float32 arithmetic may round differently with
    # another batch size, so amounts agree to float precision
    for k in ("payments", "balances", "losses"):
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert not torch.equal(a["states"], c["states"])
    g1 = model.generate(feats, cohort, None, generator=torch.Generator().manual_seed(4))
    g2 = model.generate(feats, cohort, None, generator=torch.Generator().manual_seed(4))
    assert torch.equal(g1["balances"], g2["balances"])


def _cohort_table(G: int, T: int) -> np.ndarray:
    """``(G, T, 7, 7)``: BASE_P with each cohort's and month's CURRENT row tilted towards default."""
    out = np.broadcast_to(BASE_P, (G, T, N_STATES, N_STATES)).copy()
    for g in range(G):
        for t in range(T):
            shift = 0.02 * g + 0.003 * t
            out[g, t, S.CURRENT, S.CURRENT] -= shift
            out[g, t, S.CURRENT, S.DEFAULT] += shift
    return out


def test_cohort_index_gives_the_expanded_matrices_paths_bit_for_bit():
    """generate with (G, T, 7, 7) matrices and each loan's cohort row = generate with the matrices copied
    per loan (the engine's form); the rows really are read per loan (cohort 0 for all differs)."""
    model = _model(3)
    B, T, G = 300, 10, 3
    feats = _features(B, 30)
    table = _cohort_table(G, T)
    index = np.random.default_rng(5).integers(0, G, B)
    expanded = torch.from_numpy(table[index]).float()
    a = model.generate(feats, expanded, None, n_samples=2, seed=21, chunk_size=256)
    b = model.generate(feats, torch.from_numpy(table).float(), None, n_samples=2, seed=21, chunk_size=256,
                       cohort_index=index)
    for k in a:
        assert torch.equal(a[k].nan_to_num(-1.0), b[k].nan_to_num(-1.0)), k
    c = model.generate(feats, torch.from_numpy(table).float(), None, n_samples=2, seed=21, chunk_size=256,
                       cohort_index=np.zeros(B, dtype=np.int64))
    assert not torch.equal(a["states"], c["states"])


def test_cohort_index_is_checked():
    model = _model(3)
    feats, table = _features(4, 30), torch.from_numpy(_cohort_table(2, 5)).float()
    with pytest.raises(DataError, match=r"cohort_index: rows \[3\] are outside 0..1"):
        model.generate(feats, table, None, cohort_index=[0, 1, 1, 2])
    with pytest.raises(DataError, match=r"cohort_index: expected \(4,\) integers"):
        model.generate(feats, table, None, cohort_index=[0.0, 1.0, 1.0, 0.0])
    with pytest.raises(DataError, match=r"cohort_index: expected \(4,\) integers"):
        model.generate(feats, table, None, cohort_index=[0, 1])
    bad = table.clone()
    bad[1, 2, S.CURRENT, S.CURRENT] += 0.5
    with pytest.raises(DataError, match=r"row CURRENT of \(cohort 1, month 2\) sums to"):
        model.generate(feats, bad, None, cohort_index=[0, 1, 1, 0])
    with pytest.raises(DataError, match=r"\(G, T, 7, 7\)"):
        model.generate(feats, table[0], None, cohort_index=[0, 0, 0, 0])
    with pytest.raises(DataError, match=r"cohort_index: expected \(4,\) integers"):  # not cast to 0 / 1
        model.pool_cashflows(feats, table[None], None, cohort_index=np.full(4, 0.7))


# ------------------------------------------------------------------------------------------ training
def test_empirical_cohort_matrices_match_transition_counts():
    from creditsim.transitions.cohorts import cohort_keys, transition_counts
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.loans.train import empirical_cohort_matrices, panel_arrays

    loans, panel = LoanTapeGenerator(300, 10, random_seed=4).generate()
    states = panel_arrays(loans, panel)["states"]
    codes, labels = pd.factorize(cohort_keys(loans), sort=True)
    p = empirical_cohort_matrices(states, codes, len(labels), smoothing=1e-9)
    counts, cohorts, _ = transition_counts(panel, loans)
    assert list(cohorts) == list(labels)
    rows = counts.sum(-1)
    seen = rows > 0
    np.testing.assert_allclose(p[:, 1:][seen], (counts / np.maximum(rows, 1)[..., None])[seen], atol=1e-6)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    assert (p[..., ~ALLOWED_TRANSITIONS] == 0).all()


def test_training_loss_decreases_on_a_tiny_run():
    from creditsim.nn.trainer import TrainConfig
    from creditsim.loans.train import build_trajectory_data, train_trajectory_model

    data = build_trajectory_data(n_loans=80, n_months=10, paths_per_scenario=1, seed=1)
    assert data.value_mask[..., 0].any() and data.value_mask[..., 1].any()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, patience=10, min_epochs=0, kl_warmup=0, progress=False)
    res = train_trajectory_model(data, replace(TINY, diffusion_steps=10), cfg)
    hist = res.fit.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["train_value"] < hist[0]["train_value"]
    assert np.isfinite(res.fit.best_val_loss)
    # same seed, same weights: training is deterministic on one machine
    again = train_trajectory_model(data, replace(TINY, diffusion_steps=10), cfg)
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


# ---------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_mismatches(tmp_path):
    model = _model(5)
    with torch.no_grad():
        model.correction.bias.add_(0.1)
    model.save_pretrained(tmp_path / "ck")
    loaded = LoanTrajectoryModel.from_pretrained(tmp_path / "ck")
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    feats, cohort = _features(4, 10), _cohort(4, 6)
    a = model.generate(feats, cohort, None, n_samples=2, seed=3)
    b = loaded.generate(feats, cohort, None, n_samples=2, seed=3)
    assert torch.equal(a["balances"], b["balances"]) and torch.equal(a["states"], b["states"])

    other = _model(d_model=32, n_heads=2)
    other.save_pretrained(tmp_path / "other")
    cfg_file = tmp_path / "other" / "config.json"
    meta = json.loads(cfg_file.read_text())
    meta["config"]["d_model"] = 16
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        LoanTrajectoryModel.from_pretrained(tmp_path / "other")
    meta["model"] = "MacroVAE"
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="LoanTrajectoryModel"):
        LoanTrajectoryModel.from_pretrained(tmp_path / "other")
    with pytest.raises(CheckpointError, match="missing"):
        LoanTrajectoryModel.from_pretrained(tmp_path / "nowhere")


def test_shipped_checkpoint_loads_and_its_lgd_head_tracks_the_loan_lgd():
    from creditsim.features import loan_features
    from creditsim.transitions.synthetic import LoanTapeGenerator

    model = LoanTrajectoryModel.from_pretrained()
    loans, _ = LoanTapeGenerator(200, 2, random_seed=99).generate()
    loans = loans[loans["term_months"] > 12].reset_index(drop=True)  # no maturity within the path
    feats = torch.from_numpy(np.array(loan_features(loans, as_of="2025-01-01").to_numpy(np.float32)))
    # the path the training panels show before a default: three missed payments, then default
    roll = _matrix({S.CURRENT: [0, 1, 0, 0, 0, 0, 0], S.DPD30: [0, 0, 1, 0, 0, 0, 0], S.DPD60: [0, 0, 0, 1, 0, 0, 0],
                    S.DPD90: [0, 0, 0, 0, 1, 0, 0]})
    out = model.generate(feats, _cohort(len(loans), 4, roll), None, n_samples=2, seed=0)
    assert (out["states"][:, :, 3] == S.DEFAULT).all()
    lgd = out["lgd"].numpy().mean(0)
    truth = loans["lgd_assumption"].to_numpy()
    assert np.corrcoef(lgd, truth)[0, 1] > 0.9
    assert np.abs(lgd - truth).mean() < 0.05


# -------------------------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    model = _model()
    B, T = 3, 4
    feats, cohort = _features(B, 10), _cohort(B, T)
    with pytest.raises(DataError, match=r"loan_features: expected shape \(batch, 24\)"):
        model(feats[:, :23], cohort)
    with pytest.raises(DataError, match="cohort_transitions: expected shape"):
        model(feats, cohort[:, :, :6])
    with pytest.raises(DataError, match="cohort_transitions: expected shape"):
        model(feats[:2], cohort)
    bad = cohort.clone()
    bad[1, 2, 0, 0] = 0.5
    with pytest.raises(DataError, match=r"row CURRENT of \(loan 1, month 2\) sums to"):
        model(feats, bad)
    leak = cohort.clone()
    leak[0, 1, 0] = torch.tensor([0.5, 0, 0.5, 0, 0, 0, 0])
    with pytest.raises(DataError, match="forbidden move CURRENT -> DPD60"):
        model(feats, leak)
    nan = feats.clone()
    nan[2, 5] = float("nan")
    with pytest.raises(DataError, match="loan_features: NaN"):
        model.generate(nan, cohort, None)
    with pytest.raises(DataError, match="loan_features: expected at least one loan, got 0 rows"):
        model.generate(feats[:0], cohort[:1], None, cohort_index=torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match=r"target_states: expected shape \(3, 4\)"):
        model(feats, cohort, torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(DataError, match="loan 0 month 0 moves CURRENT -> DPD90"):
        model(feats, cohort, torch.tensor([[3, 3, 3, 3], [0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(DataError, match="macro_path: expected shape"):
        model.generate(feats, cohort, torch.zeros(T, 8))
    with pytest.raises(DataError, match="loan_terms: missing"):
        model.generate(feats, cohort, None, loan_terms={"balance": np.ones(B)})
    with pytest.raises(ConfigError, match="n_samples"):
        model.generate(feats, cohort, None, n_samples=0)
    with pytest.raises(ConfigError, match="max_months"):
        model.generate(_features(1, 10), _cohort(1, 49), None)
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        TrajectoryConfig(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="n_states must be 7"):
        TrajectoryConfig(n_states=8)
    for sigma in (10.5, 1e20, -0.1, float("nan"), True):  # 1e20 once gave NaN shifts (inf * 0) and NaN draws
        with pytest.raises(ConfigError, match=r"idio_scale must be a finite number in \[0, 10\]"):
            model.generate(feats, cohort, None, idio_scale=sigma)
    with pytest.raises(ConfigError, match=r"TrajectoryConfig.idio_scale must be a finite number in \[0, 10\]"):
        TrajectoryConfig(idio_scale=11.0)
    extreme = model.generate(feats, cohort, None, idio_scale=10.0, seed=2)  # the ceiling itself runs
    # lgd is NaN where a loan did not default
    assert all(bool(torch.isfinite(v).all()) for k, v in extreme.items() if k not in ("states", "lgd"))


def test_pool_cashflows_conserve_principal_and_split_defaults_into_loss_and_recovery():
    from creditsim.states import POOL_CF_TYPES

    model = _model(4)
    L, T, S, C = 30, 12, 3, 2
    feats = torch.cat([_features(15, 8), _features(15, 30, amort="linear")])
    cohorts = torch.from_numpy(np.broadcast_to(BASE_P, (S, C, T, 7, 7)).copy()).float()
    cidx = np.repeat([0, 1], 15)
    res = model.pool_cashflows(feats, cohorts, None, cohort_index=cidx, seed=3, recovery_lag=4)
    cf = res["cashflows"]
    k = {n: i for i, n in enumerate(POOL_CF_TYPES)}
    assert cf.shape == (S, T, len(POOL_CF_TYPES))
    out_flow = cf[..., k["scheduled_principal"]] + cf[..., k["prepayment"]] + cf[..., k["default_par"]]
    # loans.pool sums whole cents (each loan-month amount rounded half a cent at most, 4 flows): the
    # balance identity holds to that rounding
    np.testing.assert_allclose(res["initial_balance"] - out_flow.sum(1), cf[:, -1, k["balance"]], atol=0.02 * L * T)
    np.testing.assert_allclose(cf[..., k["recovery"]].sum(1) + res["pending_recovery"] + cf[..., k["loss"]].sum(1),
                               cf[..., k["default_par"]].sum(1), atol=1e-6)
    assert (cf[:, :4, k["recovery"]] == 0).all()  # nothing recovers before the lag
    # a scenario's numbers do not depend on the scenarios simulated with it
    alone = model.pool_cashflows(feats, cohorts[1:2], None, cohort_index=cidx, seed=3, recovery_lag=4, scenario_ids=[1])
    np.testing.assert_allclose(alone["cashflows"][0], cf[1], rtol=1e-6)



def test_pool_cashflows_on_two_threads_are_one_thread_bit_for_bit(monkeypatch):
    """The scenarios' groups (one scenario each here, on two threads) run side by side on the caller's torch
    thread count (creditsim.threads.map_scenarios): the same bits as one thread (one group of both), also
    for a model left in training mode with dropout (eval mode is set once around the threads, so no
    thread's generate flips the flags another reads), and the model's mode is back afterwards. Books under
    THREAD_MIN_LOANS run on one thread (forced here to two)."""
    import threading

    import creditsim.loans.trajectory as trajectory

    assert trajectory.scenario_threads(trajectory.THREAD_MIN_LOANS - 1) == 1
    assert trajectory.scenario_threads(trajectory.THREAD_MIN_LOANS) == trajectory.THREAD_MAX > 1
    # generation in torch alone holds the GIL longer: threads only from the larger book size
    assert trajectory.THREAD_MIN_LOANS < trajectory.THREAD_MIN_LOANS_TORCH
    assert trajectory.scenario_threads(trajectory.THREAD_MIN_LOANS, fused=False) == 1
    assert trajectory.scenario_threads(trajectory.THREAD_MIN_LOANS_TORCH, fused=False) == trajectory.THREAD_MAX
    monkeypatch.setattr(trajectory, "scenario_threads", lambda n_loans, fused=True: 2)
    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=4, dropout=0.1))
    model.train()
    # the first two scenarios overlap in a fixed order: the second enters generate once the first is
    # inside it, and runs its months only after the first one's generate has returned (and put back
    # any mode it changed), so a race on the shared flags would show every time
    first_inside, second_inside, first_done, order = threading.Event(), threading.Event(), threading.Event(), []
    generate, chunk = LoanTrajectoryModel.generate_scenarios, LoanTrajectoryModel._generate_chunk
    lock = threading.Lock()

    def spy_generate(self, *args, **kwargs):
        with lock:
            rank = len(order) if threading.current_thread() is not threading.main_thread() else 2
            if rank < 2:
                order.append(threading.get_ident())
        if rank == 1:
            assert first_inside.wait(30), "the first scenario never started its months"
        out = generate(self, *args, **kwargs)
        if rank == 0:
            first_done.set()
        return out

    def spy_chunk(self, *args):
        me = threading.get_ident()
        if order[:1] == [me] and not first_done.is_set():
            first_inside.set()
            assert second_inside.wait(30), "the second scenario never started: the scenarios ran one at a time"
        elif order[1:2] == [me] and not second_inside.is_set():
            second_inside.set()
            assert first_done.wait(30)
        return chunk(self, *args)

    monkeypatch.setattr(LoanTrajectoryModel, "generate_scenarios", spy_generate)
    monkeypatch.setattr(LoanTrajectoryModel, "_generate_chunk", spy_chunk)
    S, C, T = 2, 2, 12  # two scenarios: nothing else runs while the second one does
    feats = torch.cat([_features(10, 8), _features(10, 30, amort="linear")])
    cohorts = torch.from_numpy(np.broadcast_to(BASE_P, (S, C, T, 7, 7)).copy()).float()
    cidx = np.repeat([0, 1], 10)
    runs = {}
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs[n] = model.pool_cashflows(feats, cohorts, None, cohort_index=cidx, seed=3, recovery_lag=2)
            assert torch.get_num_threads() == n and model.training and all(m.training for m in model.modules())
    finally:
        torch.set_num_threads(before)
    assert len(order) == 2
    np.testing.assert_array_equal(runs[1]["cashflows"], runs[2]["cashflows"])
    np.testing.assert_array_equal(runs[1]["pending_recovery"], runs[2]["pending_recovery"])
    assert runs[1]["initial_balance"] == runs[2]["initial_balance"] > 0
    assert len({float(c.sum()) for c in runs[2]["cashflows"]}) == S  # the scenarios' rows differ


def test_generation_runs_every_module_in_eval_mode_and_gives_each_its_own_mode_back(monkeypatch):
    """A model in eval mode with a block left in training (or in training with a block frozen in eval)
    generates without dropout -- the same numbers as a model wholly in eval mode -- and every module
    keeps its own mode afterwards. A book under THREAD_MIN_LOANS runs on this thread only."""
    import threading

    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=4, dropout=0.5))
    feats, coh = _features(12, 8), _cohort(12, 6)
    model.eval()
    ref = model.generate(feats, coh, None, 1, seed=4)
    threads_seen: set[str] = set()
    chunk = LoanTrajectoryModel._generate_chunk

    def spy(self, *args):
        assert not any(m.training for m in self.modules())
        threads_seen.add(threading.current_thread().name)
        return chunk(self, *args)

    monkeypatch.setattr(LoanTrajectoryModel, "_generate_chunk", spy)
    for top, block in ((False, True), (True, False)):
        model.train(top)
        model.blocks.train(block)
        modes = {name: m.training for name, m in model.named_modules()}
        out = model.generate(feats, coh, None, 1, seed=4)
        assert torch.equal(out["states"], ref["states"]) and torch.equal(out["payments"], ref["payments"])
        assert {name: m.training for name, m in model.named_modules()} == modes
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cohorts = torch.from_numpy(np.broadcast_to(BASE_P, (3, 1, 6, 7, 7)).copy()).float()
        model.pool_cashflows(feats, cohorts, None, cohort_index=np.zeros(12, dtype=int), seed=1)
    finally:
        torch.set_num_threads(before)
    assert threads_seen == {threading.main_thread().name}  # 12 loans: no threads

def test_state_path_metrics_on_hand_computed_paths():
    from creditsim.loans.evaluate import state_path_metrics

    real = np.array([[0, 0, 4, 4], [0, 1, 0, 5], [1, 2, 3, 4], [0, 0, 0, 0]])
    same = state_path_metrics(real, real[None], horizon=4)
    assert same["state_tv"] == 0 and same["roll_rate_err"] == 0
    assert same["default_12m"] == 0.5 and same["prepay_12m"] == 0.25 and same["dq_occupancy"] == 4 / 16
    assert same["default_auc"] == 1.0
    flat = state_path_metrics(real, np.zeros((2, 4, 4), np.int64), horizon=4)
    # month by month the real occupancy differs from "all CURRENT" by the share not CURRENT
    assert flat["state_tv"] == pytest.approx(np.mean([0.25, 0.5, 0.5, 0.75]))
    assert flat["default_12m"] == 0 and flat["default_auc"] == 0.5  # no discrimination


def test_evaluation_runs_on_held_out_panels_and_the_data_row_is_exact():
    from creditsim.loans.evaluate import evaluate_trajectory_model

    res = evaluate_trajectory_model(_model(), scenarios=("baseline",), n_loans=80, n_months=6, n_samples=2, n_seeds=2)
    mean = res.mean()
    assert list(mean.index.get_level_values("generator")) == ["data", "model", "cohort_baseline"]
    assert mean.loc[("baseline", "data"), "state_tv"] == 0
    assert mean.loc[("baseline", "model"), "acct_violations"] == 0
    assert "±" in res.summary().loc[("baseline", "model"), "state_tv"]


# ------------------------------------------------------------------------------ per-month covariates
def test_step_features_change_the_logits_and_are_checked() -> None:
    B, T = 3, 5
    model = _model(n_step_features=2)
    feats, cohort = _features(B), _cohort(B, T)
    states = torch.zeros(B, T, dtype=torch.long)
    with torch.no_grad():
        model.step_proj.weight.normal_(0, 1.0)  # (a constant fill would be removed by the layer norms)
        model.correction.weight.normal_(0, 0.5)
        a = model(feats, cohort, states, step_features=torch.zeros(B, T, 2))["state_logits"]
        b = model(feats, cohort, states, step_features=torch.ones(B, T, 2))["state_logits"]
    assert not torch.allclose(a, b)
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))  # the covariates never open a forbidden move
    with pytest.raises(DataError, match="takes 2 per-month covariates"):
        model(feats, cohort, states)
    with pytest.raises(DataError, match=r"expected shape \(3, 5, 2\)"):
        model(feats, cohort, states, step_features=torch.zeros(B, T, 3))
    with pytest.raises(ConfigError, match="per-month covariates"):
        model.generate(feats, cohort, None)
    with pytest.raises(DataError, match="no per-month covariates"):
        _model()(feats, cohort, states, step_features=torch.zeros(B, T, 2))
    with pytest.raises(ConfigError, match="n_step_features"):
        replace(TINY, n_step_features=-1)


def test_an_expanded_cohort_gives_the_paths_of_its_copy():
    """One matrix expanded over the book (stride 0, read by advanced indexing) and its contiguous copy (read by
    a flat index_select) are the same gathers: the same bits."""
    model = LoanTrajectoryModel.from_pretrained()
    expanded = torch.from_numpy(BASE_P).float().expand(300, 12, 7, 7)
    assert not expanded.is_contiguous()
    a = model.generate(_features(300, 30), expanded, None, n_samples=2, seed=4)
    b = model.generate(_features(300, 30), expanded.contiguous(), None, n_samples=2, seed=4)
    assert (a["states"] >= 4).any()
    for k, v in a.items():
        assert torch.equal(v.nan_to_num(-7.0), b[k].nan_to_num(-7.0)), k
