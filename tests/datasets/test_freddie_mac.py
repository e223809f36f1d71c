"""Freddie Mac Single-Family Loan-Level files read into the tape and panel contracts.

The files are written here in the published layout (pipe-separated, no header, 32 origination and 32
performance fields, the 2024 release's widths), with every case the reader must decide: prepayment,
maturity, REO acquisition then disposition, a short sale, a repurchase, an unknown status, a two-bucket
jump, a 40-year term and performance rows of a loan with no origination row.
"""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.datasets.freddie_mac import (
    ORIGINATION_FIELDS,
    PERFORMANCE_FIELDS,
    PERFORMANCE_OPTIONAL_FIELDS,
    read_freddie_mac,
)
from creditsim.errors import ConfigError, DataError
from creditsim.states import LoanState as S

N_ORIG, N_PERF = 32, 32


def _orig_row(loan: str, first_payment: str, term: int, upb: float, rate: float, *, score="720", ltv="80",
              dti="35", amort="FRM") -> str:
    f = [""] * N_ORIG
    fp = pd.Period(first_payment, "M")
    values = {"credit_score": score, "first_payment_date": fp.strftime("%Y%m"),
              "maturity_date": (fp + term - 1).strftime("%Y%m"), "mi_percent": "0", "original_cltv": ltv,
              "original_dti": dti, "original_upb": f"{upb:.0f}", "original_ltv": ltv,
              "original_interest_rate": f"{rate:.3f}", "amortization_type": amort, "property_state": "VA",
              "loan_sequence_number": loan, "loan_purpose": "P", "original_loan_term": str(term),
              "seller_name": "Other sellers"}
    for k, v in values.items():
        f[ORIGINATION_FIELDS[k]] = v
    return "|".join(f)


def _perf_rows(loan: str, first: str, statuses: list[str], *, zb: dict[int, str] | None = None,
               upb: float = 200_000.0, masked: int = 0, term: int = 360,
               extra: dict[int, dict[str, str]] | None = None) -> list[str]:
    rows = []
    for k, status in enumerate(statuses):
        f = [""] * N_PERF
        values = {"loan_sequence_number": loan, "monthly_reporting_period": (pd.Period(first, "M") + k).strftime("%Y%m"),
                  "current_actual_upb": "0" if k < masked or (zb and k in zb) else f"{upb - 100 * k:.2f}",
                  "current_loan_delinquency_status": status, "loan_age": str(k), "remaining_months_to_legal_maturity": str(max(term - 1 - k, 0)),
                  "zero_balance_code": (zb or {}).get(k, ""), "current_interest_rate": "6.5", "estimated_ltv": str(80 - k)}
        for name, v in {**values, **(extra or {}).get(k, {})}.items():
            f[{**PERFORMANCE_FIELDS, **PERFORMANCE_OPTIONAL_FIELDS}[name]] = v
        rows.append("|".join(f))
    return rows


def _write_release(folder, *, zipped: bool = False):
    orig = [
        _orig_row("F07Q10000001", "2007-02", 360, 200_000, 6.5),  # prepays in month 5
        _orig_row("F07Q10000002", "2007-02", 360, 150_000, 7.0),  # 30, 60, 90+, REO, then disposed
        _orig_row("F07Q10000003", "2007-02", 360, 180_000, 6.0),  # jumps 0 -> 2, unknown month, cures
        _orig_row("F07Q10000004", "2007-02", 360, 120_000, 6.2),  # repurchased in month 4
        _orig_row("F07Q10000005", "2007-02", 6, 90_000, 5.0, amort="ARM"),  # matures at term
        _orig_row("F07Q10000006", "2007-02", 480, 250_000, 6.8),  # 40-year term: outside the contract
        _orig_row("F07Q10000007", "2007-02", 360, 210_000, 6.9, score="9999", ltv="999", dti="999"),  # short sale
    ]
    perf = [
        *_perf_rows("F07Q10000001", "2007-02", ["0", "0", "0", "0", "0", "0"], zb={5: "01"}, masked=2),
        *_perf_rows("F07Q10000002", "2007-02", ["0", "1", "2", "3", "4", "5", "6", "7", "RA", "RA"], zb={9: "09"},
                    extra={9: {"actual_loss_calculation": "-50000.00", "net_sale_proceeds": "110000.00",
                               "expenses": "-12000.00", "zero_balance_removal_upb": "149000.00"}}),
        *_perf_rows("F07Q10000003", "2007-02", ["0", "0", "2", "3", "XX", "0", "0"]),
        *_perf_rows("F07Q10000004", "2007-02", ["0", "0", "1", "0", "0"], zb={4: "96"}),
        *_perf_rows("F07Q10000005", "2007-02", ["0", "0", "0", "0", "0", "0"], zb={5: "01"}, term=6),
        *_perf_rows("F07Q10000006", "2007-02", ["0", "0"]),
        *_perf_rows("F07Q10000007", "2007-02", ["0", "1", "2", "3", "4", "5", "6"], zb={6: "03"},
                    extra={6: {"actual_loss_calculation": "-30000.00", "net_sale_proceeds": "C"}}),
        *_perf_rows("F07Q19999999", "2007-02", ["0", "0"]),  # no origination row
    ]
    texts = {"sample_orig_2007.txt": "\n".join(orig) + "\n", "sample_svcg_2007.txt": "\n".join(perf) + "\n"}
    folder.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(folder / "sample_2007.zip", "w") as z:
            for name, text in texts.items():
                z.writestr(name, text)
        return folder / "sample_2007.zip"
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


