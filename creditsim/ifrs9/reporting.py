"""IFRS 7 disclosures from two ECL runs: the allowance movement table, exposure by grade and stage, and
the scenario table.

Movement table (IFRS 7.35H-35I: reconciliation of the loss allowance by stage from opening to closing).
IFRS 7 fixes the columns (12-month ECL, lifetime not credit-impaired, lifetime credit-impaired) and asks
for the changes that explain the movement (IFRS 7.35I and the IG20B illustration: transfers, new assets,
derecognitions, write-offs, model changes), but not the order in which a loan's change is split between
lines. Each loan's change is attributed once, in the order below, the last line taking the rest. It is
the layout of many bank annual reports (transfers "at the opening ECL", net remeasurement as its own
line; the EBA FINREP movement template F 12.01 likewise has separate origination, derecognition,
credit-risk-change, methodology and write-off lines), chosen because it keeps each line a quantity one
can recompute from the two books alone, loan by loan:

1. **Transfers** move a continuing loan's *opening* allowance from its opening stage's column to its
   closing stage's column (one row per destination stage; each row sums to zero). Measuring transfers at
   the opening amount keeps the remeasurement of the period in one line.
2. **New originations**: the closing allowance of loans not in the opening book.
3. **Derecognitions** (repaid, sold): minus the opening allowance of loans not in the closing book and
   not written off. **Write-offs**: minus the opening allowance of the written-off loans (the allowance
   is used; recoveries after write-off are not part of the allowance).
4. **Unwind of discount** (optional, given per loan): the interest accretion of a continuing loan's
   allowance, in its closing stage.
5. **Changes in models / parameters** (optional, with the closing book run under the *old* model):
   closing allowance under the new model minus under the old one, per continuing loan.
6. **Remeasurement**: the rest of each continuing loan's change, so every column reconciles exactly:
   opening + movements = closing (tested on random books).

The alternative, transfers measured at the *closing* allowance, moves the lifetime-vs-12-month jump of a
loan that changed stage into the transfer line (so a 1 -> 2 transfer line is no longer a pure
reclassification of an existing amount); it is also used, which is why the choice is stated. New loans
are shown in their closing stage at their closing allowance (their in-period remeasurement is part of
the origination line), and derecognised or written-off loans at their opening allowance in their opening
stage, so neither kind appears on a transfer line.

Scenario table: the non-linearity gap is the probability-weighted allowance minus the allowance with
100 % weight on the reference scenario (the baseline): how much the weighting adds over the single most
likely scenario, the number supervisors ask for when the loss is convex in the macro path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter

from creditsim.errors import DataError
from creditsim.fileio import atomic_write, escape_frame

__all__ = ["allowance_movement", "exposure_by_grade_and_stage", "scenario_table", "disclosures_to_excel",
           "stage_summary", "Ifrs7Report", "build_report", "write_tables_xlsx"]

_STAGES = (1, 2, 3)


def _frame(result: Any, name: str) -> pd.DataFrame:
    """Per-loan ``loan_id``, ``stage``, ``ecl`` (and ``ead``) from an EclResult or a frame."""
    df = result.to_frame() if hasattr(result, "to_frame") else pd.DataFrame(result)
    missing = [c for c in ("loan_id", "stage", "ecl") if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing} (expected loan_id, stage, ecl)")
    if df["loan_id"].duplicated().any():
        raise DataError(f"{name}: duplicated loan_id {df.loc[df['loan_id'].duplicated(), 'loan_id'].iloc[0]!r}")
    if not df["stage"].isin(_STAGES).all():
        raise DataError(f"{name}: stage must be 1, 2 or 3")
    if not np.isfinite(df["ecl"].to_numpy(dtype=np.float64)).all():
        raise DataError(f"{name}: ecl contains NaN or infinite values")
    return df.set_index("loan_id")


def _per_loan(values: Any, name: str) -> pd.Series:
    if values is None:
        return pd.Series(dtype=np.float64)
    if isinstance(values, pd.Series):
        return values.astype(np.float64)
    return _frame(values, name)["ecl"].astype(np.float64)


def allowance_movement(opening: Any, closing: Any, *, written_off: Any = (), unwind: Any = None,
                       closing_old_model: Any = None) -> pd.DataFrame:
    """The loss-allowance reconciliation by stage (module docstring).

    Args:
        opening, closing: :class:`~creditsim.ifrs9.ecl.EclResult` or frames with ``loan_id``, ``stage`` (1/2/3)
            and ``ecl`` (allowance, currency units) at the two reporting dates.
        written_off: loan ids written off in the period (absent from ``closing``).
        unwind: optional Series ``loan_id -> unwind of discount`` of continuing loans.
        closing_old_model: optional closing book measured with the opening date's models; its difference to
            ``closing`` is the model-change line.

    Returns:
        Frame with rows ``opening``, ``transfer to stage 1/2/3``, ``new originations``, ``derecognitions``,
        ``write-offs``, ``unwind of discount``, ``model changes``, ``remeasurement``, ``closing`` and columns
        ``stage 1``, ``stage 2``, ``stage 3``, ``total``.
    """
    o, c = _frame(opening, "opening"), _frame(closing, "closing")
    off = pd.Index(list(written_off))
    if off.isin(c.index).any():
        raise DataError(f"written_off: loan {off[off.isin(c.index)][0]!r} is still in the closing book")
    if not off.isin(o.index).all():
        raise DataError(f"written_off: loan {off[~off.isin(o.index)][0]!r} is not in the opening book")
    both = o.index.intersection(c.index)
    rows: dict[str, np.ndarray] = {}

    def by_stage(stages: pd.Series, amounts: pd.Series) -> np.ndarray:
        return np.array([float(amounts[stages == s].sum()) for s in _STAGES])

    rows["opening"] = by_stage(o["stage"], o["ecl"])
    moved = both[o.loc[both, "stage"].to_numpy() != c.loc[both, "stage"].to_numpy()]
    for dest in _STAGES:
        ids = moved[c.loc[moved, "stage"].to_numpy() == dest]
        row = -by_stage(o.loc[ids, "stage"], o.loc[ids, "ecl"])
        row[dest - 1] += float(o.loc[ids, "ecl"].sum())
        rows[f"transfer to stage {dest}"] = row
    new = c.index.difference(o.index)
    rows["new originations"] = by_stage(c.loc[new, "stage"], c.loc[new, "ecl"])
    gone = o.index.difference(c.index).difference(off)
    rows["derecognitions"] = -by_stage(o.loc[gone, "stage"], o.loc[gone, "ecl"])
    rows["write-offs"] = -by_stage(o.loc[off, "stage"], o.loc[off, "ecl"])
    stage_c = c.loc[both, "stage"]
    unw = _per_loan(unwind, "unwind").reindex(both).fillna(0.0)
    rows["unwind of discount"] = by_stage(stage_c, unw)
    model = pd.Series(0.0, index=both)
    if closing_old_model is not None:
        old = _per_loan(closing_old_model, "closing_old_model")
        if not both.isin(old.index).all():
            raise DataError("closing_old_model: must hold every loan of the closing book that was in the opening book")
        model = c.loc[both, "ecl"] - old.reindex(both)
    rows["model changes"] = by_stage(stage_c, model)
    rows["remeasurement"] = by_stage(stage_c, c.loc[both, "ecl"] - o.loc[both, "ecl"] - unw - model)
    rows["closing"] = by_stage(c["stage"], c["ecl"])
    out = pd.DataFrame(rows, index=[f"stage {s}" for s in _STAGES]).T
    out["total"] = out.sum(axis=1)
    return out + 0.0  # -0.0 (a negated empty sum) prints as "-0.0" in the tables: make it 0.0


def exposure_by_grade_and_stage(result: Any, grades: Any, gross: Any = None) -> pd.DataFrame:
    """Gross carrying amount, allowance and coverage (allowance / gross, a fraction) by grade (rows) and
    stage (columns), the IFRS 7.35M table. ``gross`` ``(L,)``: the gross carrying amount per loan (amortised
    cost before the allowance); None takes the result's exposure ``ead``."""
    df = _frame(result, "result").reset_index()
    g = np.asarray(grades).reshape(-1)
    if "ead" not in df.columns or g.size != len(df):
        raise DataError(f"grades: expected one grade per loan ({len(df)}) and an exposure column 'ead'")
    if gross is not None:
        amounts = np.asarray(gross, dtype=np.float64).reshape(-1)
        if amounts.size != len(df) or not np.isfinite(amounts).all() or (amounts < 0).any():
            raise DataError(f"gross: expected {len(df)} finite amounts >= 0 (one per loan)")
        df["ead"] = amounts
    df["grade"] = g
    df[["ead", "ecl"]] = df[["ead", "ecl"]].astype(np.float64)
    table = df.pivot_table(index="grade", columns="stage", values=["ead", "ecl"], aggfunc="sum", fill_value=0.0)
    cover = table["ecl"] / table["ead"].where(table["ead"] > 0)
    return pd.concat({"gross": table["ead"], "allowance": table["ecl"], "coverage": cover}, axis=1)


