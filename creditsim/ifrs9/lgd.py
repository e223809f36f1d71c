"""LGD providers for :func:`creditsim.ifrs9.expected_credit_loss`: point-in-time, scenario-dependent LGD
(no downturn, no margin of conservatism: IFRS 9 is a best estimate), measured as the present value *at
the default date* of the cash shortfall, discounted at the loan's EIR.

A provider's ``lgd(loans, tau_months, ead, eir)`` gets, for a chunk of ``L`` loans and ``T`` periods,
the default times ``tau_months`` ``(T, L)`` (months after the reporting date), the exposures ``ead``
``(T, L)`` and the effective annual EIRs ``eir`` ``(L,)``, and returns an array that broadcasts to
``(T, S, L)`` (decimals in [0, 1]). ``n_scenarios`` is 1 when the LGD is the same in every scenario.
"""

from __future__ import annotations

import numpy as np

from creditsim.errors import ConfigError, DataError
from creditsim.ifrs9.loans import EclLoans
from creditsim.loans.collateral import house_price_index

__all__ = ["FlatLGD", "PeriodLGD", "CollateralLGD"]


def _unit_interval(values: object, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if not ((a >= 0) & (a <= 1)).all():
        raise DataError(f"{name} must be decimals in [0, 1], got values outside (shape {a.shape})")
    return a


class FlatLGD:
    """The same LGD in every period and scenario: ``lgd`` ``()`` or ``(L,)`` (one per loan of the book)."""

    n_scenarios = 1

    def __init__(self, lgd: object) -> None:
        self.value = _unit_interval(lgd, "lgd")
        if self.value.ndim > 1:
            raise DataError(f"lgd must be () or (L,), got shape {self.value.shape}")

    def lgd(self, loans: EclLoans, tau_months: np.ndarray, ead: np.ndarray, eir: np.ndarray) -> np.ndarray:
        v = self.value if self.value.ndim == 0 else self.value[loans.position]
        return np.broadcast_to(v, (1, 1, loans.n_loans))


class PeriodLGD:
    """LGD by year of default: ``curve`` ``(Y,)``, ``(S, Y)`` or ``(S, L, Y)``; a default at ``tau``
    months uses year ``ceil(tau / 12)`` (year 1 for tau <= 12; the last year repeats)."""

    def __init__(self, curve: object) -> None:
        c = _unit_interval(curve, "curve")
        if c.ndim not in (1, 2, 3):
            raise DataError(f"curve must be (Y,), (S, Y) or (S, L, Y), got shape {c.shape}")
        self.curve = c.reshape((1, 1) + c.shape) if c.ndim == 1 else c[:, None, :] if c.ndim == 2 else c
        self.n_scenarios = int(self.curve.shape[0])

    def lgd(self, loans: EclLoans, tau_months: np.ndarray, ead: np.ndarray, eir: np.ndarray) -> np.ndarray:
        year = np.clip(np.ceil(tau_months / 12.0).astype(np.int64) - 1, 0, self.curve.shape[-1] - 1)  # (T, L)
        c = self.curve if self.curve.shape[1] == 1 else self.curve[:, loans.position]
        cols = np.arange(loans.n_loans) if c.shape[1] > 1 else np.zeros(loans.n_loans, dtype=np.int64)
        return c[:, cols[None, :], year].transpose(1, 0, 2)  # (S, T, L) -> (T, S, L)


class CollateralLGD:
    """Secured LGD from the collateral value along a house-price scenario.

    ``collateral_value`` ``(L,)`` today's value; ``house_price_index`` ``(S, M + 1)`` monthly index
    relative to today (column 0 = 1; past its end the last value is kept). A default at month ``tau``
    sells the collateral ``time_to_sale`` months later at ``V (1 - haircut - sale_cost) HPI(tau +
    time_to_sale)``, recovering at most the exposure; discounted to the default date at the EIR:

        LGD_liq = 1 - min(EAD, V (1 - haircut - sale_cost) HPI) (1 + EIR)^(-time_to_sale / 12) / EAD
        LGD = (1 - cure_rate) max(LGD_liq, lgd_floor) + cure_rate cure_lgd

    i.e. ``1 - min(1, (1 - haircut - cost) / LTV(tau + sale)) DF`` with the LTV path
    ``EAD(tau) / (V HPI)``. A zero exposure gets LGD 0 (it contributes nothing either way).
    """

    def __init__(self, collateral_value: object, house_price_index: object, *, haircut: float = 0.2,
                 sale_cost: float = 0.05, time_to_sale: int = 18, cure_rate: float = 0.0, cure_lgd: float = 0.0,
                 lgd_floor: float = 0.0) -> None:
        self.value = np.asarray(collateral_value, dtype=np.float64)
        if self.value.ndim > 1 or not (np.isfinite(self.value) & (self.value >= 0)).all():
            raise DataError(f"collateral_value must be () or (L,) finite amounts >= 0, got shape {self.value.shape}")
        hpi = np.asarray(house_price_index, dtype=np.float64)
        if hpi.ndim == 1:
            hpi = hpi[None, :]
        if hpi.ndim != 2 or not (np.isfinite(hpi) & (hpi > 0)).all():
            raise DataError(f"house_price_index must be (S, M + 1) finite and > 0, got shape {hpi.shape}")
        self.hpi = hpi
        self.n_scenarios = int(hpi.shape[0])
        for name, v in (("haircut", haircut), ("sale_cost", sale_cost), ("cure_rate", cure_rate),
                        ("cure_lgd", cure_lgd), ("lgd_floor", lgd_floor)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"CollateralLGD.{name} must be a decimal in [0, 1], got {v!r}")
        if haircut + sale_cost > 1.0:
            raise ConfigError(f"CollateralLGD: haircut + sale_cost must be <= 1, got {haircut + sale_cost:g}")
        if isinstance(time_to_sale, bool) or not isinstance(time_to_sale, int) or not 0 <= time_to_sale <= 240:
            raise ConfigError(f"CollateralLGD.time_to_sale must be whole months in 0..240, got {time_to_sale!r}")
        self.net = 1.0 - haircut - sale_cost
        self.time_to_sale, self.cure_rate, self.cure_lgd, self.floor = time_to_sale, cure_rate, cure_lgd, lgd_floor

    @classmethod
    def from_macro(cls, collateral_value: object, macro_paths: np.ndarray, **kw) -> "CollateralLGD":
        """House-price index of monthly macro paths ``(S, T, 9)`` (:func:`creditsim.loans.collateral.house_price_index`)."""
        return cls(collateral_value, house_price_index(macro_paths), **kw)

    def lgd(self, loans: EclLoans, tau_months: np.ndarray, ead: np.ndarray, eir: np.ndarray) -> np.ndarray:
        v = self.value if self.value.ndim == 0 else self.value[loans.position]
        sale = np.minimum(np.round(tau_months).astype(np.int64) + self.time_to_sale, self.hpi.shape[1] - 1)  # (T, L)
        proceeds = self.net * v * self.hpi[:, sale].transpose(1, 0, 2)  # (T, S, L)
        df = np.exp(-self.time_to_sale / 12.0 * np.log1p(eir))  # (L,)
        safe = np.where(ead > 0, ead, 1.0)[:, None, :]
        liq = np.where(ead[:, None, :] > 0, 1.0 - np.minimum(proceeds, safe) * df / safe, 0.0)
        return (1.0 - self.cure_rate) * np.maximum(liq, self.floor) + self.cure_rate * self.cure_lgd
