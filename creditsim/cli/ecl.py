"""``creditsim ecl``: IFRS 9 expected credit loss of a loan tape at a reporting date, with the IFRS 7 tables.

``creditsim ecl --tape loans.parquet --scenarios fed:2026:baseline,fed:2026:severely_adverse
--weights 0.7,0.3 --as-of 2025-12-31 --out DIR`` stages every loan, computes its 12-month and lifetime ECL
under each scenario and the probability-weighted allowance (:func:`creditsim.ifrs9.expected_credit_loss`),
prints a summary and writes the per-loan results, the disclosure tables and an Excel workbook into
``DIR`` (a result directory, replaced atomically).

Scenarios. ``fed:YEAR:SCENARIO`` names a bundled Federal Reserve supervisory path, as in ``creditsim
stress`` (:func:`creditsim.datasets.load_fed_scenarios`, monthly :data:`~creditsim.states.MACRO_VARS`).
The path is read on its calendar: the forecast starts with the first month after ``--as-of`` (the 2025
tables start in 2025-01, so at 2025-12-31 their last 27 months are used; the 2026 tables start in
2026-01). Scenarios of different lengths are cut to the shortest, so every scenario covers the same
reasonable-and-supportable window; after it the PDs revert to TTC per ``EclSettings.reversion``
(``rs_horizon_months`` is capped at the months of path left; the run's meta.json has the settings used).
Generated paths (``vae:...``) are refused: an allowance needs named, reproducible forecasts.

PD. Rated loans (tape ``rating`` AAA..CCC) follow the bundled S&P 8x8 matrix conditioned on the path
through the fitted Z-macro link (:meth:`ScenarioMatrixPD.from_macro` with
:meth:`creditsim.ratings.lifetime.ZMacroLink.from_bundled`), the same rating chain the simulation gives
rated loans. Unrated loans get the default hazard the simulation engine gives them
(:mod:`creditsim.risk.pool_engine`): the monthly delinquency chain of their asset-class cohort of
:meth:`MarkovTransitionModel.default`, tilted by the path, started in the loan's state at the
reporting date. Its cause-specific default hazard ``h(t) = P(default in t | not absorbed before t)``
(prepayment and maturity are competing exits, handled by the ECL engine's own prepayment rate) is
compounded into one conditional PD per year and handed to :class:`HazardCurvePD`, with the chain under
the untilted (through-the-cycle) matrix as the TTC curve reverted to and as the origination
expectation. LGD: the tape's ``lgd_assumption`` (else the asset-class default of
:mod:`creditsim.loans.book`), flat. Prepayment: the tape's ``prepay_annual`` when present, else none.

Movement table (``--previous DIR``): the opening allowance is a previous run's ``ecl_loans.parquet``;
loans absent now are derecognised (``--written-off FILE`` lists those written off); the unwind of
discount of a continuing loan is its opening allowance times ``(1 + EIR)^(months / 12) - 1`` over the
months between the two reporting dates (the accretion of a present value at the EIR, IFRS 9 B5.4.1).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from creditsim.cli.tables import print_whole
from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.userwarn import warn

__all__ = ["register", "ecl_cmd", "EclRun", "parse_as_of", "parse_weights", "scenario_paths",
           "tape_ecl_inputs", "run_ecl", "write_ecl_outputs", "LOANS_FILE"]

console = Console()

#: per-loan results in the output directory; ``--previous`` reads the same file of an earlier run
LOANS_FILE = "ecl_loans.parquet"


def register(app: typer.Typer) -> None:
    """Add the ``ecl`` command to ``app``."""
    app.command("ecl")(ecl_cmd)


# ----------------------------------------------------------------------------- inputs
def parse_as_of(text: str) -> pd.Timestamp:
    """The reporting date from ``YYYY-MM-DD``; ConfigError naming ``--as-of`` otherwise."""
    import re

    value = str(text).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ConfigError(f"--as-of: expected a date YYYY-MM-DD such as 2025-12-31, got {text!r}")
    try:
        return pd.Timestamp(value)
    except ValueError:
        raise ConfigError(f"--as-of: {text!r} is not a calendar date") from None


def parse_weights(text: str | None, n: int) -> np.ndarray:
    """``(n,)`` scenario weights from ``"0.6,0.4"`` (>= 0, summing to 1 within 1e-6, then renormalised so
    the sum is exactly 1); None gives equal weights."""
    if text is None:
        return np.full(n, 1.0 / n)
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        w = np.array([float(p) for p in parts])
    except ValueError:
        raise ConfigError(f"--weights: expected comma-separated numbers such as 0.6,0.4, got {text!r}") from None
    if len(w) != n:
        raise ConfigError(f"--weights: {len(w)} weights for {n} scenarios; give one per scenario")
    if not np.isfinite(w).all() or (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-6:
        raise ConfigError(f"--weights: expected fractions >= 0 summing to 1, got {text!r}")
    return w / w.sum()


def scenario_paths(scenarios: str | list[str], as_of: pd.Timestamp) -> tuple[list[str], np.ndarray]:
    """``(names, macro (S, T, 9))``: the monthly supervisory paths from the first month after ``as_of``,
    cut to the shortest scenario (module docstring). ConfigError for an unknown or non-supervisory name,
    a duplicate, or a path that has ended or not begun by then."""
    from creditsim.datasets import load_fed_scenarios
    from creditsim.risk.stress import parse_stress_scenario
    from creditsim.states import MACRO_VARS

    specs = [s for s in scenarios.split(",")] if isinstance(scenarios, str) else list(scenarios)
    specs = [s.strip() for s in specs if s.strip()]
    if not specs:
        raise ConfigError("--scenarios: name at least one, e.g. fed:2026:baseline,fed:2026:severely_adverse")
    names, paths = [], []
    first = (as_of + pd.offsets.MonthBegin(1)).normalize()  # the first month start after the reporting date
    for spec in specs:
        parsed = parse_stress_scenario(spec)
        if not parsed.source.startswith("fed:"):
            raise ConfigError(f"--scenarios: {spec!r} is a generated scenario; the ECL needs named forecast paths: "
                              f"fed:YEAR:SCENARIO (e.g. fed:2026:baseline)")
        if parsed.name in names:
            raise ConfigError(f"--scenarios: {parsed.name!r} named more than once")
        year = int(parsed.name.split(":")[1])
        frame = load_fed_scenarios(year, scenario=parsed.scenario, monthly=True)[list(MACRO_VARS)]
        start, end = frame.index[0], frame.index[-1]
        if start > first:
            raise ConfigError(f"--scenarios: {parsed.name!r} starts in {start:%Y-%m}, after the first month after "
                              f"--as-of {as_of:%Y-%m-%d}; use a scenario that covers {first:%Y-%m}")
        if end < first:
            raise ConfigError(f"--scenarios: {parsed.name!r} ends in {end:%Y-%m}, before --as-of {as_of:%Y-%m-%d}")
        names.append(parsed.name)
        paths.append(frame.loc[frame.index >= first].to_numpy(np.float64))
    n = min(len(p) for p in paths)
    return names, np.stack([p[:n] for p in paths])


@dataclass
class EclRun:
    """What ``creditsim ecl`` computed: the inputs built from the tape and the result.

    ``loans`` / ``pd_provider`` / ``lgd_provider`` are the arguments of
    :func:`~creditsim.ifrs9.expected_credit_loss`; ``grade`` ``(L,)`` the label each loan is reported under
    (its rating, or ``unrated <asset class>``); ``macro`` ``(S, T, 9)`` the scenario paths used.
    """

    as_of: pd.Timestamp
    scenarios: list[str]
    weights: np.ndarray
    loans: Any
    pd_provider: Any
    lgd_provider: Any
    grade: np.ndarray
    macro: np.ndarray
    settings: Any
    result: Any = None
    report: Any = None


def tape_ecl_inputs(tape: pd.DataFrame, scenarios: str | list[str], as_of: Any, weights: Any = None,
                    settings: Any = None) -> EclRun:
    """Build the ECL inputs of a loan tape at ``as_of`` (module docstring): EclLoans (loans that have
    matured by then are left out), the grouped PD provider, the flat LGD, the grade labels."""
    from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, HazardCurvePD, ScenarioMatrixPD
    from creditsim.ifrs9.pd import GroupedPD, annual_pds, chain_default_hazard
    from creditsim.loans.book import LoanBook
    from creditsim.ratings.lifetime import ZMacroLink
    from creditsim.schema import RATINGS, as_loan_tape
    from creditsim.states import ASSET_CLASSES
    from creditsim.transitions.markov import MarkovTransitionModel

    as_of = parse_as_of(as_of) if not isinstance(as_of, pd.Timestamp) else as_of
    names, macro = scenario_paths(scenarios, as_of)
    w = parse_weights(weights, len(names)) if weights is None or isinstance(weights, str) else np.asarray(weights, float)
    settings = EclSettings() if settings is None else settings
    if settings.rs_horizon_months > macro.shape[1]:
        # the forecast ends with the paths: ScenarioMatrixPD reverts there by itself, HazardCurvePD (annual
        # curves, last year repeated) would not, so the horizon is capped for both
        settings = replace(settings, rs_horizon_months=int(macro.shape[1]))
    clean = as_loan_tape(tape).frame
    book = LoanBook.from_tape(clean, cutoff=as_of, drop_matured=True)
    if book.n_loans == 0:
        raise DataError(f"loan tape: no loan is outstanding at --as-of {as_of:%Y-%m-%d}")
    if book.n_loans < len(clean):  # a matured loan carries no ECL; say so rather than shrink the book silently
        warn(f"{len(clean) - book.n_loans} of {len(clean)} loans matured on or before --as-of {as_of:%Y-%m-%d} "
             "and are left out")
    rows = clean.set_index(clean["loan_id"].astype(str)).loc[book.loan_id.astype(str)]
    n = book.n_loans
    grade = np.full(n, -1, dtype=np.int64)
    if "rating" in rows.columns:
        has = rows["rating"].notna().to_numpy()
        grade[has] = [RATINGS.index(r) for r in rows["rating"].to_numpy()[has]]
    cpr = np.zeros(n)
    if "prepay_annual" in rows.columns:
        cpr = np.nan_to_num(pd.to_numeric(rows["prepay_annual"], errors="coerce").to_numpy(np.float64), nan=0.0)
    term = rows["term_months"].to_numpy(np.int64)
    loans = EclLoans.from_book(book, grade=grade, origination_grade=grade, prepayment_cpr=cpr,
                               months_on_book=np.clip(term - book.remaining_term, 0, None))
    n_months = int(loans.remaining_months.max())
    groups: list[tuple[np.ndarray, Any]] = []
    rated = grade >= 0
    if rated.any():
        link = ZMacroLink.from_bundled()
        groups.append((rated, ScenarioMatrixPD.from_macro(link, macro)))
    markov = MarkovTransitionModel.default()
    tilted = markov.scenario_matrices(macro)  # (S, C, T, 7, 7) per asset-class cohort (or (S, T, 7, 7))
    # through-the-cycle: the matrices at the standardisation mean, where the overlay's tilt is exactly 0
    base = markov.scenario_matrices(np.broadcast_to(markov.macro_mean_, (1, 1, len(markov.macro_mean_))))
    base = base[0, :, 0] if base.ndim == 5 else base[0, 0]  # (C, 7, 7) or (7, 7)
    state = np.asarray(book.initial_state, dtype=np.int64)
    for c in range(len(ASSET_CLASSES)):
        for s0 in range(4):
            mask = ~rated & (book.asset_class == c) & (state == s0)
            if not mask.any():
                continue
            scen = tilted[:, c] if tilted.ndim == 5 else tilted
            ttc = base[c] if base.ndim == 3 else base
            annual = annual_pds(chain_default_hazard(scen, s0))  # (S, Y)
            ttc_curve = annual_pds(chain_default_hazard(np.broadcast_to(ttc, (n_months + 12, 7, 7)), s0))
            groups.append((mask, HazardCurvePD(annual, ttc_pd=ttc_curve)))
    labels = np.where(rated, np.array(RATINGS + ("",), dtype=object)[grade],
                      np.array([f"unrated {ASSET_CLASSES[a]}" for a in book.asset_class], dtype=object))
    return EclRun(as_of, names, w, loans, GroupedPD(groups, len(names)), FlatLGD(book.lgd), labels, macro, settings)


def _months_between(a: pd.Timestamp, b: pd.Timestamp) -> int:
    return (b.year - a.year) * 12 + (b.month - a.month)


def _read_previous(previous: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The per-loan results and the reporting date of an earlier ``creditsim ecl`` run directory."""
    path = Path(previous) / LOANS_FILE
    try:
        frame = pd.read_parquet(path)
        meta = json.loads((Path(previous) / "meta.json").read_text(encoding="utf-8"))
        as_of = parse_as_of(meta["as_of"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"--previous: {str(previous)!r} is not a creditsim ecl result directory "
                        f"({LOANS_FILE} and meta.json with as_of): {type(exc).__name__}") from None
    frame["loan_id"] = frame["loan_id"].astype(str)
    return frame, as_of


def _read_ids(path: Path) -> list[str]:
    """Loan ids from a text file (one per line) or a csv / parquet with a ``loan_id`` column."""
    p = Path(path)
    try:
        if p.name.lower().endswith(".parquet"):
            frame = pd.read_parquet(p)
        elif p.name.lower().endswith(".csv"):
            frame = pd.read_csv(p, dtype=str)
        else:
            return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(f"--written-off: {str(p)!r} cannot be read ({type(exc).__name__})") from None
    if "loan_id" not in frame.columns:
        raise DataError(f"--written-off: {str(p)!r} has no loan_id column")
    return frame["loan_id"].astype(str).tolist()


def run_ecl(tape: pd.DataFrame, scenarios: str | list[str], as_of: Any, weights: Any = None, settings: Any = None,
            previous: Path | None = None, written_off: list[str] | None = None, previous_settings: Any = None) -> EclRun:
    """Inputs (:func:`tape_ecl_inputs`), the ECL and the IFRS 7 report (movement table when ``previous``).

    ``previous_settings``: the EclSettings in force at the previous date; the closing book is measured with
    them too, and the difference is the movement table's model-change line (IFRS 7.35I)."""
    from creditsim.ifrs9 import expected_credit_loss
    from creditsim.ifrs9.reporting import build_report

    opening, unwind, off, old_model = None, None, list(written_off or []), None
    if off and previous is None:
        raise ConfigError("--written-off needs --previous (write-offs are a line of the movement from it)")
    if previous_settings is not None and previous is None:
        raise ConfigError("--previous-settings needs --previous (the model change is a line of the movement from it)")
    date = parse_as_of(as_of) if not isinstance(as_of, pd.Timestamp) else as_of
    if previous is not None:  # read and checked before the run, so a bad directory costs nothing
        opening, prev_as_of = _read_previous(previous)
        months = _months_between(prev_as_of, date)
        if months <= 0:
            raise ConfigError(f"--previous: its reporting date {prev_as_of:%Y-%m-%d} is not before --as-of "
                              f"{date:%Y-%m-%d}")
    run = tape_ecl_inputs(tape, scenarios, date, weights, settings)
    run.result = expected_credit_loss(run.loans, run.pd_provider, run.lgd_provider, run.scenarios, run.weights,
                                      run.settings)
    if previous_settings is not None:
        old = tape_ecl_inputs(tape, scenarios, date, weights, previous_settings)
        old_model = expected_credit_loss(old.loans, old.pd_provider, old.lgd_provider, old.scenarios, old.weights, old.settings)
    if opening is not None:
        ids = run.loans.loan_id.astype(str)
        eir = pd.Series(run.loans.discount_eir(), index=ids)
        both = opening["loan_id"][opening["loan_id"].isin(ids)]
        accrual = np.expm1(months / 12.0 * np.log1p(eir.loc[both].to_numpy()))
        unwind = pd.Series(opening.set_index("loan_id").loc[both, "ecl"].to_numpy() * accrual, index=both.to_numpy())
    # loan ids are text on both sides (the book's ids and the previous per-loan file's)
    run.report = build_report(run.result, run.grade, gross=run.loans.balance, reference=0, opening=opening, written_off=off, unwind=unwind,
                              closing_old_model=old_model, as_of=f"{run.as_of:%Y-%m-%d}")
    return run


def per_loan_frame(run: EclRun) -> pd.DataFrame:
    """One row per loan: id, grade label, stage, gross carrying amount (drawn balance), exposure, weighted 12-month / lifetime ECL, allowance,
    the allowance under each scenario (``ecl_<scenario>``), lifetime PD weighted, and the SICR triggers."""
    res = run.result
    df = res.to_frame()
    df["loan_id"] = df["loan_id"].astype(str)
    df.insert(1, "grade", run.grade.astype(str))
    df.insert(3, "gross", run.loans.balance)
    for s, name in enumerate(res.scenarios):
        df[f"ecl_{name}"] = res.ecl_by_scenario[s]
    df["lifetime_pd"] = res.weights @ res.lifetime_pd
    return df


def write_ecl_outputs(run: EclRun, out: Path) -> list[Path]:
    """Write the per-loan parquet, the tables as CSV, the Excel workbook and meta.json into ``out``, built in
    a temporary sibling and swapped in (:func:`creditsim.fileio.replace_result_dir`)."""
    from creditsim.fileio import RESULT_MARKER, make_temp_dir, replace_result_dir

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out)
    try:
        files = [LOANS_FILE]
        per_loan_frame(run).to_parquet(tmp / LOANS_FILE, index=False)
        for name, table in run.report.tables().items():
            table.to_csv(tmp / f"ecl_{name}.csv", index_label=table.index.name or "row")
            files.append(f"ecl_{name}.csv")
        run.report.to_excel(tmp / "ecl_report.xlsx")
        files.append("ecl_report.xlsx")
        meta = {"producer": RESULT_MARKER, "command": "ecl", "as_of": f"{run.as_of:%Y-%m-%d}",
                "scenarios": run.scenarios, "weights": [float(x) for x in run.weights],
                "months_of_forecast": int(run.macro.shape[1]), "files": files,
                "settings": {k: getattr(run.settings, k) for k in run.settings.__dataclass_fields__}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        replace_result_dir(tmp, out)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / f for f in files]


