"""Bank delinquency / charge-off rates: ranges, published peaks, internal consistency, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from creditsim.datasets import load_bank_loss_rates
from creditsim.datasets import credit_losses as cl
from creditsim.errors import ConfigError, DataError


def test_delinquency_history_ranges_and_published_peaks() -> None:
    d = load_bank_loss_rates()
    assert d.index.freqstr == "QS-JAN" and d.index.name == "quarter"
    first = {c: d[c].first_valid_index() for c in d}
    last = {c: d[c].last_valid_index() for c in d}
    assert first["all"] == pd.Timestamp("1985-01-01") and last["all"] == pd.Timestamp("2025-10-01")
    assert first["business"] == pd.Timestamp("1987-01-01") and last["business"] == pd.Timestamp("2024-04-01")
    assert first["credit_card"] == pd.Timestamp("1991-01-01")
    # the GFC peaks the Board published (percent -> fractions)
    assert d["all"].idxmax() == pd.Timestamp("2010-01-01") and d["all"].max() == pytest.approx(0.0740)
    assert d["residential_mortgage"].max() == pytest.approx(0.1148)
    assert d["credit_card"].loc["2009"].max() == pytest.approx(0.0677)
    # no holes inside a series
    for c in d:
        assert d[c].loc[first[c]:last[c]].notna().all(), c
    assert set(cl.ASSET_CLASS_SERIES.values()) <= set(d.columns)


def test_charge_offs_are_consistent_across_loan_types() -> None:
    c = load_bank_loss_rates("charge_off")
    both = c[["credit_card", "other_consumer", "consumer"]].dropna()
    # all consumer loans = cards + other consumer, so it lies between the two every quarter
    assert ((both["consumer"] <= both["credit_card"]) & (both["consumer"] >= both["other_consumer"])).all()
    assert c["all"].loc["2024"].mean() == pytest.approx(0.00635, abs=1e-6)
    assert c.attrs["series"]["business"] == "CORBLACBS"


def test_bad_measure_and_broken_file_are_named(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match=r"measure must be one of \['delinquency', 'charge_off'\]"):
        load_bank_loss_rates("losses")
    bad = tmp_path / "DRBLACBS.csv"
    bad.write_text("DATE,DRBLACBS\n1987-01-01,6.75\n1987-07-01,6.80\n")
    monkeypatch.setattr(cl, "data_path", lambda folder, name: tmp_path / name)
    cl._read.cache_clear()
    try:
        with pytest.raises(DataError, match=r"DRBLACBS.csv: dates are not one per quarter"):
            cl._read("DRBLACBS")
        bad.write_text("DATE,DRBLACBS\n1987-01-01,6.75\n1987-04-01,n/a\n")
        with pytest.raises(DataError, match=r"DRBLACBS.csv: row 3 is not a number"):
            cl._read("DRBLACBS")
    finally:
        cl._read.cache_clear()
