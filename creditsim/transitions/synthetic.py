"""Synthetic loan tapes with monthly performance panels.

:class:`LoanTapeGenerator` draws a static loan tape for four asset classes with the ranges of the shared
loan-tape spec and simulates a loan x month panel whose roll rates are the spec's base case shifted by a
macro path (from :class:`~creditsim.macro.synthetic.MacroScenarioGenerator` unless one is given). Fully
determined by one integer seed; vectorised over loans, the only Python loop runs over months.

Macro link (decision, issue 13). By default the roll rates respond to the macro path through exactly the
link of the Markov overlay, per asset class: :class:`OverlaySensitivity` with the shipped calibration of
:mod:`creditsim.transitions.calibrate` (one credit link per class on the Federal Reserve's bank
delinquency history; drivers the 12-month unemployment change, the HY spread, GDP growth, house-price
growth and the policy rate, as each class's link kept them), the overlay's move classes
(:data:`~creditsim.transitions.markov.MOVE_CLASSES`), its standardisation
(:data:`~creditsim.transitions.markov.DEFAULT_MACRO_MEAN` / ``DEFAULT_MACRO_STD``, the unemployment change
centred on 0 and scaled by :data:`~creditsim.transitions.markov.UNEMPLOYMENT_CHANGE_SD`, computed per path by
:func:`~creditsim.macro.sensitivity.with_derived`) and its clip ``|z| <= 4``. So a book drawn here has, in
expectation, the chain ``MarkovTransitionModel.default().scenario_matrices`` under the same path (up to
the loans' own onset and prepayment levels, which the chain averages), and the deep models trained on these
panels learn the link the Markov engine uses (tests/transitions/test_synthetic.py checks this per class).

Baseline tilt (decision). The overlay is centred on long-run US means (policy rate 2.24 %, house prices
+3.61 % a year), the macro generator's steady state is not (policy rate 3.5 %, house prices +4.0 %): on a
flat path at that steady state ``z_policy = +0.59`` and ``z_hpi = +0.07``, which raises the onset
log-odds by +0.060 (corporate), +0.047 (receivables), +0.024 (consumer: policy +0.025, house prices
-0.001) and +0.021 (real estate: +0.027, -0.006), the roll-forward log-odds by 0.68 times that, and
lowers the cures by 0.47 times that: 2-6 % more delinquency onset than the tape's ``pd_annual`` (the
loans' 12-month PD at ``z = 0``, i.e. at ``DEFAULT_MACRO_MEAN`` with unemployment flat). We keep the overlay's centring rather than re-centring on the generator: the
real-history link says a 3.5 % policy rate is mildly above neutral for credit, and one standardisation for
the chain and the data is the point of sharing the link.

The previous link -- the spec's three coefficients (unemployment level, HY spread, GDP growth) times 0.1,
the same for every class, centred on the generator's steady state, unclipped -- stays available as
:class:`MacroSensitivity` (``LoanTapeGenerator(sensitivity=MacroSensitivity())`` regenerates the panels
the checkpoints before issue 13 learnt from, bit for bit); it is also what
``MarkovTransitionModel.default(calibrated=False)`` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.macro.sensitivity import (SENSITIVITY_SCALE, SENSITIVITY_VARIABLES, SHOCK_SD, UNEMPLOYMENT_CHANGE, Z_CLIP,
                                        spec_betas, with_derived)
from creditsim.macro.synthetic import MacroAnchors, MacroScenarioGenerator
from creditsim.rng import check_seed, int_seed, numpy_generator
from creditsim.schema import AMORTIZATION_TYPES, RATINGS, month_start, validate_macro
from creditsim.states import ASSET_CLASSES, MACRO_VARS, N_STATES, LoanState
from creditsim.transitions.markov import DEFAULT_MACRO_MEAN, DEFAULT_MACRO_STD, MOVE_CLASSES, UNEMPLOYMENT_CHANGE_SD

__all__ = [
    "AssetClassParams",
    "ASSET_CLASS_PARAMS",
    "MacroSensitivity",
    "OverlaySensitivity",
    "LoanTapeGenerator",
    "DRIVER_JITTER_MONTHS",
    "jitter_macro_path",
]


@dataclass(frozen=True)
class AssetClassParams:
    """Calibration of one asset class (ranges from ``shared/spec/loan-tape.md``).

    Balances are drawn log-uniform in ``balance``; ``pd_annual`` and ``prepay_annual`` are the per-loan
    annual default and prepayment rates, ``lgd`` the loss given default, ``roll_rates`` the spec's
    base-case monthly roll rates ``{(from, to): probability}`` (the rest of each row stays put).
    """

    balance: tuple[float, float]
    rate: tuple[float, float]
    term: tuple[int, int]
    pd_annual: tuple[float, float]
    lgd: tuple[float, float]
    prepay_annual: tuple[float, float] | None
    roll_rates: Mapping[tuple[int, int], float]
    recovery_lag_months: int
    max_seasoning_months: int
    amortization_mix: Mapping[str, float]
    frequency_mix: Mapping[str, float] = field(default_factory=lambda: {"monthly": 1.0})
    floating_share: float = 0.0


def _rolls(c30: float, r60: float, cure30: float, r90: float, cure60: float, rd: float, cure90: float,
           prepay: float) -> dict[tuple[int, int], float]:
    return {
        (LoanState.CURRENT, LoanState.DPD30): c30,
        (LoanState.CURRENT, LoanState.PREPAID): prepay,
        (LoanState.DPD30, LoanState.DPD60): r60,
        (LoanState.DPD30, LoanState.CURRENT): cure30,
        (LoanState.DPD60, LoanState.DPD90): r90,
        (LoanState.DPD60, LoanState.CURRENT): cure60,
        (LoanState.DPD90, LoanState.DEFAULT): rd,
        (LoanState.DPD90, LoanState.CURRENT): cure90,
    }


ASSET_CLASS_PARAMS: dict[str, AssetClassParams] = {
    "corporate": AssetClassParams(
        balance=(1e5, 5e7), rate=(0.04, 0.12), term=(12, 84), pd_annual=(0.01, 0.05), lgd=(0.30, 0.60),
        prepay_annual=(0.05, 0.15),
        roll_rates=_rolls(0.015, 0.30, 0.40, 0.40, 0.20, 0.50, 0.10, 0.008),
        recovery_lag_months=12, max_seasoning_months=36,
        amortization_mix={"annuity": 0.3, "linear": 0.2, "bullet": 0.3, "interest_only": 0.2},
        frequency_mix={"monthly": 0.5, "quarterly": 0.4, "semiannual": 0.1}, floating_share=0.6,
    ),
    "consumer": AssetClassParams(
        balance=(1e3, 1e5), rate=(0.05, 0.20), term=(6, 84), pd_annual=(0.02, 0.08), lgd=(0.60, 0.90),
        prepay_annual=(0.10, 0.30),
        roll_rates=_rolls(0.025, 0.35, 0.35, 0.45, 0.15, 0.55, 0.08, 0.015),
        recovery_lag_months=6, max_seasoning_months=36,
        amortization_mix={"annuity": 0.95, "linear": 0.05}, floating_share=0.15,
    ),
    "real_estate": AssetClassParams(
        balance=(5e4, 1e7), rate=(0.02, 0.08), term=(60, 360), pd_annual=(0.005, 0.03),
        lgd=(0.15, 0.40), prepay_annual=(0.03, 0.10),
        roll_rates=_rolls(0.008, 0.25, 0.45, 0.35, 0.25, 0.45, 0.12, 0.005),
        recovery_lag_months=18, max_seasoning_months=60,
        amortization_mix={"annuity": 0.7, "interest_only": 0.2, "linear": 0.1}, floating_share=0.3,
    ),
    "receivables": AssetClassParams(
        balance=(1e3, 5e6), rate=(0.03, 0.10), term=(1, 6), pd_annual=(0.005, 0.02), lgd=(0.20, 0.50),
        prepay_annual=None,
        roll_rates=_rolls(0.010, 0.20, 0.50, 0.30, 0.30, 0.40, 0.15, 0.020),
        recovery_lag_months=3, max_seasoning_months=5,
        amortization_mix={"bullet": 1.0},
    ),
}

_DEFAULT_MIX = {"corporate": 0.30, "consumer": 0.35, "real_estate": 0.20, "receivables": 0.15}
_PERIOD = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
#: rating mix of the synthetic corporate book (a leveraged / SME lending book) and a one-year PD per
#: grade of the order of S&P's long-run averages (``load_sp_ratings``), used to set each loan's PD
_RATING_MIX = (0.01, 0.02, 0.06, 0.16, 0.30, 0.35, 0.10)
_RATING_PD = (0.0002, 0.0004, 0.0008, 0.002, 0.008, 0.035, 0.20)
_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT")
_COUNTRY_MIX = (0.45, 0.15, 0.12, 0.10, 0.06, 0.06, 0.06)
_SECTORS = (
    "industrials", "consumer_goods", "healthcare", "technology", "energy", "materials",
    "utilities", "telecoms", "retail", "transport", "business_services", "leisure",
)


@dataclass(frozen=True)
class MacroSensitivity:
    """The pre-issue-13 link: the spec's log-odds shifts per unit standardised macro shock, every class alike.

    Not the generator's default any more (that is :class:`OverlaySensitivity`); kept so that the panels
    the checkpoints before issue 13 learnt from can be regenerated, and because it is the link of
    ``MarkovTransitionModel.default(calibrated=False)`` (``shared/spec/loan-tape.md``).

    A month's standardised shocks are ``z_u = (unemployment - u*) / 0.017``,
    ``z_s = (hy_spread - hy*) / 0.025`` and ``z_g = (gdp_growth - g*) / 0.019`` with the anchors of
    :class:`MacroAnchors` and, as scales, the 1981-2019 standard deviations of the US series
    (``load_macro_history``). Each move's log-odds against staying put is shifted by
    ``scale * (b_u z_u + b_s z_s + b_g z_g)`` with the spec's coefficients:
    onset (current -> 30 dpd) (+1.5, +0.8, -2.0); roll to worse buckets and to default (+1.0, +0.5,
    -1.5); cures (-0.8, -0.3, +1.0); prepayment (-0.3, -0.2, +0.5).

    All defaults (coefficients, ``scale``, ``shock_sd`` and the three anchors) come from
    :mod:`creditsim.macro.sensitivity`, the single source shared with the uncalibrated Markov overlay;
    shocks are not clipped here (the panels stay bit-identical to the pre-issue-13 ones).

    ``scale`` (default 0.1) is our decision: the three variables move together, so applying the
    coefficients at full strength to a Fed severely adverse path (3-5 standard deviations on each
    at once) would multiply delinquency odds by e^18. With 0.1 the severely adverse peak multiplies
    current -> 30 dpd odds by about e^1.8 = 6, the order of the 2007-2009 rise of the US bank-loan
    delinquency rate (FRED ``DRALACBS``: 1.5 % -> 7.4 %).
    """

    onset: tuple[float, float, float] = spec_betas("delinquency")
    roll: tuple[float, float, float] = spec_betas("default")
    cure: tuple[float, float, float] = spec_betas("cure")
    prepay: tuple[float, float, float] = spec_betas("prepayment")
    scale: float = SENSITIVITY_SCALE
    shock_sd: tuple[float, float, float] = tuple(SHOCK_SD[v] for v in SENSITIVITY_VARIABLES)  # type: ignore[assignment]

    def shocks(self, macro: np.ndarray, anchors: MacroAnchors) -> np.ndarray:
        """``(T, 3)`` standardised (unemployment, HY spread, growth) shocks of a ``(T, 9)`` path."""
        u = macro[:, MACRO_VARS.index("unemployment_rate")] - anchors.unemployment_rate
        s = macro[:, MACRO_VARS.index("credit_spread_hy")] - anchors.credit_spread_hy
        g = macro[:, MACRO_VARS.index("gdp_growth")] - anchors.gdp_growth
        return np.stack([u, s, g], axis=1) / np.asarray(self.shock_sd)

    def logit_shift(self, macro: np.ndarray, anchors: MacroAnchors) -> np.ndarray:
        """``(T, 7, 7)`` log-odds shift of each move for each month of a ``(T, 9)`` macro path."""
        z = self.shocks(macro, anchors)
        out = np.zeros((z.shape[0], N_STATES, N_STATES))
        onset, roll, cure, prepay = (self.scale * z @ np.asarray(b) for b in
                                     (self.onset, self.roll, self.cure, self.prepay))
        out[:, LoanState.CURRENT, LoanState.DPD30] = onset
        out[:, LoanState.CURRENT, LoanState.DEFAULT] = onset
        for a, b in ((LoanState.DPD30, LoanState.DPD60), (LoanState.DPD60, LoanState.DPD90)):
            out[:, a, b] = roll
        for a in (LoanState.DPD30, LoanState.DPD60, LoanState.DPD90):
            out[:, a, LoanState.DEFAULT] = roll
            for b in range(a):
                out[:, a, b] = cure
        for a in (LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90):
            out[:, a, LoanState.PREPAID] = prepay
        return out

    def class_logit_shift(self, macro: np.ndarray, anchors: MacroAnchors) -> np.ndarray:
        """``(C, T, 7, 7)``: :meth:`logit_shift` for every asset class (C = 4, ASSET_CLASSES order; all equal)."""
        shift = self.logit_shift(macro, anchors)
        return np.broadcast_to(shift, (len(ASSET_CLASSES), *shift.shape))


@dataclass(frozen=True)
class OverlaySensitivity:
    """The Markov overlay's macro link, per asset class: the generator's default (see the module docstring).

    A month's log-odds of the move ``i -> j`` against staying put is shifted by
    ``sum_v beta_{class, move_class(i, j), v} z_v`` with the overlay's standardised shocks
    ``z_v = clip((x_v - DEFAULT_MACRO_MEAN[v]) / DEFAULT_MACRO_STD[v], -z_clip, z_clip)`` over the nine
    MACRO_VARS and, for the derived 12-month unemployment change,
    ``clip(with_derived(path)[..., -1] / UNEMPLOYMENT_CHANGE_SD, -z_clip, z_clip)`` -- the arithmetic of
    :meth:`MarkovTransitionModel.scenario_matrices` (move classes of
    :data:`~creditsim.transitions.markov.MOVE_CLASSES`).

    Args:
        sensitivities: ``{asset class: {move class: {variable: log-odds per standardised unit}}}``, every
            class of ASSET_CLASSES present (variables: MACRO_VARS or ``unemployment_change``).
        z_clip: largest absolute standardised shock (default 4, the overlay's :data:`Z_CLIP`); None = no clip.
    """

    sensitivities: Mapping[str, Mapping[str, Mapping[str, float]]]
    z_clip: float | None = Z_CLIP

    def __post_init__(self) -> None:
        missing = [c for c in ASSET_CLASSES if c not in self.sensitivities]
        if missing:
            raise ConfigError(f"sensitivities: asset classes {missing} missing; expected all of {list(ASSET_CLASSES)}")
        known = (*MACRO_VARS, UNEMPLOYMENT_CHANGE)
        for cls, per_move in self.sensitivities.items():
            for move, per_var in per_move.items():
                if move not in MOVE_CLASSES:
                    raise ConfigError(f"sensitivities[{cls!r}]: unknown move class {move!r}; expected one of {list(MOVE_CLASSES)}")
                bad = [v for v in per_var if v not in known]
                if bad:
                    raise ConfigError(f"sensitivities[{cls!r}][{move!r}]: unknown variable(s) {bad}; expected {list(known)}")

    @classmethod
    def calibrated(cls) -> "OverlaySensitivity":
        """The shipped calibration (:func:`creditsim.transitions.overlay_file.calibrated_sensitivities`), the
        overlay of ``MarkovTransitionModel.default()``."""
        from creditsim.transitions.overlay_file import calibrated_sensitivities  # reads the shipped JSON

        return cls(calibrated_sensitivities())

    def shocks(self, macro: np.ndarray) -> np.ndarray:
        """``(T, 10)`` clipped standardised shocks of a ``(T, 9)`` path: MACRO_VARS, then the unemployment change."""
        x = np.asarray(macro, dtype=np.float64)
        mean = np.array([DEFAULT_MACRO_MEAN[v] for v in MACRO_VARS])
        std = np.array([DEFAULT_MACRO_STD[v] for v in MACRO_VARS])
        z = np.concatenate([(x - mean) / std, with_derived(x)[..., -1:] / UNEMPLOYMENT_CHANGE_SD], axis=-1)
        return z if self.z_clip is None else np.clip(z, -self.z_clip, self.z_clip)

    def class_logit_shift(self, macro: np.ndarray, anchors: MacroAnchors | None = None) -> np.ndarray:
        """``(C, T, 7, 7)`` log-odds shift of each move, per asset class (ASSET_CLASSES order) and month of
        a ``(T, 9)`` macro path. ``anchors`` is unused (the overlay's centring applies)."""
        z = self.shocks(macro)  # (T, 10)
        variables = (*MACRO_VARS, UNEMPLOYMENT_CHANGE)
        out = np.zeros((len(ASSET_CLASSES), z.shape[0], N_STATES, N_STATES))
        for c, name in enumerate(ASSET_CLASSES):
            for move, per_var in self.sensitivities[name].items():
                beta = np.array([per_var.get(v, 0.0) for v in variables])
                out[c] += (z @ beta)[:, None, None] * MOVE_CLASSES[move]
        return out


#: months over which the drift of :func:`jitter_macro_path` builds up
DRIVER_JITTER_MONTHS: int = 24
#: floors (decimals) that keep a jittered path economically possible: unemployment, rates and spreads
_JITTER_FLOORS: dict[str, float] = {"unemployment_rate": 0.02, "policy_rate": 0.0, "yield_10y": 0.0,
                                    "credit_spread_ig": 0.002, "credit_spread_hy": 0.01, "default_rate": 0.0}


def jitter_macro_path(path: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A macro path with an independent level shift and drift on every variable (training data design).

    In the scenario generator's paths the drivers move together (unemployment rises as GDP falls, spreads
    widen and the policy rate is cut), so a model trained on them cannot tell one driver's effect from
    another's -- the pre-issue-13 transformer learnt lower PD for higher rates that way. This adds, per
    variable ``v``, ``scale x sd_v x (a_v + b_v min(t, 24) / 24)`` with ``a_v, b_v ~ N(0, 1)`` independent
    across variables (``sd_v``: the overlay's :data:`~creditsim.transitions.markov.DEFAULT_MACRO_STD`), then
    floors unemployment (2 %), rates (0) and spreads (0.2 / 1 %). The drift also moves the 12-month
    unemployment change independently of the level.

    Args:
        path: ``(T, 9)`` decimals, MACRO_VARS order.
        rng: the stream of this path; draws ``(2, 9)`` standard normals.
        scale: size of the perturbation in standard deviations, >= 0 (0 returns ``path``).

    Returns:
        ``(T, 9)`` float64.
    """
    x = np.asarray(path, dtype=np.float64)
    if not (np.isfinite(scale) and scale >= 0):
        raise ConfigError(f"scale must be a finite number >= 0, got {scale!r}")
    ab = rng.standard_normal((2, len(MACRO_VARS)))
    if scale == 0:
        return x.copy()
    sd = np.array([DEFAULT_MACRO_STD[v] for v in MACRO_VARS])
    ramp = np.minimum(np.arange(x.shape[0]), DRIVER_JITTER_MONTHS) / DRIVER_JITTER_MONTHS
    out = x + scale * sd * (ab[0] + ab[1] * ramp[:, None])
    for v, floor in _JITTER_FLOORS.items():
        j = MACRO_VARS.index(v)
        out[:, j] = np.maximum(out[:, j], floor)
    return out


def _base_logits(params: AssetClassParams) -> np.ndarray:
    """``(7, 7)`` log-odds of each move against staying put; ``-inf`` where the base case has none."""
    p = np.zeros((N_STATES, N_STATES))
    for (a, b), v in params.roll_rates.items():
        p[a, b] = v
    stay = 1.0 - p.sum(axis=1)
    with np.errstate(divide="ignore"):
        eta = np.log(p) - np.log(stay)[:, None]
    eta[np.arange(N_STATES), np.arange(N_STATES)] = 0.0
    return eta


def _row_probs(eta: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of log-odds against staying put (stay has log-odds 0)."""
    m = np.max(eta, axis=-1, keepdims=True)
    w = np.exp(eta - m)
    return w / w.sum(axis=-1, keepdims=True)


def _annual_pd(eta: np.ndarray) -> np.ndarray:
    """12-month default probability from CURRENT for ``(..., 7, 7)`` monthly log-odds."""
    p = _row_probs(eta)
    return np.linalg.matrix_power(p, 12)[..., LoanState.CURRENT, LoanState.DEFAULT]


class _Schedule:
    """Contractual balance and cumulative interest after ``k`` months, vectorised over loans.

    Payments fall every ``period`` months; ``B(k)`` is the scheduled principal balance after the
    payments due in the first ``k`` months and ``CI(k)`` the scheduled interest paid by then.
    ``annuity``: level payments; ``linear``: equal principal parts; ``bullet``: interest only, all
    principal at maturity; ``interest_only``: interest only for the first half of the periods, then an
    annuity over the second half.
    """

    def __init__(self, balance: np.ndarray, rate: np.ndarray, term: np.ndarray, period: np.ndarray,
                 amort: np.ndarray) -> None:
        self.b0 = balance
        self.period = period
        self.term = term
        self.n = term // period  # number of payment periods
        self.ip = rate * period / 12.0  # periodic rate (30/360)
        self.amort = amort  # index into AMORTIZATION_TYPES
        self.n_io = np.where(amort == AMORTIZATION_TYPES.index("interest_only"), self.n // 2, 0)
        self.n_io = np.where(amort == AMORTIZATION_TYPES.index("bullet"), self.n, self.n_io)
        n_am = np.maximum(self.n - self.n_io, 1)
        growth = (1.0 + self.ip) ** n_am
        self._growth_am = growth
        self.pmt = balance * self.ip * growth / (growth - 1.0)

    def __call__(self, months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B(k), CI(k))`` for ``k = months`` (int array, one per loan), currency units."""
        j = np.minimum(months // self.period, self.n)
        b0, ip = self.b0, self.ip
        linear = self.amort == AMORTIZATION_TYPES.index("linear")
        # linear amortisation
        b_lin = b0 * (1.0 - j / self.n)
        ci_lin = ip * b0 * (j - j * (j - 1) / (2.0 * self.n))
        # annuity after n_io interest-only periods (n_io = 0: plain annuity; n_io = n: bullet)
        j_io = np.minimum(j, self.n_io)
        j_am = np.maximum(j - self.n_io, 0)
        g_j = (1.0 + ip) ** j_am
        b_am = b0 * (self._growth_am - g_j) / (self._growth_am - 1.0)
        b_am = np.where(j >= self.n, 0.0, b_am)
        ci_am = ip * b0 * j_io + j_am * self.pmt - (b0 - b_am)
        bullet_done = (self.n_io == self.n) & (j >= self.n)
        b_am = np.where(self.n_io == self.n, np.where(bullet_done, 0.0, b0), b_am)
        ci_am = np.where(self.n_io == self.n, ip * b0 * j, ci_am)
        bal = np.where(linear, b_lin, b_am)
        ci = np.where(linear, ci_lin, ci_am)
        return np.maximum(bal, 0.0), ci


class _TapeDraw:
    """Per-loan attributes of a tape being drawn: ``(n,)`` arrays filled class by class.

    Money in currency units, rates, PDs and LGDs as decimals, terms and seasoning in months (int64),
    ``period`` = months between payments, ``amort`` an index into AMORTIZATION_TYPES. NaN (or None)
    where a class has no such attribute; ``risk`` is the loan's risk percentile in its class, 0 = safest.
    """

    def __init__(self, cls: np.ndarray) -> None:
        n = len(cls)
        self.cls = cls  # index into ASSET_CLASSES
        self.pd_annual = np.empty(n)
        self.balance = np.empty(n)
        self.rate = np.empty(n)
        self.term = np.empty(n, dtype=np.int64)
        self.lgd = np.empty(n)
        self.prepay = np.full(n, np.nan)
        self.period = np.ones(n, dtype=np.int64)
        self.amort = np.zeros(n, dtype=np.int64)
        self.floating = np.zeros(n, dtype=bool)
        self.seasoning = np.zeros(n, dtype=np.int64)
        self.ltv = np.full(n, np.nan)
        self.dti_dscr = np.full(n, np.nan)
        self.ext_score = np.full(n, np.nan)
        self.rating = np.full(n, None, dtype=object)
        self.collateral = np.full(n, "unsecured", dtype=object)
        self.borrower = np.full(n, "consumer", dtype=object)
        self.sector = np.full(n, None, dtype=object)
        self.dilution = np.full(n, np.nan)
        self.risk = np.empty(n)


def _draw_class(rng: np.random.Generator, tape: _TapeDraw, name: str, idx: np.ndarray, uu: np.ndarray) -> None:
    """Fill ``tape`` at the loans ``idx`` of asset class ``name`` from their ``(m, 12)`` uniforms ``uu``.

    Column ``k`` of ``uu`` drives one attribute (0 risk, 1 rate noise, 2 LGD, 3 rate type, 4 term,
    5 seasoning, 6 prepayment, 7 balance, 8-11 class-specific). ``rng`` is drawn from in this order
    (part of the seed contract): corporate rating grade and PD noise, amortisation type, payment
    frequency, then the corporate borrower draws of :func:`_draw_corporate_borrowers`.
    """
    p = ASSET_CLASS_PARAMS[name]
    r = _draw_risk(rng, tape, name, p, idx, uu)
    tape.risk[idx] = r
    # rates rise with risk (70 % risk, 30 % noise)
    lo, hi = p.rate
    tape.rate[idx] = lo + (hi - lo) * np.clip(0.7 * r + 0.3 * uu[:, 1], 0.0, 1.0)
    _draw_schedule_terms(rng, tape, name, p, idx, uu)
    if p.prepay_annual is not None:
        plo, phi = p.prepay_annual
        tape.prepay[idx] = plo + (phi - plo) * uu[:, 6]
    lgd_pos = _BORROWER_DRAWS[name](rng, tape, p, idx, uu, r)
    lo, hi = p.lgd
    tape.lgd[idx] = lo + (hi - lo) * lgd_pos


def _draw_risk(rng: np.random.Generator, tape: _TapeDraw, name: str, p: AssetClassParams, idx: np.ndarray,
               uu: np.ndarray) -> np.ndarray:
    """Set ``pd_annual`` (and the corporate ``rating``) of the loans ``idx``; return their ``(m,)`` risk percentile.

    Corporate loans draw a grade from :data:`_RATING_MIX` and a PD around the grade's long-run PD
    (log-normal noise, sd 0.3); the other classes place the PD log-uniformly in the class range.
    """
    m = len(idx)
    if name == "corporate":
        grade = rng.choice(len(RATINGS), size=m, p=np.array(_RATING_MIX))
        pdv = np.asarray(_RATING_PD)[grade] * np.exp(0.3 * rng.standard_normal(m))
        tape.pd_annual[idx] = np.clip(pdv, 1e-4, 0.35)
        tape.rating[idx] = np.asarray(RATINGS, dtype=object)[grade]
        return (grade + uu[:, 0]) / len(RATINGS)
    lo, hi = p.pd_annual
    r = uu[:, 0]
    tape.pd_annual[idx] = lo * (hi / lo) ** r
    return r


def _draw_schedule_terms(rng: np.random.Generator, tape: _TapeDraw, name: str, p: AssetClassParams,
                         idx: np.ndarray, uu: np.ndarray) -> None:
    """Set amortisation type, payment period, rate type, term and seasoning (months) of the loans ``idx``."""
    m = len(idx)
    amix = np.array([p.amortization_mix.get(a, 0.0) for a in AMORTIZATION_TYPES])
    tape.amort[idx] = rng.choice(len(AMORTIZATION_TYPES), size=m, p=amix / amix.sum())
    fnames = list(p.frequency_mix)
    fmix = np.array([p.frequency_mix[f] for f in fnames])
    per = np.array([_PERIOD[f] for f in fnames])[rng.choice(len(fnames), size=m, p=fmix / fmix.sum())]
    tape.period[idx] = per
    tape.floating[idx] = uu[:, 3] < p.floating_share
    # terms: whole payment periods within the class range (real estate in whole years)
    tlo, thi = p.term
    step = np.maximum(per, 12) if name == "real_estate" else per
    n_lo = np.ceil(tlo / step).astype(np.int64)
    n_hi = np.floor(thi / step).astype(np.int64)
    tape.term[idx] = (n_lo + np.floor(uu[:, 4] * (n_hi - n_lo + 1)).astype(np.int64)) * step
    tape.seasoning[idx] = np.floor(uu[:, 5] * np.minimum(tape.term[idx], p.max_seasoning_months + 1)).astype(np.int64)
    tape.seasoning[idx] = np.minimum(tape.seasoning[idx], tape.term[idx] - 1)


# Borrower draws per asset class: each sets balance, borrower type, collateral and the class's
# underwriting ratios of the loans ``idx`` and returns their LGD position in the class range,
# ``(m,)`` in [0, 1] (``uu[:, 2]`` unless collateral moves it); ``r`` is the risk percentile.

def _draw_corporate_borrowers(rng: np.random.Generator, tape: _TapeDraw, p: AssetClassParams, idx: np.ndarray,
                              uu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """SME / mid-market / large-corporate balances, collateral (80 % secured), LTV, DSCR and sector."""
    m = len(idx)
    blo, bhi = p.balance
    btype = rng.choice(3, size=m, p=[0.4, 0.4, 0.2])
    edges = np.array([blo, 2e6, 1.5e7, bhi])
    b_lo, b_hi = edges[btype], edges[btype + 1]
    tape.balance[idx] = b_lo * (b_hi / b_lo) ** uu[:, 7]
    tape.borrower[idx] = np.array(["sme", "midmarket", "large_corporate"], dtype=object)[btype]
    secured = uu[:, 8] >= 0.2
    ctype = np.array(["real_estate", "equipment", "inventory", "receivables"], dtype=object)
    tape.collateral[idx] = np.where(secured, ctype[rng.integers(0, 4, m)], "unsecured")
    tape.ltv[idx] = np.where(secured, 0.5 + 0.3 * np.clip(0.6 * r + 0.4 * uu[:, 9], 0, 1), np.nan)
    tape.dti_dscr[idx] = 2.5 - 1.4 * np.clip(0.6 * r + 0.4 * uu[:, 10], 0, 1)
    tape.sector[idx] = np.asarray(_SECTORS, dtype=object)[rng.integers(0, len(_SECTORS), m)]
    # secured loans recover more: LGD in the lower part of the range
    lgd_pos = uu[:, 2]
    return np.where(secured, 0.7 * lgd_pos, 0.4 + 0.6 * lgd_pos)


def _draw_consumer_borrowers(rng: np.random.Generator, tape: _TapeDraw, p: AssetClassParams, idx: np.ndarray,
                             uu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Balances, auto loans (30 %, equipment collateral with LTV), DTI and a bureau score (300-850)."""
    blo, bhi = p.balance
    tape.balance[idx] = blo * (bhi / blo) ** uu[:, 7]
    auto = uu[:, 8] < 0.3
    tape.collateral[idx] = np.where(auto, "equipment", "unsecured")
    tape.ltv[idx] = np.where(auto, 0.6 + 0.5 * uu[:, 9], np.nan)
    tape.dti_dscr[idx] = 0.2 + 0.3 * np.clip(0.6 * r + 0.4 * uu[:, 10], 0, 1)
    tape.ext_score[idx] = np.round(np.clip(850 - 550 * np.clip(0.75 * r + 0.25 * uu[:, 11], 0, 1), 300, 850))
    return uu[:, 2]


def _draw_real_estate_borrowers(rng: np.random.Generator, tape: _TapeDraw, p: AssetClassParams, idx: np.ndarray,
                                uu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Balances (commercial above 1e6), real-estate collateral, LTV and DSCR; LGD rises with LTV."""
    blo, bhi = p.balance
    tape.balance[idx] = blo * (bhi / blo) ** uu[:, 7]
    commercial = tape.balance[idx] > 1e6
    tape.borrower[idx] = np.where(commercial, np.where(uu[:, 8] < 0.5, "sme", "midmarket"), "consumer")
    tape.collateral[idx] = "real_estate"
    ltv_pos = np.clip(0.6 * r + 0.4 * uu[:, 9], 0, 1)
    tape.ltv[idx] = 0.5 + 0.4 * ltv_pos
    tape.dti_dscr[idx] = 1.8 - 0.8 * np.clip(0.6 * r + 0.4 * uu[:, 10], 0, 1)
    # LGD rises with LTV (thinner equity cushion)
    return np.clip(0.7 * ltv_pos + 0.3 * uu[:, 2], 0, 1)


def _draw_receivables_borrowers(rng: np.random.Generator, tape: _TapeDraw, p: AssetClassParams,
                                idx: np.ndarray, uu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Balances, borrower size by balance, receivables collateral and a dilution rate (2-10 %)."""
    blo, bhi = p.balance
    tape.balance[idx] = blo * (bhi / blo) ** uu[:, 7]
    btype = np.searchsorted(np.array([2e5, 2e6]), tape.balance[idx])
    tape.borrower[idx] = np.array(["sme", "midmarket", "large_corporate"], dtype=object)[btype]
    tape.collateral[idx] = "receivables"
    tape.dilution[idx] = 0.02 + 0.08 * uu[:, 9]
    return uu[:, 2]


_BORROWER_DRAWS = {
    "corporate": _draw_corporate_borrowers,
    "consumer": _draw_consumer_borrowers,
    "real_estate": _draw_real_estate_borrowers,
    "receivables": _draw_receivables_borrowers,
}


def _loan_logits(cls: np.ndarray, pd_annual: np.ndarray, prepay: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each loan's base-case monthly log-odds, shifted to its own PD and prepayment rate.

    Args:
        cls: ``(n,)`` asset class index; pd_annual: ``(n,)`` drawn 12-month PD; prepay: ``(n,)`` drawn
            annual prepayment rate (NaN for receivables).

    Returns:
        ``(loan_eta, model_pd, model_pp)``: ``(n, 7, 7)`` log-odds against staying put, the exact
        12-month PD from CURRENT they imply ``(n,)`` and the annual prepayment rate ``(n,)``.
    """
    base = np.stack([_base_logits(ASSET_CLASS_PARAMS[c]) for c in ASSET_CLASSES])
    pd_class = _annual_pd(base)
    onset_shift = np.log(pd_annual / pd_class[cls])
    base_pp = np.array([ASSET_CLASS_PARAMS[c].roll_rates[(LoanState.CURRENT, LoanState.PREPAID)] for c in ASSET_CLASSES])
    pp_class = 1.0 - (1.0 - base_pp) ** 12
    # receivables have no prepayment range in the spec: they keep the base-case roll rate
    pp_shift = np.where(np.isfinite(prepay), np.log(np.nan_to_num(prepay, nan=1.0) / pp_class[cls]), 0.0)
    loan_eta = base[cls].copy()
    loan_eta[:, LoanState.CURRENT, LoanState.DPD30] += onset_shift
    loan_eta[:, LoanState.CURRENT, LoanState.PREPAID] += pp_shift
    model_pd = _annual_pd(loan_eta)
    model_pp = np.where(np.isfinite(prepay), prepay, pp_class[cls])
    return loan_eta, model_pd, model_pp


def _next_states(rng: np.random.Generator, loan_eta: np.ndarray, shift_t: np.ndarray, cls: np.ndarray,
                 state: np.ndarray, live: np.ndarray, due: np.ndarray) -> np.ndarray:
    """``(n,)`` states at the end of one month from the states ``state`` at its start.

    ``loan_eta`` ``(n, 7, 7)`` are the loans' log-odds, ``shift_t`` ``(C, 7, 7)`` the month's macro
    shift per asset class and ``cls`` ``(n,)`` each loan's class index. One uniform is drawn for every loan, live or not, so the stream never depends on who is
    live; absorbed loans keep their state and a live loan ``due`` (final month) that would be
    CURRENT matures.
    """
    eta = loan_eta[np.arange(len(state)), state] + shift_t[cls, state]  # (n, 7)
    probs = _row_probs(eta)
    cum = np.cumsum(probs, axis=1)
    draw = rng.random(len(state))
    new = np.minimum((draw[:, None] >= cum).sum(axis=1), N_STATES - 1)
    new = np.where(live, new, state)
    return np.where(due & (new == LoanState.CURRENT), LoanState.MATURED, new)


_LIVE_STATES = np.array([LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90])
#: panel amounts booked in the month they occur (recoveries are booked after the class's lag)
_PANEL_AMOUNTS = ("current_balance", "scheduled_payment", "actual_payment", "principal_paid", "interest_paid",
                  "prepayment_amount", "loss_amount")


def _month_cash_flows(sched: _Schedule, extras: dict[str, np.ndarray], live: np.ndarray, new: np.ndarray,
                      q: np.ndarray, bal_q: np.ndarray, ci_q: np.ndarray,
                      age: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One month's cash flows (currency units, ``(n,)`` each) of loans moving to the states ``new``.

    ``q`` is each loan's schedule position (months of instalments paid), ``bal_q`` / ``ci_q`` its
    balance and cumulative scheduled interest there, ``age`` its months since origination at the
    month's end. Returns ``(flows, q_new, ci_new)``: the panel amounts keyed by column name plus
    ``"recovery"`` (the amount a default of this month recovers after the lag, 0 otherwise), and the
    schedule position and cumulative interest to carry into the next month.
    """
    term, lgd = extras["term"], extras["lgd"]
    # scheduled payment due this month (contractual, whether paid or not)
    k = np.minimum(age, term)
    b_k, ci_k = sched(k)
    b_k1, ci_k1 = sched(k - 1)
    sched_pay = np.where(live & (age <= term), (b_k1 - b_k) + (ci_k - ci_k1), 0.0)

    # a delinquent loan has paid all but ``bucket`` instalments; a cure catches up
    stays_live = np.isin(new, _LIVE_STATES)
    q_new = np.where(stays_live, np.maximum(q, np.minimum(age, term) - new), q)
    q_new = np.where(new == LoanState.MATURED, term, q_new)
    b_new, ci_new = sched(q_new)
    b_new = np.where(new == LoanState.MATURED, 0.0, b_new)
    paying = live & (stays_live | (new == LoanState.MATURED))
    principal = np.where(paying, bal_q - b_new, 0.0)
    interest = np.where(paying, ci_new - ci_q, 0.0)
    prepaid = live & (new == LoanState.PREPAID)
    accrued = age - extras["period"] * (q // extras["period"])
    interest = np.where(prepaid, bal_q * extras["rate"] / 12.0 * accrued, interest)
    prepay_amt = np.where(prepaid, bal_q, 0.0)
    defaulted = live & (new == LoanState.DEFAULT)
    flows = {
        "current_balance": np.where(stays_live, b_new, 0.0),
        "scheduled_payment": sched_pay,
        "principal_paid": principal,
        "interest_paid": interest,
        "prepayment_amount": prepay_amt,
        "actual_payment": principal + interest + prepay_amt,
        "loss_amount": np.where(defaulted, lgd * bal_q, 0.0),
        "recovery": np.where(defaulted, (1.0 - lgd) * bal_q, 0.0),
    }
    return flows, q_new, np.where(stays_live, ci_new, ci_q)


class LoanTapeGenerator:
    """Synthetic loan tape and loan x month performance panel.

    Static tape: ``n_loans`` loans split over the four asset classes by ``asset_mix`` with the ranges
    of ``shared/spec/loan-tape.md`` (:data:`ASSET_CLASS_PARAMS`), every required column of
    :data:`creditsim.schema.REQUIRED_LOAN_COLUMNS`, the optional ones and three extra ones:
    ``pd_annual`` (the loan's base-case 12-month default probability), ``prepay_annual`` and
    ``dilution_rate`` (receivables only). All loans are CURRENT at the cut-off; ``current_balance`` is
    the scheduled balance at the cut-off.

    Panel: one row per loan and month ``t = 0 .. n_months - 1`` after the cut-off (``reporting_month``
    = first day of the month the row reports on; the state is the one at the end of that month). The
    panel is rectangular: a loan that has defaulted, prepaid or matured keeps reporting its absorbing
    state with zero balance, so it has ``n_loans * n_months`` rows. Monthly moves follow a multinomial
    logit against staying put: the spec's base-case roll rates per asset class, shifted by the class's
    macro link (``sensitivity``) for the month's macro values and, for the onset of delinquency, by the
    loan's own risk ``log(pd_annual / pd_class)`` (``pd_class`` = the 12-month PD implied by the
    base-case roll rates), and for prepayment by ``log(prepay_annual / prepay_class)``. Moves the
    base case does not have keep probability 0, so only :data:`~creditsim.states.ALLOWED_TRANSITIONS`
    occur. A live loan that is (or cures to) CURRENT in its final month moves to MATURED.

    Cash flows (currency units, float64): a CURRENT loan pays its scheduled instalments; staying in a
    delinquency bucket pays one instalment but not the arrears, advancing a bucket pays nothing, a
    cure pays the arrears it clears (so the number of missed instalments equals the bucket). PREPAID
    pays the balance plus accrued interest (``prepayment_amount``); MATURED pays the balance left
    (``principal_paid``, balloon included); DEFAULT writes off the balance with ``loss_amount = lgd x
    balance`` in the month of default and ``recovery_amount = (1 - lgd) x balance`` after the class's
    recovery lag (if it falls inside the panel). Floating coupons are held at the cut-off fixing.
    ``days_past_due`` is 30 x the delinquency bucket, 120 once defaulted and 0 once prepaid or matured.
    ``loan_id`` in the panel is a pandas Categorical over the tape's ids (cheap for millions of rows;
    Parquet stores it as a dictionary column).

    Args:
        n_loans: number of loans, >= 1.
        n_months: panel length in months, >= 1.
        asset_mix: ``{asset_class: weight}``; default 30 % corporate, 35 % consumer, 20 % real
            estate, 15 % receivables. Counts are the rounded shares (largest remainders).
        random_seed: one integer seed for everything (tape, panel and a generated macro path).
        macro_path: ``(>= n_months, 9)`` array (or ``(1, T, 9)``) or a macro DataFrame in MACRO_VARS
            order, month 0 = the first month after the cut-off; default: a baseline path of
            :class:`MacroScenarioGenerator` drawn from the seed.
        cutoff: cut-off date (month); the first panel month. Default 2025-01.
        sensitivity: the macro link of the roll rates; default :meth:`OverlaySensitivity.calibrated`
            (the Markov overlay's calibrated link per asset class); :class:`MacroSensitivity` gives the
            pre-issue-13 panels.
    """

    def __init__(
        self,
        n_loans: int,
        n_months: int,
        asset_mix: Mapping[str, float] | None = None,
        random_seed: int = 0,
        macro_path: np.ndarray | pd.DataFrame | None = None,
        cutoff: object = "2025-01-01",
        sensitivity: OverlaySensitivity | MacroSensitivity | None = None,
    ) -> None:
        for name, value in (("n_loans", n_loans), ("n_months", n_months)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.n_loans = int(n_loans)
        self.n_months = int(n_months)
        self.random_seed = check_seed(random_seed)
        self.asset_mix = self._check_mix(asset_mix)
        self.cutoff = month_start(cutoff, "cutoff")
        if sensitivity is not None and not isinstance(sensitivity, (OverlaySensitivity, MacroSensitivity)):
            raise ConfigError("sensitivity: expected an OverlaySensitivity or a MacroSensitivity, "
                              f"got {type(sensitivity).__name__}")
        self.sensitivity = sensitivity if sensitivity is not None else OverlaySensitivity.calibrated()
        self.anchors = MacroAnchors()
        self.macro_path_ = self._check_macro(macro_path)

    # -- validation -------------------------------------------------------------------------------
    @staticmethod
    def _check_mix(asset_mix: Mapping[str, float] | None) -> dict[str, float]:
        mix = dict(_DEFAULT_MIX if asset_mix is None else asset_mix)
        unknown = [k for k in mix if k not in ASSET_CLASSES]
        if unknown:
            raise ConfigError(f"asset_mix has unknown asset class(es) {unknown}; expected {list(ASSET_CLASSES)}")
        weights = np.array([float(mix.get(c, 0.0)) for c in ASSET_CLASSES])
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(f"asset_mix weights must be finite, >= 0 and not all 0, got {mix}")
        return {c: w / weights.sum() for c, w in zip(ASSET_CLASSES, weights)}

    def _check_macro(self, macro_path: np.ndarray | pd.DataFrame | None) -> np.ndarray | None:
        if macro_path is None:
            return None
        if isinstance(macro_path, pd.DataFrame):
            arr = validate_macro(macro_path).to_numpy(np.float64)
        else:
            arr = np.asarray(macro_path, dtype=np.float64)
            if arr.ndim == 3 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 2 or arr.shape[1] != len(MACRO_VARS):
                raise DataError(f"macro_path must have shape (n_months, {len(MACRO_VARS)}), got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise DataError("macro_path has NaN or infinite values")
        if arr.shape[0] < self.n_months:
            raise DataError(f"macro_path has {arr.shape[0]} months; expected at least n_months={self.n_months}")
        return arr[: self.n_months]

    # -- generation -------------------------------------------------------------------------------
    def generate(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Draw the tape and simulate the panel.

        Returns:
            ``(loans_df, panel_df)``: the loan tape (``n_loans`` rows, RangeIndex, sorted by
            ``loan_id``) and the panel (``n_loans * n_months`` rows sorted by loan and month, loan-major).
        """
        macro = self.macro_path_
        if macro is None:
            gen = MacroScenarioGenerator(self.n_months, start=self.cutoff, anchors=self.anchors)
            macro = gen.generate_scenario("baseline", 1, seed=int_seed(self.random_seed, 2))[0]
        self.macro_used_ = macro
        loans, extras = self._draw_tape(numpy_generator(self.random_seed, 0))
        panel = self._simulate_panel(loans, extras, macro, numpy_generator(self.random_seed, 1))
        return loans, panel

    def _class_counts(self) -> np.ndarray:
        w = np.array([self.asset_mix[c] for c in ASSET_CLASSES])
        raw = w * self.n_loans
        counts = np.floor(raw).astype(np.int64)
        rest = self.n_loans - counts.sum()
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:rest]] += 1
        return counts

    def _draw_tape(self, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Draw the static tape; returns ``(loans_df, extras)`` with the ``(n,)`` arrays the panel needs.

        ``rng`` is drawn from in this order (part of the seed contract: reordering changes every
        tape): the class permutation, ``(n, 12)`` uniforms, the class draws of :func:`_draw_class` in
        ASSET_CLASSES order, internal-score noise, country, originator.
        """
        n = self.n_loans
        cls = np.repeat(np.arange(len(ASSET_CLASSES)), self._class_counts())
        cls = cls[rng.permutation(n)]
        u = rng.random((n, 12))  # independent uniforms, one column per attribute
        tape = _TapeDraw(cls)
        for c, name in enumerate(ASSET_CLASSES):
            idx = np.flatnonzero(cls == c)
            if len(idx):
                _draw_class(rng, tape, name, idx, u[idx])

        # the engine uses exactly the rounded figures the tape reports, so the tape reproduces the panel
        tape.balance = np.round(tape.balance, 2)
        tape.rate = np.round(tape.rate, 5)
        internal = np.round(np.clip(100.0 * (1.0 - tape.risk) + 5.0 * rng.standard_normal(n), 0.0, 100.0), 1)
        country = np.asarray(_COUNTRIES, dtype=object)[rng.choice(len(_COUNTRIES), size=n, p=np.array(_COUNTRY_MIX))]
        originator = np.char.add("ORIG", np.char.zfill(rng.integers(1, 6, n).astype(str), 2)).astype(object)
        # base-case logits and each loan's PD-implied onset shift (exact 12-month PD)
        loan_eta, model_pd, model_pp = _loan_logits(cls, tape.pd_annual, tape.prepay)
        loans = self._tape_frame(tape, internal, country, originator, model_pd, model_pp)
        extras = {
            "cls": cls,
            "seasoning": tape.seasoning,
            "period": tape.period,
            "amort": tape.amort,
            "loan_eta": loan_eta,
            "rate": tape.rate,
            "balance": tape.balance,
            "term": tape.term,
            "lgd": loans["lgd_assumption"].to_numpy(),
        }
        return loans, extras

    def _tape_frame(self, tape: _TapeDraw, internal: np.ndarray, country: np.ndarray, originator: np.ndarray,
                    model_pd: np.ndarray, model_pp: np.ndarray) -> pd.DataFrame:
        """The loan tape DataFrame (one row per loan, ``loan_id`` order) of the drawn attributes."""
        n = self.n_loans
        sched = _Schedule(tape.balance, tape.rate, tape.term, tape.period, tape.amort)
        cur_bal, _ = sched(tape.seasoning)
        cur_bal = np.round(cur_bal, 2)
        policy0 = self.anchors.policy_rate
        spread = np.where(tape.floating, np.clip(np.round((tape.rate - policy0) * 1e4), 50.0, 800.0), np.nan)
        ltv = tape.ltv
        coll_value = np.where(np.isfinite(ltv), np.round(tape.balance / np.where(np.isfinite(ltv), ltv, 1.0), 2), 0.0)

        cut = np.datetime64(self.cutoff.strftime("%Y-%m"), "M")
        orig_m = cut - tape.seasoning.astype("timedelta64[M]")
        mat_m = orig_m + tape.term.astype("timedelta64[M]")
        width = max(6, len(str(n)))
        loan_ids = np.char.add("L", np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)
        inv_period = {v: k for k, v in _PERIOD.items()}
        return pd.DataFrame(
            {
                "loan_id": loan_ids,
                "origination_date": orig_m.astype("datetime64[ns]"),
                "maturity_date": mat_m.astype("datetime64[ns]"),
                "original_balance": tape.balance,
                "interest_rate": tape.rate,
                "rate_type": np.where(tape.floating, "floating", "fixed").astype(object),
                "payment_frequency": np.array([inv_period[int(x)] for x in (1, 3, 6, 12)], dtype=object)[
                    np.searchsorted(np.array([1, 3, 6, 12]), tape.period)
                ],
                "amortization_type": np.asarray(AMORTIZATION_TYPES, dtype=object)[tape.amort],
                "asset_class": np.asarray(ASSET_CLASSES, dtype=object)[tape.cls],
                "term_months": tape.term,
                "geography_country": country,
                "borrower_type": tape.borrower,
                "originator_id": originator,
                "vintage": pd.DatetimeIndex(orig_m.astype("datetime64[ns]")).strftime("%Y-%m").to_numpy(object),
                "spread_bps": spread,
                "ltv_origination": np.round(ltv, 4),
                "dti_dscr_origination": np.round(tape.dti_dscr, 4),
                "internal_score": internal,
                "external_score": tape.ext_score,
                "industry_sector": tape.sector,
                "collateral_type": tape.collateral,
                "collateral_value": coll_value,
                "rating": tape.rating,
                "lgd_assumption": np.round(tape.lgd, 4),
                "current_balance": cur_bal,
                "pd_annual": model_pd,
                "prepay_annual": model_pp,
                "dilution_rate": tape.dilution,
            }
        )

    def _simulate_panel(self, loans: pd.DataFrame, extras: dict[str, np.ndarray], macro: np.ndarray,
                        rng: np.random.Generator) -> pd.DataFrame:
        """Simulate the loan x month panel from the tape's ``extras`` and a ``(n_months, 9)`` macro path.

        The only Python loop runs over months; each month draws one uniform per loan from ``rng``.
        """
        n, n_months = self.n_loans, self.n_months
        term, seasoning = extras["term"], extras["seasoning"]
        sched = _Schedule(extras["balance"], extras["rate"], term, extras["period"], extras["amort"])
        lag = np.array([ASSET_CLASS_PARAMS[c].recovery_lag_months for c in ASSET_CLASSES])[extras["cls"]]
        shift = self.sensitivity.class_logit_shift(macro, self.anchors)  # (C, T, 7, 7)
        cls = extras["cls"]

        state = np.zeros(n, dtype=np.int64)
        q = seasoning.copy()
        bal_q, ci_q = sched(q)
        out_state = np.empty((n_months, n), dtype=np.int8)
        out = {k: np.zeros((n_months, n)) for k in (*_PANEL_AMOUNTS, "recovery_amount")}
        for t in range(n_months):
            age = seasoning + t + 1
            live = state <= LoanState.DPD90
            new = _next_states(rng, extras["loan_eta"], shift[:, t], cls, state, live, live & (age >= term))
            flows, q, ci_q = _month_cash_flows(sched, extras, live, new, q, bal_q, ci_q, age)
            # the recovery is booked recovery_lag months after the default (dropped past the panel's end)
            hit = np.flatnonzero(live & (new == LoanState.DEFAULT) & (t + lag < n_months))
            out["recovery_amount"][t + lag[hit], hit] = flows["recovery"][hit]
            out_state[t] = new
            for key in _PANEL_AMOUNTS:
                out[key][t] = flows[key]
            state, bal_q = new, flows["current_balance"]
        return self._panel_frame(loans, out_state, out)

    def _panel_frame(self, loans: pd.DataFrame, out_state: np.ndarray, out: dict[str, np.ndarray]) -> pd.DataFrame:
        """The loan-major panel DataFrame of ``(n_months, n)`` states and amounts (rounded to cents)."""
        n, n_months = self.n_loans, self.n_months
        months = pd.date_range(self.cutoff, periods=n_months, freq="MS")
        dpd_of_state = np.array([0, 30, 60, 90, 120, 0, 0], dtype=np.int64)
        codes = np.repeat(np.arange(n, dtype=np.int32), n_months)
        panel = pd.DataFrame(
            {
                "loan_id": pd.Categorical.from_codes(codes, categories=pd.Index(loans["loan_id"].to_numpy())),
                "reporting_month": np.tile(months.to_numpy(), n),
            }
        )
        for key in ("current_balance", "scheduled_payment", "actual_payment", "principal_paid",
                    "interest_paid", "prepayment_amount"):
            panel[key] = np.round(out[key].T.ravel(), 2)
        st = out_state.T.ravel()
        panel["days_past_due"] = dpd_of_state[st]
        panel["loan_state"] = st
        panel["loss_amount"] = np.round(out["loss_amount"].T.ravel(), 2)
        panel["recovery_amount"] = np.round(out["recovery_amount"].T.ravel(), 2)
        return panel
