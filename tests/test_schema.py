"""Validation at the edge: every bad-input case names the column, the rows and what was expected."""

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import DataError
from creditsim.schema import validate_loan_tape, validate_macro, validate_panel
from creditsim.states import MACRO_VARS


def _tape(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(n)],
            "origination_date": ["2022-01-15"] * n,
            "maturity_date": ["2027-01-15"] * n,
            "original_balance": [100_000.0] * n,
            "interest_rate": [0.06] * n,
            "rate_type": ["fixed"] * n,
            "payment_frequency": ["monthly"] * n,
            "amortization_type": ["annuity"] * n,
            "asset_class": ["corporate"] * n,
            "term_months": [60] * n,
            "geography_country": ["DE"] * n,
            "borrower_type": ["sme"] * n,
            "originator_id": ["O1"] * n,
            "vintage": ["2022-01"] * n,
            "current_balance": [80_000.0] * n,
        }
    )


def test_valid_tape_is_cleaned():
    out = validate_loan_tape(_tape())
    assert out["origination_date"].dtype.kind == "M"
    assert out["term_months"].dtype == np.int64


def _variants() -> list[tuple[str, pd.DataFrame]]:
    """Tapes whose columns take validation's vectorised path, or just miss it, in each text dtype."""
    base = _tape(6)
    base["rate_type"] = [" Fixed", "floating", "FIXED ", "fixed", "Floating", "fixed"]
    base["rating"] = ["BBB+", "bb", " A-", "BBB", "ccc", "B"]
    base["internal_score"] = [0.1, np.nan, 0.3, 0.4, 0.5, 0.6]  # optional, with a gap: the row-by-row path
    base["term_months"] = [60.0] * 6  # whole floats for an int field
    out = [("as built", base)]
    for dtype in ("str", object, "string", "category"):
        t = base.copy()
        for col in ("loan_id", "rate_type", "payment_frequency", "asset_class", "rating", "originator_id"):
            t[col] = t[col].astype(dtype)
        out.append((str(dtype), t))
    tab = base.copy()
    tab["rate_type"] = ["fixed\t", "fixed", "floating", "fixed", "fixed", "fixed"]  # not printable: row by row
    out.append(("tab", tab))
    ids = base.copy()
    ids["loan_id"] = [7, 8.0, "009", 10, 11, 12]  # mixed identifiers: row by row
    out.append(("mixed ids", ids))
    gaps = base.copy()
    for col in ("rate_type", "loan_id", "rating"):  # a str column with a missing value: row by row
        gaps[col] = gaps[col].astype("str")
    gaps.loc[3, ["rating", "industry_sector"]] = np.nan
    gaps["industry_sector"] = gaps["industry_sector"].astype("str")
    out.append(("str gaps", gaps))
    return out


@pytest.mark.parametrize("name, tape", _variants(), ids=[n for n, _ in _variants()])
def test_the_vectorised_path_stores_what_the_row_by_row_checks_store(name, tape, monkeypatch):
    """schema._coerce_clean (numbers already clean, text normalised once per distinct value) must store the
    very columns, dtypes included, that the row-by-row checks store; a categorical dtype is validated too."""
    from creditsim import schema

    taken = {}
    clean = schema._coerce_clean
    monkeypatch.setattr(schema, "_coerce_clean", lambda df, spec: taken.setdefault(spec.name, clean(df, spec)))
    fast = validate_loan_tape(tape.copy())
    assert taken["rate_type"] == (name not in ("category", "tab"))
    assert taken["rating"] == (name not in ("category", "str gaps"))
    assert taken["loan_id"] == (name not in ("category", "mixed ids", "<class 'object'>"))  # pandas string columns
    assert taken["original_balance"] and not taken["internal_score"]
    monkeypatch.setattr(schema, "_coerce_clean", lambda df, spec: False)
    slow = validate_loan_tape(tape.copy())
    pd.testing.assert_frame_equal(fast, slow)
    assert list(fast["rate_type"].unique()) == ["fixed", "floating"] and fast["rating"].iloc[0] == "BBB"


