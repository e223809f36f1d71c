"""Bad deal files and deal objects (issue 10): one-line ConfigError naming the field, line or limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from creditsim.errors import ConfigError
from creditsim.deal.config import Tranche, WaterfallConfig, load_deal

GOOD = """name: D
reinvestment_period: 6
tranches:
  - {name: A, balance: 80_000_000, coupon: 0.055, oc_trigger: 1.20}
  - {name: Equity, balance: 20_000_000, equity: true}
"""

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "name: *i\ntranches: []\n"

FILES = [
    ("alias-bomb", BOMB, "anchors"),
    ("duplicate-key", GOOD + "name: E\n", "duplicate key"),
    ("duplicate-tranche-key", GOOD.replace("coupon: 0.055,", "coupon: 0.055, coupon: 0.06,"), "duplicate key"),
    ("deep-nesting", "name: " + "[" * 50 + "]" * 50 + "\ntranches: []\n", "nesting"),
    ("huge-integer", GOOD.replace("80_000_000", "9" * 5000), "line 4"),
    ("balance-above-1e15", GOOD.replace("80_000_000", "1e18"), "balance"),
    ("nan-coupon", GOOD.replace("0.055", ".nan"), "coupon"),
    ("inf-balance", GOOD.replace("80_000_000", ".inf"), "balance"),
    ("empty-file", "", "deal"),
    ("top-level-list", "- a\n- b\n", "deal"),
    ("not-yaml", "name: [unclosed\n", "deal"),
    ("missing-tranches", "name: D\n", "tranches"),
    ("unknown-key", GOOD + "colour: red\n", "colour"),
    ("unknown-tranche-key", GOOD.replace("oc_trigger: 1.20", "oc_triger: 1.20"), "oc_triger"),
    ("negative-balance", GOOD.replace("80_000_000", "-5"), "balance"),
    ("string-balance", GOOD.replace("80_000_000", "lots"), "balance"),
    ("duplicate-tranche-names", GOOD.replace("name: Equity", "name: A"), "A"),
    ("multiline-name", GOOD.replace("name: D", 'name: "D\\nE"'), "name"),
    ("reinvestment-period-nan", GOOD.replace("reinvestment_period: 6", "reinvestment_period: .nan"),
     "reinvestment_period"),
    ("reinvestment-period-days", GOOD.replace("reinvestment_period: 6", "reinvestment_period: 36500"),
     "reinvestment_period"),
    ("payment-frequency-list", GOOD + "payment_frequency: [monthly]\n", "payment_frequency"),
]


@pytest.mark.parametrize("text, needle", [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_bad_deal_file_is_a_one_line_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "deal.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        load_deal(path)
    assert time.perf_counter() - t0 < 5.0, "refused quickly (no expansion of the bomb)"
    msg = str(exc.value)
    assert needle.lower() in msg.lower(), msg
    assert "\n" not in msg and len(msg) < 1000


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "deal.yaml"
    path.write_text(GOOD + "# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="bytes"):
        load_deal(path)


def test_good_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "deal.yaml"
    path.write_text(GOOD)
    deal = load_deal(path)
    assert [t.name for t in deal.tranches] == ["A", "Equity"]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(name="A", balance="x"), "balance"),
    (dict(name="A", balance=float("nan")), "balance"),
    (dict(name="A", balance=10**5000), "balance"),
    (dict(name="A", balance=1.0, coupon=float("inf")), "coupon"),
    (dict(name="", balance=1.0), "name"),
    (dict(name="A", balance=1.0, equity="yes"), "equity"),
], ids=["str-balance", "nan-balance", "huge-int-balance", "inf-coupon", "empty-name", "str-equity"])
def test_bad_tranche_object(kwargs, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        Tranche(**kwargs)


def test_bad_waterfall_config_object() -> None:
    with pytest.raises(ConfigError, match="reinvestment_period"):
        WaterfallConfig(name="D", tranches=[{"name": "A", "balance": 80, "coupon": 0.05},
                                            {"name": "E", "balance": 20, "equity": True}],
                        reinvestment_period=float("inf"))
