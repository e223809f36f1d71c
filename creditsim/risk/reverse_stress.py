"""Reverse stress testing: the most plausible economy that breaks a tranche.

Question: which macro path, as plausible as possible under the scenario generator, gives tranche ``k`` an
expected principal loss of at least ``L*``? Answer (Hasofer & Lind 1974; Rackwitz & Fiessler 1978, the
"design point" of structural reliability): in the generator's standard-normal noise coordinates ``u``
(:class:`creditsim.macro.latent.LatentPathMap`), minimise the latent Mahalanobis distance ``d(u)`` subject to
``g(u) = loss_k(path(u)) - L* = 0``, where ``loss_k`` is the differentiable expected-loss path
(:class:`creditsim.risk.expected.ExpectedLossPath`: matrices, exact expected pool cashflows, soft
waterfall). Steps, all batched over the starts:

1. **Reference paths**: ``n_reference`` paths from the generator given today's state. Their losses give
   the severity percentile (share of the generator's paths at least as severe as the target) and the
   starts: the reference paths that reach ``L*`` with the smallest distances (when too few reach it, the
   most severe ones).
2. **Design-point iteration** (improved HL-RF, Zhang & Der Kiureghian 1995): linearise ``g``, take
   ``delta = -grad f + lambda grad g`` with ``lambda = (grad g . grad f - g) / |grad g|^2`` for
   ``f = d^2 / 2`` (the constrained minimiser of the quadratic model), with a trust radius on the step;
   a start where the target takes no loss yet (zero gradient) moves along the gradient of the pool's
   expected loss instead. The best point with ``g >= 0`` seen per start is kept.
3. **Calibration**: the design point is moved along the ray from the start's unshocked path (same
   regime ``z``, no innovations) through it until its soft loss is the target (bisection). The expected-
   loss path applies the waterfall to expected cashflows, which is not the expected waterfall (a tranche
   that loses only in bad draws gets it wrong either way), so the point is then calibrated on the hard
   waterfall's expectation itself (:class:`_Calibration`): ``n_mc`` engine draws on that path, reweighted
   by their likelihood ratio to nearby points of the ray (:mod:`creditsim.risk.reweighted`, exact in
   expectation), a bracket of ``L*`` searched in small doubling steps (a thin class's loss can jump from
   far below to far above ``L*`` within a few hundredths of the ray), draws rebuilt wherever the weights'
   effective sample size falls below half (at most ``polish`` times), then bisection. The reported loss
   is a hard-mode Monte Carlo of ``n_mc`` fresh draws (other scenario ids) on the final path; a miss of
   more than ``mc_tolerance`` (plus two standard errors) is a warning that says why.
4. **Single-variable variant**: for each macro variable, the smallest parallel shift (in training
   standard deviations, months 1..T-1) of the generator's central path that reaches ``L*`` with the others
   held, by bisection on the expected-loss path -- "which single variable, moved least, breaks it".
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError
from creditsim.fileio import atomic_write
from creditsim.macro.latent import LatentPathMap
from creditsim.risk.expected import ExpectedLossPath
from creditsim.risk.reweighted import ReweightedLosses, WeightDegeneracyWarning
from creditsim.states import MACRO_VARS

__all__ = ["ReverseStressResult", "reverse_stress", "monte_carlo_loss"]

#: first scenario id of the calibration's engine draws (disjoint from the reported Monte Carlo's 0 .. n_mc - 1)
CALIBRATION_IDS = 1_000_000_000
#: effective sample size (share of the draws) at the calibrated point below which the draws are rebuilt there
RECENTRE_ESS = 0.5
#: largest step of the design-point iteration, in latent standard deviations
TRUST_RADIUS = 3.0
#: weight of the squared excursion beyond the training range (:meth:`LatentPathMap.range_excess`) in the
#: search's objective: 1 sd outside the widened range costs as much as a 14-sd shock
RANGE_PENALTY = 100.0
#: paths per pass through the expected-loss path (memory ~ 25 MB per path for 2,000 loans x 72 months)
EVAL_BATCH = 64


@dataclass
class ReverseStressResult:
    """What :func:`reverse_stress` found (fractions, not percent; paths in decimals, MACRO_VARS order).

    Attributes:
        tranche, threshold: the target class and its principal-loss threshold.
        path: ``(T, 9)`` frame of the found path (month index 0..T-1).
        neg_log_density: the path's negative log-density under the generator given the start (the search's
            objective, :meth:`LatentPathMap.neg_log_density`; lower = more plausible); distance: its latent
            Mahalanobis distance (noise norm); ``soft_loss``: the expected-loss path's loss on it.
        mc_loss, mc_se: hard-mode Monte Carlo mean principal loss of the target and its standard error.
        reference_nld, reference_distances, reference_losses: ``(n_reference,)`` of the generator's own paths.
        single_variable: per variable, the parallel shift that breaks the target alone (sd and real
            units; NaN where no shift within the search range does).
        iterations: per design-point iteration, the best feasible distance and the mean soft loss.
        fed_path: ``(T, 9)`` Fed 2025 severely adverse path for comparison (held flat after its end).
    """

    tranche: str
    threshold: float
    path: pd.DataFrame
    neg_log_density: float
    distance: float
    soft_loss: float
    mc_loss: float
    mc_se: float
    n_mc: int
    reference_nld: np.ndarray
    reference_distances: np.ndarray
    reference_losses: np.ndarray
    single_variable: pd.DataFrame | None
    iterations: list[dict[str, float]] = field(default_factory=list)
    fed_path: pd.DataFrame | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: largest excursion of the found path beyond the range the generator was trained on, in training sd
    #: (0 inside it): above ~0.5 the search had to leave history to reach the target
    beyond_history_sd: float = 0.0

    @property
    def severity_percentile(self) -> float:
        """Share of the generator's reference paths whose target loss is at least the threshold."""
        return float(np.mean(self.reference_losses >= self.threshold))

    @property
    def best_reference_nld(self) -> float:
        """Lowest negative log-density among reference paths that reach the threshold (NaN when none does)."""
        hit = self.reference_losses >= self.threshold
        return float(self.reference_nld[hit].min()) if hit.any() else float("nan")

    @property
    def plausibility_percentile(self) -> float:
        """Share of all reference paths that are more plausible (lower negative log-density) than the found
        one: small means the found path is as ordinary as the generator's own typical paths."""
        return float(np.mean(self.reference_nld < self.neg_log_density))

    def summary(self) -> pd.DataFrame:
        """One-column table of the headline numbers."""
        rows = {
            "tranche": self.tranche, "loss threshold": self.threshold,
            "found path: negative log-density": self.neg_log_density,
            "found path: latent distance (noise norm)": self.distance,
            "found path: beyond the training range, sd": self.beyond_history_sd,
            "found path: expected-loss path loss": self.soft_loss,
            "found path: Monte Carlo loss (hard)": self.mc_loss, "Monte Carlo s.e.": self.mc_se,
            "Monte Carlo draws": self.n_mc,
            "generator paths at least as severe": self.severity_percentile,
            "best such generator path: negative log-density": self.best_reference_nld,
            "generator paths more plausible than the found one": self.plausibility_percentile,
            "reference paths": len(self.reference_losses),
        }
        return pd.DataFrame({"value": pd.Series(rows, dtype=object)})

    def path_table(self, months: tuple[int, ...] = (0, 6, 12, 18, 24, 36, 48)) -> pd.DataFrame:
        """Found path against the Fed severely adverse path at a few months (decimals)."""
        keep = [m for m in months if m < len(self.path)]
        out = {"found": self.path.iloc[keep]}
        if self.fed_path is not None:
            out["fed_2025_severely_adverse"] = self.fed_path.iloc[keep]
        return pd.concat(out, axis=1)

    def plot(self, path: str | Path | None = None) -> Any:
        """Found path (and the Fed severely adverse one) for the credit-relevant variables; saved as PNG
        when ``path`` is given (atomically). Returns the matplotlib figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        show = ["unemployment_rate", "gdp_growth", "credit_spread_hy", "house_price_growth", "policy_rate", "yield_10y"]
        fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
        for ax, var in zip(axes.ravel(), show):
            ax.plot(self.path.index, 100 * self.path[var], label="found path", color="C3")
            if self.fed_path is not None:
                ax.plot(self.fed_path.index, 100 * self.fed_path[var], label="Fed 2025 severely adverse", color="C0", ls="--")
            ax.set_title(f"{var} (%)")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        for ax in axes[1]:
            ax.set_xlabel("month")
        fig.suptitle(f"Reverse stress: tranche {self.tranche} principal loss {self.threshold:.2%} "
                     f"(neg. log-density {self.neg_log_density:.1f}; Monte Carlo loss {self.mc_loss:.2%})")
        fig.tight_layout()
        if path is not None:
            atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        return fig

    def save(self, directory: str | Path) -> Path:
        """Write ``summary.json``, ``path.csv``, ``path_vs_fed.csv``, ``single_variable.csv``,
        ``reference.csv``, ``reverse_stress.png`` and the report ``reverse_stress.html`` into ``directory``
        (each file atomically)."""
        from creditsim.risk.report import reverse_stress_html

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        summary = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.summary()["value"].items()}
        summary["iterations"] = self.iterations
        summary["settings"] = self.settings
        atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2, default=str)))
        atomic_write(out / "path.csv", lambda p: self.path.to_csv(p))
        atomic_write(out / "path_vs_fed.csv", lambda p: self.path_table().to_csv(p))
        if self.single_variable is not None:
            atomic_write(out / "single_variable.csv", lambda p: self.single_variable.to_csv(p))
        ref = pd.DataFrame({"neg_log_density": self.reference_nld, "distance": self.reference_distances,
                            "loss": self.reference_losses})
        atomic_write(out / "reference.csv", lambda p: ref.to_csv(p, index=False))
        fig = self.plot(out / "reverse_stress.png")  # drawn once, for the PNG and the page
        atomic_write(out / "reverse_stress.html",
                     lambda p: p.write_text(reverse_stress_html(self, figure=fig), encoding="utf-8"))
        return out


# ---------------------------------------------------------------------------- evaluation helpers
def _losses(elp: ExpectedLossPath, paths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target loss (B,), pool loss fraction (B,))`` on the expected-loss path, in batches."""
    target, pool = [], []
    for a in range(0, paths.shape[0], EVAL_BATCH):
        loss, pool_loss = elp.losses(paths[a:a + EVAL_BATCH])
        target.append(loss[:, k])
        pool.append(pool_loss)
    return torch.cat(target), torch.cat(pool)


