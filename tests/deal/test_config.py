"""Deal model: YAML round trip, trigger inheritance, fee semantics and validation messages."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest

from creditsim.errors import ConfigError
from creditsim.examples import example_path, list_examples
from creditsim.deal.config import Tranche, WaterfallConfig, dump_deal, load_deal

DEBT = [{"name": "A", "balance": 80.0, "coupon": 0.05}]
EQUITY = {"name": "Equity", "balance": 20.0, "equity": True}


def test_example_deal_loads_as_in_the_spec():
    cfg = load_deal(example_path("example_clo.yaml"))
    assert "example_clo.yaml" in list_examples()
    assert cfg.name == "Example CLO 1"
    assert cfg.tranche_names == ["A", "B", "C", "Equity"]
    a, b, c, eq = cfg.tranches
    assert (a.balance, a.coupon, a.oc_trigger, a.ic_trigger) == (70_000_000, 0.055, 1.20, 1.20)
    assert c.deferrable and c.oc_trigger == 1.05
    assert c.ic_trigger == 1.05  # absent key: inherits the deal-level default
    assert eq.equity and eq.oc_trigger is None
    assert cfg.senior_fee_rate == 0.0015 and cfg.sub_fee == 0.0035
    assert cfg.reinvestment_period == 24
    assert cfg.initial_collateral == 100_000_000


def test_trigger_inheritance_and_explicit_null():
    cfg = WaterfallConfig(tranches=[
        {"name": "A", "balance": 1.0, "coupon": 0.05},
        {"name": "B", "balance": 1.0, "coupon": 0.05, "ic_trigger": None, "oc_trigger": 1.1},
        EQUITY,
    ], oc_trigger=1.3, ic_trigger=1.2)
    assert (cfg.tranches[0].oc_trigger, cfg.tranches[0].ic_trigger) == (1.3, 1.2)
    assert (cfg.tranches[1].oc_trigger, cfg.tranches[1].ic_trigger) == (1.1, None)


def test_single_management_fee_means_senior_unless_split():
    assert WaterfallConfig(tranches=[*DEBT, EQUITY]).senior_fee_rate == 0.005
    split = WaterfallConfig(tranches=[*DEBT, EQUITY], senior_fee=0.002, sub_fee=0.003)
    assert split.senior_fee_rate == 0.002 and split.sub_fee == 0.003


def test_management_fee_and_senior_fee_together_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"management_fee \(0.004\) and senior_fee \(0.002\) are both given"):
        WaterfallConfig(tranches=[*DEBT, EQUITY], management_fee=0.004, senior_fee=0.002)
    both = tmp_path / "both.yaml"
    both.write_text("management_fee: 0.005\nsenior_fee: 0.0015\ntranches:\n  - {name: A, balance: 80, coupon: 0.05}\n"
                    "  - {name: E, balance: 20, equity: true}\n")
    with pytest.raises(ConfigError, match="management_fee .* and senior_fee .* are both given") as exc:
        load_deal(both)
    assert str(both) in str(exc.value) and "\n" not in str(exc.value)
    # the default management fee does not clash with a split, also after dataclasses.replace
    split = WaterfallConfig(tranches=[*DEBT, EQUITY], senior_fee=0.002)
    again = replace(split, sub_fee=0.001)
    assert again.senior_fee_rate == 0.002 and "management_fee" not in again.to_dict()
    single = WaterfallConfig(tranches=[*DEBT, EQUITY], management_fee=0.004)
    assert single.senior_fee_rate == 0.004 and replace(single, sub_fee=0.001).senior_fee_rate == 0.004
    assert WaterfallConfig.from_dict(single.to_dict()).senior_fee_rate == 0.004


def test_collateral_far_below_the_notes_is_rejected_and_below_debt_is_warned():
    tranches = [{"name": "A", "balance": 60e6, "coupon": 0.05}, {"name": "B", "balance": 15e6, "coupon": 0.07}, EQUITY]
    with pytest.raises(ConfigError, match=r"collateral_balance 10 is 1.33e-07 x the 75,000,000 of debt notes"):
        WaterfallConfig(tranches=tranches, collateral_balance=10)
    with pytest.raises(ConfigError, match=r"collateral_balance .* x the 75,000,020 of notes"):
        WaterfallConfig(tranches=tranches, collateral_balance=75e9)
    under = WaterfallConfig(tranches=tranches, collateral_balance=60e6)
    assert len(under.warnings()) == 1 and "below the 75,000,000 of debt notes (80.0%)" in under.warnings()[0]
    assert WaterfallConfig(tranches=tranches, collateral_balance=80e6).warnings() == []
    assert WaterfallConfig(tranches=tranches).warnings() == []


def test_dump_and_load_round_trip(tmp_path):
    cfg = load_deal(example_path("example_clo.yaml"))
    old_umask = os.umask(0o022)
    try:
        out = dump_deal(cfg, tmp_path / "deal.yaml")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # umask permissions, not mkstemp's 0600
    again = load_deal(out)
    assert again.to_dict() == cfg.to_dict()
    assert again.tranches == cfg.tranches
    assert sorted(os.listdir(tmp_path)) == ["deal.yaml"]  # no temporary file left behind


def test_yaml_numbers_written_as_strings_are_accepted(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("tranches:\n  - {name: A, balance: 1e6, coupon: 5e-2}\n  - {name: E, balance: 1e5, equity: true}\n"
                 "senior_fee: 1.5e-3\n")
    cfg = load_deal(p)
    assert cfg.tranches[0].balance == 1e6 and cfg.tranches[0].coupon == 0.05 and cfg.senior_fee == 0.0015


@pytest.mark.parametrize("tranches, message", [
    ([*DEBT, {"name": "A", "balance": 1.0, "equity": True}], r"names must be unique, duplicated \['A'\]"),
    ([*DEBT], "exactly one class must have equity: true, found 0"),
    ([*DEBT, EQUITY, {"name": "E2", "balance": 1.0, "equity": True}], "found 2"),
    ([EQUITY, *DEBT], r"tranches\[0\] \(Equity\): the equity class must be last"),
    ([{"name": "A", "balance": -5.0, "coupon": 0.05}, EQUITY], r"tranches\[0\] \(A\)\.balance must be > 0"),
    ([{"name": "A", "balance": 5.0, "coupon": 0.05, "oc_trigger": 0.9}, EQUITY],
     r"tranches\[0\] \(A\)\.oc_trigger must be >= 1"),
    ([{"name": "A", "balance": 5.0, "coupon": 1.5}, EQUITY], r"\(A\)\.coupon must be an annual decimal"),
    ([{"name": "A", "balance": 5.0, "cupon": 0.05}, EQUITY], r"tranches\[0\] has unknown key\(s\) \['cupon'\]"),
    ([{"name": "A", "balance": "lots"}, EQUITY], r"\(A\)\.balance must be a number, got 'lots'"),
    ([{"balance": 5.0}, EQUITY], r"tranches\[0\]\.name is required"),
    ([{"name": "A", "balance": 5.0}, {"name": "E", "balance": 1.0, "equity": True, "coupon": 0.1}],
     r"\(E\)\.coupon: the equity class has no coupon"),
    ([EQUITY], "at least one debt class"),
    ([], "non-empty list"),
])
def test_invalid_tranches_name_the_field(tranches, message):
    with pytest.raises(ConfigError, match=message):
        WaterfallConfig(tranches=tranches)


@pytest.mark.parametrize("kw, message", [
    ({"oc_trigger": 0.95}, "oc_trigger must be >= 1"),
    ({"reinvestment_period": -1}, "reinvestment_period must be >= 0"),
    ({"reinvestment_period": 2.5}, "reinvestment_period must be a whole number"),
    ({"payment_frequency": "weekly"}, "payment_frequency must be one of"),
    ({"soft_temperature": 0.0}, "soft_temperature must be > 0"),
    ({"sub_fee": 0.5}, r"sub_fee must be an annual rate in \[0, 0.1\)"),
    ({"ic_cure": "fast"}, "ic_cure must be one of"),
    ({"liquidation_price": 0.0}, "liquidation_price must be a price"),
    ({"liquidate_at_horizon": "yes"}, "liquidate_at_horizon must be true or false"),
])
def test_invalid_deal_fields_name_the_field(kw, message):
    with pytest.raises(ConfigError, match=message):
        WaterfallConfig(tranches=[*DEBT, EQUITY], **kw)


def test_load_deal_errors(tmp_path):
    with pytest.raises(ConfigError, match="deal file not found"):
        load_deal(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tranches: [ {name: A\n")
    with pytest.raises(ConfigError, match="not valid YAML") as exc:
        load_deal(bad)
    assert "\n" not in str(exc.value) and str(bad) in str(exc.value)
    assert "line 2, column 1" in str(exc.value) and "started at line 1, column 13" in str(exc.value)
    indented = tmp_path / "indented.yaml"
    indented.write_text("name: x\n tranches: []\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: line 2, column 10: mapping values are not allowed") as exc:
        load_deal(indented)
    assert "\n" not in str(exc.value)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("tranches: []\nwaterfall_colour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['waterfall_colour'\]"):
        load_deal(unknown)
    no_tranches = tmp_path / "none.yaml"
    no_tranches.write_text("name: x\n")
    with pytest.raises(ConfigError, match="'tranches' is required"):
        load_deal(no_tranches)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_deal(scalar)


def test_tranche_objects_are_accepted():
    cfg = WaterfallConfig(tranches=[Tranche("A", 10.0, 0.05, 1.2, None), Tranche("E", 1.0, equity=True)])
    assert cfg.debt_tranches[0].name == "A" and cfg.equity_tranche.name == "E"
