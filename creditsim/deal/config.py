"""Deal model of an SPV / CLO: tranches, coverage-test triggers, fees, and the YAML deal file.

A deal is a :class:`WaterfallConfig`: tranches in priority order (the last one is the equity /
subordinated notes), deal-level default triggers that every debt class inherits unless it overrides
them, fees and the reinvestment period. ``load_deal`` / ``dump_deal`` read and write the YAML format of
``shared/spec/loan-tape.md``::

    name: Example CLO 1
    payment_frequency: monthly
    reinvestment_period: 24          # months
    senior_fee: 0.0015               # annual, on collateral par
    sub_fee: 0.0035
    tranches:                        # in priority order
      - {name: A, balance: 70_000_000, coupon: 0.055, oc_trigger: 1.20, ic_trigger: 1.20}
      - {name: C, balance: 10_000_000, coupon: 0.10, oc_trigger: 1.05, deferrable: true}
      - {name: Equity, balance: 5_000_000, equity: true}

Decisions (see ``shared/docs/WATERFALL.md``):

- Trigger inheritance: a tranche key that is *absent* inherits the deal-level ``oc_trigger`` /
  ``ic_trigger``; an explicit ``null`` switches that test off for the class. A deal-level ``null``
  means "no test unless the class sets one".
- Fees: ``senior_fee`` and ``sub_fee`` are annual rates on the collateral par at the start of the
  period. A single ``management_fee`` (the spec's 0.5 %, its default) is paid as a *senior* fee (the
  conservative reading) when the deal gives no ``senior_fee``. Giving both ``management_fee`` and
  ``senior_fee`` is a :class:`~creditsim.errors.ConfigError` (which one is meant cannot be guessed;
  silently dropping one would misprice the deal): a split-fee deal gives ``senior_fee`` + ``sub_fee``.
- Collateral size: ``collateral_balance`` is checked against the notes, in the same currency units.
  Below half the debt notes or above 10 x all notes (equity included) it is a ConfigError - such
  ratios are unit mistakes (10 vs 75m, or par in units and notes in millions), not deals. Between
  0.5 x and 1 x the debt the deal starts under-collateralised: allowed (distressed deals, stress
  tests) but reported by :meth:`WaterfallConfig.warnings` and ``creditsim deal check``.
- Payment dates: monthly, quarterly or semi-annual; collections are monthly and wait in the collection
  account until the next payment date. Fixed coupons accrue 30/360 (1/12 a month); floating classes
  (``margin``) accrue ACT/360 on the base-rate path.
- Validation happens here, once: every error is a :class:`~creditsim.errors.ConfigError` that names
  the field (``tranches[2].balance``) and what was expected.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from creditsim.errors import ConfigError
from creditsim.fileio import atomic_write
from creditsim.yamlfile import read_yaml, short_repr

__all__ = ["MODES", "Tranche", "WaterfallConfig", "load_deal", "dump_deal", "IC_CURE_MODES", "PAYMENT_FREQUENCIES", "MAX_TRIGGER"]

IC_CURE_MODES: tuple[str, ...] = ("pro_forma", "turbo")

#: note payment frequencies and their months per period (collections stay monthly)
PAYMENT_FREQUENCIES: dict[str, int] = {"monthly": 1, "quarterly": 3, "semiannual": 6}

#: marker for "key absent in the tranche dict": inherit the deal-level trigger
_INHERIT = object()

#: collateral_balance outside [_MIN_COLLATERAL_TO_DEBT x debt notes, _MAX_COLLATERAL_TO_NOTES x all notes]
#: is a ConfigError (a unit mistake); below 1 x the debt notes it is a warning
_MIN_COLLATERAL_TO_DEBT = 0.5
_MAX_COLLATERAL_TO_NOTES = 10.0

#: bounds on absurd input (issue 10): any amount or rate above 1e15 in absolute value (balances are
#: currency units; 1e15 is far beyond any deal), numbers written with more than 40 characters, month
#: counts above 100 years, coverage triggers above 10 x (a percent typed for a ratio: 120 for 1.20)
_MAX_AMOUNT = 1e15
_MAX_NUMBER_CHARS = 40
_MAX_MONTHS = 1200
_MAX_TRIGGER = 10.0
#: the largest coverage trigger a deal accepts (public: tools that set triggers keep within it)
MAX_TRIGGER = _MAX_TRIGGER
#: deal names and tranche names: a line of text, not a document
_MAX_NAME_CHARS = 200

#: deal-file limits enforced by :func:`load_deal` (a deal file is a few hundred bytes of flat YAML):
#: size in bytes, nesting depth of collections (top mapping = 1, tranches list = 2, a tranche = 3)
_MAX_DEAL_BYTES = 1 << 20
_MAX_YAML_DEPTH = 8


#: the reinvestment criteria fields (collateral quality tests) and their ranges: key, low, high, what
_CRITERIA_FIELDS = ("min_was", "reinvestment_spread", "max_warf", "reinvestment_warf", "max_wal",
                    "reinvestment_wal", "max_wal_floor")
_CRITERIA_RANGES = (
    ("min_was", 0.0, 0.2, "an annual spread (0.035 for 350 bp)"),
    ("reinvestment_spread", 0.0, 0.2, "an annual spread (0.035 for 350 bp)"),
    ("max_warf", 1.0, 10_000.0, "a Moody's rating factor (B2 = 2720)"),
    ("reinvestment_warf", 1.0, 10_000.0, "a Moody's rating factor (B2 = 2720)"),
    ("max_wal", 0.01, 30.0, "years"),
    ("reinvestment_wal", 0.0, 30.0, "years"),
    ("max_wal_floor", 0.0, 30.0, "years"),
)

#: waterfall modes: "hard" (exact pass/fail), "soft" (sigmoid gates, differentiable), "straight_through"
#: (hard forward, soft gradients); here rather than in the waterfall so that settings can be checked
#: without loading torch
MODES: tuple[str, ...] = ("hard", "soft", "straight_through")

class _DefaultRate(float):
    """A default rate that remembers it was not given (``management_fee`` vs ``senior_fee``).

    Behaves as the float it holds; ``dataclasses.replace`` carries the same object over, so a
    replaced config still knows the fee was not set by the user.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return float.__repr__(self)


