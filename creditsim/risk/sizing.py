"""Tranche sizing: attachment points that meet per-class expected-loss targets.

Given a loan tape, a deal (its order of classes, coupons, triggers and fees) and a target expected
principal loss per debt class (e.g. an idealised loss table by rating), :func:`size_tranches` finds the
attachment points -- the share of the pool below each class -- under a set of macro paths:

1. **Soft sizing.** The expected-loss path (:class:`creditsim.risk.expected.ExpectedLossPath`, with its
   idiosyncratic draws) gives each class's expected loss averaged over the macro paths as a smooth function
   of the tranche balances. The pool cashflows do not depend on the structure, so they are computed once;
   each class's attachment is then solved from the senior down (a class's loss depends mostly on its own
   attachment; two sweeps settle the small effect of the others through the coverage tests; targets that
   no slot can meet are a one-line error naming the class), each by
   safeguarded Newton steps: the derivative with respect to the attachment comes from autograd through the
   soft waterfall, and a step leaving the bracket is replaced by bisection.
2. **Monte Carlo verification.** The hard-mode Monte Carlo engine on the same macro paths (``reps`` loan
   draws per path; pool cashflows also computed once) prices the sized structure. A class off its target
   by more than ``tolerance`` gets its soft target rescaled by ``target / Monte Carlo`` and the sizing is
   repeated (at most ``polish`` rounds). The result reports the Monte Carlo numbers.

Conventions: attachment of class k = (balance of all classes below it, equity included) / pool par; the
equity is what remains below the most junior debt class; balances are in currency units of the tape.

Triggers move with the structure (``keep_cushions=True``, the default): every OC trigger is reset to the
resized class's closing OC ratio over ``1 +`` the cushion it has in the deal as given
(:func:`creditsim.deal.analytics.with_cushioned_triggers`), as structurers set them. With fixed triggers
a thinner class meets its own test as a knife edge: its EL then jumps within a tiny interval of
attachments and no attachment meets a target inside the jump (measured on the old example deal: class C
at 12 % against a 20 % target).
"""

from __future__ import annotations

import warnings

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.deal.analytics import attachment_points, oc_cushions, principal_loss, with_cushioned_triggers
from creditsim.deal.config import Tranche
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError
from creditsim.risk.expected import ExpectedLossPath

__all__ = ["SizingResult", "size_tranches", "thinnest_equity"]

#: Newton / bisection steps per class and sweep
STEPS = 12
#: thinnest class allowed, fraction of the pool
MIN_THICKNESS = 0.005
#: sizing by PD: a class "defaults" in a draw when it loses more than this fraction of its balance (a
#: threshold, not 0, so that rounding of a repaid class never counts); on the soft path the count is a
#: ramp from PD_LOSS / 2 to 3 PD_LOSS / 2 (exactly 0 for a class that loses nothing, unlike a sigmoid,
#: whose tail at zero loss would swamp small targets)
PD_LOSS = 1e-4
#: what a target is: expected principal loss, or probability of a principal loss above PD_LOSS
MEASURES = ("el", "pd")


@dataclass
class SizingResult:
    """Sized structure and its check.

    Attributes:
        table: per class (equity last): ``attachment``, ``detachment``, ``balance``, ``target_el``,
            ``soft_el`` (expected-loss path), ``mc_el`` and ``mc_se`` (hard-mode Monte Carlo).
        deal: the deal with the sized balances (a :class:`WaterfallConfig`).
        settings: the run's settings (paths, draws, rounds).
    """

    table: pd.DataFrame
    deal: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        return self.table