def _states(panel: pd.DataFrame, loan: str) -> list[int]:
    return panel.loc[panel["loan_id"] == loan, "loan_state"].astype(int).tolist()


def test_states_follow_the_layouts_codes(tmp_path):
    data = read_freddie_mac(_write_release(tmp_path / "fm"))
    p = data.panel
    assert _states(p, "F07Q10000001") == [S.CURRENT] * 5 + [S.PREPAID]
    # 90+ days late stays DPD90 until the REO acquisition; the disposition row after it is dropped
    assert _states(p, "F07Q10000002") == [S.CURRENT, S.DPD30, S.DPD60] + [S.DPD90] * 5 + [S.DEFAULT]
    # the 0 -> 2 jump is taken one bucket a month; the unknown month is a gap, the cure is kept
    assert _states(p, "F07Q10000003") == [S.CURRENT, S.CURRENT, S.DPD30, S.DPD60, S.CURRENT, S.CURRENT]
    # repurchase: the record ends censored at the row before, no absorbing state is invented
    assert _states(p, "F07Q10000004") == [S.CURRENT, S.CURRENT, S.DPD30, S.CURRENT]
    assert _states(p, "F07Q10000005") == [S.CURRENT] * 5 + [S.MATURED]
    assert _states(p, "F07Q10000007") == [S.CURRENT, S.DPD30, S.DPD60, S.DPD90, S.DPD90, S.DPD90, S.DEFAULT]
    assert "F07Q10000006" not in set(p["loan_id"]) and "F07Q19999999" not in set(p["loan_id"])
    assert data.counts == {"rows_of_other_loans": 4, "loans_term_over_360": 1, "loans_left_without_credit_event": 1,
                           "rows_unknown_status": 1, "rows_after_record_end": 2, "rows_capped": 2, "rows_before_origination": 0,
                           "loans": 6, "rows": 38}
    gap = p.loc[p["loan_id"] == "F07Q10000003", "reporting_month"].diff().dt.days.fillna(0).to_numpy()
    assert gap.max() > 50  # the unknown month left a two-month step, which the chain reads as such


def test_tape_units_and_the_masked_first_balances(tmp_path):
    data = read_freddie_mac(_write_release(tmp_path / "fm"))
    t = data.tape.set_index("loan_id")
    first = t.loc["F07Q10000001"]
    assert first["origination_date"] == pd.Timestamp("2007-01-01")
    assert first["maturity_date"] == pd.Timestamp("2037-01-01") and first["term_months"] == 360
    assert first["interest_rate"] == pytest.approx(0.065) and first["ltv_origination"] == pytest.approx(0.80)
    assert first["dti_dscr_origination"] == pytest.approx(0.35) and first["external_score"] == 720
    assert first["vintage"] == "2007-01" and first["asset_class"] == "real_estate"
    assert t.loc["F07Q10000005", "rate_type"] == "floating"
    unknown = t.loc["F07Q10000007"]
    assert np.isnan(unknown["external_score"]) and np.isnan(unknown["ltv_origination"]) and np.isnan(unknown["dti_dscr_origination"])
    bal = data.panel.loc[data.panel["loan_id"] == "F07Q10000001", "current_balance"].to_numpy()
    assert bal[:2].tolist() == [200_000.0, 200_000.0]  # masked as 0 in the release
    assert bal[2] == pytest.approx(199_800.0)
    assert bal[-1] == 0.0  # the payoff row: nothing owed, not the original balance