_DEFAULT_MANAGEMENT_FEE = _DefaultRate(0.005)


def _as_float(value: Any, where: str) -> float:
    """Coerce a YAML scalar to float (PyYAML reads ``5e-3`` as a string) or raise naming ``where``."""
    # bytes (``!!binary``) and dates would otherwise coerce or fail with a bare TypeError
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a number, got {short_repr(value)}")
    if isinstance(value, str) and len(value) > _MAX_NUMBER_CHARS:
        raise ConfigError(f"{where} must be a number, got a {len(value)}-character string")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number, got {short_repr(value)}") from None
    except OverflowError:  # a huge Python int (Tranche / WaterfallConfig built in code)
        # str() of a >4300-digit int raises too: estimate the digits from the bit length
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        raise ConfigError(f"{where} must be a finite number, got an integer of about {digits} digits") from None
    if not math.isfinite(out):
        raise ConfigError(f"{where} must be finite, got {short_repr(value)}")
    if abs(out) > _MAX_AMOUNT:
        raise ConfigError(f"{where} must be at most {_MAX_AMOUNT:.0e} in absolute value, got {out:.6g}")
    return out


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where} must be true or false, got {short_repr(value)}")


def _as_name(value: Any, where: str) -> str:
    """A deal / tranche name: a non-empty one-line string (a bare YAML number such as ``2024`` is
    accepted as its text), at most ``_MAX_NAME_CHARS`` characters."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where} must be a non-empty string, got {type(value).__name__}")
    text = str(value)
    if text.strip() == "":
        raise ConfigError(f"{where} must be a non-empty string")
    if len(text) > _MAX_NAME_CHARS:
        raise ConfigError(f"{where} must be at most {_MAX_NAME_CHARS} characters, got {len(text)}")
    if any(c in text for c in "\r\n\0"):
        # names are printed in one-line reports and messages
        raise ConfigError(f"{where} must be one line of text, got {short_repr(text)}")
    return text


@dataclass(frozen=True)
class Tranche:
    """One class of notes.

    Attributes:
        name: unique class name.
        balance: initial note balance, currency units (> 0). For the equity class this is the
            notional the investors paid (used for IRR, attachment and cash-on-cash loss).
        coupon: fixed annual coupon, decimal (0.055 = 5.5 %); 0 for equity.
        oc_trigger: overcollateralisation trigger of the class test (>= 1), or None for no test.
        ic_trigger: interest-coverage trigger (>= 1), or None for no test.
        deferrable: unpaid interest is capitalised (PIK) instead of being an event of default.
        equity: the residual class (exactly one, last in priority).
        margin: annual spread over the base rate, decimal (0.0135 = SOFR + 135 bp). A class with a
            margin is a floating-rate note: its coupon is ``max(base rate, floor) + margin``, reset
            every month from the run's base-rate path, accrued ACT/360; ``coupon`` must then be 0.
        floor: floor on the base rate of a floating class (annual decimal), None = no floor.
        pari_passu: the class ranks pari passu with the class just before it: the group shares
            interest and principal pro rata to what each member is owed, and the group is tested as
            one (its members must give the same triggers and the same ``deferrable``).
    """

    name: str
    balance: float
    coupon: float = 0.0
    oc_trigger: float | None = None
    ic_trigger: float | None = None
    deferrable: bool = False
    equity: bool = False
    margin: float | None = None
    floor: float | None = None
    pari_passu: bool = False

    def __post_init__(self) -> None:
        # types only (ranges depend on the class's place in the deal: WaterfallConfig checks them), so
        # that a Tranche built in code with a string balance or NaN coupon fails here, naming the field
        where = f"Tranche({self.name!r})" if isinstance(self.name, str) else "Tranche"
        object.__setattr__(self, "name", _as_name(self.name, f"{where}.name"))
        object.__setattr__(self, "balance", _as_float(self.balance, f"{where}.balance"))
        object.__setattr__(self, "coupon", _as_float(self.coupon, f"{where}.coupon"))
        for key in ("oc_trigger", "ic_trigger", "margin", "floor"):
            val = getattr(self, key)
            if val is not None:
                object.__setattr__(self, key, _as_float(val, f"{where}.{key}"))
        for key in ("deferrable", "equity", "pari_passu"):
            object.__setattr__(self, key, _as_bool(getattr(self, key), f"{where}.{key}"))

    @property
    def floating(self) -> bool:
        """A floating-rate note (base rate + ``margin``)."""
        return self.margin is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "balance": self.balance}
        if self.equity:
            out["equity"] = True
            return out
        if self.floating:
            out["margin"] = self.margin
            if self.floor is not None:
                out["floor"] = self.floor
        else:
            out["coupon"] = self.coupon
        # explicit null keeps "no test" distinct from "inherit" when the deal is re-read
        out["oc_trigger"] = self.oc_trigger
        out["ic_trigger"] = self.ic_trigger
        if self.deferrable:
            out["deferrable"] = True
        if self.pari_passu:
            out["pari_passu"] = True
        return out


_TRANCHE_KEYS = {f.name for f in fields(Tranche)}


def _make_tranche(spec: Any, i: int, oc_default: float | None, ic_default: float | None) -> Tranche:
    where = f"tranches[{i}]"
    if isinstance(spec, Tranche):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping with name and balance, got {type(spec).__name__}")
    # str keys: YAML allows `1: x` or `null: x`, and sorting mixed types would raise TypeError
    unknown = sorted({str(k) for k in spec if k not in _TRANCHE_KEYS})
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(_TRANCHE_KEYS)}")
    if "name" not in spec or spec["name"] is None:
        raise ConfigError(f"{where}.name is required (a non-empty string)")
    name = _as_name(spec["name"], f"{where}.name")
    where = f"tranches[{i}] ({name})"
    if "balance" not in spec:
        raise ConfigError(f"{where}.balance is required")
    equity = _as_bool(spec.get("equity", False), f"{where}.equity")
    deferrable = _as_bool(spec.get("deferrable", False), f"{where}.deferrable")
    coupon = _as_float(spec.get("coupon", 0.0) if spec.get("coupon") is not None else 0.0, f"{where}.coupon")

    def trig(key: str, default: float | None) -> float | None:
        raw = spec.get(key, _INHERIT)
        if raw is _INHERIT:
            return None if equity else default
        return None if raw is None else _as_float(raw, f"{where}.{key}")

    optional = {key: None if spec.get(key) is None else _as_float(spec[key], f"{where}.{key}")
                for key in ("margin", "floor")}
    return Tranche(
        name=name,
        balance=_as_float(spec["balance"], f"{where}.balance"),
        coupon=coupon,
        oc_trigger=trig("oc_trigger", oc_default),
        ic_trigger=trig("ic_trigger", ic_default),
        deferrable=deferrable,
        equity=equity,
        pari_passu=_as_bool(spec.get("pari_passu", False), f"{where}.pari_passu"),
        **optional,
    )


@dataclass
class WaterfallConfig:
    """An SPV / CLO deal: capital structure, coverage tests, fees and waterfall options.

    Attributes:
        tranches: classes in priority order, dicts (as in the YAML) or :class:`Tranche`; normalised
            to a list of :class:`Tranche` on construction. The last one must be the equity class.
        oc_trigger, ic_trigger: deal-level default triggers inherited by every debt class that does
            not set its own (None = no test).
        reinvestment_period: months during which principal proceeds buy new collateral (months
            ``t < reinvestment_period`` with t = 0 the first month after the cut-off).
        management_fee: annual rate paid as the senior fee of a deal without a fee split (default
            0.005); giving it together with ``senior_fee`` is a ConfigError.
        soft_temperature: temperature of the sigmoid gates of the "soft" / "straight_through" modes,
            in ratio units (``sigmoid((ratio - trigger) / soft_temperature)``).
        name: deal name.
        payment_frequency: "monthly", "quarterly" or "semiannual" note payment dates.
        senior_fee: annual senior management fee on collateral par (None = use management_fee);
            exclusive with an explicit ``management_fee``.
        sub_fee: annual subordinated management fee on collateral par, paid after all note
            interest and tests; unpaid amounts are carried (without interest).
        collateral_balance: initial collateral par at the cut-off, currency units; None = sum of the
            tranche balances. Must lie in [0.5 x debt notes, 10 x all notes] (else a unit mistake:
            ConfigError); below the debt notes it is allowed with a :meth:`warnings` entry. Used by analytics (attachment points) and the deterministic CLI run;
            the waterfall itself takes the pool balance from the cashflows.
        reinvestment_price: purchase price of reinvested collateral, fraction of par (1.0 = par).
        reinvestment_coupon: annual coupon of reinvested collateral; None = the pool's realised
            interest yield of the period (pool mirroring, the default).
        liquidation_price: price, fraction of par, at which performing collateral is sold at the
            horizon; defaulted par still awaiting recovery is realised at its expected recovery.
        liquidate_at_horizon: sell the remaining collateral in the last month (and pay it
            sequentially) so that nothing is left in the SPV.
        ic_cure: "pro_forma" (pay down the minimum making the test pass on post-paydown balances)
            or "turbo" (divert all remaining interest while the IC test fails).
        ic_first_period: first payment date (0-based index; months on a monthly deal) at which IC tests
            apply (indentures start them at the second payment date, index 1).
        interest_diversion_trigger: reinvestment OC (interest diversion) trigger tested on the most
            junior debt class during the reinvestment period; None = no such test.
        interest_diversion_share: maximum share of remaining interest diverted to buy collateral.
        sub_fee_before_diversion: pay the subordinated fee before the interest diversion test (the
            US variant) instead of after it.
        pay_deferred_from_interest: leftover interest repays capitalised (PIK) interest of a
            deferrable class right after its tests.
        base_rate: flat annual reference rate (decimal) of the floating classes when the run has no
            base-rate path (``run_waterfall(base_rate=...)``; ``simulate`` passes each scenario's
            policy-rate path); required when a class has a ``margin``.
        admin_fee, admin_expenses: senior administrative expenses (trustee, administrator): an
            annual rate on collateral par plus a fixed annual amount in currency units, accrued
            monthly. Paid first in both priorities up to ``admin_cap``.
        admin_cap: annual amount (currency units) of admin expenses paid senior; what accrues above
            it is paid after the subordinated fee. None = no cap.
        incentive_fee: share of the equity distributions, once the equity has earned
            ``incentive_hurdle`` (annual IRR on its notional), paid to the manager (0 = none).
        incentive_hurdle: annual equity IRR above which the incentive fee is paid.
        eod_oc_trigger: event-of-default OC level of the senior class (collateral over the most
            senior class or pari-passu group); None = no OC event of default.
        acceleration: after an event of default (``eod_oc_trigger`` breached, or interest of the
            senior-most outstanding class unpaid) interest and principal proceeds are paid as one pot,
            strictly sequentially (fees, then interest and principal of each class in order), from the
            next payment date on; no reinvestment, cures or diversion. False = events of default are
            recorded only.
        defaulted_interest_accrues: unpaid interest of a non-deferrable class earns interest at the
            class coupon while it is owed (the indentures' "defaulted interest"); False = carried flat.
        non_call_period: months before the equity may call the deal (optional redemption); None = no
            optional call. On each payment date from then on the deal is called when selling the
            collateral (at the liquidation price of the scenario) would pay every note, accrued interest
            and fee owed and leave the equity at least ``call_nav_threshold`` x its notional.
        call_nav_threshold: equity liquidation value, as a multiple of its notional, that triggers the
            optional call (a NAV rule: the decision a path-wise simulation can take without nested
            simulation of the continuation value). None = no optional call (the non-call period then
            only dates refinancing).
        clean_up_call: collateral par (pool + reinvested), as a fraction of the par at the cut-off,
            below which the deal is called on the next payment date if the sale repays the notes; None =
            no clean-up call.
        spread_duration: years of spread duration of the collateral's price: the liquidation and call
            price of month t is ``liquidation_price x (1 - spread_duration x (hy_t - hy_0))`` on the
            scenario's high-yield spread path (``simulate``); 0 = the flat ``liquidation_price``.
        ccc_limit: CCC par above this share of the collateral par (typically 0.075) is the CCC excess,
            carried in the OC numerator at ``ccc_market_value`` instead of par; None = no CCC haircut.
            The CCC par path comes with the run (``run_waterfall(ccc_par=...)``; ``simulate`` derives it
            from the rated loans' Z-conditional rating migration, :meth:`PoolEngine.ccc_par`).
        ccc_market_value: price, fraction of par, of the CCC excess in the OC numerator.
        refinancing_saving: a floating class is refinanced on a payment date from ``non_call_period``
            on when its market margin is below ``(1 - refinancing_saving)`` x its current margin (0.10:
            at least 10 % lower); its margin is then reset to the market margin. The market margin of a
            class moves with the scenario's high-yield spread, ``issue margin x hy_t / hy_0`` (needs the
            spread path; without it margins stay). None = no refinancing.
        discount_obligation_price: collateral bought below this price (fraction of par, e.g. 0.80) is a
            discount obligation, carried at its purchase price in the OC numerator; bought at or above it,
            at par (so buying below par builds par). None = anything bought below par is carried at cost
            (the conservative reading).
        interest_reserve: cash (currency units) set aside at closing in the interest reserve account.
            On each payment date it tops up the interest proceeds by what the senior expenses and the
            interest of the non-deferrable classes need beyond them; what is left is released to the
            principal proceeds on the payment date closing month ``interest_reserve_release`` (None =
            the end of the reinvestment period) or at the horizon.
        interest_reserve_release: month after which the reserve left is released (see above).
        min_was, reinvestment_spread: collateral quality test gating reinvestment: minimum weighted-average
            spread of the collateral (annual decimal over the base rate, 0.035 for 350 bp) and the spread of
            the collateral bought (required with ``min_was``). The pool's spread is its realised interest
            yield of the month less the base rate of a floating deal (or the ``pool_spread`` path of the
            run); ``reinvestment_spread`` is the spread the purchases count at in the test only (the
            reinvested par's interest cash stays the pool's yield or ``reinvestment_coupon``). None = no test.
        max_warf, reinvestment_warf: maximum weighted-average rating factor (Moody's idealised factors:
            B2 = 2720) and the rating factor of the collateral bought (required with ``max_warf``). The
            pool's WARF is a path of the run (``run_waterfall(pool_warf=...)``; ``simulate`` derives it from
            the rated loans' grades along the rating chain); without one (an unrated tape) the test is off.
        max_wal, reinvestment_wal: maximum weighted-average life of the collateral in years and the WAL of
            the collateral bought, in years (required with ``max_wal``); reinvested par ages a month a
            month. The pool's WAL is a path of the run (``pool_wal``; ``simulate``: the tape's scheduled
            amortisation), else the remaining scheduled principal of the run's pool cashflows.
        max_wal_floor: the WAL limit steps down with the time since the cut-off, ``max(max_wal - years
            elapsed, max_wal_floor)`` (years; a common indenture form); None = the limit stays ``max_wal``.

    Reinvestment criteria (all three tests): after buying par ``q`` the portfolio metric is the par-weighted
    mix ``(P m + q b) / (P + q)`` of the current collateral's ``m`` (``P`` its par) and the purchases' ``b``.
    A purchase is allowed when the test is satisfied after it, or, failing before, maintained or improved;
    the principal proceeds that cannot be reinvested pay the notes in order (as after the reinvestment
    period). See :mod:`creditsim.deal.waterfall`.
    """

    tranches: list[Any]
    oc_trigger: float | None = 1.20
    ic_trigger: float | None = 1.05
    reinvestment_period: int = 24
    management_fee: float = _DEFAULT_MANAGEMENT_FEE
    soft_temperature: float = 0.1
    name: str = "deal"
    payment_frequency: str = "monthly"
    senior_fee: float | None = None
    sub_fee: float = 0.0
    collateral_balance: float | None = None
    reinvestment_price: float = 1.0
    reinvestment_coupon: float | None = None
    liquidation_price: float = 1.0
    liquidate_at_horizon: bool = True
    ic_cure: str = "pro_forma"
    ic_first_period: int = 1
    interest_diversion_trigger: float | None = None
    interest_diversion_share: float = 0.5
    sub_fee_before_diversion: bool = False
    pay_deferred_from_interest: bool = True
    base_rate: float | None = None
    admin_fee: float = 0.0
    admin_expenses: float = 0.0
    admin_cap: float | None = None
    incentive_fee: float = 0.0
    incentive_hurdle: float = 0.12
    eod_oc_trigger: float | None = None
    acceleration: bool = False
    defaulted_interest_accrues: bool = False
    non_call_period: int | None = None
    call_nav_threshold: float | None = 1.0
    clean_up_call: float | None = None
    spread_duration: float = 0.0
    ccc_limit: float | None = None
    ccc_market_value: float = 0.70
    refinancing_saving: float | None = None
    discount_obligation_price: float | None = None
    interest_reserve: float = 0.0
    interest_reserve_release: int | None = None
    min_was: float | None = None
    reinvestment_spread: float | None = None
    max_warf: float | None = None
    reinvestment_warf: float | None = None
    max_wal: float | None = None
    reinvestment_wal: float | None = None
    max_wal_floor: float | None = None

    def __post_init__(self) -> None:
        management_fee_given = not isinstance(self.management_fee, _DefaultRate)
        if management_fee_given and self.senior_fee is not None:
            raise ConfigError(
                f"management_fee ({self.management_fee!r}) and senior_fee ({self.senior_fee!r}) are both given: "
                "management_fee is the senior fee of a deal without a fee split; give either management_fee "
                "or senior_fee (+ sub_fee), not both"
            )
        for key in ("oc_trigger", "ic_trigger", "interest_diversion_trigger", "senior_fee",
                    "reinvestment_coupon", "collateral_balance", "base_rate", "admin_cap", "eod_oc_trigger",
                    "clean_up_call", "ccc_limit", "refinancing_saving", "call_nav_threshold",
                    "discount_obligation_price", *_CRITERIA_FIELDS):
            val = getattr(self, key)
            if val is not None:
                setattr(self, key, _as_float(val, key))
        for key in ("soft_temperature", "sub_fee", "reinvestment_price", "liquidation_price",
                    "interest_diversion_share", "admin_fee", "admin_expenses", "incentive_fee", "incentive_hurdle",
                    "interest_reserve",
                    "spread_duration", "ccc_market_value"):
            setattr(self, key, _as_float(getattr(self, key), key))
        if management_fee_given:  # the default stays a _DefaultRate (see above)
            self.management_fee = _as_float(self.management_fee, "management_fee")
        for key in ("reinvestment_period", "ic_first_period", "non_call_period", "interest_reserve_release"):
            val = getattr(self, key)
            if val is None and key in ("non_call_period", "interest_reserve_release"):
                continue
            # isfinite before int(): int(nan) / int(inf) raise bare ValueError / OverflowError
            if (isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val)
                    or float(val) != int(val)):
                raise ConfigError(f"{key} must be a whole number of months, got {short_repr(val)}")
            if int(val) < 0:
                raise ConfigError(f"{key} must be >= 0, got {val!r}")
            if int(val) > _MAX_MONTHS:
                # the deal does not know the simulation horizon; a period past it simply never ends
                # (documented), but more than 100 years is a unit mistake (days, or a typo)
                raise ConfigError(f"{key} must be at most {_MAX_MONTHS} months, got {val!r}")
            setattr(self, key, int(val))
        for key in ("liquidate_at_horizon", "sub_fee_before_diversion", "pay_deferred_from_interest",
                    "acceleration", "defaulted_interest_accrues"):
            setattr(self, key, _as_bool(getattr(self, key), key))
        self.name = _as_name(self.name, "name")
        if not isinstance(self.payment_frequency, str) or self.payment_frequency not in PAYMENT_FREQUENCIES:
            raise ConfigError(
                f"payment_frequency must be one of {list(PAYMENT_FREQUENCIES)}, got {short_repr(self.payment_frequency)}"
            )
        self._validate_fees_and_events()
        self._validate_criteria()
        if not isinstance(self.ic_cure, str) or self.ic_cure not in IC_CURE_MODES:
            raise ConfigError(f"ic_cure must be one of {list(IC_CURE_MODES)}, got {short_repr(self.ic_cure)}")
        if self.soft_temperature <= 0:
            raise ConfigError(f"soft_temperature must be > 0, got {self.soft_temperature}")
        for key in ("management_fee", "sub_fee"):
            if not 0.0 <= getattr(self, key) < 0.1:
                raise ConfigError(f"{key} must be an annual rate in [0, 0.1), got {getattr(self, key)}")
        if self.senior_fee is not None and not 0.0 <= self.senior_fee < 0.1:
            raise ConfigError(f"senior_fee must be an annual rate in [0, 0.1), got {self.senior_fee}")
        for key in ("reinvestment_price", "liquidation_price"):
            if not 0.0 < getattr(self, key) <= 2.0:
                raise ConfigError(f"{key} must be a price in (0, 2] (fraction of par), got {getattr(self, key)}")
        if self.reinvestment_coupon is not None and not 0.0 <= self.reinvestment_coupon < 1.0:
            raise ConfigError(f"reinvestment_coupon must be an annual rate in [0, 1), got {self.reinvestment_coupon}")
        if not 0.0 <= self.interest_diversion_share <= 1.0:
            raise ConfigError(f"interest_diversion_share must be in [0, 1], got {self.interest_diversion_share}")
        if self.collateral_balance is not None and self.collateral_balance <= 0:
            raise ConfigError(f"collateral_balance must be > 0, got {self.collateral_balance}")
        for key in ("oc_trigger", "ic_trigger", "interest_diversion_trigger"):
            val = getattr(self, key)
            if val is not None and not 1.0 <= val <= _MAX_TRIGGER:
                raise ConfigError(f"{key} must be >= 1 and <= {_MAX_TRIGGER:g} (a coverage ratio: 1.20, not 120), got {val}")

        if not isinstance(self.tranches, (list, tuple)) or len(self.tranches) == 0:
            raise ConfigError("tranches must be a non-empty list in priority order")
        self.tranches = [
            _make_tranche(t, i, self.oc_trigger, self.ic_trigger) for i, t in enumerate(self.tranches)
        ]
        self._validate_tranches()
        self._validate_groups()
        self._validate_collateral()

    def _validate_fees_and_events(self) -> None:
        """Ranges of the admin expenses, incentive fee, base rate and event-of-default fields."""
        if not 0.0 <= self.admin_fee < 0.1:
            raise ConfigError(f"admin_fee must be an annual rate in [0, 0.1), got {self.admin_fee}")
        for key in ("admin_expenses", "admin_cap", "interest_reserve"):
            val = getattr(self, key)
            if val is not None and val < 0:
                raise ConfigError(f"{key} must be an annual amount >= 0 (currency units), got {val}")
        if not 0.0 <= self.incentive_fee < 1.0:
            raise ConfigError(f"incentive_fee must be a share in [0, 1), got {self.incentive_fee}")
        if not -0.5 < self.incentive_hurdle < 1.0:
            raise ConfigError(f"incentive_hurdle must be an annual IRR in (-0.5, 1) (0.12 for 12 %), got "
                              f"{self.incentive_hurdle}")
        if self.base_rate is not None and not -0.05 <= self.base_rate < 0.5:
            raise ConfigError(f"base_rate must be an annual decimal in [-0.05, 0.5) (0.043 for 4.3 %), got "
                              f"{self.base_rate}")
        if self.call_nav_threshold is not None and not 0.0 <= self.call_nav_threshold <= 10.0:
            raise ConfigError(f"call_nav_threshold must be a multiple of the equity notional in [0, 10], got "
                              f"{self.call_nav_threshold}")
        if self.clean_up_call is not None and not 0.0 < self.clean_up_call < 1.0:
            raise ConfigError(f"clean_up_call must be a fraction of the initial collateral par in (0, 1) (0.10 "
                              f"for 10 %), got {self.clean_up_call}")
        if not 0.0 <= self.spread_duration <= 30.0:
            raise ConfigError(f"spread_duration must be in years, [0, 30], got {self.spread_duration}")
        if self.discount_obligation_price is not None and not 0.0 < self.discount_obligation_price <= 1.0:
            raise ConfigError(f"discount_obligation_price must be a price in (0, 1] (0.80 for 80 % of par), got "
                              f"{self.discount_obligation_price}")
        if self.refinancing_saving is not None:
            if not 0.0 <= self.refinancing_saving < 1.0:
                raise ConfigError(f"refinancing_saving must be a fraction of the margin in [0, 1) (0.10 for 10 % "
                                  f"lower), got {self.refinancing_saving}")
            if self.non_call_period is None:
                raise ConfigError("refinancing_saving needs non_call_period: classes are refinanced after the "
                                  "non-call period")
        for key in ("ccc_limit", "ccc_market_value"):
            val = getattr(self, key)
            if val is not None and not 0.0 <= val <= 1.0:
                raise ConfigError(f"{key} must be a fraction in [0, 1], got {val}")
        if self.eod_oc_trigger is not None and not 0.5 <= self.eod_oc_trigger <= _MAX_TRIGGER:
            raise ConfigError(f"eod_oc_trigger must be a coverage ratio in [0.5, {_MAX_TRIGGER:g}] (1.025, not "
                              f"102.5), got {self.eod_oc_trigger}")

    def _validate_criteria(self) -> None:
        """Ranges of the reinvestment criteria; each limit needs the metric of the collateral bought."""
        for key, lo, hi, what in _CRITERIA_RANGES:
            val = getattr(self, key)
            if val is not None and not lo <= val <= hi:
                raise ConfigError(f"{key} must be {what} in [{lo:g}, {hi:g}], got {val}")
        for limit, bought in (("min_was", "reinvestment_spread"), ("max_warf", "reinvestment_warf"),
                              ("max_wal", "reinvestment_wal")):
            if getattr(self, limit) is not None and getattr(self, bought) is None:
                raise ConfigError(f"{limit} needs {bought}: the reinvestment test compares the collateral "
                                  "bought with the limit")
        if self.max_wal_floor is not None:
            if self.max_wal is None:
                raise ConfigError("max_wal_floor needs max_wal: the WAL limit steps down from max_wal to it")
            if self.max_wal_floor > self.max_wal:
                raise ConfigError(f"max_wal_floor must be at most max_wal ({self.max_wal:g} years), got "
                                  f"{self.max_wal_floor}")

    @property
    def has_reinvestment_criteria(self) -> bool:
        """A WAS, WARF or WAL limit gates reinvestment."""
        return any(getattr(self, key) is not None for key in ("min_was", "max_warf", "max_wal"))

    def _validate_groups(self) -> None:
        """Floating classes need a base rate; a pari-passu group agrees on its tests and deferral."""
        for i, t in enumerate(self.debt_tranches):
            where = f"tranches[{i}] ({t.name})"
            if t.floating:
                if t.coupon != 0.0:
                    raise ConfigError(f"{where}: give coupon (a fixed-rate note) or margin (floating), not both")
                if not 0.0 <= t.margin < 0.5:
                    raise ConfigError(f"{where}.margin must be an annual spread in [0, 0.5) (0.0135 for "
                                      f"135 bp), got {t.margin}")
                if self.base_rate is None:
                    raise ConfigError(f"{where} floats (margin {t.margin}): the deal needs base_rate, the flat "
                                      "annual reference rate used when a run has no rate path (e.g. 0.043)")
            elif t.floor is not None:
                raise ConfigError(f"{where}.floor: only a floating class (with a margin) has a base-rate floor")
            if t.floor is not None and not -0.05 <= t.floor < 0.5:
                raise ConfigError(f"{where}.floor must be an annual decimal in [-0.05, 0.5), got {t.floor}")
        eq = self.equity_tranche
        for key in ("pari_passu", "margin", "floor"):
            if getattr(eq, key) not in (None, False):
                raise ConfigError(f"tranches[{len(self.tranches) - 1}] ({eq.name}).{key}: the equity class is "
                                  "neither pari passu nor floating; remove the key")
        if self.debt_tranches[0].pari_passu:
            raise ConfigError(f"tranches[0] ({self.tranches[0].name}).pari_passu: the first class has no class "
                              "before it to rank with")
        for a, b in self.pari_passu_groups:
            first = self.tranches[a]
            for i in range(a + 1, b):
                t = self.tranches[i]
                for key in ("oc_trigger", "ic_trigger", "deferrable"):
                    if getattr(t, key) != getattr(first, key):
                        inherited = (" (inherited from the deal-level trigger: set it on the class)"
                                     if key != "deferrable" else "")
                        raise ConfigError(
                            f"tranches[{i}] ({t.name}) is pari passu with {first.name} but its {key} "
                            f"{getattr(t, key)!r} differs from {getattr(first, key)!r}{inherited}: a pari-passu group "
                            "is tested and deferred as one"
                        )

    def _validate_collateral(self) -> None:
        if self.collateral_balance is None:
            return
        debt = sum(t.balance for t in self.debt_tranches)
        notes = debt + self.equity_tranche.balance
        coll = self.collateral_balance
        if coll < _MIN_COLLATERAL_TO_DEBT * debt:
            raise ConfigError(
                f"collateral_balance {coll:,.6g} is {coll / debt:.3g} x the {debt:,.0f} of debt notes; expected the "
                f"collateral par at the cut-off in the same currency units as the tranche balances "
                f"(at least {_MIN_COLLATERAL_TO_DEBT:g} x the debt notes)"
            )
        if coll > _MAX_COLLATERAL_TO_NOTES * notes:
            raise ConfigError(
                f"collateral_balance {coll:,.6g} is {coll / notes:.3g} x the {notes:,.0f} of notes (equity "
                f"included); expected the collateral par at the cut-off in the same currency units as the "
                f"tranche balances (at most {_MAX_COLLATERAL_TO_NOTES:g} x the notes)"
            )

    def warnings(self) -> list[str]:
        """Valid but unusual features of the deal, one line each (``creditsim deal check`` prints them).

        Today: a deal whose collateral par at the cut-off is below its debt notes (under-
        collateralised from day one: every OC test fails and the equity starts out of the money), a debt
        class with neither coupon nor margin (a 0 % note), and settings that do nothing as given.
        """
        out = []
        for t in self.debt_tranches:
            if not t.floating and t.coupon == 0.0:
                out.append(f"class {t.name} has neither coupon nor margin: a 0 % note")
        if self.admin_cap is not None and not (self.admin_fee or self.admin_expenses):
            out.append("admin_cap is set but there are no admin expenses (admin_fee, admin_expenses)")
        for limit, bought in (("min_was", "reinvestment_spread"), ("max_warf", "reinvestment_warf"),
                              ("max_wal", "reinvestment_wal")):
            if getattr(self, bought) is not None and getattr(self, limit) is None:
                out.append(f"{bought} is set but {limit} is not: no such reinvestment test")
        if self.ccc_limit is not None and self.ccc_market_value == 1.0:
            out.append("ccc_market_value 1.0 carries the CCC excess at par: the CCC haircut does nothing")
        debt = sum(t.balance for t in self.debt_tranches)
        if self.initial_collateral < debt:
            out.append(
                f"collateral par {self.initial_collateral:,.0f} is below the {debt:,.0f} of debt notes "
                f"({self.initial_collateral / debt:.1%}): the deal starts under-collateralised"
            )
        return out

    def _validate_tranches(self) -> None:
        names = [t.name for t in self.tranches]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"tranches: names must be unique, duplicated {dupes}")
        equity_idx = [i for i, t in enumerate(self.tranches) if t.equity]
        if len(equity_idx) != 1:
            raise ConfigError(
                f"tranches: exactly one class must have equity: true, found {len(equity_idx)}"
            )
        if equity_idx[0] != len(self.tranches) - 1:
            raise ConfigError(
                f"tranches[{equity_idx[0]}] ({names[equity_idx[0]]}): the equity class must be last in priority"
            )
        if len(self.tranches) < 2:
            raise ConfigError("tranches: at least one debt class is needed before the equity class")
        for i, t in enumerate(self.tranches):
            where = f"tranches[{i}] ({t.name})"
            if not t.balance > 0:
                raise ConfigError(f"{where}.balance must be > 0, got {t.balance}")
            if t.equity:
                if t.coupon != 0.0:
                    raise ConfigError(f"{where}.coupon: the equity class has no coupon, got {t.coupon}")
                if t.deferrable or t.oc_trigger is not None or t.ic_trigger is not None:
                    raise ConfigError(f"{where}: the equity class takes no triggers and is not deferrable")
                continue
            if not 0.0 <= t.coupon < 1.0:
                raise ConfigError(
                    f"{where}.coupon must be an annual decimal in [0, 1) (0.055 for 5.5 %), got {t.coupon}"
                )
            for key in ("oc_trigger", "ic_trigger"):
                val = getattr(t, key)
                if val is not None and not 1.0 <= val <= _MAX_TRIGGER:
                    raise ConfigError(
                        f"{where}.{key} must be >= 1 and <= {_MAX_TRIGGER:g} (a coverage ratio: 1.20, not 120), got {val}"
                    )

    # ----------------------------------------------------------------------------------- views
    @property
    def debt_tranches(self) -> list[Tranche]:
        """Debt classes in priority order (all but the equity class)."""
        return self.tranches[:-1]

    @property
    def equity_tranche(self) -> Tranche:
        return self.tranches[-1]

    @property
    def pari_passu_groups(self) -> list[tuple[int, int]]:
        """Debt classes grouped by rank: ``[(start, stop), ...]`` index ranges in priority order
        (a class without ``pari_passu`` starts a new group)."""
        starts = [i for i, t in enumerate(self.debt_tranches) if i == 0 or not t.pari_passu]
        return list(zip(starts, starts[1:] + [len(self.debt_tranches)]))

    @property
    def months_per_period(self) -> int:
        """Months between note payment dates (1 monthly, 3 quarterly, 6 semi-annual)."""
        return PAYMENT_FREQUENCIES[self.payment_frequency]

    def nominal_coupon(self, tranche: Tranche) -> float:
        """Annual coupon of a debt class on the 30/360 monthly basis the analytics discount at: the fixed
        coupon, or for a floating class ``max(base_rate, floor) + margin`` at the deal's flat base rate
        times 365/360 (ACT/360 accrual of 365/12-day months); 0 for the equity."""
        if tranche.equity:
            return 0.0
        if not tranche.floating:
            return tranche.coupon
        floor = -math.inf if tranche.floor is None else tranche.floor
        return max(max(self.base_rate, floor) + tranche.margin, 0.0) * 365.0 / 360.0

    @property
    def has_floating(self) -> bool:
        """A debt class pays base rate + margin."""
        return any(t.floating for t in self.debt_tranches)

    @property
    def tranche_names(self) -> list[str]:
        return [t.name for t in self.tranches]

    @property
    def senior_fee_rate(self) -> float:
        """Annual senior fee rate: ``senior_fee`` or, when unset, ``management_fee``."""
        return self.management_fee if self.senior_fee is None else self.senior_fee

    @property
    def initial_collateral(self) -> float:
        """Collateral par at the cut-off: ``collateral_balance`` or the sum of tranche balances."""
        if self.collateral_balance is not None:
            return self.collateral_balance
        return float(sum(t.balance for t in self.tranches))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the YAML layout (round-trips through :func:`load_deal`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            val = getattr(self, f.name)
            if f.name == "management_fee":
                if self.senior_fee is not None:
                    continue  # not given (exclusive with senior_fee) and not used
                val = float(val)
            out[f.name] = [t.to_dict() for t in val] if f.name == "tranches" else val
        # the name first and tranches last read best in a file
        ordered = {"name": out.pop("name")}
        tranches = out.pop("tranches")
        ordered.update(out)
        ordered["tranches"] = tranches
        return ordered

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaterfallConfig:
        """Build from a mapping in the YAML layout; unknown keys are a :class:`ConfigError`."""
        if data is None:
            raise ConfigError("the deal is empty; expected a mapping of fields with at least 'tranches'")
        if not isinstance(data, dict):
            raise ConfigError(f"a deal must be a mapping of fields, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = sorted({str(k) for k in data if k not in allowed})  # str: keys may be 1 or null
        if unknown:
            # the close names, not all of them: the list of ~50 fields made a message longer than a line
            close = sorted({m for k in unknown for m in difflib.get_close_matches(k, allowed, n=3)})
            hint = f"did you mean {close}?" if close else "no field has a similar name"
            raise ConfigError(f"deal has unknown field(s) {unknown}; {hint} (the {len(allowed)} fields: "
                              "docs/deal-file.md, WaterfallConfig)")
        if "tranches" not in data:
            raise ConfigError("deal: the field 'tranches' is required")
        return cls(**data)


def load_deal(path: str | os.PathLike[str]) -> WaterfallConfig:
    """Read a deal YAML file into a validated :class:`WaterfallConfig`.

    Beyond the field checks of :class:`WaterfallConfig`, the file must be at most ``_MAX_DEAL_BYTES``
    (1 MiB) of UTF-8 YAML without anchors / aliases, nested at most ``_MAX_YAML_DEPTH`` deep, without
    duplicate keys (:func:`creditsim.yamlfile.read_yaml`); every violation is a one-line
    :class:`ConfigError`.
    """
    p = Path(path)
    data = read_yaml(p, what="deal file", max_bytes=_MAX_DEAL_BYTES, max_depth=_MAX_YAML_DEPTH,
                     max_number_chars=_MAX_NUMBER_CHARS, layout="a mapping with a list of tranche mappings")
    try:
        return WaterfallConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def dump_deal(config: WaterfallConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML, atomically (:func:`creditsim.fileio.atomic_write`: temporary sibling +
    ``os.replace``, umask permissions); returns the path."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