def _mc_measure(losses: np.ndarray, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """``(value (N,), standard error (N,))`` of the measure over Monte Carlo losses ``(n, N)``."""
    if measure == "el":
        x = losses
    else:
        x = (losses > PD_LOSS).astype(np.float64)
    se = x.std(0, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.full(x.shape[1], np.nan)
    return x.mean(0), se


def _check_targets(deal: Any, targets: Mapping[str, float]) -> list[str]:
    debt = [t.name for t in deal.tranches if not t.equity]
    if not isinstance(targets, Mapping) or set(targets) != set(debt):
        raise ConfigError(f"targets: expected one expected-loss target per debt class {debt}, got "
                          f"{list(targets) if isinstance(targets, Mapping) else targets!r}")
    for name in debt:
        v = targets[name]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0.0 < float(v) < 1.0:
            raise ConfigError(f"targets[{name!r}]: expected an expected-loss fraction in (0, 1), got {v!r}")
    values = [float(targets[n]) for n in debt]
    if any(b < a for a, b in zip(values, values[1:])):
        raise ConfigError(f"targets: expected losses must not fall down the stack (senior first), got {values}")
    return debt


class _SoftLosses:
    """Class expected losses (mean over paths) of the expected-loss path as a function of the balances,
    the pool cashflows and their idiosyncratic draws computed once."""

    def __init__(self, elp: ExpectedLossPath, paths: np.ndarray, keep_cushions: bool = True,
                 measure: str = "el") -> None:
        self.elp, self.measure = elp, measure
        pool = float(elp.engine.initial_balance)
        self.cushions = oc_cushions(elp.deal, pool) if keep_cushions else None
        with torch.no_grad():
            cf, var, total = elp.pool_cashflows(paths, with_variance=True)
            draws = elp.granular_cashflows(cf, var, total)
        self.cf = draws.reshape(-1, *draws.shape[2:])
        self.market = elp.market(paths, cf, repeat=draws.shape[1])

    def deal_for(self, sizes: torch.Tensor) -> Any:
        """The deal the structure ``sizes`` (N,) is priced with: triggers at the closing cushions (their
        derivative with respect to the sizes is left out: the safeguarded Newton steps fall back on
        bisection where that matters)."""
        if self.cushions is None:
            return self.elp.deal
        return with_cushioned_triggers(self.elp.deal, sizes.detach().numpy(), self.cushions,
                                       float(self.elp.engine.initial_balance))

    def __call__(self, sizes: torch.Tensor) -> torch.Tensor:
        wf = run_waterfall(self.cf, self.deal_for(sizes), initial_balance=self.elp.engine.initial_balance,
                           mode="soft", tranche_balances=sizes, temperature=self.elp.temperature, **self.market)
        loss = principal_loss(wf)
        if self.measure == "pd":  # a continuous count of the draws that lose more than PD_LOSS
            return torch.clamp((loss - 0.5 * PD_LOSS) / PD_LOSS, 0.0, 1.0).mean(0)
        return loss.mean(0)


def _with_class(attach: torch.Tensor, k: int, a: torch.Tensor) -> torch.Tensor:
    """Attachments with class ``k`` at ``a`` and every junior class kept at least ``MIN_THICKNESS`` per
    class below it (a junior attachment above the new one would make a class of negative size)."""
    out = list(attach.unbind())
    out[k] = a
    for j in range(k + 1, len(out)):
        out[j] = torch.minimum(out[j], a - MIN_THICKNESS * (j - k))
    return torch.stack(out)


def _sizes(attach: torch.Tensor, pool: float) -> torch.Tensor:
    upper = torch.cat([torch.ones(1, dtype=attach.dtype), attach[:-1]])
    return torch.cat([(upper - attach) * pool, attach[-1:] * pool])


def _solve_class(losses: _SoftLosses, attach: np.ndarray, k: int, target: float, pool: float, name: str,
                 above: str | None = None) -> np.ndarray:
    """Attachments with debt class ``k``'s soft EL at ``target`` (the seniors fixed): Newton with autograd
    derivatives inside the slot below the class above, bisection when a step leaves it. The EL falls as
    the attachment rises, to its least at the thinnest class at the top of the slot: above that target the
    targets cannot be met and the error says so."""
    n = len(attach)
    lo = MIN_THICKNESS * (n - k)  # room for the classes below and the equity
    hi = (attach[k - 1] if k > 0 else 1.0) - MIN_THICKNESS
    if hi <= lo:
        raise ConfigError(f"class {name!r}: no room below class {above!r}, attached at {hi + MIN_THICKNESS:.2%} (each "
                          f"class below needs {MIN_THICKNESS:.1%}): {above!r} meets its target even that low in the "
                          f"stack; tighten {above!r}'s target")
    base = torch.from_numpy(attach.copy())

    def el(a: float, grad: bool = False) -> tuple[float, float]:
        x = torch.tensor(a, dtype=torch.float64, requires_grad=grad)
        value = losses(_sizes(_with_class(base, k, x), pool))[k]
        slope = float(torch.autograd.grad(value, x)[0]) if grad else float("nan")
        return float(value.detach()), slope

    least = el(hi)[0]
    if least > target:
        raise ConfigError(f"class {name!r}: even the thinnest class at the top of its slot (attachment {hi:.2%}) "
                          f"has an expected loss of {least:.3%} > its target {target:.3%}; the targets do not fit this "
                          "pool's loss distribution (raise this class's target or lower the one above)")
    if el(lo)[0] <= target:
        return _with_class(base, k, torch.tensor(lo, dtype=torch.float64)).numpy()
    a = float(np.clip(attach[k], lo, hi))
    for _ in range(STEPS):
        value, slope = el(a, grad=True)
        g = value - target
        if g > 0:  # too much loss: attach higher
            lo = a
        else:
            hi = a
        if abs(g) < 1e-4 * target or hi - lo < 1e-7:
            break
        step = a - g / slope if slope < 0 else float("nan")
        a = step if lo < step < hi else 0.5 * (lo + hi)
    return _with_class(base, k, torch.tensor(hi, dtype=torch.float64)).numpy()


def _soft_size(losses: _SoftLosses, attach: np.ndarray, targets: np.ndarray, pool: float, names: list[str],
               sweeps: int = 2) -> np.ndarray:
    """Senior to junior (a class's loss depends on its own slot, and on the classes below only through the
    coverage tests): ``sweeps`` passes."""
    attach = attach.copy()
    for _ in range(sweeps):
        for k in range(len(attach)):
            attach = _solve_class(losses, attach, k, float(targets[k]), pool, names[k], names[k - 1] if k else None)
    return attach


def size_tranches(loans: Any, deal: Any, targets: Mapping[str, float], *, paths: np.ndarray | None = None,
                  n_paths: int = 64, reps: int = 16, polish: int = 2, tolerance: float = 0.1, seed: int = 0,
                  keep_cushions: bool = True, measure: str = "el", **run: Any) -> SizingResult:
    """Attachment points meeting per-class expected-loss targets (module docstring).

    Args:
        loans, deal: as for :func:`creditsim.simulate` (the deal scaled to the pool).
        targets: ``{class name: expected principal loss}`` for every debt class, e.g.
            ``{"A": 0.0005, "B": 0.005, "C": 0.03}``; not falling down the stack.
        paths: ``(S, T, 9)`` macro paths to size under; default ``n_paths`` paths of the run's macro source and
            scenario mix (``macro``, ``scenario_mix`` in ``run``; the pretrained MacroVAE and 60/25/10/5).
        reps: Monte Carlo loan draws per path in the verification.
        polish, tolerance: verification rounds and the relative miss that triggers one.
        seed: master seed. ``**run``: other :class:`creditsim.RunConfig` settings (``horizon``, ``cutoff``).
        keep_cushions: move the OC triggers with the structure (module docstring); False keeps the
            deal's triggers as they are.
        measure: ``"el"`` (targets are expected principal losses, Moody's-style) or ``"pd"`` (targets are
            probabilities of a principal loss above :data:`PD_LOSS` of the class, S&P-style; a ramp around it
            on the soft path, counted exactly in the Monte Carlo check). The table's columns are
            ``target_<measure>``, ``soft_<measure>``, ``mc_<measure>``.

    Returns:
        :class:`SizingResult` (the Monte Carlo ELs are the numbers to quote); its deal carries the sized
        balances and, with ``keep_cushions``, the moved triggers.
    """
    if measure not in MEASURES:
        raise ConfigError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    elp = ExpectedLossPath.from_tape(loans, deal, seed=seed, **run)
    debt = _check_targets(elp.deal, targets)
    if paths is None:
        paths = elp.scenario_paths(n_paths, seed, run)
    paths = np.asarray(paths, dtype=np.float64)[:, : elp.horizon]
    pool = float(elp.engine.initial_balance)
    goal = np.array([float(targets[n]) for n in debt])
    sizes0 = np.array([t.balance for t in elp.deal.tranches], dtype=np.float64)
    attach = attachment_points(elp.deal, sizes0.sum())[0][:-1]  # current attachments of the debt classes
    soft = _SoftLosses(elp, paths, keep_cushions, measure)
    mc_cf = elp.monte_carlo_pool(paths, reps)
    soft_goal = goal.copy()
    for _ in range(1 + polish):
        attach = _soft_size(soft, attach, soft_goal, pool, debt)
        sizes = _sizes(torch.from_numpy(attach), pool)
        losses, _, _ = elp.monte_carlo_losses(mc_cf, sizes, soft.deal_for(sizes), paths, reps)
        mc, se = _mc_measure(losses, measure)
        miss = np.abs(mc[: len(debt)] - goal) > tolerance * goal
        if not miss.any():
            break
        soft_goal = np.where(miss, soft_goal * goal / np.maximum(mc[: len(debt)], 1e-9), soft_goal)
        soft_goal = np.maximum.accumulate(np.clip(soft_goal, 1e-7, 0.99))
    off = [f"{n} {m:.3%} vs {g:.3%}" for n, m, g in zip(debt, mc, goal) if abs(m - g) > tolerance * g]
    if off:
        warnings.warn(f"size_tranches: after {polish} verification rounds the Monte Carlo {measure.upper()} misses the "
                      f"target by more "
                      f"than {tolerance:.0%} for {', '.join(off)}", stacklevel=2)
    with torch.no_grad():
        soft_el = soft(sizes).numpy()
    names = [t.name for t in elp.deal.tranches]
    table = pd.DataFrame({"attachment": np.r_[attach, 0.0], "detachment": np.r_[1.0, attach],
                          "balance": sizes.numpy(), f"target_{measure}": np.r_[goal, np.nan], f"soft_{measure}": soft_el,
                          f"mc_{measure}": mc, "mc_se": se}, index=pd.Index(names, name="tranche"))
    settings = {"n_paths": len(paths), "reps": reps, "polish": polish, "tolerance": tolerance, "seed": seed,
                "soft_targets": dict(zip(debt, soft_goal.tolist())), "keep_cushions": keep_cushions,
                "measure": measure}
    return SizingResult(table, _sized_deal(soft, sizes), settings)


def _sized_deal(soft: _SoftLosses, sizes: torch.Tensor) -> Any:
    """The deal with the sized balances (and, when cushions are kept, the moved triggers)."""
    deal = soft.deal_for(sizes)
    tranches = [Tranche(**{**t.__dict__, "balance": float(b)}) for t, b in zip(deal.tranches, sizes.numpy())]
    return replace(deal, tranches=tranches)


def thinnest_equity(loans: Any, deal: Any, senior_target: float, *, paths: np.ndarray | None = None,
                    scenario_mix: Any = "severely_adverse", n_paths: int = 32, reps: int = 16, polish: int = 2,
                    tolerance: float = 0.1, seed: int = 0, keep_cushions: bool = True, **run: Any) -> SizingResult:
    """The thinnest equity that keeps the senior class's expected loss at ``senior_target`` under a macro mix
    (default: the generator's severely adverse paths).

    The mezzanine classes keep their thickness (share of the pool) and sit on top of the equity; the
    senior class takes the rest. The senior's soft EL falls as the equity grows: bisection on the soft
    expected-loss path, then the hard Monte Carlo check on the same paths with the target rescaling of
    :func:`size_tranches`. Returns a :class:`SizingResult` whose ``settings["equity"]`` is the share.
    """
    elp = ExpectedLossPath.from_tape(loans, deal, seed=seed, **run)
    if isinstance(senior_target, bool) or not isinstance(senior_target, (int, float)) or not 0 < senior_target < 1:
        raise ConfigError(f"senior_target: expected an expected-loss fraction in (0, 1), got {senior_target!r}")
    if paths is None:
        paths = elp.scenario_paths(n_paths, seed, {**run, "scenario_mix": scenario_mix})
    paths = np.asarray(paths, dtype=np.float64)[:, : elp.horizon]
    pool = float(elp.engine.initial_balance)
    sizes0 = np.array([t.balance for t in elp.deal.tranches], dtype=np.float64)
    mezz = sizes0[1:-1] / sizes0.sum()  # thickness of the classes between the senior and the equity

    above = np.r_[np.cumsum(mezz[::-1])[::-1], 0.0]  # par between each debt class's attachment and the equity

    def attach(e: float) -> torch.Tensor:  # attachments of the debt classes (senior first) for equity share e
        return torch.tensor(e + above, dtype=torch.float64)

    soft, mc_cf = _SoftLosses(elp, paths, keep_cushions), elp.monte_carlo_pool(paths, reps)
    lo, hi = MIN_THICKNESS, 1.0 - mezz.sum() - MIN_THICKNESS
    goal = float(senior_target)
    for _ in range(1 + polish):
        with torch.no_grad():
            if float(soft(_sizes(attach(hi), pool))[0]) > goal:
                raise ConfigError(f"no equity share below {hi:.1%} keeps the senior class's loss at {goal:.3%}")
        a, b = lo, hi
        for _ in range(STEPS + 8):
            mid = 0.5 * (a + b)
            with torch.no_grad():
                a, b = (mid, b) if float(soft(_sizes(attach(mid), pool))[0]) > goal else (a, mid)
        sizes = _sizes(attach(b), pool)
        _, mc, se = elp.monte_carlo_losses(mc_cf, sizes, soft.deal_for(sizes), paths, reps)
        if abs(mc[0] - senior_target) <= tolerance * senior_target:
            break
        goal = min(0.99, max(1e-7, goal * senior_target / max(mc[0], 1e-9)))
    with torch.no_grad():
        soft_el = soft(sizes).numpy()
    names = [t.name for t in elp.deal.tranches]
    att = attach(b).numpy()
    table = pd.DataFrame({"attachment": np.r_[att, 0.0], "detachment": np.r_[1.0, att], "balance": sizes.numpy(),
                          "target_el": np.r_[senior_target, np.full(len(names) - 1, np.nan)], "soft_el": soft_el,
                          "mc_el": mc, "mc_se": se}, index=pd.Index(names, name="tranche"))
    return SizingResult(table, _sized_deal(soft, sizes),
                        {"equity": float(b), "n_paths": len(paths), "reps": reps, "soft_target": goal,
                         "keep_cushions": keep_cushions})
