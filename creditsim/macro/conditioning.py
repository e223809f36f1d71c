"""How a conditioned macro draw went: the diagnostics a user reads before trusting anchored paths.

Supervisory (``fed:``), narrative and forecast paths are :meth:`MacroVAE.generate_conditional` draws:
a particle filter whose sample can thin out under hard conditions, Metropolis moves that renew it, and,
when a narrative leaves the dynamics label to its anchors, a label posterior estimated from evidence
(:mod:`creditsim.macro.strata`). The model keeps each call's diagnostics in its ``last_*`` attributes,
which the next call overwrites; :func:`read_conditioning` copies them into a :class:`ConditioningReport`
per batch, so :class:`~creditsim.macro.paths.MacroPaths` can carry them and the CLI can print them.

Reading one: ``ess`` below about 0.1 means few independent histories behind the paths (the library
warns); ``label_posterior`` is what the anchors say about the dynamics, ``label_passes`` two independent
estimates of it whose gap is its Monte Carlo noise; ``moved`` the share of paths the Metropolis moves
renewed (the others share their filter ancestor's early months).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.states import SCENARIOS

__all__ = ["ConditioningReport", "read_conditioning", "conditioning_frame", "conditioning_record"]


@dataclass(frozen=True)
class ConditioningReport:
    """Diagnostics of one conditioned batch of paths.

    Attributes:
        batch: what the batch was drawn under: a scenario name, or ``"picked by the anchors"``.
        n_paths: paths returned. n_particles: particles the filter ran.
        ess: smallest effective sample size of the filter, a fraction of the particles (1.0 when it
            never resampled); with a label posterior, the ESS as a sample of that posterior.
        label_posterior: ``{scenario: probability}`` when the anchors picked the dynamics label, else None.
        label_passes: ``(pilot, allocated)`` posteriors from each pass's evidence alone (same keys), or None.
        label_shares: with a posterior, the shares of the labels the returned paths carry (same keys).
            They come from the Metropolis moves' own label proposals as well as from the posterior, so
            they differ from it by sampling error -- and by more where ``label_noise`` is large.
        acceptance: mean acceptance rate of the Metropolis sweeps (None when none ran).
        moved: share of paths the sweeps moved at least once (0 when none ran).
        tempering_steps: temperature steps of the tempering of the latent and the first innovations, and
            of the innovations before anchored months (:mod:`creditsim.macro.tempering`; 0 when one step
            kept enough particles every time or it did not apply).
    """

    batch: str
    n_paths: int
    n_particles: int
    ess: float
    label_posterior: dict[str, float] | None = None
    label_passes: tuple[dict[str, float], dict[str, float]] | None = None
    label_shares: dict[str, float] | None = None
    acceptance: float | None = None
    moved: float = 0.0
    tempering_steps: int = 0

    @property
    def label_noise(self) -> float | None:
        """Largest gap between the two passes' label posteriors (None without a posterior): a rough
        twice-the-standard-error of :attr:`label_posterior`; above ~0.1 read the label mix with care."""
        if self.label_passes is None:
            return None
        pilot, allocated = self.label_passes
        return max(abs(pilot[k] - allocated[k]) for k in pilot)


def read_conditioning(model, batch: str, n_paths: int) -> ConditioningReport:
    """The :class:`ConditioningReport` of ``model``'s last ``generate_conditional`` call (read it right
    after the call: the next one overwrites the model's ``last_*`` attributes)."""
    def by_label(row: np.ndarray) -> dict[str, float]:
        return {SCENARIOS[k]: float(p) for k, p in enumerate(np.asarray(row, np.float64))}

    posterior = model.last_label_posterior
    passes = model.last_label_passes
    sweeps = model.last_rejuvenation
    carried = np.bincount(model.last_scenarios, minlength=len(SCENARIOS)) / max(len(model.last_scenarios), 1)
    return ConditioningReport(
        batch=batch, n_paths=int(n_paths), n_particles=int(model.last_n_particles), ess=float(model.last_ess),
        label_posterior=None if posterior is None else by_label(posterior),
        label_passes=None if passes is None else (by_label(passes[0]), by_label(passes[1])),
        label_shares=None if posterior is None else by_label(carried[: len(posterior)]),
        acceptance=float(np.mean(sweeps.acceptance)) if sweeps.acceptance else None,
        moved=float(sweeps.moved),
        tempering_steps=(0 if model.last_tempering is None else int(model.last_tempering[0]))
        + sum(int(w[1]) for w in model.last_windows),
    )


def conditioning_frame(reports: Sequence[ConditioningReport]) -> pd.DataFrame:
    """One row per batch: ``batch``, ``paths``, ``particles``, ``ess``, ``acceptance``, ``moved``,
    ``tempering_steps``, ``label_noise`` and, where the anchors picked the label, ``P(<scenario>)`` (the posterior) and
    ``share(<scenario>)`` (the returned paths' labels) per scenario."""
    rows = []
    columns = ["batch", "paths", "particles", "ess", "acceptance", "moved", "tempering_steps", "label_noise"]
    for r in reports:
        row = dict(zip(columns, (r.batch, r.n_paths, r.n_particles, r.ess, r.acceptance, r.moved, r.tempering_steps,
                                 r.label_noise)))
        row.update({f"P({k})": v for k, v in (r.label_posterior or {}).items()})
        row.update({f"share({k})": v for k, v in (r.label_shares or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def conditioning_record(reports: Sequence[ConditioningReport]) -> dict[str, dict]:
    """JSON-ready ``{batch: {paths, particles, ess, acceptance, moved, tempering_steps[, label_posterior, label_noise,
    label_shares]}}``
    (floats rounded to 4 decimals): what a run's settings keep (``settings["macro_conditioning"]``)."""
    out: dict[str, dict] = {}
    for r in reports:
        entry = {"paths": r.n_paths, "particles": r.n_particles, "ess": round(r.ess, 4),
                 "acceptance": None if r.acceptance is None else round(r.acceptance, 4), "moved": round(r.moved, 4),
                 "tempering_steps": r.tempering_steps}
        if r.label_posterior is not None:
            entry["label_posterior"] = {k: round(v, 4) for k, v in r.label_posterior.items()}
            entry["label_noise"] = round(float(r.label_noise), 4)
            entry["label_shares"] = {k: round(v, 4) for k, v in (r.label_shares or {}).items()}
        out[r.batch] = entry
    return out