def scenario_table(result: Any, reference: int = 0) -> pd.DataFrame:
    """ECL with 100 % weight on each scenario (staged under that scenario), the probability-weighted ECL,
    and the non-linearity gap: weighted minus the ``reference`` scenario's (the baseline, index 0)."""
    per = np.asarray(result.ecl_by_scenario, dtype=np.float64).sum(axis=1)
    names = list(result.scenarios)
    out = pd.DataFrame({"weight": np.asarray(result.weights, dtype=np.float64), "ecl_100pct": per}, index=names)
    weighted = float(np.sum(result.ecl))
    out.loc["probability-weighted"] = [1.0, weighted]
    out.loc["non-linearity gap"] = [np.nan, weighted - per[reference]]
    return out


def disclosures_to_excel(path: Any, **tables: pd.DataFrame) -> Any:
    """Write the given tables (``name=frame``) to one workbook, one sheet each, atomically, formatted and
    formula-escaped as :meth:`Ifrs7Report.to_excel` writes them."""
    if not tables:
        raise DataError("disclosures_to_excel: no tables given")
    return write_tables_xlsx(path, tables)


# ----------------------------------------------------------------------------- report object
#: Excel number formats: currency amounts with thousands separators and cents, fractions as percent
CURRENCY_FORMAT = "#,##0.00"
PERCENT_FORMAT = "0.00%"
COUNT_FORMAT = "#,##0"