def test_estimated_ltv_is_read_where_the_release_has_it(tmp_path):
    folder = _write_release(tmp_path / "new")
    ltv = read_freddie_mac(folder).panel.set_index(["loan_id", "reporting_month"])["estimated_ltv"]
    assert ltv[("F07Q10000003", pd.Timestamp("2007-04-01"))] == pytest.approx(0.78)
    old = tmp_path / "old"  # an older release: 22 performance fields, no ELTV
    old.mkdir()
    (old / "sample_orig_2007.txt").write_text((folder / "sample_orig_2007.txt").read_text())
    rows = (folder / "sample_svcg_2007.txt").read_text().splitlines()
    (old / "sample_svcg_2007.txt").write_text("\n".join("|".join(r.split("|")[:22]) for r in rows) + "\n")
    short = read_freddie_mac(old).panel
    assert short["estimated_ltv"].isna().all()
    pd.testing.assert_frame_equal(short.drop(columns="estimated_ltv"),
                                  read_freddie_mac(folder).panel.drop(columns="estimated_ltv"))


def test_loss_severities_of_credit_events(tmp_path):
    data = read_freddie_mac(_write_release(tmp_path / "fm"))
    L = data.losses.set_index("loan_id")
    assert sorted(L.index) == ["F07Q10000002", "F07Q10000007"]
    reo = L.loc["F07Q10000002"]  # default at the REO acquisition, loss at the disposition a month later
    assert reo["default_month"] == pd.Timestamp("2007-10-01") and reo["event_month"] == pd.Timestamp("2007-11-01")
    assert reo["balance_at_default"] == 149_000.0 and reo["loss"] == 50_000.0
    assert reo["severity"] == pytest.approx(50_000 / 149_000) and reo["net_sale_proceeds"] == 110_000.0
    sale = L.loc["F07Q10000007"]  # a short sale: the DEFAULT row is the event; 'C' proceeds are not a number
    balance = data.panel.set_index("loan_id").loc["F07Q10000007", "current_balance"].iloc[-1]
    assert sale["balance_at_default"] == balance and np.isnan(sale["net_sale_proceeds"])
    assert sale["severity"] == pytest.approx(30_000 / balance) and sale["vintage"] == "2007-01"
    assert reo["expenses"] == 12_000.0 and reo["actual_loss"] == -50_000.0  # amounts; the loss as reported
    assert "F07Q10000002" not in set(read_freddie_mac(tmp_path / "fm", end="2007-10").losses["loan_id"])  # not yet sold
    late = read_freddie_mac(tmp_path / "fm", default_months=6).losses.set_index("loan_id")
    assert late.loc["F07Q10000002", "default_month"] == pd.Timestamp("2007-08-01")  # 180 days late
    assert late.loc["F07Q10000002", "loss"] == 50_000.0


def test_a_180_day_definition_moves_the_default_forward(tmp_path):
    p = read_freddie_mac(_write_release(tmp_path / "fm"), default_months=6).panel
    assert _states(p, "F07Q10000002") == [S.CURRENT, S.DPD30, S.DPD60, S.DPD90, S.DPD90, S.DPD90, S.DEFAULT]
    assert _states(p, "F07Q10000007") == [S.CURRENT, S.DPD30, S.DPD60, S.DPD90, S.DPD90, S.DPD90, S.DEFAULT]


def test_zipped_release_and_a_subset_read_the_same_rows(tmp_path):
    plain = read_freddie_mac(_write_release(tmp_path / "a"))
    zipped = read_freddie_mac(_write_release(tmp_path / "b", zipped=True))
    pd.testing.assert_frame_equal(plain.panel, zipped.panel)
    pd.testing.assert_frame_equal(plain.tape, zipped.tape)
    sub = read_freddie_mac(tmp_path / "a", max_loans=2)
    assert sorted(sub.tape["loan_id"]) == ["F07Q10000001", "F07Q10000002"]
    pd.testing.assert_frame_equal(sub.panel.reset_index(drop=True),
                                  plain.panel[plain.panel["loan_id"].isin(sub.tape["loan_id"])].reset_index(drop=True))