def monte_carlo_loss(elp: ExpectedLossPath, path: np.ndarray, k: int, n: int, chunk: int = 250) -> tuple[float, float]:
    """Hard-mode Monte Carlo principal loss of tranche ``k`` on one macro path ``(T, 9)``: ``n`` draws of
    the loans (scenario ids 0..n-1 of the engine's seed); returns ``(mean, standard error)``."""
    single = np.asarray(path, dtype=np.float64)[None]
    _, mean, se = elp.monte_carlo_losses(elp.monte_carlo_pool(single, n, chunk), paths=single, reps=n)
    return float(mean[k]), float(se[k])


# ---------------------------------------------------------------------------- design point
def _iterate(lmap: LatentPathMap, elp: ExpectedLossPath, k: int, u0: torch.Tensor, target: float,
             max_iter: int, record: list[dict[str, float]], tick: Any, patience: int = 4,
             free: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Improved HL-RF from the starts ``u0`` ``(B, dim)``; returns the best feasible point per start
    ``(B, dim)`` and its distance ``(B,)`` (inf where no iterate reached the target). Stops after
    ``max_iter`` iterations or when every start is feasible and the best distance has not improved by
    1e-3 for ``patience`` iterations. ``free``: ``(dim,)`` 0/1 mask of the coordinates the search may move
    (None = all)."""
    u = u0.clone()
    best_u, best_d = u0.clone(), torch.full((u0.shape[0],), float("inf"), dtype=torch.float64)
    stale, last = 0, float("inf")
    for _ in range(max_iter):
        u.requires_grad_(True)
        paths, eps0, log_scale = lmap.decode(u)
        f = lmap.neg_log_density(u, eps0, log_scale) + RANGE_PENALTY * lmap.range_excess(paths)
        loss, pool = _losses(elp, paths, k)
        g = loss - target
        grad_f, = torch.autograd.grad(f.sum(), u, retain_graph=True)
        grad_g, = torch.autograd.grad(g.sum(), u, retain_graph=True)
        flat = (grad_g ** 2).sum(-1) < 1e-14
        grad_p = torch.autograd.grad(pool.sum(), u)[0] if bool(flat.any()) else torch.zeros_like(grad_g)
        with torch.no_grad():
            d = f.detach()
            better = (g >= 0) & (d < best_d)
            best_u[better], best_d[better] = u[better].detach(), d[better]
            norm_g = (grad_g ** 2).sum(-1)
            lam = ((grad_g * grad_f).sum(-1) - g) / torch.where(flat, torch.ones_like(norm_g), norm_g)
            if free is not None:  # the constrained step within the free coordinates
                grad_f, grad_g, grad_p = grad_f * free, grad_g * free, grad_p * free
                norm_g = (grad_g ** 2).sum(-1)
                lam = ((grad_g * grad_f).sum(-1) - g) / torch.where(norm_g < 1e-14, torch.ones_like(norm_g), norm_g)
            step = -grad_f + lam[:, None] * grad_g
            push = grad_p / torch.clamp(grad_p.norm(dim=-1, keepdim=True), min=1e-30)
            step = torch.where(flat[:, None], TRUST_RADIUS * push, step)
            size = step.norm(dim=-1, keepdim=True)
            step = step * torch.clamp(TRUST_RADIUS / torch.clamp(size, min=1e-30), max=1.0)
            u = (u + step).detach()
        now = float(best_d.min())
        record.append({"best_neg_log_density": now, "mean_soft_loss": float(loss.detach().mean()),
                       "feasible_starts": int(torch.isfinite(best_d).sum())})
        tick()
        stale = stale + 1 if last - now < 1e-3 else 0
        last = min(last, now)
        if bool(torch.isfinite(best_d).all()) and stale >= patience:
            break
    return best_u, best_d


def _starts(ref_u: torch.Tensor, ref_d: np.ndarray, ref_loss: np.ndarray, ref_pool: np.ndarray, threshold: float,
            n_starts: int) -> torch.Tensor:
    """The nearest reference paths that reach the threshold, topped up with the most severe others."""
    hit = np.flatnonzero(ref_loss >= threshold)
    pick = list(hit[np.argsort(ref_d[hit], kind="stable")][:n_starts])
    if len(pick) < n_starts:
        rest = np.setdiff1d(np.arange(len(ref_d)), hit)
        severity = np.lexsort((ref_pool[rest], ref_loss[rest]))[::-1]  # by target loss, then pool loss
        pick += list(rest[severity][: n_starts - len(pick)])
    return ref_u[np.asarray(pick)]


def single_variable_breaks(elp: ExpectedLossPath, base: np.ndarray, k: int, threshold: float, sd: np.ndarray,
                           floor: np.ndarray, max_shift: float = 6.0, steps: int = 24) -> pd.DataFrame:
    """For each variable alone, the smallest parallel shift of ``base`` ``(T, 9)`` (months 1..T-1, in
    ``sd`` units, floors respected) whose expected-loss-path loss on tranche ``k`` reaches ``threshold``.

    The direction is the one with the larger loss at ``+-max_shift``; NaN where neither reaches it. Returns
    a frame indexed by variable: ``shift_sd``, ``shift`` (decimals), ``direction``, ``loss_at_max``.
    """
    n_var = base.shape[1]
    ramp = np.r_[0.0, np.ones(base.shape[0] - 1)][:, None]

    def paths(shift_sd: np.ndarray) -> torch.Tensor:  # (n_var,) shifts -> (n_var, T, 9)
        out = np.repeat(base[None], n_var, axis=0)
        for j in range(n_var):
            out[j, :, j] = np.maximum(base[:, j] + shift_sd[j] * sd[j] * ramp[:, 0], floor[j])
        return torch.from_numpy(out)

    with torch.no_grad():
        up = _losses(elp, paths(np.full(n_var, max_shift)), k)[0].numpy()
        down = _losses(elp, paths(np.full(n_var, -max_shift)), k)[0].numpy()
        sign = np.where(up >= down, 1.0, -1.0)
        reach = np.maximum(up, down) >= threshold
        lo, hi = np.zeros(n_var), np.full(n_var, max_shift)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            loss = _losses(elp, paths(sign * mid), k)[0].numpy()
            lo, hi = np.where(loss >= threshold, lo, mid), np.where(loss >= threshold, mid, hi)
    shift_sd = np.where(reach, sign * hi, np.nan)
    return pd.DataFrame({"shift_sd": shift_sd, "shift": shift_sd * sd, "direction": np.where(sign > 0, "up", "down"),
                         "loss_at_max": np.maximum(up, down)}, index=pd.Index(MACRO_VARS[:n_var], name="variable")
                        ).sort_values("shift_sd", key=np.abs)


def _fed_comparison(horizon: int) -> pd.DataFrame | None:
    """The bundled Fed 2025 severely adverse path, monthly, held flat after its last month."""
    from creditsim.datasets.fed import load_fed_scenarios

    fed = load_fed_scenarios(2025, "severely_adverse", monthly=True)[list(MACRO_VARS)].to_numpy()
    if len(fed) < horizon:
        fed = np.concatenate([fed, np.repeat(fed[-1:], horizon - len(fed), axis=0)])
    return pd.DataFrame(fed[:horizon], columns=list(MACRO_VARS), index=pd.RangeIndex(horizon, name="month"))


def _check_target(elp: ExpectedLossPath, tranche: str, loss: float) -> int:
    k = elp.tranche_index(tranche)
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating)) or not 0.0 < float(loss) < 1.0:
        raise ConfigError(f"loss: expected a principal-loss fraction in (0, 1), e.g. 0.01 for 1 %, got {loss!r}")
    return k


def reverse_stress(loans: Any, deal: Any, tranche: str, loss: float, *, prior: str = "vae", model: Any = None,
                   scenario: str = "baseline", n_starts: int = 4, n_reference: int = 1000, n_mc: int = 2000,
                   max_iter: int = 15, polish: int = 4, mc_tolerance: float = 0.05, single_variable: bool = True,
                   search_latent: bool = False, seed: int = 0, progress: bool = True, **run: Any) -> ReverseStressResult:
    """The most plausible macro path under the generator whose loss on ``tranche`` reaches ``loss``.

    Args:
        loans, deal: the tape and the deal, as for :func:`creditsim.simulate` (the deal is scaled to the
            pool the same way).
        tranche: target class name; loss: principal-loss fraction threshold (e.g. 0.01).
        prior: ``"vae"`` (the scenario generator; the only one with a density over whole paths).
        model: a MacroVAE (default: the pretrained one). scenario: the decoder's dynamics label.
        n_starts: parallel starts of the design-point search. n_reference: generator paths for the
            severity percentile and the plausibility comparison. n_mc: Monte Carlo draws re-pricing the
            found path. max_iter, polish, mc_tolerance: iteration limits (module docstring).
        single_variable: also run the one-variable variant.
        search_latent: also move the decoder's latent ``z`` (the regime of the whole path). Default False
            (decision): ``z`` stays at each start's draw given today's state and the search moves the
            monthly shocks only. Measured on the demo, a free ``z`` finds paths of small noise norm along
            which the decoder extrapolates far outside history (HY spread ~38 %, house prices +25 % y/y
            a year later): dense under the generator's prior, not credible as an economy.
        seed: all random draws (reference paths,
            Monte Carlo loans). progress: rich progress bar.
        **run: other run settings for :class:`creditsim.RunConfig` (``horizon``, ``cutoff``, ``macro_start``).

    Returns:
        :class:`ReverseStressResult`.
    """
    if prior != "vae":
        raise ConfigError(f"prior must be 'vae' (the generator whose density the search uses), got {prior!r}")
    elp = ExpectedLossPath.from_tape(loans, deal, seed=seed, **run)
    k = _check_target(elp, tranche, loss)
    if elp.start is None:
        raise ConfigError("reverse stress needs today's macro state as the start (macro_start); none was resolved")
    if model is None:
        from creditsim.macro.vae import MacroVAE

        model = MacroVAE.from_pretrained()
    lmap = LatentPathMap(model, elp.start, elp.horizon, scenario)
    threshold = float(loss)
    with _progress(progress, max_iter + 3) as tick:
        ref = _reference(lmap, elp, k, n_reference, seed)
        tick()
        u0 = _starts(ref["u"], ref["nld"], ref["loss"], ref["pool"], threshold, n_starts)
        free = None if search_latent else (torch.arange(lmap.dim) >= lmap.latent_dim).to(torch.float64)
        record: list[dict[str, float]] = []
        best, path, mc, se = _search(lmap, elp, k, u0, threshold, max_iter, polish, mc_tolerance, n_mc,
                                                  free, record, tick, f"{threshold:.2%} loss on tranche {tranche!r}")
        with torch.no_grad():
            soft = float(_losses(elp, torch.from_numpy(path[None]), k)[0][0])
            _, eps0, log_scale = lmap.decode(best)
            nld = float(lmap.neg_log_density(best, eps0, log_scale)[0])
            dist = float(lmap.distance(best, eps0)[0])
        single = None
        sd = model.unit_scale().double().cpu().numpy()  # real-unit size of one sd, per variable
        if single_variable:
            with torch.no_grad():
                base = lmap.decode(torch.zeros(1, lmap.dim, dtype=torch.float64))[0][0].numpy()
            floor = model.lower_bounds().double().cpu().numpy()
            single = single_variable_breaks(elp, base, k, threshold, sd, floor)
        tick()
    frame = pd.DataFrame(path, columns=list(MACRO_VARS), index=pd.RangeIndex(len(path), name="month"))
    settings = {"prior": prior, "scenario": scenario, "n_starts": n_starts, "n_reference": n_reference, "n_mc": n_mc,
                "seed": seed, "horizon": elp.horizon, "start": elp.start_label, "calibration_draws": n_mc,
                "search_latent": search_latent, "cutoff": str(elp.cutoff)}
    beyond = np.maximum(path - model.x_max.double().cpu().numpy(), model.x_min.double().cpu().numpy() - path) / sd
    return ReverseStressResult(tranche, threshold, frame, nld, dist, soft, mc, se, n_mc, ref["nld"], ref["distance"],
                               ref["loss"], single, record, _fed_comparison(elp.horizon), settings,
                               float(max(0.0, beyond.max())))


def _reference(lmap: LatentPathMap, elp: ExpectedLossPath, k: int, n: int, seed: int) -> dict[str, Any]:
    """``n`` generator paths from the start: noise ``u``, negative log-density, noise norm, target loss and
    pool loss (numpy ``(n,)`` each, ``u`` a tensor)."""
    u = lmap.sample(n, seed)
    with torch.no_grad():
        paths, eps0, log_scale = lmap.decode(u)
        loss, pool = (v.numpy() for v in _losses(elp, paths, k))
        return {"u": u, "nld": lmap.neg_log_density(u, eps0, log_scale).numpy(),
                "distance": lmap.distance(u, eps0).numpy(), "loss": loss, "pool": pool}


def _search(lmap: LatentPathMap, elp: ExpectedLossPath, k: int, u0: torch.Tensor, threshold: float, max_iter: int,
            polish: int, mc_tolerance: float, n_mc: int, free: torch.Tensor | None, record: list, tick: Any,
            what: str) -> tuple[torch.Tensor, np.ndarray, float, float]:
    """Design point, then the calibration along its ray (module docstring, steps 2-3): returns the noise
    ``(1, dim)``, its path ``(T, 9)`` and the Monte Carlo loss and s.e. (``n_mc`` fresh draws)."""
    u_best, d_best = _iterate(lmap, elp, k, u0, threshold, max_iter, record, tick, free=free)
    if not torch.isfinite(d_best).any():
        raise ConfigError(f"no path reached a {what} from {u0.shape[0]} starts in {max_iter} iterations; the "
                          "threshold may be beyond what the macro overlay can do")
    i = int(torch.argmin(d_best))
    best = u_best[i:i + 1]
    centre = best.clone()
    if free is not None:  # the ray runs from the start's own regime with no shocks to the design point
        centre = centre * (1 - free)
    else:
        centre = torch.zeros_like(best)
    best, _ = _ray_bisect(lmap, elp, k, centre, best, threshold)
    calibration = _Calibration(lmap, elp, k, centre, best, n_mc, polish)
    best = calibration.run(threshold)
    tick()
    with torch.no_grad():
        path = lmap.decode(best)[0][0].numpy()
    mc, se = monte_carlo_loss(elp, path, k, n_mc)  # fresh draws: the reported number is not the calibrating one
    if abs(mc - threshold) > mc_tolerance * threshold + 2 * se:
        warnings.warn(f"reverse stress: the found path's Monte Carlo loss {mc:.3%} (s.e. {se:.3%}) misses the threshold "
                      f"{threshold:.3%} by more than {mc_tolerance:.0%} ({calibration.note})", stacklevel=3)
    return best, path, mc, se


class _Calibration:
    """The ray ``centre + a (point - centre)`` calibrated on the hard waterfall's expectation: engine draws on
    the soft answer's path (``a = 1``), reweighted by likelihood ratio to nearby points
    (:mod:`creditsim.risk.reweighted`, exact in expectation). A thin class's loss can rise from far below
    to far above the threshold within a few hundredths of ``a`` (a cliff), and the weights degenerate a
    little further out; so the bracket is searched in small doubling steps from ``a = 1``, an estimate
    whose effective sample size falls below :data:`RECENTRE_ESS` of the draws is redone on fresh draws at
    that point (at most ``rebuilds`` times), and the bracket is then bisected."""

    def __init__(self, lmap: LatentPathMap, elp: ExpectedLossPath, k: int, centre: torch.Tensor,
                 point: torch.Tensor, n_mc: int, rebuilds: int) -> None:
        self.lmap, self.elp, self.k, self.centre, self.point = lmap, elp, k, centre, point
        self.n_mc, self.rebuilds = n_mc, rebuilds
        self.draws: ReweightedLosses | None = None
        self.note = "calibrated on reweighted engine draws"

    def _u(self, a: float) -> torch.Tensor:
        return self.centre + a * (self.point - self.centre)

    def loss(self, a: float) -> float:
        """Reweighted hard-mode loss of tranche k at ``a``, on draws that represent it (rebuilt there when
        they do not and a rebuild is left; otherwise used as they are, and noted)."""
        with torch.no_grad():
            path = self.lmap.decode(self._u(a))[0]
            if self.draws is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", WeightDegeneracyWarning)  # acted on below
                    est = self.draws.estimate(path, mode="hard")
                if est.ess >= RECENTRE_ESS * self.n_mc:
                    return float(est.loss[self.k])
                if self.rebuilds <= 0:
                    self.note = f"effective sample size {est.ess:.0f} of {self.n_mc} draws at the last step"
                    return float(est.loss[self.k])
                self.rebuilds -= 1
            self.draws = ReweightedLosses(self.elp, path[0].numpy(), draws=self.n_mc, first_id=CALIBRATION_IDS)
            return float(self.draws.estimate(path, mode="hard").loss[self.k])

    def run(self, target: float, first_step: float = 0.02, steps: int = 10) -> torch.Tensor:
        """The point whose reweighted loss reaches ``target`` (the bracket's upper end); the soft answer when
        no bracket is found for ``a`` in ``(0, 3]``."""
        a0 = 1.0
        up = self.loss(a0) < target  # which way along the ray the loss must move
        step = first_step
        while True:
            a1 = a0 + step if up else a0 - step
            if not 0.0 < a1 <= 3.0:
                self.note = "no bracket of the threshold along the ray: the soft answer is kept"
                return self.point
            if (self.loss(a1) >= target) == up:  # crossed between a0 and a1
                lo, hi = (a0, a1) if up else (a1, a0)
                break
            a0, step = a1, 2 * step
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            if self.loss(mid) >= target:
                hi = mid
            else:
                lo = mid
        return self._u(hi)


def _ray_bisect(lmap: LatentPathMap, elp: ExpectedLossPath, k: int, centre: torch.Tensor, point: torch.Tensor,
                target: float, steps: int = 12) -> tuple[torch.Tensor, float]:
    """The point ``centre + a (point - centre)``, ``a`` in ``[0, 2]``, whose soft loss is ``target``
    (bisection; the loss grows along the ray from the unshocked centre to the design point). Returns the
    point ``(1, dim)`` and its soft loss; the far end when even that falls short."""
    def at(a: float) -> tuple[torch.Tensor, float]:
        u = centre + a * (point - centre)
        with torch.no_grad():
            return u, float(_losses(elp, lmap.decode(u)[0], k)[0][0])

    lo, hi = 0.0, 1.0
    u_hi, loss_hi = at(hi)
    while loss_hi < target and hi < 2.0:
        lo, hi = hi, min(2.0, 2 * hi)
        u_hi, loss_hi = at(hi)
    if loss_hi < target:
        return u_hi, loss_hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        u_mid, loss_mid = at(mid)
        if loss_mid >= target:
            hi, u_hi, loss_hi = mid, u_mid, loss_mid
        else:
            lo = mid
    return u_hi, loss_hi


class _progress:
    """A rich progress bar whose ``tick()`` advances it (a no-op without ``progress``)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self._bar = enabled, total, None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("reverse stress", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