def stage_summary(result: Any, gross: Any = None) -> pd.DataFrame:
    """Loans, gross carrying amount (``gross`` ``(L,)``; None: the exposure), exposure at the reporting date
    (``ead``: with the engine's accrued interest and ``ccf x undrawn``), probability-weighted 12-month and
    lifetime ECL, the allowance (``ecl``: 12-month in Stage 1, lifetime in 2 and 3) and coverage (allowance
    / gross carrying amount, a fraction) by stage 1..3 and in total. Currency units; every stage row is
    present (zeros for an empty stage, coverage NaN)."""
    ead = np.asarray(result.ead, dtype=np.float64)
    amounts = ead if gross is None else np.asarray(gross, dtype=np.float64).reshape(-1)
    if amounts.shape != ead.shape:
        raise DataError(f"gross: expected {ead.size} amounts (one per loan), got {amounts.size}")
    df = pd.DataFrame({"stage": np.asarray(result.stage), "gross": amounts, "ead": ead,
                       "ecl_12m": np.asarray(result.ecl_12m_weighted, dtype=np.float64),
                       "ecl_lifetime": np.asarray(result.ecl_lifetime_weighted, dtype=np.float64),
                       "ecl": np.asarray(result.ecl, dtype=np.float64)})
    out = df.groupby("stage").agg(loans=("ecl", "size"), gross=("gross", "sum"), ead=("ead", "sum"), ecl_12m=("ecl_12m", "sum"),
                                  ecl_lifetime=("ecl_lifetime", "sum"), ecl=("ecl", "sum"))
    out = out.reindex(list(_STAGES), fill_value=0)
    out.index = [f"stage {s}" for s in _STAGES]
    out.loc["total"] = out.sum()
    out["loans"] = out["loans"].astype(np.int64)
    out["coverage"] = out["ecl"] / out["gross"].where(out["gross"] > 0)
    return out