def _read_settings(path: Path | None) -> Any:
    """EclSettings from a YAML mapping of its field names (None: the defaults)."""
    from creditsim.ifrs9 import EclSettings
    from creditsim.yamlfile import read_yaml

    if path is None:
        return EclSettings()
    data = read_yaml(path, "settings file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"--settings: {str(path)!r} must be a mapping of EclSettings fields")
    known = set(EclSettings.__dataclass_fields__)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"--settings: unknown field(s) {format_labels(unknown)}; expected some of {sorted(known)}")
    return EclSettings(**data)


# ----------------------------------------------------------------------------- printing
def _money(x: float) -> str:
    return f"{x / 1e9:.2f}bn" if abs(x) >= 1e9 else f"{x / 1e6:.2f}m" if abs(x) >= 1e6 else f"{x:,.0f}"


def print_ecl_summary(run: EclRun, seconds: float | None = None, out: Console | None = None) -> None:
    """Stage table (loans, gross carrying amount, 12-month / lifetime ECL, allowance, coverage) and the
    scenario table (allowance at 100 % weight on each scenario, weighted, gap; coverage on the gross total)."""
    from rich import box

    out = out or console
    rep = run.report
    t = Table(title=f"IFRS 9 allowance at {run.as_of:%Y-%m-%d}", box=box.SIMPLE_HEAD)
    for col, justify in (("stage", "left"), ("loans", "right"), ("gross", "right"), ("ECL 12m", "right"),
                         ("ECL lifetime", "right"), ("allowance", "right"), ("coverage", "right")):
        t.add_column(col, justify=justify, no_wrap=True)
    for name, row in rep.summary.iterrows():
        cover = "-" if pd.isna(row["coverage"]) else f"{row['coverage']:.2%}"
        t.add_row(str(name), f"{int(row['loans']):,}", _money(row["gross"]), _money(row["ecl_12m"]),
                  _money(row["ecl_lifetime"]), _money(row["ecl"]), cover)
    print_whole(out, t)
    s = Table(title="allowance by scenario (100 % weight each)", box=box.SIMPLE_HEAD)
    for col in ("scenario", "weight", "allowance", "coverage"):
        s.add_column(col, justify="left" if col == "scenario" else "right", no_wrap=True)
    total_gross = float(rep.summary.loc["total", "gross"])
    for name, row in rep.scenarios.iterrows():
        weight = "" if pd.isna(row["weight"]) else f"{row['weight']:.0%}"
        s.add_row(str(name), weight, _money(row["ecl_100pct"]), f"{row['ecl_100pct'] / total_gross:.2%}")
    print_whole(out, s)
    out.print("gross = drawn balance (gross carrying amount); coverage = allowance / gross")
    out.print(f"non-linearity gap = probability-weighted allowance minus {run.scenarios[0]} at 100 %; "
              f"{run.macro.shape[1]} forecast months, then reversion to TTC ({run.settings.reversion})")
    if rep.movement is not None:
        m = rep.movement
        out.print(f"movement: opening {_money(m.loc['opening', 'total'])} -> closing {_money(m.loc['closing', 'total'])}")
    if seconds is not None:
        out.print(f"{run.loans.n_loans:,} loans, {len(run.scenarios)} scenarios; {seconds:.1f} s")


