"""``creditsim ratings``: fit the one-factor credit-cycle model and project lifetime PDs.

- ``creditsim ratings fit``: TTC matrix, rho and the Z_t table from annual default counts (S&P
  1981-2000 by default, restricted data found at the user's site, or ``--data`` a CSV with columns year, rating, obligors, defaults);
  ``--plot PATH`` writes a PNG of Z_t and of the TTC cumulative PD term structures by grade.
- ``creditsim ratings lifetime --scenario NAME``: lifetime cumulative PDs by grade (8x8 S&P TTC) under
  Federal Reserve supervisory scenarios mapped to Z by the stored macro link, with the residual
  variance integrated, reverting to TTC after the scenario's full years; several ``--scenario`` with
  ``--weights`` give the probability-weighted (outcome-weighted) term structure. ``--z`` gives an
  explicit Z path instead.

Sign convention: z > 0 is a good year. Bad input raises DataError / ConfigError (one-line message,
exit status 2 through :func:`creditsim.cli.main`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.fileio import check_output_target

__all__ = ["register", "ratings_app"]

console = Console()

ratings_app = typer.Typer(
    name="ratings",
    help="Rating migration: one-factor Z model (z > 0 = good year) and lifetime PD term structures.",
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    """Add the ``ratings`` command group to the ``creditsim`` app."""
    app.add_typer(ratings_app, name="ratings")


def _save_png(fig, path: Path) -> Path:
    """Write a matplotlib figure atomically, with the umask's file mode (:func:`creditsim.fileio.atomic_write`)."""
    from creditsim.fileio import atomic_write

    path = Path(path)
    _check_plot_path(path)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"),
                        suffix=".png")


def _check_plot_path(plot: Path | None) -> None:
    """Reject a non-PNG ``--plot`` before any work is done (not after the tables are printed)."""
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot must name a .png file, got {plot}")
    if plot is not None:
        check_output_target(plot, "file", "--plot")


