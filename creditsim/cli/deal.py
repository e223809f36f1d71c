"""``creditsim deal``: validate a deal file and run a deterministic CDR / CPR / severity / lag scenario.

- ``creditsim deal check deal.yaml``: validates the deal (one-line ConfigError naming the field
  otherwise) and prints the capital structure: balances, coupons, attachment / detachment, triggers.
- ``creditsim deal sensitivity deal.yaml --cdr 0,0.02,0.05 --cpr 0.1,0.2 --lag 6,12``: the tranche outcomes
  over the grid (:mod:`creditsim.deal.sensitivity`; monthly vectors such as ``"0.02x12 0.06"`` allowed).
- ``creditsim deal run deal.yaml --cdr 0.02 --cpr 0.10 --severity 0.4 --lag 6``: runs the exact
  waterfall on the deterministic level-pay pool of
  :func:`creditsim.deal.analytics.level_pay_pool` (collateral par = the deal's
  ``collateral_balance`` or the sum of the tranche balances; ``--wac``, ``--term``, ``--horizon``) and
  prints a period table and the tranche metrics (principal and PV loss, WAL, IRR, break-even CDR of
  the first dollar of loss and the CDR giving a 1 % loss).
  ``--excel out.xlsx`` writes the full period table, the tranche metrics and the deal atomically;
  text cells that a spreadsheet would evaluate (starting with = + - @) are escaped with a quote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError

__all__ = ["register", "deal_app", "period_table", "compact_period_table", "capital_structure", "write_excel"]

# piped output (files, CI logs) gets a wide page instead of rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 200)

deal_app = typer.Typer(
    name="deal",
    help="SPV / CLO deals: validate a deal YAML, run a deterministic CDR/CPR/severity/lag scenario or a grid of them.",
    no_args_is_help=True,
    add_completion=False,
)



def register(app: typer.Typer) -> None:
    """Add the ``deal`` command group to the ``creditsim`` app."""
    app.add_typer(deal_app, name="deal")


def write_excel(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """Write ``sheets`` to ``path`` (.xlsx) atomically (:func:`creditsim.fileio.atomic_write`: temp file
    + ``os.replace``, umask permissions), with formula-like text escaped."""
    from creditsim.fileio import atomic_write, escape_frame

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise ConfigError(f"--excel must name a .xlsx file, got {path}")

    def write(tmp: Path) -> None:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, frame in sheets.items():
                escape_frame(frame).to_excel(writer, sheet_name=name)

    return atomic_write(path, write, suffix=".xlsx")


def _load(path: Path):
    from creditsim.deal.config import load_deal

    return load_deal(path)


def capital_structure(config) -> pd.DataFrame:
    """One row per tranche: balance, coupon (fixed) or margin and floor (floating), attachment,
    detachment, triggers, pari passu, deferrable."""
    from creditsim.deal.analytics import attachment_points

    att, det = attachment_points(config)
    rows = []
    for k, t in enumerate(config.tranches):
        rows.append({
            "tranche": t.name, "balance": t.balance,
            "coupon": np.nan if (t.equity or t.floating) else t.coupon,
            "margin": np.nan if t.margin is None else t.margin,
            "floor": np.nan if t.floor is None else t.floor,
            "attachment": att[k], "detachment": det[k],
            "oc_trigger": np.nan if t.oc_trigger is None else t.oc_trigger,
            "ic_trigger": np.nan if t.ic_trigger is None else t.ic_trigger,
            "pari_passu": t.pari_passu, "deferrable": t.deferrable, "equity": t.equity,
        })
    out = pd.DataFrame(rows).set_index("tranche")
    # columns of features the deal does not use are noise in a terminal
    unused = [c for c in ("margin", "floor") if out[c].isna().all()]
    if not out["pari_passu"].any():
        unused.append("pari_passu")
    return out.drop(columns=unused)


def deal_features(config) -> list[str]:
    """One line per waterfall feature the deal switches on (``deal check`` prints them)."""
    lines = [f"payment dates {config.payment_frequency}; collections monthly"]
    if config.has_floating:
        lines.append(f"floating classes pay base rate + margin, ACT/360; flat base rate {config.base_rate:.4%} "
                     "when a run has no rate path (simulate uses each scenario's policy rate)")
    if any(t.pari_passu for t in config.debt_tranches):
        groups = ["/".join(t.name for t in config.tranches[a:b]) for a, b in config.pari_passu_groups if b - a > 1]
        lines.append(f"pari passu: {', '.join(groups)} (pro rata, tested as one)")
    if config.admin_fee or config.admin_expenses:
        cap = "no cap" if config.admin_cap is None else f"senior up to {config.admin_cap:,.0f} a year"
        lines.append(f"admin expenses {config.admin_fee:.4%} of par + {config.admin_expenses:,.0f} a year, {cap}")
    if config.interest_diversion_trigger is not None:
        lines.append(f"interest diversion test {config.interest_diversion_trigger:.4f} during the reinvestment "
                     f"period, up to {config.interest_diversion_share:.0%} of remaining interest")
    if config.incentive_fee:
        lines.append(f"incentive fee {config.incentive_fee:.0%} of equity distributions above a "
                     f"{config.incentive_hurdle:.2%} equity IRR")
    if config.eod_oc_trigger is not None or config.acceleration:
        oc = "" if config.eod_oc_trigger is None else f"senior OC below {config.eod_oc_trigger:.4f} or "
        act = "acceleration (one sequential pot)" if config.acceleration else "recorded only (no acceleration)"
        lines.append(f"event of default: {oc}unpaid senior-most interest -> {act}")
    if config.defaulted_interest_accrues:
        lines.append("unpaid interest of non-deferrable classes earns interest at the coupon")
    if config.non_call_period is not None and config.call_nav_threshold is not None:
        lines.append(f"optional call from month {config.non_call_period} when the equity's liquidation value "
                     f"reaches {config.call_nav_threshold:.2f} x its notional")
    if config.refinancing_saving is not None:
        lines.append(f"floating classes refinanced from month {config.non_call_period} when their market margin "
                     f"(issue margin x HY spread / its start) is {config.refinancing_saving:.0%} below the margin "
                     "in force")
    if config.clean_up_call is not None:
        lines.append(f"clean-up call below {config.clean_up_call:.0%} of the initial collateral par")
    if config.interest_reserve:
        release = (config.reinvestment_period if config.interest_reserve_release is None
                   else config.interest_reserve_release)
        lines.append(f"interest reserve {config.interest_reserve:,.0f}: tops up senior expenses and non-deferrable "
                     f"interest, the rest released to principal from month {release}")
    if config.ccc_limit is not None:
        lines.append(f"CCC excess above {config.ccc_limit:.1%} of par counts at {config.ccc_market_value:.0%} in the "
                     "OC numerator (simulate: CCC share of the rated loans along the rating chain)")
    if config.spread_duration > 0:
        lines.append(f"liquidation and call price move with the HY spread path, spread duration "
                     f"{config.spread_duration:g} years (simulate); flat {config.liquidation_price:.2%} otherwise")
    return lines + criteria_lines(config)


def criteria_lines(config) -> list[str]:
    """One line per reinvestment criterion the deal sets (``deal check``)."""
    lines = []
    if config.min_was is not None:
        lines.append(f"reinvestment test: WAS at least {config.min_was:.2%}, purchases at {config.reinvestment_spread:.2%} "
                     "(simulate: the floating loans' spread_bps; without them, and in deal run, the pool's yield "
                     "over the base rate, a fixed-rate deal's whole yield)")
    if config.max_warf is not None:
        lines.append(f"reinvestment test: WARF at most {config.max_warf:,.0f}, purchases at {config.reinvestment_warf:,.0f} "
                     "(simulate: the rated loans' grades; off for an unrated tape; deal run: --pool-warf)")
    if config.max_wal is not None:
        step = ("" if config.max_wal_floor is None else
                f", stepping down a year a year to {config.max_wal_floor:g}")
        lines.append(f"reinvestment test: WAL at most {config.max_wal:g} years{step}, purchases at "
                     f"{config.reinvestment_wal:g} years (simulate: the tape's scheduled amortisation)")
    if lines:
        lines.append("principal proceeds the reinvestment tests keep from buying pay the notes in order")
    return lines


def period_table(result: dict, config, scenario: int = 0) -> pd.DataFrame:
    """Month-by-month table of one scenario of a waterfall result (currency units, ratios)."""
    def col(key: str) -> np.ndarray:
        return result[key][scenario].detach().cpu().numpy()

    T = result["cash_in"].shape[1]
    df = pd.DataFrame({"month": np.arange(1, T + 1)})
    for key in ("interest_proceeds", "principal_proceeds", "senior_fee"):
        df[key] = col(key)
    for k, t in enumerate(config.debt_tranches):
        df[f"{t.name}_interest"] = col("interest")[:, k]
        df[f"{t.name}_principal"] = col("principal")[:, k] + col("deferred_interest_paid")[:, k]
        df[f"{t.name}_balance"] = col("balances")[:, k]
        if t.oc_trigger is not None:
            df[f"{t.name}_oc"] = col("oc_ratio")[:, k]
        if t.ic_trigger is not None:
            df[f"{t.name}_ic"] = col("ic_ratio")[:, k]
    for key in ("interest_cure", "principal_cure", "sub_fee", "admin_expenses", "incentive_fee", "reinvestment",
                "collateral_balance", "equity"):
        df[key] = col(key)
    if config.months_per_period > 1:
        df["collection_account"] = col("collection_account")
    if config.eod_oc_trigger is not None or config.acceleration:
        df["event_of_default"] = col("eod")
        df["accelerated"] = col("accelerated")
    if config.non_call_period is not None or config.clean_up_call is not None:
        df["called"] = col("called")
    if config.refinancing_saving is not None:
        for k, t in enumerate(config.debt_tranches):
            if t.floating:
                df[f"{t.name}_margin"] = col("note_margin")[:, k]
    if config.has_reinvestment_criteria:
        df["reinvestment_blocked"] = col("reinvestment_blocked")
        for key in ("was", "warf", "wal"):
            if not np.isnan(col(key)).all():
                df[key] = col(key)
    return df.set_index("month")


def compact_period_table(periods: pd.DataFrame, config) -> pd.DataFrame:
    """The columns of :func:`period_table` that fit a terminal: collections, fees, cash and balance per
    class, cures, reinvestment and equity."""
    out = pd.DataFrame(index=periods.index)
    out["interest_in"] = periods["interest_proceeds"]
    out["principal_in"] = periods["principal_proceeds"]
    out["fees"] = periods["senior_fee"] + periods["sub_fee"] + periods["admin_expenses"] + periods["incentive_fee"]
    for t in config.debt_tranches:
        out[f"{t.name}_paid"] = periods[f"{t.name}_interest"] + periods[f"{t.name}_principal"]
        out[f"{t.name}_bal"] = periods[f"{t.name}_balance"]
    out["cures"] = periods["interest_cure"] + periods["principal_cure"]
    out["reinvest"] = periods["reinvestment"]
    out["equity"] = periods["equity"]
    for key, label in (("collection_account", "held"), ("event_of_default", "EoD"), ("called", "called")):
        if key in periods:
            out[label] = periods[key]
    return out


def criteria_period_table(periods: pd.DataFrame) -> pd.DataFrame | None:
    """The reinvestment tests by month (a table of their own: beside the cash columns they made every
    cell too narrow to read): the cash they kept from buying and the collateral's WAS (%), WARF and WAL
    (years) before the purchase; None for a deal without the tests."""
    if "reinvestment_blocked" not in periods:
        return None
    out = pd.DataFrame(index=periods.index)
    out["reinvested"] = periods["reinvestment"]
    out["blocked"] = periods["reinvestment_blocked"]
    for key, label, scale in (("was", "WAS %", 100.0), ("warf", "WARF", 1.0), ("wal", "WAL years", 1.0)):
        if key in periods:
            out[label] = periods[key] * scale
    return out


def deal_events(periods: pd.DataFrame) -> list[str]:
    """One line per one-way event of a deterministic run: the event of default, acceleration, a call."""
    lines = []
    for key, what in (("event_of_default", "event of default"), ("accelerated", "accelerated priority"),
                      ("called", "called: the collateral is sold and the notes paid")):
        if key in periods and (periods[key] > 0.5).any():
            lines.append(f"{what} from month {int(periods.index[(periods[key] > 0.5).to_numpy()][0])}")
    return lines


def _print_frame(df: pd.DataFrame, title: str, money: bool = True) -> None:
    table = Table(title=title, show_lines=False)
    table.add_column(str(df.index.name or ""), justify="left")
    for c in df.columns:
        table.add_column(str(c), justify="right")
    for idx, row in df.iterrows():
        cells = []
        for c, v in row.items():
            if isinstance(v, (bool, np.bool_)):
                cells.append("yes" if v else "")
            elif isinstance(v, (float, np.floating)):
                if np.isnan(v):
                    cells.append("")
                elif np.isinf(v):
                    cells.append("inf")
                elif abs(v) < 1e-12:
                    cells.append("0")
                elif money and abs(v) >= 1000:
                    cells.append(f"{v:,.0f}")
                else:
                    cells.append(f"{v:.4f}")
            else:
                cells.append(str(v))
        table.add_row(str(idx), *cells)
    console.print(table)


@deal_app.command("check")
def check(path: Path = typer.Argument(..., help="deal YAML file")) -> None:
    """Validate a deal file and print its capital structure."""
    config = _load(path)
    console.print(f"[bold]{config.name}[/] - {len(config.tranches)} tranches, collateral par "
                  f"{config.initial_collateral:,.0f}, reinvestment period {config.reinvestment_period} months, "
                  f"senior fee {config.senior_fee_rate:.4%}, sub fee {config.sub_fee:.4%}", highlight=False)
    for line in deal_features(config):
        console.print(f"  {line}", highlight=False)
    _print_frame(capital_structure(config), "capital structure", money=True)
    warnings = config.warnings()
    for line in warnings:
        console.print(f"warning: {line}", style="bold yellow", highlight=False)
    console.print(f"deal OK ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else "deal OK",
                  style="yellow" if warnings else "green")


def _check_run_options(excel: Path | None, rows: int, horizon: int, term: int, lag: int) -> None:
    """One-line errors for `deal run` options, before anything runs."""
    if excel is not None and Path(excel).suffix.lower() != ".xlsx":
        raise ConfigError(f"--excel must name a .xlsx file, got {excel}")
    if excel is not None:
        from creditsim.fileio import check_output_target

        # an unwritable --excel must fail before the waterfall runs, not after
        check_output_target(excel, "file", "--excel")
    if rows < 0:
        raise ConfigError(f"--rows must be >= 0, got {rows}")
    # the deterministic run allocates (months x tranches) tensors: bound the months (100 years)
    if not 0 <= horizon <= 1200:
        raise ConfigError(f"--horizon must be between 0 and 1200 months, got {horizon}")
    if term > 1200:
        raise ConfigError(f"--term must be at most 1200 months, got {term}")
    if lag > 1200:
        raise ConfigError(f"--lag must be at most 1200 months, got {lag}")


def _print_periods(periods: pd.DataFrame, config, rows: int) -> None:
    """The run's one-way events, a note on payment dates, and the first ``rows`` months."""
    shown = periods if rows >= len(periods) else periods.iloc[:rows]
    for line in deal_events(periods):
        console.print(line, highlight=False)
    if config.months_per_period > 1:
        console.print(f"payment dates every {config.months_per_period} months: collections wait in the collection "
                      "account ('held') and interest_in / principal_in are the cash released on each date",
                      highlight=False)
    _print_frame(compact_period_table(shown, config), f"periods (first {len(shown)} of {len(periods)} months)")
    criteria = criteria_period_table(shown)
    if criteria is not None:
        _print_frame(criteria, "reinvestment tests (metrics before the month's purchase)", money=True)