# ----------------------------------------------------------------------------- command
def ecl_cmd(
    tape: Path = typer.Option(..., "--tape", help="loan tape (.csv, .csv.gz or .parquet); the bundled demo tape is "
                              "creditsim/examples/loans_example.parquet"),
    scenarios: str = typer.Option("fed:2026:baseline,fed:2026:severely_adverse", "--scenarios",
                                  help="comma-separated bundled supervisory paths fed:YEAR:SCENARIO (years 2024, 2025, 2026 = the Fed's proposed "
                                       "2026 paths; baseline, severely_adverse), read from the first month after --as-of"),
    as_of: str = typer.Option(..., "--as-of", help="reporting date YYYY-MM-DD"),
    weights: str = typer.Option(None, "--weights", help="scenario weights, comma-separated fractions summing to 1 "
                                "(default: equal)"),
    settings: Path = typer.Option(None, "--settings", help="YAML mapping of EclSettings fields (staging rules, "
                                  "timing conventions, reversion)"),
    previous: Path = typer.Option(None, "--previous", help="an earlier 'creditsim ecl' --out directory: adds the "
                                  "IFRS 7 allowance movement table from its date to --as-of"),
    written_off: Path = typer.Option(None, "--written-off", help="loan ids written off since --previous (text, one "
                                     "per line, or csv/parquet with loan_id)"),
    previous_settings: Path = typer.Option(None, "--previous-settings", help="the --settings YAML in force at the "
                                           "--previous date: adds the movement table's model-change line"),
    out: Path = typer.Option(..., "--out", help="result directory: ecl_loans.parquet, ecl_summary.csv, "
                             "ecl_exposure.csv, ecl_scenarios.csv, ecl_movement.csv, ecl_report.xlsx, meta.json"),
) -> None:
    """IFRS 9 expected credit loss of a loan tape: stages, 12-month / lifetime ECL, scenario table, IFRS 7 tables."""
    from creditsim.cli.run import read_tape
    from creditsim.fileio import check_output_target

    check_output_target(out, "result_dir", "--out")
    date = parse_as_of(as_of)
    ecl_settings = _read_settings(settings)
    old_settings = _read_settings(previous_settings) if previous_settings is not None else None
    off = _read_ids(written_off) if written_off is not None else None
    df = read_tape(tape)
    t0 = time.perf_counter()
    with console.status("ECL"):
        run = run_ecl(df, scenarios, date, weights, ecl_settings, previous, off, old_settings)
    seconds = time.perf_counter() - t0
    print_ecl_summary(run, seconds)
    for path in write_ecl_outputs(run, out):
        console.print(f"wrote {path}")