def test_the_chain_fits_on_what_the_reader_writes(tmp_path):
    from creditsim.transitions.markov import MarkovTransitionModel

    data = read_freddie_mac(_write_release(tmp_path / "fm"))
    model = MarkovTransitionModel().fit(data.panel)
    P = np.asarray(model.transition_matrix_)
    assert P[S.DPD90, S.DEFAULT] > 0 and P[S.CURRENT, S.PREPAID] > 0 and P[S.CURRENT, S.MATURED] > 0


def test_bad_sources_name_the_file_and_what_was_expected(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_freddie_mac(tmp_path / "nowhere")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "sample_orig_2007.txt").write_text(_orig_row("X1", "2007-02", 360, 1e5, 6.0) + "\n")
    with pytest.raises(ConfigError, match="no monthly performance"):
        read_freddie_mac(tmp_path / "only")
    (tmp_path / "only" / "sample_svcg_2007.txt").write_text("X1|200702|100000\n")
    with pytest.raises(DataError, match=r"sample_svcg_2007.txt: 3 pipe-separated fields.*at least 11"):
        read_freddie_mac(tmp_path / "only")
    folder = _write_release(tmp_path / "dup")
    (folder / "again").mkdir()  # sub-folders are searched too
    (folder / "again" / "sample_orig_2007.txt").write_text(_orig_row("F07Q10000001", "2007-02", 360, 1e5, 6.0) + "\n")
    with pytest.raises(DataError, match="F07Q10000001.*more than once"):
        read_freddie_mac(folder)
    bad = _write_release(tmp_path / "date")
    text = (bad / "sample_svcg_2007.txt").read_text().replace("|200703|", "|2007-03|", 1)
    (bad / "sample_svcg_2007.txt").write_text(text)
    with pytest.raises(DataError, match=r"sample_svcg_2007.txt: line 2 \(loan 'F07Q10000001'\): monthly_reporting_period "
                                        r"'2007-03', expected a month as YYYYMM"):
        read_freddie_mac(bad)
    with pytest.raises(ConfigError, match="default_months"):
        read_freddie_mac(folder, default_months=1)


def _edit(folder, name: str, line: int, field: str, value: str, fields=PERFORMANCE_FIELDS) -> None:
    """Set one field of one line (1-based) of a written file."""
    path = folder / name
    lines = path.read_text().splitlines()
    f = lines[line - 1].split("|")
    f[fields[field]] = value
    lines[line - 1] = "|".join(f)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("current_loan_delinquency_status", "Z9", "months delinquent 0, 1, 2, ..., RA or XX"),
    ("current_loan_delinquency_status", "-1", "months delinquent"),
    ("zero_balance_code", "AB", "blank or one of"),
    ("current_actual_upb", "abc", "a number >= 0"),
    ("monthly_reporting_period", "", "a month as YYYYMM"),
])
def test_values_outside_the_layout_name_file_line_loan_and_field(tmp_path, field, value, expected):
    folder = _write_release(tmp_path / "fm")
    _edit(folder, "sample_svcg_2007.txt", 3, field, value)
    with pytest.raises(DataError, match=rf"sample_svcg_2007.txt: line 3 \(loan 'F07Q10000001'\): {field} .*{re.escape(expected)}"):
        read_freddie_mac(folder)


def test_origination_fields_a_tape_needs_are_checked_with_their_loan(tmp_path):
    folder = _write_release(tmp_path / "fm")
    _edit(folder, "sample_orig_2007.txt", 2, "original_loan_term", "thirty", ORIGINATION_FIELDS)
    with pytest.raises(DataError, match=r"line 2 \(loan 'F07Q10000002'\): original_loan_term 'thirty'"):
        read_freddie_mac(folder)


