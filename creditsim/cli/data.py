"""``creditsim data``: synthesise, validate and export data.

- ``creditsim data synth``: a synthetic loan tape and panel (:class:`~creditsim.transitions.synthetic.LoanTapeGenerator`)
  written to a directory as Parquet or CSV, with the macro path that drove it.
- ``creditsim data validate FILE``: check a loan tape or panel file against the data contract.
- ``creditsim data macro``: print or export the US macro history (:func:`creditsim.datasets.load_macro_history`).
- ``creditsim data paths [SOURCE]``: macro scenario paths from any source (:func:`creditsim.macro_paths`), as
  a run would draw them: a per-scenario summary, how a conditioned draw went, a file and a fan chart.
- ``creditsim data fetch``: download the restricted series (not shipped) into the user cache (:mod:`creditsim.datasets.fetch`).
- ``creditsim data freddie SOURCE``: Freddie Mac's Single-Family Loan-Level files (downloaded by the user)
  as a loan tape and panel in our states (:func:`creditsim.datasets.freddie_mac.read_freddie_mac`).
- ``creditsim data sba FILE``: the SBA 7(a) loan file as a charge-off panel and loan features
  (:func:`creditsim.datasets.sba.read_sba_loans`).

Bad input raises :class:`~creditsim.errors.DataError` / :class:`~creditsim.errors.ConfigError`;
:func:`creditsim.cli.main` prints the one-line message and exits with status 2.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError, CreditSimError, DataError
from creditsim.fileio import check_output_target
from creditsim.states import MACRO_VARS
from creditsim.states import SCENARIOS as SCENARIO_NAMES

__all__ = ["register", "data_app"]

console = Console()

data_app = typer.Typer(
    name="data",
    help="Synthesise, validate and export loan tapes, panels and macro data; fetch restricted series.",
    no_args_is_help=True,
    add_completion=False,
)


class FileFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"


class FileKind(str, Enum):
    tape = "tape"
    panel = "panel"


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the ``creditsim`` app."""
    app.add_typer(data_app, name="data")


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Output directory (created if missing)."),
    n_loans: int = typer.Option(10_000, "--n-loans", min=1, help="Number of loans."),
    n_months: int = typer.Option(60, "--n-months", min=1, help="Panel length in months."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (same seed, same files)."),
    scenario: str = typer.Option(
        "baseline", "--scenario", help="Macro scenario driving the panel: baseline, adverse, severely_adverse, stagflation."
    ),
    fmt: FileFormat = typer.Option(FileFormat.parquet, "--format", help="File format of the outputs."),
    cutoff: str = typer.Option("2025-01", "--cutoff", help="Cut-off month (first panel month), YYYY-MM."),
) -> None:
    """Generate a synthetic loan tape and monthly panel and write loans / panel / macro files to OUT."""
    import pandas as pd

    from creditsim.io import atomic_write_frame, write_loan_tape, write_panel
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.macro.synthetic import MacroScenarioGenerator
    from creditsim.states import MACRO_VARS, scenario_index

    ext = fmt.value
    for name in ("loans", "panel", "macro"):  # before any work: a bad --out fails in a second, not after
        check_output_target(out / f"{name}.{ext}", "file", "--out")
    idx = scenario_index(scenario)
    macro_gen = MacroScenarioGenerator(n_months, start=cutoff)
    macro = macro_gen.generate_scenario(idx, n_paths=1, seed=seed)[0]
    gen = LoanTapeGenerator(n_loans, n_months, random_seed=seed, macro_path=macro, cutoff=cutoff)
    with console.status("generating tape and panel"):
        loans, panel = gen.generate()
    out.mkdir(parents=True, exist_ok=True)
    loans_path = write_loan_tape(loans, out / f"loans.{ext}")
    panel_path = write_panel(panel, out / f"panel.{ext}", validate=False)
    macro_df = pd.DataFrame(macro, index=macro_gen.index, columns=list(MACRO_VARS)).reset_index()
    macro_path = atomic_write_frame(macro_df, out / f"macro.{ext}")

    table = Table(title=f"synthetic tape: {n_loans:,} loans x {n_months} months, seed {seed}, {scenario}")
    for col in ("asset class", "loans", "balance at cut-off", "pd_annual (mean)", "defaulted", "prepaid", "matured"):
        table.add_column(col, justify="right" if col != "asset class" else "left")
    last = panel.groupby("loan_id", observed=True)["loan_state"].last()
    final = loans.set_index("loan_id")["asset_class"].to_frame().join(last.rename("final_state"))
    for cls, grp in loans.groupby("asset_class"):
        fs = final.loc[final["asset_class"] == cls, "final_state"]
        table.add_row(
            str(cls), f"{len(grp):,}", f"{grp['current_balance'].sum():,.0f}", f"{grp['pd_annual'].mean():.2%}",
            f"{(fs == 4).mean():.1%}", f"{(fs == 5).mean():.1%}", f"{(fs == 6).mean():.1%}",
        )
    console.print(table)
    for p in (loans_path, panel_path, macro_path):
        console.print(f"wrote {p}")