def test_integers_are_stored_exactly_and_floats_beyond_int64_are_named(monkeypatch):
    """An int64 column keeps its values (through float64, 2**53 + 1 would round and 2**63 - 1 wrap negative),
    on the vectorised path as on the row-by-row one; a float too large for int64 is named, not cast to garbage."""
    from creditsim import schema

    panel = pd.DataFrame({"loan_id": ["L1"] * 3,
                          "reporting_month": ["2024-01-01", "2024-02-01", "2024-03-01"],
                          "current_balance": [100.0, 90.0, 80.0], "loan_state": [0, 0, 0],
                          "days_past_due": [2**53 + 1, 2**62 + 3, 2**63 - 1]})
    fast = validate_panel(panel.copy())
    with monkeypatch.context() as m:
        m.setattr(schema, "_coerce_clean", lambda df, spec: False)
        slow = validate_panel(panel.copy())
    assert fast["days_past_due"].tolist() == [2**53 + 1, 2**62 + 3, 2**63 - 1] == slow["days_past_due"].tolist()
    panel["days_past_due"] = [0.0, 1e300, 3.0]
    with pytest.raises(DataError, match=r"days_past_due.*\[1\].*within int64"):
        validate_panel(panel)


def test_the_vectorised_path_leaves_bad_values_to_the_named_errors():
    tape = _tape()
    tape["asset_class"] = ["corporate", "Corporate ", "spaceship", "corporate"]
    with pytest.raises(DataError, match=r"asset_class.*row.*2.*one of"):
        validate_loan_tape(tape)
    tape = _tape()
    tape["interest_rate"] = [0.06, np.inf, 0.06, 0.06]
    with pytest.raises(DataError, match=r"interest_rate.*1.*finite"):
        validate_loan_tape(tape)


def test_missing_column_is_named():
    with pytest.raises(DataError, match=r"missing required column\(s\) \['interest_rate'\]"):
        validate_loan_tape(_tape().drop(columns="interest_rate"))


def test_nan_in_required_field_names_column_and_row():
    df = _tape()
    df.loc[2, "original_balance"] = np.nan
    with pytest.raises(DataError, match=r"'original_balance'.*\[2\].*missing"):
        validate_loan_tape(df)


def test_negative_balance():
    df = _tape()
    df.loc[1, "original_balance"] = -5.0
    with pytest.raises(DataError, match=r"'original_balance'.*\[1\].*> 0"):
        validate_loan_tape(df)


def test_maturity_before_origination():
    df = _tape()
    df.loc[3, "maturity_date"] = "2021-01-01"
    with pytest.raises(DataError, match=r"'maturity_date'.*\[3\]"):
        validate_loan_tape(df)


def test_unknown_asset_class_lists_choices():
    df = _tape()
    df.loc[0, "asset_class"] = "crypto"
    with pytest.raises(DataError, match=r"'asset_class'.*\[0\].*one of \['corporate'"):
        validate_loan_tape(df)


def test_duplicate_loan_id_lists_both_rows():
    df = _tape()
    df.loc[3, "loan_id"] = "L0"
    with pytest.raises(DataError, match=r"'loan_id'.*\[0, 3\].*unique"):
        validate_loan_tape(df)


def test_rate_above_100_percent_rejected():
    df = _tape()
    df.loc[0, "interest_rate"] = 6.0  # percent instead of a decimal
    with pytest.raises(DataError, match=r"'interest_rate'.*<= 1"):
        validate_loan_tape(df)


def test_current_balance_above_original():
    df = _tape()
    df.loc[1, "current_balance"] = 150_000.0
    with pytest.raises(DataError, match=r"'current_balance'.*\[1\]"):
        validate_loan_tape(df)


def test_notched_ratings_fold_into_their_grade_and_others_are_named():
    """S&P / Fitch notches are how real tapes carry ratings: BB+ and bb- are BB, CCC+ / CC / C the CCC
    bucket; a Moody's rating is not guessed at but refused, naming the column and row."""
    df = _tape().assign(rating=["BB+", " bb- ", "CCC+", "C"])
    assert list(validate_loan_tape(df)["rating"]) == ["BB", "BB", "CCC", "CCC"]
    with pytest.raises(DataError, match=r"column 'rating' has 1 invalid row\(s\) \[2\] \(loan_id 'L2'\); expected one of \['AAA'"):
        validate_loan_tape(df.assign(rating=["A-", "AA+", "Baa1", None]))