@deal_app.command("run")
def run(
    path: Path = typer.Argument(..., help="deal YAML file"),
    cdr: float = typer.Option(0.02, help="constant annual default rate (decimal)"),
    cpr: float = typer.Option(0.10, help="constant annual prepayment rate (decimal)"),
    severity: float = typer.Option(0.40, help="loss given default (decimal)"),
    lag: int = typer.Option(6, help="recovery lag, months"),
    wac: float = typer.Option(0.08, help="pool coupon, annual decimal"),
    term: int = typer.Option(60, help="pool amortisation term, months (level pay)"),
    horizon: int = typer.Option(0, help="months simulated (0 = term + lag); collateral left is liquidated"),
    rows: int = typer.Option(24, help="months shown in the period table (all go to --excel)"),
    breakeven: bool = typer.Option(True, help="compute break-even CDRs (first-dollar loss)"),
    excel: Path | None = typer.Option(None, help="write periods, tranche metrics and the deal to this .xlsx"),
    base_rate: float | None = typer.Option(None, help="flat base rate of floating notes, annual decimal (default: "
                                                      "the deal's base_rate)"),
    start_month: str | None = typer.Option(None, help="calendar month of month 1 (YYYY-MM) for ACT/360 accrual "
                                                       "(default: 365/12-day months)"),
    hy_spread: float | None = typer.Option(None, help="HY spread at the end of the run, annual decimal: the spread "
                                                      "path rises linearly to it from --hy-start (moves sale and "
                                                      "reinvestment prices by the deal's spread_duration)"),
    hy_start: float = typer.Option(0.035, help="HY spread at month 1, annual decimal (with --hy-spread)"),
    pool_warf: float | None = typer.Option(None, help="Moody's WARF of the pool (flat), for a deal with max_warf "
                                                      "(without it the WARF test is off)"),
) -> None:
    """Deterministic run of the deal on a level-pay pool: period table and tranche metrics."""
    import torch

    from creditsim.deal.analytics import breakeven_cdr, level_pay_pool, tranche_outcomes
    from creditsim.deal.waterfall import cash_conservation_error, run_waterfall

    _check_run_options(excel, rows, horizon, term, lag)
    config = _load(path)
    par = config.initial_collateral
    pool = level_pay_pool(par, wac, term, horizon or None, cdr=cdr, cpr=cpr, severity=severity, lag=lag)
    market: dict = {"start_month": start_month}
    if base_rate is not None:
        market["base_rate"] = base_rate
    if hy_spread is not None:
        market["hy_spread"] = np.linspace(hy_start, hy_spread, pool.shape[1])
    if pool_warf is not None:
        market["pool_warf"] = pool_warf
    with torch.no_grad():
        result = run_waterfall(pool, config, initial_balance=par, mode="hard", **market)
    err = float(cash_conservation_error(result).abs().max())
    periods = period_table(result, config)
    outcomes = tranche_outcomes(result, config, collateral_balance=par)
    be = be1 = None
    if breakeven:
        be = breakeven_cdr(config, cpr, severity, lag, wac=wac, term_months=term, horizon=horizon or None)
        be1 = breakeven_cdr(config, cpr, severity, lag, wac=wac, term_months=term, horizon=horizon or None,
                            target_loss=0.01)
    metrics = pd.DataFrame([
        {"tranche": name, "balance": o["balance"], "attachment": o["attachment"], "detachment": o["detachment"],
         "principal_loss": float(o["losses"][0]),
         "pv_loss": np.nan if o["pv_losses"] is None else float(o["pv_losses"][0]),
         "wal_years": float(o["wal"][0]), "irr": float(o["irr"][0]),
         "breakeven_cdr": np.nan if (be is None or o["equity"]) else float(be[name]),
         "cdr_1pct_loss": np.nan if (be1 is None or o["equity"]) else float(be1[name])}
        for name, o in outcomes.items()
    ]).set_index("tranche")

    console.print(f"[bold]{config.name}[/]: CDR {cdr:.2%}, CPR {cpr:.2%}, severity {severity:.0%}, lag {lag} m, "
                  f"WAC {wac:.2%}, term {term} m, {periods.shape[0]} months; max cash conservation error "
                  f"{err:.2e}", highlight=False)
    _print_periods(periods, config, rows)
    _print_frame(metrics, "tranche metrics (loss and rates as decimals, WAL in years)", money=True)
    if excel is not None:
        deal_sheet = capital_structure(config).reset_index()
        deal_sheet.insert(0, "deal", config.name)
        scenario = pd.DataFrame([{"cdr": cdr, "cpr": cpr, "severity": severity, "lag": lag, "wac": wac,
                                  "term": term, "horizon": periods.shape[0], "collateral": par}])
        out = write_excel(excel, {"periods": periods, "tranches": metrics, "deal": deal_sheet.set_index("deal"),
                                  "scenario": scenario})
        console.print(f"wrote {out}")