def test_short_rows_empty_files_and_a_byte_order_mark(tmp_path):
    folder = _write_release(tmp_path / "fm")
    text = (folder / "sample_svcg_2007.txt").read_text().splitlines()
    text[4] = "|".join(text[4].split("|")[:9])
    (folder / "sample_svcg_2007.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"sample_svcg_2007.txt: line 5 \(loan 'F07Q10000001'\) has 9 pipe-separated "
                                        r"fields where line 1 has 32"):
        read_freddie_mac(folder)
    empty = _write_release(tmp_path / "empty")
    (empty / "sample_orig_2007.txt").write_text("")
    with pytest.raises(DataError, match="sample_orig_2007.txt: the file is empty"):
        read_freddie_mac(empty)
    bom = _write_release(tmp_path / "bom")
    for name in ("sample_orig_2007.txt", "sample_svcg_2007.txt"):
        (bom / name).write_bytes(b"\xef\xbb\xbf" + (bom / name).read_bytes())
    plain = read_freddie_mac(_write_release(tmp_path / "plain"))
    pd.testing.assert_frame_equal(read_freddie_mac(bom).panel, plain.panel)
    pd.testing.assert_frame_equal(read_freddie_mac(bom).tape, plain.tape)


def test_release_47_names_nested_folders_and_unrelated_files(tmp_path):
    """Release 47 (July 2026) renamed the files: sample_perf_YYYY, orig_YYYYQn / perf_YYYYQn."""
    plain = read_freddie_mac(_write_release(tmp_path / "plain"))
    new = _write_release(tmp_path / "r47" / "2007" / "q1")
    (new / "sample_orig_2007.txt").rename(new / "orig_2007Q1.txt")
    (new / "sample_svcg_2007.txt").rename(new / "perf_2007Q1.TXT")
    (tmp_path / "r47" / "original_download_notes.txt").write_text("not data\n")
    read = read_freddie_mac(tmp_path / "r47")
    pd.testing.assert_frame_equal(read.panel, plain.panel)


def test_balances_at_default_and_in_masked_months(tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    (folder / "sample_orig_2007.txt").write_text(_orig_row("F07Q10000001", "2007-02", 360, 200_000, 6.5) + "\n")
    rows = _perf_rows("F07Q10000001", "2007-02", ["0", "1", "2", "3", "4", "5", "6", "7"], zb={7: "03"}, masked=3)
    f = rows[7].split("|")
    f[PERFORMANCE_OPTIONAL_FIELDS["zero_balance_removal_upb"]] = "199000.00"
    rows[7] = "|".join(f)
    (folder / "sample_svcg_2007.txt").write_text("\n".join(rows) + "\n")
    p = read_freddie_mac(folder).panel
    assert p["current_balance"].tolist()[:4] == [200_000.0, 200_000.0, 200_000.0, 199_700.0]
    assert p["current_balance"].iloc[-1] == 199_000.0 and p["loan_state"].iloc[-1] == S.DEFAULT
    early = read_freddie_mac(folder, default_months=3).panel  # a default at the first reported balance
    assert early["loan_state"].tolist() == [S.CURRENT, S.DPD30, S.DPD60, S.DEFAULT]
    assert early["current_balance"].iloc[-1] == 199_700.0
    rows = _perf_rows("F07Q10000001", "2007-02", ["0", "1", "2", "3", "4"], masked=5)
    (folder / "sample_svcg_2007.txt").write_text("\n".join(rows) + "\n")
    masked = read_freddie_mac(folder, default_months=3).panel  # in a masked month: the carried balance
    assert masked["loan_state"].iloc[-1] == S.DEFAULT and masked["current_balance"].iloc[-1] == 200_000.0


def test_end_month_rows_before_origination_and_a_repurchase_after_default(tmp_path):
    folder = _write_release(tmp_path / "fm")
    data = read_freddie_mac(folder, end="2007-05")
    assert data.panel["reporting_month"].max() == pd.Timestamp("2007-05-01") and data.counts["rows_after_end"] > 0
    rows = (folder / "sample_svcg_2007.txt").read_text()
    early = _perf_rows("F07Q10000001", "2006-11", ["0"])[0]
    (folder / "sample_svcg_2007.txt").write_text(early + "\n" + rows)
    assert read_freddie_mac(folder).counts["rows_before_origination"] == 1
    left = tmp_path / "left"
    left.mkdir()
    (left / "sample_orig_2007.txt").write_text(_orig_row("F07Q10000001", "2007-02", 360, 200_000, 6.5) + "\n")
    statuses = ["0", "1", "2", "3", "4", "5", "6", "7", "8"]
    (left / "sample_svcg_2007.txt").write_text("\n".join(_perf_rows("F07Q10000001", "2007-02", statuses, zb={8: "96"})) + "\n")
    assert read_freddie_mac(left, default_months=6).counts["loans_left_without_credit_event"] == 0
    assert read_freddie_mac(left).counts["loans_left_without_credit_event"] == 1


def test_max_loans_spreads_over_vintages(tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    orig, perf = [], []
    for year in (2006, 2007):
        for i in range(40):
            loan = f"F{year % 100:02d}Q1{i:07d}"
            orig.append(_orig_row(loan, f"{year}-02", 360, 100_000, 6.0))
            perf += _perf_rows(loan, f"{year}-02", ["0", "0"])
    (folder / "sample_orig_2006.txt").write_text("\n".join(orig) + "\n")
    (folder / "sample_svcg_2006.txt").write_text("\n".join(perf) + "\n")
    sub = read_freddie_mac(folder, max_loans=20)
    years = sub.tape["vintage"].str[:4].value_counts()
    assert len(sub.tape) == 20 and set(years.index) == {"2006", "2007"} and years.min() >= 4
    assert sub.tape.equals(read_freddie_mac(folder, max_loans=20).tape)  # deterministic


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans()), min_size=1, max_size=30),
       st.integers(1, 64), st.booleans())