def _flat_exposure(table: pd.DataFrame) -> pd.DataFrame:
    """The (measure, stage) columns of :func:`exposure_by_grade_and_stage` as ``gross stage 1`` ... plus the
    totals over stages (``gross total``, ``allowance total``, ``coverage total``) and a ``total`` row."""
    def with_totals(frame: pd.DataFrame) -> pd.DataFrame:
        # every stage column, also when no loan of the book is in it
        out = frame.reindex(columns=list(_STAGES), fill_value=0.0).astype(np.float64)
        out.columns = [f"stage {s}" for s in _STAGES]
        out["total"] = out.sum(axis=1)
        out.loc["total"] = out.sum()
        return out

    gross, allow = with_totals(table["gross"]), with_totals(table["allowance"])
    cover = allow / gross.where(gross > 0)
    out = pd.concat({"gross": gross, "allowance": allow, "coverage": cover}, axis=1)
    out.columns = [f"{m} {s}" for m, s in out.columns]
    out.index = out.index.astype(str)
    out.index.name = "grade"
    return out


@dataclass
class Ifrs7Report:
    """The disclosure tables of one reporting date (see :func:`build_report`).

    ``summary`` (stage x loans / exposure / ECL / coverage), ``exposure`` (grade x gross / allowance /
    coverage per stage and in total), ``scenarios`` (:func:`scenario_table`) and, with an opening book,
    ``movement`` (:func:`allowance_movement`). Amounts in currency units, coverage and weights fractions.
    """

    summary: pd.DataFrame
    exposure: pd.DataFrame
    scenarios: pd.DataFrame
    movement: pd.DataFrame | None = None
    as_of: str | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """``{sheet / file name: table}`` in disclosure order (movement only when present)."""
        out = {"summary": self.summary, "exposure": self.exposure, "scenarios": self.scenarios}
        if self.movement is not None:
            out["movement"] = self.movement
        return out

    def to_excel(self, path: str | os.PathLike[str]) -> Path:
        """One sheet per table (:func:`write_tables_xlsx`). Returns the path."""
        return write_tables_xlsx(path, self.tables())


def write_tables_xlsx(path: str | os.PathLike[str], tables: dict[str, pd.DataFrame]) -> Path:
    """One sheet per table (names cut to Excel's 31 characters), written atomically (temporary file, then
    rename), text cells formula-escaped, with number formats by column name: currency ``#,##0.00``,
    coverage and weights ``0.00%``, loan counts ``#,##0``."""

    def write(p: Path) -> None:
        with pd.ExcelWriter(p, engine="openpyxl") as xl:
            for name, frame in tables.items():
                sheet_name = str(name)[:31]
                escape_frame(frame).to_excel(xl, sheet_name=sheet_name)
                sheet = xl.sheets[sheet_name]
                sheet.column_dimensions["A"].width = 24
                for j, col in enumerate(frame.columns, start=2):
                    fmt = _number_format(str(col))
                    letter = get_column_letter(j)
                    sheet.column_dimensions[letter].width = 16
                    for row in range(2, len(frame) + 2):
                        sheet[f"{letter}{row}"].number_format = fmt

    return atomic_write(path, write, suffix=".xlsx")


def _number_format(column: str) -> str:
    """Excel number format of a report column, from its name (fractions as percent)."""
    if column.startswith("coverage") or column == "weight":
        return PERCENT_FORMAT
    if column == "loans":
        return COUNT_FORMAT
    return CURRENCY_FORMAT


def build_report(result: Any, grades: Any, *, gross: Any = None, reference: int = 0, opening: Any = None,
                 written_off: Any = (), unwind: Any = None, closing_old_model: Any = None,
                 as_of: str | None = None) -> Ifrs7Report:
    """The disclosure tables of an ECL run.

    Args:
        result: the closing :class:`~creditsim.ifrs9.ecl.EclResult`.
        grades: ``(L,)`` grade label per loan of ``result`` (e.g. "BBB", or an asset class for unrated loans).
        gross: ``(L,)`` gross carrying amounts (e.g. the drawn balances); None: the result's exposure.
        reference: scenario index the non-linearity gap is measured against (the baseline).
        opening, written_off, unwind, closing_old_model: the movement table's inputs
            (:func:`allowance_movement`); no movement table when ``opening`` is None.
        as_of: the reporting date, kept for the reader.
    """
    movement = None
    if opening is not None:
        movement = allowance_movement(opening, result, written_off=written_off, unwind=unwind,
                                      closing_old_model=closing_old_model)
    return Ifrs7Report(summary=stage_summary(result, gross),
                       exposure=_flat_exposure(exposure_by_grade_and_stage(result, grades, gross)),
                       scenarios=scenario_table(result, reference=reference), movement=movement, as_of=as_of)