@deal_app.command("sensitivity")
def sensitivity(
    path: Path = typer.Argument(..., help="deal YAML file"),
    cdr: str = typer.Option("0,0.02,0.05,0.10", help="annual default rates: comma-separated points, each a number "
                                                      "or a monthly vector such as '0.02x12 0.06x12 0.03'"),
    cpr: str = typer.Option("0,0.10,0.20", help="annual prepayment rates (points as --cdr)"),
    severity: str = typer.Option("0.40", help="loss given default (points as --cdr)"),
    lag: str = typer.Option("6", help="recovery lags in months, comma-separated"),
    metric: str = typer.Option("principal_loss", help="table shown: principal_loss | pv_loss | wal_years | irr "
                                                      "(all go to --excel / --csv)"),
    wac: float = typer.Option(0.08, help="pool coupon, annual decimal"),
    term: int = typer.Option(60, help="pool amortisation term, months (level pay)"),
    horizon: int = typer.Option(0, help="months simulated (0 = term + lag); collateral left is liquidated"),
    excel: Path | None = typer.Option(None, help="write the long table and one sheet per metric to this .xlsx"),
    csv: Path | None = typer.Option(None, help="write the long table (one row per point and tranche) to this .csv"),
) -> None:
    """Tranche outcomes over a CDR x CPR x severity x lag grid (exact waterfall, level-pay pool)."""
    from creditsim.deal.sensitivity import SENSITIVITY_METRICS, parse_axis, sensitivity_grid
    from creditsim.fileio import atomic_write, check_output_target

    if metric not in SENSITIVITY_METRICS:
        raise ConfigError(f"--metric must be one of {list(SENSITIVITY_METRICS)}, got {metric!r}")
    try:
        lags = [int(x) for x in lag.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--lag must be whole months separated by commas, e.g. 6,12; got {lag!r}") from None
    _check_run_options(excel, 0, horizon, term, max(lags, default=0))
    if csv is not None:
        check_output_target(csv, "file", "--csv")
    config = _load(path)
    grid = sensitivity_grid(config, parse_axis(cdr, "cdr"), parse_axis(cpr, "cpr"), parse_axis(severity, "severity"),
                            lags, wac=wac, term_months=term, horizon=horizon or None)
    wide = grid.pivot(metric)
    wide.index = [f"CDR {c} | CPR {p} | sev {v} | lag {g}" for c, p, v, g in wide.index]
    wide.index.name = "scenario"
    console.print(f"[bold]{config.name}[/]: {grid.settings['points']} grid points, level-pay pool WAC {wac:.2%}, "
                  f"term {term} m, collateral {grid.settings['collateral']:,.0f}", highlight=False)
    _print_frame(wide, f"{metric} by tranche (decimals; WAL in years)", money=False)
    if csv is not None:
        atomic_write(csv, lambda p: grid.table.to_csv(p, index=False))
        console.print(f"wrote {csv}")
    if excel is not None:
        # flat sheets: a MultiIndex would lose its names and merge cells in the workbook
        sheets = {"grid": grid.table.set_index("cdr")}
        sheets.update({m: grid.pivot(m).reset_index().set_index("cdr") for m in SENSITIVITY_METRICS})
        sheets["settings"] = pd.DataFrame({"value": grid.settings}).rename_axis("setting")
        console.print(f"wrote {write_excel(excel, sheets)}")