def _read_counts(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a long counts CSV (year, rating, obligors, defaults) into (defaults, obligors) frames.

    Every cell is checked before pivoting: a non-numeric or blank year / obligors / defaults cell
    raises DataError naming its (year, rating) pairs (a blank cell must not become 0 through a
    sum), and a (year, rating) pair absent from the file is named too. Duplicate (year, rating)
    rows are summed (sub-portfolios of the same cohort)."""
    if not path.exists():
        raise DataError(f"counts file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read counts CSV {path}: {exc}") from None
    need = ["year", "rating", "obligors", "defaults"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; expected {need}")
    if df.empty:
        raise DataError(f"{path}: no rows")
    line = df.index + 2  # CSV line numbers (header is line 1)
    year = pd.to_numeric(df["year"], errors="coerce")
    bad = year.isna() | (year != year.round())
    if bad.any():
        raise DataError(f"{path}: column 'year' must be whole numbers; bad values on CSV lines {format_labels(line[bad].tolist())}")
    rating = df["rating"]
    if rating.isna().any():
        raise DataError(f"{path}: column 'rating' is blank on CSV lines {format_labels(line[rating.isna()].tolist())}")
    df = df.assign(year=year.astype(np.int64), rating=rating.astype(str).str.strip())
    for col in ("obligors", "defaults"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() | ~np.isfinite(num)
        if bad.any():
            pairs = [(int(y), r) for y, r in zip(df.loc[bad, "year"], df.loc[bad, "rating"])]
            raise DataError(
                f"{path}: column {col!r} must be numeric counts; blank or non-numeric for (year, rating) "
                f"{format_labels(pairs)}"
            )
        df[col] = num
    order = list(pd.unique(df["rating"]))
    grouped = df.groupby(["year", "rating"], sort=True)
    obl = grouped["obligors"].sum(min_count=1).unstack("rating").reindex(columns=order)
    dft = grouped["defaults"].sum(min_count=1).unstack("rating").reindex(columns=order)
    gaps = obl.isna().stack()
    gaps = gaps[gaps]
    if len(gaps):
        pairs = [(int(y), str(r)) for y, r in gaps.index]
        raise DataError(f"{path}: missing (year, rating) pairs {format_labels(pairs)}; every year needs a row per rating")
    obl.index.name = dft.index.name = "year"
    obl.columns.name = dft.columns.name = None
    return dft, obl


def _fmt_matrix(p: pd.DataFrame, title: str) -> Table:
    t = Table(title=title)
    t.add_column("from")
    for c in p.columns:
        t.add_column(str(c), justify="right")
    for i, row in p.iterrows():
        t.add_row(str(i), *[f"{v:.4f}" for v in row])
    return t


@ratings_app.command("fit")
def fit(
    data: Path = typer.Option(None, "--data", help="CSV with columns year, rating, obligors, defaults (default: the S&P 1981-2000 counts, restricted data: $CREDITSIM_DATA_DIR/ratings/)."),
    method: str = typer.Option("map", "--method", help="Z estimator: map (default), mle or wls."),
    rho_method: str = typer.Option("marginal", "--rho-method", help="rho estimator: marginal (Gauss-Hermite ML) or bsf."),
    rho: float = typer.Option(None, "--rho", help="Fix rho instead of estimating it."),
    years: int = typer.Option(10, "--years", help="Horizon of the PD term-structure plot (years, 1..200)."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of Z_t and PD term structures by grade."),
) -> None:
    """Fit Z_t and rho (z > 0 = good year) and print TTC, rho and the Z_t table."""
    _check_plot_path(plot)
    years = _check_years_option(years)
    from creditsim.datasets.ratings import load_sp_ratings
    from creditsim.ratings.lifetime import ttc_term_structure
    from creditsim.ratings.zfactor import ZFactorModel

    sp = load_sp_ratings()
    if data is None:
        from creditsim.datasets.restricted import SP_COUNTS_KEY, restricted_path

        defaults, obligors = sp.defaults, sp.obligors
        source = f"S&P Global Ratings 1981-2000 ({restricted_path(SP_COUNTS_KEY)})"
    else:
        defaults, obligors = _read_counts(Path(data))
        source = str(data)
    model = ZFactorModel(rho=rho, rho_method=rho_method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        res = model.fit(defaults=defaults, obligors=obligors, method=method)
    for wmsg in caught:  # e.g. rho at its search bound: one readable line, not a warnings trace
        console.print(f"[yellow]warning:[/] {wmsg.message}")
    pooled = defaults.sum() / obligors.sum()
    console.print(f"[bold]Data:[/] {source}; grades {', '.join(map(str, defaults.columns))}")
    console.print(_fmt_matrix(sp.matrix_8x8, "TTC one-year matrix (S&P 1981-2016, NR-adjusted)"))
    tp = Table(title="TTC PD used for Z (pooled default rate)")
    for g in pooled.index:
        tp.add_column(str(g), justify="right")
    tp.add_row(*[f"{v:.4%}" for v in pooled])
    console.print(tp)
    se = f" (se {res.rho_se_:.4f})" if np.isfinite(res.rho_se_) else ""
    console.print(f"[bold]rho[/] = {res.rho_:.4f}{se}  by {res.rho_method}; Z by {res.method}; z > 0 = good year")
    tz = Table(title="Credit-cycle index Z_t")
    for c in ("year", "Z", "se", "default rate"):
        tz.add_column(c, justify="right")
    agg = defaults.sum(axis=1) / obligors.sum(axis=1)
    for y in res.z_.index:
        tz.add_row(str(y), f"{res.z_[y]:+.3f}", f"{res.z_se_[y]:.3f}", f"{agg[y]:.3%}")
    console.print(tz)
    if plot is not None:
        import matplotlib.pyplot as plt

        fig = _fit_figure(res, ttc_term_structure(sp.matrix_8x8, years), years)
        out = _save_png(fig, Path(plot))
        plt.close(fig)
        console.print(f"plot written to {out}")


def _fit_figure(res, ts, years: int):
    """Figure of Z_t (bars, z > 0 = good year, green) and TTC cumulative PDs by grade (log axis).

    A cumulative PD of exactly 0 (AAA in year 1 of the S&P 8x8: no AAA defaulted within a year)
    has no place on a log axis; it is masked (NaN: no marker) rather than drawn at a fake floor,
    which would show a default risk the data do not contain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = ["tab:green" if v > 0 else "tab:red" for v in res.z_]
    a1.bar([str(y) for y in res.z_.index], res.z_.to_numpy(), color=colors, yerr=res.z_se_.to_numpy(), capsize=2)
    a1.axhline(0, color="black", lw=0.8)
    a1.set_title(f"Z_t ({res.method}, rho={res.rho_:.3f}; z > 0 good year)")
    a1.tick_params(axis="x", rotation=90)
    yrs = np.arange(1, years + 1)
    for j, g in enumerate(ts.grades):
        cum = ts.cumulative[:years, j]
        a2.plot(yrs, np.where(cum > 0, cum, np.nan), marker="o", ms=3, label=g)
    a2.set_yscale("log")
    a2.set_xlabel("year")
    a2.set_ylabel("cumulative PD")
    a2.set_title("TTC cumulative PD by grade (S&P 8x8; PD = 0 not drawn)")
    a2.legend(fontsize=8)
    return fig


def _check_years_option(years: int) -> int:
    """``--years`` in 1..MAX_YEARS (200): refused before any work, instead of allocating a
    1e8-year term structure (ConfigError naming the option and the limit)."""
    from creditsim.ratings.limits import MAX_YEARS, check_count

    return check_count(years, "--years", high=MAX_YEARS, unit=" (years)")


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _parse_z(text: str) -> np.ndarray:
    """``--z`` as an array of annual Z values (z > 0 = good year), each with ``|z| <= Z_ABS_MAX``."""
    from creditsim.ratings.zfactor import Z_ABS_MAX

    path = np.asarray(_parse_floats(text, "--z"))
    if path.size == 0:
        raise ConfigError("--z needs at least one value")
    bad = ~np.isfinite(path) | (np.abs(path) > Z_ABS_MAX)
    if bad.any():
        raise ConfigError(
            f"--z values must satisfy |z| <= {Z_ABS_MAX:g} (Z is a standard normal; z > 0 = good year), "
            f"got {format_labels(path[bad].tolist())} at years {format_labels((np.flatnonzero(bad) + 1).tolist())}"
        )
    return path


def _parse_weights(weights: str | None, scenario: list[str], z: str | None) -> list[float] | None:
    """``--weights``: one per ``--scenario``, each >= 0, summing to 1; not combinable with ``--z``
    (an explicit Z path, z > 0 = good year)."""
    if weights is None:
        return None
    if z is not None:
        raise ConfigError("--weights applies to several --scenario options, not to an explicit --z path")
    w = _parse_floats(weights, "--weights")
    if len(w) != len(scenario):
        raise ConfigError(f"--weights: need one weight per scenario: {len(scenario)} scenarios {scenario}, {len(w)} weights")
    if any(not np.isfinite(x) or x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-9:
        raise ConfigError(f"--weights must be >= 0 and sum to 1, got {w}")
    return w


@ratings_app.command("lifetime")
def lifetime(
    scenario: list[str] = typer.Option(["baseline"], "--scenario", help="Fed scenario (baseline, severely_adverse); repeat for several."),
    weights: str = typer.Option(None, "--weights", help="Comma-separated scenario weights (sum 1) for the weighted term structure."),
    fed_year: int = typer.Option(2025, "--fed-year", help="Fed stress-test year of the scenarios (2024, 2025, 2026); "
                                 "2025 as in simulate's fed source (ecl defaults to 2026: it reads a table "
                                 "from the month after --as-of, and the 2026 tables start in 2026-01)."),
    z: str = typer.Option(None, "--z", help="Explicit annual Z path, e.g. '-1.5,-0.5,0.3' (replaces --scenario)."),
    years: int = typer.Option(10, "--years", help="Projection horizon in years (1..200)."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of the cumulative PD term structures."),
) -> None:
    """Lifetime cumulative PD by grade under scenarios (z > 0 = good year), reverting to TTC."""
    from creditsim.datasets.fed import load_fed_scenarios
    from creditsim.ratings.lifetime import (
        ZMacroLink,
        matrices_term_structure,
        path_term_structure,
        scenario_weighted,
        ttc_term_structure,
    )

    # every option is checked before anything is computed or printed
    _check_plot_path(plot)
    years = _check_years_option(years)
    path = _parse_z(z) if z is not None else None
    w = _parse_weights(weights, scenario, z)
    monthly_by_name = {} if path is not None else {name: load_fed_scenarios(fed_year, name, monthly=True) for name in scenario}
    for name, monthly in monthly_by_name.items():
        if len(monthly) < 12:
            raise DataError(f"scenario {name!r} has fewer than 12 months")
    link = ZMacroLink.from_bundled()
    ttc = link.ttc.to_numpy() if isinstance(link.ttc, pd.DataFrame) else np.asarray(link.ttc)
    structures: dict[str, object] = {}
    if path is not None:
        structures["z path"] = path_term_structure(ttc, path, link.rho, n_years=max(years, path.size))
        console.print(f"Z path {path.tolist()} (z > 0 = good year), rho = {link.rho:.4f}")
    else:
        for name, monthly in monthly_by_name.items():
            n_full = len(monthly) // 12
            arr = monthly.to_numpy()[None, : 12 * n_full]
            mats = link.scenario_matrices(arr, frequency="monthly")[0]  # (n_full, 8, 8), residual integrated
            zmean = link.predict(arr.reshape(1, n_full, 12, -1).mean(axis=2))[0]
            structures[name] = matrices_term_structure(mats, ttc=ttc, n_years=max(years, n_full))
            console.print(
                f"{name} ({fed_year}): Z mean by year {np.round(zmean, 3).tolist()} (z > 0 = good year), "
                f"{n_full} scenario years then TTC; rho = {link.rho:.4f}, residual var = {link.resid_var_:.3f}"
            )
        if w is not None:
            structures["weighted"] = scenario_weighted([structures[s] for s in scenario], w)
    structures["TTC"] = ttc_term_structure(ttc, max(years, 1))
    for name, ts in structures.items():
        t = Table(title=f"Cumulative PD, {name}")
        t.add_column("year", justify="right")
        for g in ts.grades:
            t.add_column(g, justify="right")
        for i in range(years):
            t.add_row(str(i + 1), *[f"{v:.3%}" for v in ts.cumulative[i]])
        console.print(t)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grades = structures["TTC"].grades
        fig, axes = plt.subplots(2, 4, figsize=(14, 6), sharex=True)
        yrs = np.arange(1, years + 1)
        for j, (ax, g) in enumerate(zip(axes.ravel(), grades)):
            for name, ts in structures.items():
                ax.plot(yrs, ts.cumulative[:years, j], label=name, ls="--" if name == "TTC" else "-")
            ax.set_title(g)
        axes.ravel()[-1].axis("off")
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle("Cumulative PD by grade (z > 0 = good year)")
        out = _save_png(fig, Path(plot))
        plt.close(fig)
        console.print(f"plot written to {out}")