def test_errors_name_the_loan_ids_of_the_bad_rows():
    """Row labels are whatever index the file had; the loan_id is what a user looks up in the tape, so the
    message gives both -- and leaves the ids out where a label would name several rows."""
    df = _tape().assign(interest_rate=[0.05, 5.0, 0.04, 7.0]).set_index(pd.Index([10, 11, 12, 13]))
    with pytest.raises(DataError, match=r"invalid row\(s\) \[11, 13\] \(loan_id 'L1', 'L3'\); expected values <= 1"):
        validate_loan_tape(df)
    # where a label names two rows (a tape joined with pd.concat) the ids are left out; such a tape with text
    # dates failed inside pandas' date alignment, it is read like any other
    twice = df.set_index(pd.Index([10, 11, 11, 13]))
    with pytest.raises(DataError, match=r"invalid row\(s\) \[11, 13\]; expected values <= 1"):
        validate_loan_tape(twice)
    text_dates = twice.assign(interest_rate=0.05, origination_date=["2022-01-15"] * 4, maturity_date=["2027-01-15"] * 4)
    got = validate_loan_tape(text_dates)
    assert list(got.index) == [10, 11, 11, 13] and (got["origination_date"] == pd.Timestamp("2022-01-15")).all()
    with pytest.raises(DataError, match=r"'maturity_date' has 1 invalid row\(s\) \[13\]; expected ISO dates"):
        validate_loan_tape(text_dates.assign(maturity_date=["2027-01-15"] * 3 + ["15/01/2027"]))


def test_a_repeated_column_is_named():
    df = _tape()
    twice = pd.concat([df, df[["loan_id"]]], axis=1)
    with pytest.raises(DataError, match=r"loan tape: column\(s\) \['loan_id'\] appear more than once"):
        validate_loan_tape(twice)


def test_many_bad_rows_are_truncated_to_ten_labels():
    df = _tape(15)
    df["interest_rate"] = 2.0
    with pytest.raises(DataError, match=r"15 invalid row\(s\).*\(and 5 more\)"):
        validate_loan_tape(df)


def _panel(states):
    n = len(states)
    return pd.DataFrame(
        {
            "loan_id": ["A"] * n,
            "reporting_month": pd.date_range("2023-01-31", periods=n, freq="ME"),
            "current_balance": np.linspace(1000, 500, n),
            "loan_state": states,
        }
    )


def test_panel_state_outside_range():
    with pytest.raises(DataError, match=r"'loan_state'.*<= 6"):
        validate_panel(_panel([0, 0, 9]))


def test_panel_forbidden_move_names_row_and_move():
    with pytest.raises(DataError, match=r"'loan_state'.*\[2\].*0->2"):
        validate_panel(_panel([0, 0, 2, 3]))


def test_panel_leaving_absorbing_state_is_forbidden():
    with pytest.raises(DataError, match=r"4->0"):
        validate_panel(_panel([0, 4, 0]))


def test_panel_valid_path_passes_and_is_sorted():
    df = _panel([0, 1, 2, 0, 5]).iloc[::-1]
    out = validate_panel(df)
    assert out["reporting_month"].is_monotonic_increasing
    assert out["loan_state"].dtype == np.int8


def test_panel_moves_are_checked_per_loan_not_across_loans():
    a = _panel([0, 1, 2, 3, 4])
    b = _panel([0, 0]).assign(loan_id="B")
    validate_panel(pd.concat([a, b], ignore_index=True))  # 4 -> 0 across loans is fine


def test_macro_frame_missing_variable_is_named():
    idx = pd.date_range("2020-01-31", periods=3, freq="ME")
    df = pd.DataFrame({v: 0.01 for v in MACRO_VARS[:-1]}, index=idx)
    with pytest.raises(DataError, match="default_rate"):
        validate_macro(df)


def test_macro_frame_percent_values_rejected():
    idx = pd.date_range("2020-01-31", periods=3, freq="ME")
    df = pd.DataFrame({v: 0.01 for v in MACRO_VARS}, index=idx)
    df.iloc[1, 1] = 4.5
    with pytest.raises(DataError, match=r"unemployment_rate.*2020-02.*decimals"):
        validate_macro(df)


def test_a_validated_loan_tape_is_trusted_downstream(monkeypatch) -> None:
    """House rule: the tape is validated once at the edge of a run; the pool engine, the loan features
    and the simulation take the LoanTape as it is."""
    import pandas as pd

    import creditsim.schema as schema
    from creditsim.examples import example_path
    from creditsim.features import loan_features
    from creditsim.schema import LoanTape, as_loan_tape

    tape = LoanTape.validate(pd.read_parquet(example_path("loans_example.parquet")).iloc[:50])
    assert as_loan_tape(tape) is tape and len(tape) == 50
    calls = []
    monkeypatch.setattr(schema, "validate_loan_tape", lambda *a, **k: calls.append(1))
    feats = loan_features(tape)
    assert feats.shape == (50, 24) and not calls
    with pytest.raises(DataError, match="expected a pandas DataFrame, got list"):
        LoanTape.validate([1, 2])
    with pytest.raises(DataError, match="origination on or before the cut-off"):
        tape.check_cutoff("2000-01-01")