def test_odd_line_scan_matches_a_line_by_line_reading(tmp_path_factory, lines, block, final_newline):
    """Any block size, CRLF or LF, blank lines and a last line without newline: the first line whose
    number of pipes differs is the one a line-by-line reading finds, with its first field and width."""
    from creditsim.datasets.freddie_mac import _FileRef, _first_odd_line

    text = "\r\n".join("" if blank else "|".join(["x"] * (k + 1)) + ("\r" if cr else "")
                       for k, blank, cr in lines).replace("\r\r", "\r") + ("\n" if final_newline else "")
    path = tmp_path_factory.mktemp("scan") / "f.txt"
    path.write_bytes(text.encode())
    expected = next(((i + 1, ln.rstrip("\r").split("|")[0], ln.count("|") + 1) for i, ln in enumerate(text.split("\n"))
                     if ln.rstrip("\r") and ln.count("|") != 3), None)
    assert _first_odd_line(_FileRef(path), 3, block=block) == expected


def test_release_47_reports_a_loss_positive_and_quotes_are_characters(tmp_path):
    """Release 47 files (35 performance fields) invert the loss elements' signs; a '"' in a seller's name is
    text (the files are not quoted)."""
    folder = tmp_path / "r47"
    folder.mkdir()
    orig = _orig_row("F07Q10000001", "2007-02", 360, 200_000, 6.5).split("|")
    orig[ORIGINATION_FIELDS["seller_name"]] = '"ACME'
    (folder / "orig_2007Q1.txt").write_text("|".join(orig[:31]) + "\n")
    rows = _perf_rows("F07Q10000001", "2007-02", ["0", "1", "2", "3", "RA", "RA"], zb={5: "09"},
                      extra={5: {"actual_loss_calculation": "40000.00", "expenses": "9000.00",
                                 "net_sale_proceeds": "-150000.00", "zero_balance_removal_upb": "180000.00"}})
    (folder / "perf_2007Q1.txt").write_text("\n".join(r + "|||" for r in rows) + "\n")  # 35 fields
    data = read_freddie_mac(folder)
    assert data.tape["originator_id"].iloc[0] == '"ACME'
    loss = data.losses.iloc[0]
    assert loss["loss"] == 40_000.0 and loss["severity"] == pytest.approx(40_000 / 180_000)
    assert loss["net_sale_proceeds"] == 150_000.0 and loss["expenses"] == 9_000.0


def test_loss_fields_and_end_months_outside_the_layout_are_errors(tmp_path):
    folder = _write_release(tmp_path / "fm")
    _edit(folder, "sample_svcg_2007.txt", 16, "actual_loss_calculation", "abc", PERFORMANCE_OPTIONAL_FIELDS)
    with pytest.raises(DataError, match=r"line 16 \(loan 'F07Q10000002'\): actual_loss_calculation 'abc', expected an amount"):
        read_freddie_mac(folder)
    with pytest.raises(ConfigError, match="end must be a month as YYYY-MM"):
        read_freddie_mac(folder, end="2006")
