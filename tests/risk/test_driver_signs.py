"""Each macro driver alone moves the deep models' one-year PD with the sign the bank history gives it.

The mirror of ``tests/transitions/test_calibrate.py::test_each_driver_alone_moves_pd_with_its_documented_sign``
(the Markov overlay) for the shipped TransitionTransformer and the trajectory engine: one driver shocked in
its adverse direction on top of the Fed 2025 baseline path -- the unemployment rate rising 2 pp over the
first year (about two sds of the 12-month change, 1.2 of the level), the HY spread, GDP growth, house-price
growth and the policy rate each by one historical sd from month 0 -- everything else unchanged. Uses the
shipped checkpoints only (no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.macro.credit_link import EXPECTED_SIGNS
from creditsim.states import ASSET_CLASSES, MACRO_VARS, LoanState
from creditsim.transitions.calibrate import load_calibrated_overlay, worst_year_pd
from creditsim.transitions.markov import DEFAULT_MACRO_STD, MarkovTransitionModel

DRIVERS = ("unemployment_change", "credit_spread_hy", "gdp_growth", "house_price_growth", "policy_rate")
CUTOFF = "2025-01-01"
N_MONTHS = 24


#: cells (engine, asset class, driver) measured to move the wrong way with the shipped checkpoints, each with
#: its numbers: they are reported as expected failures (strictly: a cell that starts passing fails the test,
#: so the entry must then be removed). Empty since the TransitionTransformer reads the cohort's asset-class
#: shares and carries the calibrated link as a fixed offset (issue 13, item 4; ``macro_link``): before, the
#: real-estate x unemployment cells moved the wrong way (worst-year PD -0.65 % in the transformer, +0.18 % /
#: +1.2 se in the trajectory engine on its matrices). The shares alone fixed them for one training seed but
#: not another (+0.8 %, and two other weak cells wrong); with the offset both seeds hold every cell. So the
#: transformer's cells check mostly the offset plus the network's residual, which must not undo it.
KNOWN_SIGN_FAILURES: dict[tuple[str, str, str], str] = {}


def check_cells(engine: str, results: list[tuple[str, str, bool, str]]) -> None:
    """Fail on any wrong cell not in :data:`KNOWN_SIGN_FAILURES` or any known cell that now passes; xfail
    (with the numbers) when exactly the known cells are wrong. ``results``: ``(asset class, driver, ok,
    description)``."""
    wrong = {(cls, var): text for cls, var, ok, text in results if not ok}
    known = {(c, v): why for (e, c, v), why in KNOWN_SIGN_FAILURES.items() if e == engine
             and any((c, v) == (cls, var) for cls, var, _, _ in results)}
    unexpected = [t for key, t in wrong.items() if key not in known]
    healed = [f"{c} {v}" for (c, v) in known if (c, v) not in wrong]
    table = "\n".join(text for *_, text in results)
    assert not unexpected, "wrong sign:\n" + "\n".join(unexpected) + "\nall:\n" + table
    assert not healed, f"known failures now pass (remove them from KNOWN_SIGN_FAILURES): {healed}"
    if wrong:
        pytest.xfail("known wrong sign: " + "; ".join(wrong.values()))


def shocked_paths(months: int = N_MONTHS) -> np.ndarray:
    """``(6, months, 9)``: the Fed 2025 baseline path, then the path with each of :data:`DRIVERS` shocked alone."""
    from creditsim.macro.scenarios import fed_table_path

    base = fed_table_path(2025, "baseline")[:months]
    paths = [base]
    for variable in DRIVERS:
        hit = base.copy()
        if variable == "unemployment_change":
            hit[:, MACRO_VARS.index("unemployment_rate")] += 0.02 * np.minimum(np.arange(months), 12) / 12
        else:
            hit[:, MACRO_VARS.index(variable)] += EXPECTED_SIGNS[variable] * DEFAULT_MACRO_STD[variable]
        paths.append(hit)
    return np.stack(paths)


def kept(asset_class: str, variable: str) -> bool:
    """Whether the class's calibrated link kept ``variable`` (else the sign restriction dropped it)."""
    link = load_calibrated_overlay()[asset_class]["link"]
    assert variable in link["variables"] or variable in link["dropped"], (asset_class, variable)
    return variable in link["variables"]


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    """A synthetic tape, all CURRENT at the cut-off: 500 corporate, consumer and real-estate loans and
    2 000 receivables (they mature within 6 months, so their one-year PD is about 0.05 % and needs more loans
    to be measured)."""
    from creditsim.transitions.synthetic import LoanTapeGenerator

    mix = {"corporate": 1.0, "consumer": 1.0, "real_estate": 1.0, "receivables": 4.0}
    loans, _ = LoanTapeGenerator(3500, 1, asset_mix=mix, random_seed=7, cutoff=CUTOFF).generate()
    return loans


@pytest.fixture(scope="module")
def transformer_matrices(book: pd.DataFrame) -> np.ndarray:
    """``(6, 4, T, 7, 7)`` matrices of the shipped TransitionTransformer for the book's asset-class cohorts."""
    from creditsim.transitions.transformer import PRETRAINED_DIR, TransitionTransformer

    if not (PRETRAINED_DIR / "model.safetensors").is_file():
        pytest.skip("no shipped TransitionTransformer checkpoint")
    return TransitionTransformer.from_pretrained().for_tape(book).scenario_matrices(shocked_paths())


