"""``macro_paths()``: macro scenario paths from any source, as :func:`creditsim.simulate` draws them.

One entry point for every generator -- the MacroVAE, the VAR(1) and block-bootstrap baselines, the
rule-based synthetic generator, the Fed's supervisory tables and narrative scenarios (VAE paths that
meet their anchors exactly), a frame or a file of paths -- returning a
:class:`MacroPaths` (values, dates, scenario labels) that a risk team can tabulate, plot or hand to
``simulate(macro=paths.values)``. For the same seed, source, scenario mix and start, the paths equal
those of a simulation run (tested).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.datasets import load_fed_scenarios, macro_state
from creditsim.datasets.files import read_fred_series
from creditsim.errors import ConfigError, RestrictedDataMissing, check_positive_int
from creditsim.fileio import atomic_write
from creditsim.io import read_frame
from creditsim.macro.conditioning import ConditioningReport, conditioning_frame
from creditsim.macro.scenarios import (
    GENERATED_SOURCES,
    as_narrative,
    build_macro_draw,
    draw_scenario_labels,
    is_path_table,
    macro_anchors,
    parse_macro_source,
    parse_scenario_mix,
    resolve_macro_start,
    source_weights,
)
from creditsim.macro.vae import MacroVAE
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = ["MacroPaths", "macro_paths", "PLOT_SUFFIXES"]

#: chart files :meth:`MacroPaths.plot` writes
PLOT_SUFFIXES: tuple[str, ...] = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class MacroPaths:
    """Macro scenario paths with their calendar and labels.

    Attributes:
        values: ``(S, T, 9)`` float64 decimals in :data:`MACRO_VARS` order (``np.asarray(paths)`` gives it).
        scenarios: ``(S,)`` scenario index of each path (0 baseline .. 3 stagflation).
        dates: ``(T,)`` month starts; month 0 is the start month.
        source: what generated them (e.g. ``"vae"``, ``"fed:2026:severely_adverse"``).
        start: where month 0 comes from (e.g. ``"history 2025-09"``; a variable whose series ended
            before that month would add ``", <var> held from <month>"``).
        anchors: for fed and narrative sources, the values every path meets exactly: a table with
            columns ``scenario`` (the scenario whose paths carry the row, or ``"all"``), ``variable``,
            ``month`` (0-based position, ``dates[month]``) and ``value`` (decimals); None otherwise.
        conditioning: for fed, narrative and forecast sources, how each conditioned batch went
            (:class:`~creditsim.macro.conditioning.ConditioningReport`: effective sample size, Metropolis
            acceptance, and the label posterior when a narrative's anchors picked the dynamics);
            :meth:`conditioning_table` tabulates them. Empty for other sources.
    """

    values: np.ndarray
    scenarios: np.ndarray
    dates: pd.DatetimeIndex
    source: str
    start: str
    anchors: pd.DataFrame | None = None
    conditioning: tuple[ConditioningReport, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        return MACRO_VARS

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.values.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.values, dtype=dtype)

    def scenario(self, name: str | int) -> MacroPaths:
        """The paths of one scenario type."""
        idx = SCENARIOS.index(name) if isinstance(name, str) else int(name)
        keep = self.scenarios == idx
        anchors = self.anchors
        if anchors is not None:
            anchors = anchors[anchors["scenario"].isin([SCENARIOS[idx], "all"])].reset_index(drop=True)
        # a fed batch belongs to its table's scenario; a narrative's or forecast's batch to all its paths
        reports = tuple(r for r in self.conditioning if r.batch == SCENARIOS[idx] or r.batch not in SCENARIOS)
        return MacroPaths(self.values[keep], self.scenarios[keep], self.dates, self.source, self.start, anchors,
                          reports)

    def conditioning_table(self) -> pd.DataFrame:
        """One row per conditioned batch (:func:`~creditsim.macro.conditioning.conditioning_frame`): paths,
        particles, ``ess`` (fraction), Metropolis ``acceptance`` and share ``moved``, and for a narrative
        whose anchors picked the dynamics ``P(<scenario>)`` with ``label_noise``, the gap between two
        independent estimates of it. Empty for unconditioned sources."""
        return conditioning_frame(self.conditioning)

    def to_frame(self) -> pd.DataFrame:
        """Long table: index ``(path, reporting_month)``, columns ``scenario`` and the 9 variables."""
        n, t, _ = self.values.shape
        index = pd.MultiIndex.from_product([np.arange(n), self.dates], names=["path", "reporting_month"])
        frame = pd.DataFrame(self.values.reshape(n * t, -1), index=index, columns=list(MACRO_VARS))
        frame.insert(0, "scenario", np.repeat(np.asarray(SCENARIOS, dtype=object)[self.scenarios], t))
        return frame

    def quantiles(self, q: Sequence[float] = (0.05, 0.5, 0.95)) -> pd.DataFrame:
        """Per scenario, quantile and month: the cross-path quantiles of each variable."""
        rows = []
        for s in np.unique(self.scenarios):
            vals = self.values[self.scenarios == s]
            for qq in q:
                block = pd.DataFrame(np.quantile(vals, qq, axis=0), index=self.dates, columns=list(MACRO_VARS))
                block.insert(0, "quantile", qq)
                block.insert(0, "scenario", SCENARIOS[int(s)])
                rows.append(block)
        return pd.concat(rows).set_index(["scenario", "quantile"], append=True).reorder_levels([1, 2, 0])

    def plot(self, variables: Sequence[str] | None = None, path: str | os.PathLike[str] | None = None):
        """Fan chart: per variable, each scenario's median and 5-95 % band over the months (percent);
        the anchors of fed / narrative paths as markers (the scenario's colour, black for ``"all"``).

        Returns the matplotlib Figure; with ``path`` also saves it (PNG / SVG / PDF by extension).
        """
        import matplotlib  # optional plotting dependency, imported when a chart is asked for

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if path is not None and Path(path).suffix.lower() not in PLOT_SUFFIXES:
            raise ConfigError(f"plot path {str(path)!r}: expected a file ending in {', '.join(PLOT_SUFFIXES)}")
        names = list(variables) if variables is not None else list(MACRO_VARS)
        unknown = [v for v in names if v not in MACRO_VARS]
        if unknown:
            raise ConfigError(f"variables {unknown} are not macro variables; choose from {list(MACRO_VARS)}")
        cols = min(3, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False, sharex=True)
        for ax, var in zip(axes.ravel(), names):
            j = MACRO_VARS.index(var)
            colours = {"all": "black"}
            for s in np.unique(self.scenarios):
                vals = 100 * self.values[self.scenarios == s, :, j]
                lo, mid, hi = np.quantile(vals, [0.05, 0.5, 0.95], axis=0)
                line, = ax.plot(self.dates, mid, label=SCENARIOS[int(s)])
                ax.fill_between(self.dates, lo, hi, color=line.get_color(), alpha=0.15)
                colours[SCENARIOS[int(s)]] = line.get_color()
            if self.anchors is not None:
                for scen, rows in self.anchors[self.anchors["variable"] == var].groupby("scenario"):
                    ax.plot(self.dates[rows["month"].to_numpy()], 100 * rows["value"].to_numpy(), "o", ms=3,
                            color=colours.get(str(scen), "black"), mfc="none")
            ax.set_title(f"{var} (%)", fontsize=9)
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle(f"{self.source}: {len(self)} paths from {self.start}", fontsize=10)
        fig.autofmt_xdate()
        fig.tight_layout()
        if path is not None:  # a temp file renamed into place: never a half-written chart
            fmt = Path(path).suffix.lstrip(".").lower()
            atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=fmt))
        return fig


def macro_paths(source: Any = "vae", scenario: Mapping[str, float] | str | None = None, n_paths: int = 1000,
                months: int = 60, start: Any = "latest", seed: int = 0, device: str = "cpu") -> MacroPaths:
    """Macro scenario paths from ``source``, starting from ``start``.

    Args:
        source: ``"vae"`` (pretrained MacroVAE) or a MacroVAE, ``"var"`` (VAR(1) on the bundled history),
            ``"bootstrap"`` (block bootstrap of historical monthly changes; both give each path's deviation
            around the scenario's anchored central path, as the VAE does), ``"synthetic"`` (rule-based
            generator), ``"forecast"`` (the VAE's forecast distribution from ``start``, no scenario imposed,
            a pull towards long-run levels drawn per path: the setting scored out of time by
            ``creditsim eval macro --oot --pull uniform``), ``"fed"`` / ``"fed:YEAR"`` / ``"fed:YEAR:SCENARIO"`` (e.g.
            ``"fed:2026:severely_adverse"``: VAE paths from ``start`` that meet the supervisory table's
            published variables exactly at months 3k + 2, with the model's dispersion everywhere else;
            see :mod:`creditsim.macro.scenarios`), a narrative (a mapping ``{variable: [{month, value}],
            scenario?}`` or the path of a ``.yaml`` / ``.yml`` file of one, :mod:`creditsim.macro.narrative`:
            every anchor met exactly), a macro DataFrame, a ``(S, T, 9)`` / ``(T, 9)`` array (e.g.
            :func:`~creditsim.macro.scenarios.fed_table_path`, the deterministic supervisory path), or the
            path of a CSV / Parquet macro file (a ``reporting_month`` column and the 9 variables: one path,
            one per scenario with a ``scenario`` column, or a paths table with a ``path`` column as
            :meth:`MacroPaths.to_frame` writes it, :func:`~creditsim.macro.scenarios.path_frame`: then
            ``n_paths`` must be its number of paths, and its ``scenario`` column labels them).
        scenario: one scenario name (all paths of that type) or a mix (see
            :func:`~creditsim.macro.scenarios.parse_scenario_mix`); None = the default mix. A
            ``"fed:YEAR:SCENARIO"`` source, and a narrative naming its ``scenario``, label every path with
            that scenario; a narrative without one labels each path with the dynamics its anchors picked
            (:attr:`~creditsim.macro.vae.MacroVAE.last_scenarios`), not with the mix. A scenario that the
            source would ignore (another mix than a narrative's own scenario; any, for a narrative without
            one or a paths table with a scenario column) is refused (ConfigError).
        n_paths: number of paths S. months: path length T.
        start: ``"latest"`` (the latest real month, :func:`creditsim.datasets.macro_state`),
            ``"YYYY-MM"`` (that month's real state), a mapping / ``(9,)`` array of the 9 variables, or
            ``"scenario"`` (the VAE's scenario-typical historical starts; fed paths then start from the
            table's first quarter, narratives from the latest month). Applies to generated paths (vae,
            var, bootstrap, forecast, fed, narrative); synthetic and given paths carry their own start
            (``start`` is not read for them; ``creditsim data paths --start`` refuses it there).
        seed: master seed; labels and paths come from the same keyed streams as a simulation's.
        device: torch device of the VAE.

    Returns:
        :class:`MacroPaths` (with ``anchors`` for fed and narrative sources).
    """
    n = check_positive_int(n_paths, "n_paths")
    horizon = check_positive_int(months, "months")
    seed = check_positive_int(seed, "seed", minimum=0)
    label = source if isinstance(source, str) else type(source).__name__
    narrative = as_narrative(source)
    if narrative is not None:
        label = source if isinstance(source, str) else narrative.source
        source = narrative  # read and validated once
        _check_narrative_scenario(narrative, scenario)
    elif isinstance(source, (str, os.PathLike)) and _is_file(source):
        source = read_frame(source, "macro file")  # validated where it is read as paths (build_macro_draw)
    if is_path_table(source) and "scenario" in [*source.columns, *source.index.names] and scenario is not None:
        raise ConfigError("this paths table labels each path with its scenario column; leave the scenario "
                          "(--scenario) out, or filter the table's rows first")
    if isinstance(source, str):
        kind = parse_macro_source(source)[0]
    elif narrative is not None:
        kind = "narrative"
    else:
        kind = "vae" if isinstance(source, MacroVAE) else "data"
    labels = draw_scenario_labels(source_weights(source, scenario), n, seed)
    generated = kind in GENERATED_SOURCES or kind == "narrative"
    # resolve_macro_start reads "latest", "YYYY-MM", mappings and arrays alike (no comparison here: an
    # array start made ``start == "latest"`` ambiguous)
    start_vec, start_label = resolve_macro_start(start) if generated else (None, "paths as given")
    if kind == "narrative" and start_vec is None:
        start_vec, start_label = resolve_macro_start(None)  # a narrative always starts from a real state
    elif kind == "fed" and start_vec is None:
        start_label = "supervisory table, first quarter"
    draw = build_macro_draw(source, labels, horizon, seed, device, start=start_vec)
    labels = labels if draw.labels is None else draw.labels
    anchors = macro_anchors(source, labels, horizon)
    return MacroPaths(draw.values, labels, _dates(source, kind, start_label, horizon), label, start_label, anchors,
                      draw.conditioning)


def _check_narrative_scenario(narrative: Any, scenario: Any) -> None:
    """A narrative's dynamics come from its own ``scenario`` key, or without one from what its anchors
    pick: a ``scenario`` argument that says otherwise would be silently ignored, so it is refused."""
    if scenario is None:
        return
    if narrative.scenario is not None and np.array_equal(parse_scenario_mix(scenario),
                                                         parse_scenario_mix(narrative.scenario)):
        return
    own = f"names {narrative.scenario!r}" if narrative.scenario else "lets its anchors pick the dynamics"
    raise ConfigError(f"this narrative {own}; a scenario {scenario!r} would be ignored (leave it out, or set "
                      "the narrative's scenario key)")


def _is_file(source: Any) -> bool:
    text = str(source)
    return isinstance(source, os.PathLike) or (text.lower().endswith((".csv", ".csv.gz", ".parquet")) and Path(text).is_file())


def _dates(source: Any, kind: str, start_label: str, months: int) -> pd.DatetimeIndex:
    """Month starts of the paths: the frame's first month, the start month of generated paths (fed and
    narrative included), the supervisory table's first month for fed paths without a start, else the
    latest month of the bundled data."""
    if isinstance(source, pd.DataFrame):
        first = _first_month(source)
    elif start_label.startswith("history "):
        first = pd.Timestamp(start_label.split()[1].rstrip(",") + "-01")
    elif kind == "fed" and start_label.startswith("supervisory"):
        _, year, only = parse_macro_source(source)
        first = pd.Timestamp(load_fed_scenarios(year, scenario=only or "baseline", monthly=True).index[0])
    else:
        first = _latest_bundled_month(kind)
    return pd.date_range(first, periods=months, freq="MS", name="reporting_month")


def _first_month(frame: pd.DataFrame) -> pd.Timestamp:
    """The first month of a macro frame: its DatetimeIndex, else its ``reporting_month`` column (a file as
    read, validated already by :func:`build_macro_draw`)."""
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index.min().to_period("M").to_timestamp()
    if isinstance(frame.index, pd.PeriodIndex):
        return frame.index.min().to_timestamp()
    if "reporting_month" in (frame.index.names or []):  # MacroPaths.to_frame()'s (path, reporting_month)
        return pd.to_datetime(frame.index.get_level_values("reporting_month")).min().to_period("M").to_timestamp()
    return pd.to_datetime(frame["reporting_month"]).min().to_period("M").to_timestamp()


def _latest_bundled_month(kind: str) -> pd.Timestamp:
    """The month :func:`macro_state` starts from (the latest complete month of the bundled macro data).

    Synthetic paths are stylised and start from no real state, so they need the data only for a date:
    where the restricted series are not at hand (a wheel install before ``creditsim data fetch``) they are
    dated from the last month of the shipped unemployment series instead of failing. Every other source
    starts from the real state and raises :class:`~creditsim.errors.RestrictedDataMissing`."""
    try:
        return pd.Timestamp(macro_state().attrs["month"] + "-01")
    except RestrictedDataMissing:
        if kind != "synthetic":
            raise
        return read_fred_series("UNRATE").index[-1].to_period("M").to_timestamp()