def _guess_kind(path: Path) -> FileKind:
    """A file with ``reporting_month`` and ``loan_state`` columns is a panel, otherwise a tape."""
    import pandas as pd

    from creditsim.io import file_format

    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"file {path} does not exist or is not a file")
    try:
        if fmt == "csv":
            cols = {str(c).strip() for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns}
        else:
            import pyarrow.parquet as pq

            cols = set(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - unreadable: let the reader produce the DataError
        return FileKind.tape
    return FileKind.panel if {"reporting_month", "loan_state"} <= cols else FileKind.tape


@data_app.command("freddie")
def freddie(
    sources: list[Path] = typer.Argument(..., help="Folders, zip archives or text files of Freddie Mac's "
                                         "Single-Family Loan-Level Dataset (origination and monthly performance)."),
    out: Path = typer.Option(..., "--out", help="Output directory for loans and panel (created if missing)."),
    default_months: int | None = typer.Option(
        None, "--default-months", help="Months delinquent that count as a default (6: the 180-day definition). "
        "Default: the credit event itself (REO acquisition, short sale, third-party or note sale)."),
    max_loans: int | None = typer.Option(None, "--max-loans", min=1, help="Read only N loans, a fixed subset spread "
                                         "over the vintages given (a full release needs about 0.4 kB of memory per "
                                         "loan-month read)."),
    end: str | None = typer.Option(None, "--end", help="Last reporting month kept, YYYY-MM (e.g. the macro history's last)."),
    fmt: FileFormat = typer.Option(FileFormat.parquet, "--format", help="File format of the outputs."),
) -> None:
    """Read Freddie Mac loan-level files into a loan tape and a monthly panel in creditsim's states, and write
    them to OUT: the inputs of creditsim eval transitions and creditsim train. The data are Freddie Mac's,
    given to registered users under terms that forbid redistribution; creditsim reads them where they lie."""
    from creditsim.datasets.freddie_mac import read_freddie_mac
    from creditsim.io import atomic_write_frame, write_loan_tape, write_panel

    ext = fmt.value
    for name in ("loans", "panel", "losses"):  # before any work: a bad --out fails in a second, not after
        check_output_target(out / f"{name}.{ext}", "file", "--out")
    if default_months is not None and not 3 <= default_months <= 24:
        raise ConfigError(f"--default-months must be from 3 to 24 (months delinquent), got {default_months}")
    if end is not None and not re.fullmatch(r"\d{4}-\d{2}", end):
        raise ConfigError(f"--end must be a month as YYYY-MM, got {end!r}")
    with console.status("reading Freddie Mac files"):
        data = read_freddie_mac(sources, default_months=default_months, max_loans=max_loans, end=end)
    out.mkdir(parents=True, exist_ok=True)
    paths = (write_loan_tape(data.tape, out / f"loans.{ext}"), write_panel(data.panel, out / f"panel.{ext}", validate=False),
             atomic_write_frame(data.losses, out / f"losses.{ext}"))
    _print_freddie_summary(data)
    for p in paths:
        console.print(f"wrote {p}")
    _suggest_freddie_evaluation(data.panel["reporting_month"], paths)


def _suggest_freddie_evaluation(months, paths) -> None:
    """The out-of-time command for the files just written, or the --end that makes it run (the bundled
    macro history has no rows after its last month)."""
    import pandas as pd

    from creditsim.datasets import load_macro_history

    first, last = months.min(), months.max()
    try:
        history_end = load_macro_history().index[-1]
    except CreditSimError:  # the restricted series are not here: say nothing about the history's end
        history_end = last
    if last > history_end:
        console.print(f"the panel runs {first:%Y-%m} .. {last:%Y-%m}, past the bundled macro history ({history_end:%Y-%m}): "
                      f"write it again with --end {history_end:%Y-%m} before evaluating with --macro history")
        return
    gfc = pd.Timestamp("2008-01-01")
    # through the 2007-09 recession where the panel spans it, else the last 30 % of its months out of time
    split = gfc if first < gfc <= last else (first + (last - first) * 0.7).to_period("M").to_timestamp()
    console.print(f"next, out of time: creditsim eval transitions --panel {paths[1]} --tape {paths[0]} "
                  f"--split oot:{split:%Y-%m} --macro history --macro-features unemployment_rate,house_price_growth "
                  f"--credit-link residential_mortgage (the panel runs {first:%Y-%m} .. {last:%Y-%m})")


def _print_freddie_summary(data) -> None:
    """Loans, final states and loss severities per vintage year, then what was set aside."""
    from creditsim.cli.tables import print_whole
    from creditsim.states import LoanState

    final = data.panel.groupby("loan_id", sort=False)["loan_state"].last()
    year = data.tape.set_index("loan_id")["vintage"].str[:4]
    losses = data.losses.dropna(subset=["loss"])
    loss_year = losses["vintage"].str[:4]
    table = Table(title=f"Freddie Mac: {data.counts['loans']:,} loans, {data.counts['rows']:,} loan-months")
    for col in ("vintage", "loans", "default", "prepaid", "matured", "live", "losses", "severity"):
        table.add_column(col, justify="right")
    for y, ids in year.groupby(year).groups.items():
        fs = final.reindex(ids)
        shares = [(fs == s).mean() for s in (LoanState.DEFAULT, LoanState.PREPAID, LoanState.MATURED)]
        mine = losses[loss_year == y]
        # balance-weighted: the loss rate of the defaulted balance, what an LGD assumption is
        severity = mine["loss"].sum() / mine["balance_at_default"].sum() if len(mine) else float("nan")
        table.add_row(str(y), f"{len(ids):,}", *(f"{x:.1%}" for x in shares), f"{(fs < LoanState.DEFAULT).mean():.1%}",
                      f"{len(mine):,}", "-" if not len(mine) else f"{severity:.1%}")
    print_whole(console, table)
    console.print("[dim]final state shares per vintage; losses: defaults with a reported actual loss; severity: their "
                  "loss / balance at default, balance-weighted[/]")
    aside = {k: v for k, v in data.counts.items() if k not in ("loans", "rows") and v}
    if aside:
        console.print("set aside: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in aside.items()))


@data_app.command("sba")
def sba(
    source: Path = typer.Argument(..., help="The SBA 7(a) loan file of Li, Mickel & Taylor (2018), SBAnational.csv."),
    out: Path = typer.Option(..., "--out", help="Output directory for loans and panel (created if missing)."),
    first: str = typer.Option("2002-01", "--first", help="First disbursement month kept, YYYY-MM."),
    last: str = typer.Option("2006-12", "--last", help="Last disbursement month kept, YYYY-MM."),
    end: str = typer.Option("2010-12", "--end", help="Last panel month, YYYY-MM."),
    fmt: FileFormat = typer.Option(FileFormat.parquet, "--format", help="File format of the outputs."),
) -> None:
    """Read the SBA 7(a) small-business loan file into a monthly charge-off panel and loan features, and write
    them to OUT for creditsim eval transitions (creditsim.datasets.sba: every charge-off is a default in its
    month; paid loans are censored before maturity; neither the term nor loan age is a fair feature)."""
    from creditsim.datasets.sba import SBA_FEATURES, read_sba_loans
    from creditsim.io import atomic_write_frame

    ext = fmt.value
    for name in ("loans", "panel"):
        check_output_target(out / f"{name}.{ext}", "file", "--out")
    with console.status("reading the SBA loan file"):
        data = read_sba_loans(source, first=first, last=last, end=end)
    out.mkdir(parents=True, exist_ok=True)
    loans, panel = atomic_write_frame(data.features, out / f"loans.{ext}"), atomic_write_frame(data.panel, out / f"panel.{ext}")
    defaults = int((data.panel["loan_state"] != 0).sum())
    console.print(f"SBA 7(a): {len(data.features):,} loans disbursed {first} .. {last}, {len(data.panel):,} loan-months "
                  f"to {end}, {defaults:,} charge-offs")
    if data.skipped:
        console.print("left out: " + ", ".join(f"{k} {v:,}" for k, v in data.skipped.items()))
    for p in (loans, panel):
        console.print(f"wrote {p}")
    console.print(f"next, out of time: creditsim eval transitions --panel {panel} --tape {loans} --split oot:2008-01 "
                  f"--macro history --credit-link business --tape-features {','.join(SBA_FEATURES)} --segment-by business "
                  "--cluster period (not the panel's loan_age nor the term: they tell the models which loans default)")


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Loan tape or panel file (.csv, .csv.gz, .parquet)."),
    kind: FileKind | None = typer.Option(None, "--kind", help="tape or panel; guessed from the columns if omitted."),
    date_format: str | None = typer.Option(
        None, "--date-format",
        help="strftime pattern of the date columns, e.g. '%d/%m/%Y' or '%Y%m%d'; default: ISO YYYY-MM-DD only.",
    ),
) -> None:
    """Validate FILE against the data contract; print a summary, or the error and exit with status 2.

    The file is read by creditsim.io.read_frame, the library's one reader (ids stay text).
    """
    from creditsim.io import read_loan_tape, read_panel

    if date_format is not None and "%" not in date_format:
        raise ConfigError(f"--date-format must be a strftime pattern such as '%d/%m/%Y', got {date_format!r}")
    use = kind or _guess_kind(file)
    if use is FileKind.tape:
        df = read_loan_tape(file, date_format=date_format)
        headline = f"{file}: valid loan tape, {len(df):,} loans"
        table = Table(title="loan tape by asset class")
        for col in ("asset class", "loans", "original balance", "current balance", "wa rate", "wa term (m)"):
            table.add_column(col, justify="right" if col != "asset class" else "left")
        for cls, grp in df.groupby("asset_class"):
            w = grp["original_balance"]
            cur = grp["current_balance"].sum() if "current_balance" in grp else float("nan")
            table.add_row(
                str(cls), f"{len(grp):,}", f"{w.sum():,.0f}", f"{cur:,.0f}",
                f"{(grp['interest_rate'] * w).sum() / w.sum():.2%}", f"{(grp['term_months'] * w).sum() / w.sum():.0f}",
            )
    else:
        df = read_panel(file, date_format=date_format)
        headline = f"{file}: valid panel, {len(df):,} rows, {df['loan_id'].nunique():,} loans"
        table = Table(title="panel rows by loan state")
        table.add_column("state", justify="left")
        table.add_column("rows", justify="right")
        table.add_column("share", justify="right")
        from creditsim.states import LoanState

        counts = df["loan_state"].value_counts().sort_index()
        for code, n in counts.items():
            table.add_row(LoanState(int(code)).name, f"{n:,}", f"{n / len(df):.1%}")
        months = df["reporting_month"]
        table.caption = f"months {months.min():%Y-%m} .. {months.max():%Y-%m}"
    console.print(f"[green]ok[/] {headline}", soft_wrap=True, highlight=False)
    console.print(table)


_SHORT = {
    "gdp_growth": "gdp y/y", "unemployment_rate": "unemp", "inflation_rate": "cpi y/y", "policy_rate": "policy",
    "yield_10y": "10y", "credit_spread_ig": "ig oas", "credit_spread_hy": "hy oas",
    "house_price_growth": "hpi y/y", "default_rate": "dflt",
}


@data_app.command("macro")
def macro(
    out: Path | None = typer.Option(None, "--out", help="Export to this .csv or .parquet file (atomic)."),
    start: str | None = typer.Option(None, "--start", help="First month, e.g. 2000-01."),
    end: str | None = typer.Option(None, "--end", help="Last month, e.g. 2019-12."),
    rows: int = typer.Option(6, "--rows", min=0, help="Rows to print from each end of the frame."),
) -> None:
    """Print (and optionally export) the bundled monthly US macro history in the 9 variables, decimals."""
    import pandas as pd

    from creditsim.datasets import load_macro_history

    if out is not None:
        check_output_target(out, "file", "--out")
    for name, value in (("--start", start), ("--end", end)):
        if value is not None:
            try:
                pd.Timestamp(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a month like 2000-01, got {value!r}") from None
    frame = load_macro_history(start=start, end=end)
    if len(frame) == 0:
        raise ConfigError(f"no macro history between {start or 'the start'} and {end or 'the end'}")
    table = Table(title=f"US macro history {frame.index[0]:%Y-%m} .. {frame.index[-1]:%Y-%m} ({len(frame)} months)",
        caption="shown in percent; files hold decimals (0.045 = 4.5 %)",
    )
    table.add_column("month")
    for col in frame.columns:
        table.add_column(_SHORT.get(col, col), justify="right")
    shown = frame if len(frame) <= 2 * rows else pd.concat([frame.head(rows), frame.tail(rows)])
    prev = None
    for ts, values in shown.iterrows():
        if prev is not None and (ts.year * 12 + ts.month) - (prev.year * 12 + prev.month) > 1:
            table.add_row("...", *["..."] * len(frame.columns))
        table.add_row(f"{ts:%Y-%m}", *[f"{v:.2%}" for v in values])
        prev = ts
    console.print(table)
    if out is not None:
        from creditsim.io import atomic_write_frame

        path = atomic_write_frame(frame.reset_index(), out)
        console.print(f"wrote {path}")


@data_app.command("paths")
def paths(
    source: str = typer.Argument("vae", help="vae | var | bootstrap | synthetic | forecast | fed[:YEAR[:SCENARIO]] | "
                                 "a narrative .yaml of anchors | a macro csv/parquet (one path, one per scenario, "
                                 "or a paths table as --out writes it) | a MacroVAE folder"),
    scenario: str | None = typer.Option(None, "--scenario", help="one scenario name or a mix "
                                        "'baseline=0.5,severely_adverse=0.5' (default 0.6/0.25/0.1/0.05)"),
    n_paths: int = typer.Option(1000, "--paths", min=1, help="Number of paths."),
    months: int = typer.Option(60, "--months", min=2, help="Path length in months (month 0 = the start)."),
    start: str | None = typer.Option(None, "--start", help="latest (default) | YYYY-MM (that month's real state) | "
                                     "scenario (the VAE's scenario-typical historical starts)"),
    seed: int = typer.Option(0, "--seed", min=0, help="Master seed (same seed, same paths as a run's)."),
    out: Path | None = typer.Option(None, "--out", help="Write every path to this .csv or .parquet file (atomic): "
                                    "path, reporting_month, scenario and the 9 variables in decimals."),
    plot: Path | None = typer.Option(None, "--plot", help="Fan chart by scenario (.png, .svg or .pdf; atomic)."),
) -> None:
    """Macro scenario paths from any source, as a simulation draws them: medians and 5-95 % bands by
    scenario, how an anchored draw went (effective sample size; the dynamics a narrative's anchors
    picked), and optionally every path to a file and a fan chart."""
    from creditsim.macro.paths import PLOT_SUFFIXES, macro_paths

    if out is not None:
        check_output_target(out, "file", "--out")
        if out.suffix.lower() not in (".csv", ".parquet"):
            raise ConfigError(f"--out {str(out)!r}: expected a .csv or .parquet file")
    if plot is not None:
        check_output_target(plot, "file", "--plot")
        if plot.suffix.lower() not in PLOT_SUFFIXES:
            raise ConfigError(f"--plot {str(plot)!r}: expected a file ending in {', '.join(PLOT_SUFFIXES)}")
    generator = _macro_source(source)
    with console.status(f"generating {n_paths} paths from {source}", spinner="dots"):
        mp = macro_paths(generator, scenario, n_paths=n_paths, months=months, start=start or "latest", seed=seed)
    if start is not None and mp.start == "paths as given":
        raise ConfigError(f"--start {start}: {source} paths carry their own start; --start applies to vae, var, "
                          "bootstrap, forecast, fed and narrative sources")
    console.print(f"{mp.source}: {len(mp)} paths x {months} months from {mp.start} "
                  f"({mp.dates[0]:%Y-%m} .. {mp.dates[-1]:%Y-%m})")
    from creditsim.cli.tables import print_whole

    for name in [SCENARIO_NAMES[int(k)] for k in np.unique(mp.scenarios)]:
        print_whole(console, _scenario_table(mp.scenario(name), name))
    if mp.anchors is not None:
        console.print(f"{len(mp.anchors)} anchors, met exactly by every path (MacroPaths.anchors)")
    if mp.conditioning:
        print_whole(console, _conditioning_table(mp.conditioning_table()))
    if out is not None:
        from creditsim.io import atomic_write_frame

        console.print(f"wrote {atomic_write_frame(mp.to_frame().reset_index(), out)}")
    if plot is not None:
        mp.plot(path=plot)
        console.print(f"wrote {plot}")


def _macro_source(source: str):
    """A MacroVAE for a checkpoint folder (read with the CLI's own messages), else the source string."""
    folder = Path(source)
    if folder.is_dir():
        from creditsim.cli.run import load_macro_vae

        return load_macro_vae("SOURCE", folder)
    return source


def _scenario_table(mp, name: str) -> Table:
    """Variables x (month 0, medians at 12 and 24 months, the last month's median and its 5-95 % band), percent."""
    last = mp.values.shape[1] - 1
    marks = [m for m in (12, 24) if m < last]
    table = Table(title=f"{name}: {len(mp)} path{'' if len(mp) == 1 else 's'}", caption="percent; medians across paths")
    table.add_column("variable")
    table.add_column("month 0", justify="right")
    for m in marks:
        table.add_column(f"month {m}", justify="right")
    table.add_column(f"month {last}", justify="right")
    table.add_column(f"5-95 % m{last}", justify="right")
    for j, var in enumerate(MACRO_VARS):
        x = 100 * mp.values[:, :, j]
        lo, mid, hi = np.quantile(x[:, last], [0.05, 0.5, 0.95])
        table.add_row(var, f"{np.median(x[:, 0]):.2f}", *[f"{np.median(x[:, m]):.2f}" for m in marks],
                      f"{mid:.2f}", f"{lo:.2f} .. {hi:.2f}")
    return table


def _conditioning_table(frame) -> Table:
    """The conditioned batches, one column each (rows: paths, particles, ESS, Metropolis moves and, when
    the anchors picked it, the label posterior and its noise), so that it fits a terminal."""
    table = Table(title="conditioning", caption="ess: smallest effective sample size of the filter (share of "
                  "particles); label_noise: gap between two independent estimates of the label posterior")
    table.add_column("")
    for batch in frame["batch"]:
        table.add_column(str(batch), justify="right")
    for field in frame.columns.drop("batch"):
        table.add_row(str(field), *[_cell(v) for v in frame[field]])
    return table


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@data_app.command("fetch")
def fetch(
    directory: Path | None = typer.Option(
        None, "--dir", help="Data directory to fill (default: the user cache, $XDG_CACHE_HOME/creditsim)."
    ),
    series: list[str] | None = typer.Option(
        None, "--series", help="Series to fetch (repeat, or comma-separated): BAMLC0A0CM, BAMLH0A0HYM2, CSUSHPINSA, "
        "FRED-MD. Default: all. SP-COUNTS and SP-CUMULATIVE (S&P rating tables) have no download address: asked "
        "for, each is reported present where creditsim finds it, or the error says how to make it.",
    ),
    force: bool = typer.Option(False, "--force", help="Download again where a file exists (newer vintage)."),
    mirror: str | None = typer.Option(
        None, "--mirror", metavar="URL",
        help="Fetch from an internal mirror instead of the publisher: an http(s)://host:port/prefix URL (port and "
        "prefix optional) replaces the scheme and host of each download URL, its prefix goes before the publisher's "
        "path, and that path and the query are kept: with https://m.corp/fred, FRED's /graph/fredgraph.csv?id=X "
        "comes from https://m.corp/fred/graph/fredgraph.csv?id=X. Default: $CREDITSIM_FETCH_MIRROR; '' ignores it.",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", metavar="SECONDS", help="Give up on a server silent for this long (default: 60)."
    ),
) -> None:
    """Download the restricted series (not shipped: their publishers forbid republication) from FRED.

    The ICE BofA spreads and Case-Shiller come from FRED's public CSV endpoint, the FRED-MD 2019-10
    vintage from the St. Louis Fed (or both from --mirror); each file is checked and written atomically.
    Use them under the publishers' terms (internal research).
    """
    from urllib.parse import urlsplit

    from creditsim.datasets.fetch import fetch_restricted
    from creditsim.datasets.restricted import ENV_DATA_DIR, RESTRICTED_FILES, search_dirs, user_cache_dir

    keys = None if not series else [s for item in series for s in item.split(",") if s.strip()]
    results = fetch_restricted(keys, directory, force=force, mirror=mirror, timeout=timeout)
    table = Table(title="restricted series (not shipped with creditsim)",
                  caption="use under each publisher's terms: internal research, do not republish")
    for col in ("series", "publisher", "observations", "status"):
        table.add_column(col)
    root = (directory.expanduser() if directory is not None else user_cache_dir()).resolve()
    for r in results:
        # a placed S&P table is found wherever the search found it, not necessarily in the target directory
        where = "" if r.path.resolve().is_relative_to(root) else f" ({r.path})"
        table.add_row(r.key, RESTRICTED_FILES[r.key].publisher.split(" (")[0].split(";")[0], f"{r.first} .. {r.last}",
                      r.status + where)
    console.print(table)
    console.print(f"files in {root}", highlight=False, soft_wrap=True)
    hosts = dict.fromkeys(f"{u.scheme}://{u.netloc}" for u in (urlsplit(r.url) for r in results if r.url))
    if hosts:
        console.print(f"downloaded from {', '.join(hosts)}", highlight=False, soft_wrap=True)
    if all(root != d.resolve() for _, d in search_dirs()):
        console.print(f"creditsim does not search {root} yet: set {ENV_DATA_DIR}={root}", highlight=False,
                      soft_wrap=True)