def trajectory_pd(book: pd.DataFrame, matrices: np.ndarray, paths: np.ndarray, n_samples: int = 8,
                  seed: int = 3) -> np.ndarray:
    """One-year PD from CURRENT of every loan under each macro path, per sampled path, with the shipped
    LoanTrajectoryModel (the trajectory engine: cohort matrices plus the loan-level model).

    Estimator (importance sampling from path 0, Rao-Blackwellised): ``n_samples`` state paths per loan are
    sampled under path 0 (``generate``); each is scored teacher-forced under every path ``k``, and
    ``sum_t w_k(t) p_k(t, DEFAULT)`` over the months whose previous state is live is an unbiased estimate
    of the probability of default within months 0..11 under path ``k``, with ``w_k(t)`` the likelihood
    ratio of the sampled moves before month ``t`` (path ``k`` vs path 0). Every path is scored on the
    same sampled paths, so a small shock's effect is not buried in the noise of independent samples.

    Args:
        book: the tape; matrices: ``(P, 4, >= 12, 7, 7)`` per-class cohort matrices; paths: ``(P, >= 12, 9)``.

    Returns:
        ``(P, n_samples, L)`` float64 estimates (their mean over samples is the loan's PD).
    """
    from creditsim.features import loan_features
    from creditsim.loans.trajectory import PRETRAINED_DIR, LoanTrajectoryModel

    if not (PRETRAINED_DIR / "model.safetensors").is_file():
        pytest.skip("no shipped LoanTrajectoryModel checkpoint")
    model = LoanTrajectoryModel.from_pretrained().eval()
    feats = torch.tensor(loan_features(book, as_of=CUTOFF).to_numpy(np.float32))
    cls = np.array([ASSET_CLASSES.index(a) for a in book["asset_class"]])
    coh = [torch.as_tensor(m[cls][:, :12], dtype=torch.float32) for m in matrices]  # P x (L, 12, 7, 7)
    macro = [torch.as_tensor(p[:12], dtype=torch.float32) for p in paths]  # P x (12, 9)
    sampled = model.generate(feats, coh[0], macro[0], n_samples, seed=seed)["states"].long()  # (S, L, 12)
    out = np.zeros((len(paths), n_samples, len(book)))
    for s in range(n_samples):
        states = sampled[s]
        live = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1) <= LoanState.DPD90  # (L, 12)
        with torch.no_grad():
            logp = [torch.log_softmax(model(feats, c, states, macro_path=m)["state_logits"].double(), -1)
                    for c, m in zip(coh, macro)]  # P x (L, 12, 7)
        taken0 = logp[0].gather(-1, states[..., None])[..., 0]
        for k, lp in enumerate(logp):
            step = torch.where(live, lp.gather(-1, states[..., None])[..., 0] - taken0, 0.0)  # (L, 12)
            before = torch.cumsum(step, 1) - step  # log likelihood ratio of the moves before month t
            hazard = torch.where(live, lp[..., LoanState.DEFAULT].exp(), 0.0)
            out[k, s] = (before.exp() * hazard).sum(1).numpy()
    return out


@pytest.mark.parametrize("variable", DRIVERS)
def test_transformer_each_driver_alone_moves_pd_with_its_documented_sign(transformer_matrices, variable):
    """Worst-year PD from CURRENT of each asset-class cohort: up by at least 1 % where the class's link
    kept the driver; where the link dropped it, not down by more than 1 % (no sampling noise here: the
    band is the learnt model's own error, the Markov overlay's test allows the same 1 % upwards)."""
    k = 1 + DRIVERS.index(variable)
    results = []
    for c, cls in enumerate(ASSET_CLASSES):
        pb, ph = worst_year_pd(transformer_matrices[0, c]), worst_year_pd(transformer_matrices[k, c])
        keeps = kept(cls, variable)
        ok = ph > pb * 1.01 if keeps else ph > pb * 0.99
        results.append((cls, variable, ok, f"{variable} {cls} {'kept' if keeps else 'dropped'}: {pb:.5f} -> {ph:.5f} "
                                           f"({ph / pb - 1:+.2%})"))
    check_cells("transformer", results)


@pytest.mark.parametrize("source", ["markov", "transformer"])
def test_trajectory_engine_each_driver_alone_moves_pd_with_its_documented_sign(book, transformer_matrices, source):
    """One-year PD from CURRENT of the trajectory engine per asset class (500-2 000 loans, 8 sampled paths each,
    scored under every macro path: :func:`trajectory_pd`), on the cohort matrices of the default
    Markov chain (what ``simulate(engine="trajectory")`` runs) and of the shipped TransitionTransformer (the
    spec's full deep chain): up by more than two standard errors where the class's link kept the driver;
    not down by more than three where the link dropped it."""
    paths = shocked_paths()
    if source == "markov":
        matrices = MarkovTransitionModel.default().scenario_matrices(paths)
    else:
        matrices = transformer_matrices
    est = trajectory_pd(book, matrices, paths)  # (6, S, L)
    classes = book["asset_class"].to_numpy()
    results = []
    for k, variable in enumerate(DRIVERS, start=1):
        for cls in ASSET_CLASSES:
            m = classes == cls
            pb, ph = est[0][:, m].mean(), est[k][:, m].mean()
            diff = (est[k] - est[0])[:, m].ravel()
            se = float(diff.std(ddof=1) / np.sqrt(diff.size))
            keeps = kept(cls, variable)
            ok = ph - pb > 2 * se if keeps else ph - pb > -3 * se
            results.append((cls, variable, ok, f"{variable} {cls} {'kept' if keeps else 'dropped'}: {pb:.5f} -> "
                                               f"{ph:.5f} ({ph / pb - 1:+.2%}, {(ph - pb) / se:+.1f} se)"))
    check_cells(f"trajectory[{source}]", results)
