"""Bad-input suite for CLI arguments and output paths (issue 10): `simulate`, `report`, `deal run`.

Each case builds an argv in a fresh directory that also holds user files; the command must exit 2
with a one-line message naming the option / file, no traceback, and leave every file in the
directory byte-identical (nothing of the user's deleted, no half-written output). All cases fail
before any simulation, so each runs in well under a second.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from creditsim.cli import main
from creditsim.risk.results import SimulationResults, TrancheResult
from creditsim.states import POOL_CF_TYPES

EXAMPLE_DEAL = Path(__file__).resolve().parents[2] / "creditsim" / "examples" / "example_clo.yaml"
DEAL_YAML = """
name: Bad CLO
reinvestment_period: 6
tranches:
  - {name: A, balance: 80_000_000, coupon: 0.055, oc_trigger: 1.20}
  - {name: Equity, balance: 20_000_000, equity: true}
"""


@pytest.fixture(scope="module")
def tape(tmp_path_factory) -> Path:
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(60, 1, random_seed=3).generate()
    path = tmp_path_factory.mktemp("tape") / "loans.parquet"
    loans.to_parquet(path)
    return path


def _deal(d: Path) -> Path:
    p = d / "deal.yaml"
    p.write_text(DEAL_YAML)
    return p


def _sim(d: Path, tape: Path, *extra: str, out: Path | None = None) -> list[str]:
    """Valid `simulate` argv (12 sims, 12 months) with ``extra`` options appended (later ones win)."""
    return ["simulate", "--tape", str(tape), "--deal", str(_deal(d)), "--n-sims", "12", "--macro", "synthetic",
            "--engine", "markov", "--horizon", "12", "--out", str(out or d / "run"), *extra]


def _saved_run(d: Path) -> Path:
    rng = np.random.default_rng(0)
    n, t = 40, 6
    losses = rng.beta(1, 20, size=n)
    tr = [TrancheResult(name="A", balance=100.0, losses=losses, irr=0.05 - losses, wal=np.full(n, 2.5))]
    r = SimulationResults(losses, tr, cashflows={"pool": rng.uniform(size=(n, t, len(POOL_CF_TYPES)))},
                          scenarios=rng.integers(0, 4, n), initial_balance=100.0, settings={"seed": 1})
    return r.to_parquet(d / "saved")


def _foreign_dir(d: Path) -> Path:
    p = d / "mydir"
    p.mkdir()
    (p / "thesis.tex").write_text("years of work")
    return p


def _foreign_meta(d: Path) -> Path:
    p = d / "other_tool_out"
    p.mkdir()
    (p / "meta.json").write_text(json.dumps({"tool": "someone else", "n_sims": 3}))
    (p / "data.bin").write_bytes(b"\x00\x01")
    return p


def _our_run_plus_user_file(d: Path) -> Path:
    p = _saved_run(d)
    (p / "my_notes.txt").write_text("do not delete")
    return p


def _a_file(d: Path, name: str = "afile") -> Path:
    p = d / name
    p.write_text("user file")
    return p


def _garbled_deal(d: Path) -> Path:
    p = d / "garbled.yaml"
    p.write_text("name: [unclosed\n  tranches: {{{\n")
    return p


def _incomplete_run(d: Path) -> Path:
    p = _saved_run(d)
    (p / "portfolio.parquet").unlink()
    return p


Builder = Callable[[Path, Path], list[str]]
S = "simulate"

CASES: list[tuple[str, Builder, str]] = [
    # --- simulate: numbers
    ("n_sims_text", lambda d, t: _sim(d, t, "--n-sims", "abc"), "--n-sims"),
    ("n_sims_float_1e12", lambda d, t: _sim(d, t, "--n-sims", "1e12"), "--n-sims"),
    ("n_sims_zero", lambda d, t: _sim(d, t, "--n-sims", "0"), "--n-sims"),
    ("n_sims_negative", lambda d, t: _sim(d, t, "--n-sims", "-5"), "--n-sims"),
    ("n_sims_huge", lambda d, t: _sim(d, t, "--n-sims", "1000000000000"), "--n-sims"),
    ("n_sims_x_horizon_memory", lambda d, t: _sim(d, t, "--n-sims", "5000000", "--horizon", "600"), "GiB"),
    ("horizon_text", lambda d, t: _sim(d, t, "--horizon", "sixty"), "--horizon"),
    ("horizon_float_1e7", lambda d, t: _sim(d, t, "--horizon", "1e7"), "--horizon"),
    ("horizon_zero", lambda d, t: _sim(d, t, "--horizon", "0"), "--horizon"),
    ("horizon_negative", lambda d, t: _sim(d, t, "--horizon", "-12"), "--horizon"),
    ("horizon_huge", lambda d, t: _sim(d, t, "--horizon", "10000000"), "--horizon"),
    ("seed_negative", lambda d, t: _sim(d, t, "--seed", "-1"), "--seed"),
    ("seed_2_64", lambda d, t: _sim(d, t, "--seed", str(2**64)), "--seed"),
    ("seed_2_63", lambda d, t: _sim(d, t, "--seed", str(2**63)), "--seed"),
    ("seed_text", lambda d, t: _sim(d, t, "--seed", "lucky"), "--seed"),
    ("chunk_zero", lambda d, t: _sim(d, t, "--chunk-size", "0"), "--chunk-size"),
    ("chunk_negative", lambda d, t: _sim(d, t, "--chunk-size", "-100"), "--chunk-size"),
    # --- simulate: names
    ("engine_unknown", lambda d, t: _sim(d, t, "--engine", "quantum"), "engine must be one of"),
    ("macro_unknown_name", lambda d, t: _sim(d, t, "--macro", "nosuch"), "--macro"),
    ("mix_unknown_scenario", lambda d, t: _sim(d, t, "--mix", "apocalypse=1"), "apocalypse"),
    ("mix_not_summing_to_1", lambda d, t: _sim(d, t, "--mix", "baseline=0.5,adverse=0.2"), "sum to 1"),
    ("mix_negative_weight", lambda d, t: _sim(d, t, "--mix", "baseline=1.5,adverse=-0.5"), "adverse"),
    ("mix_text_weight", lambda d, t: _sim(d, t, "--mix", "baseline=lots"), "baseline"),
    ("device_tpu", lambda d, t: _sim(d, t, "--device", "tpu"), "device must be"),
    ("device_cuda_garbled", lambda d, t: _sim(d, t, "--device", "cuda:x"), "device must be"),
    # --- simulate: inputs
    ("tape_missing", lambda d, t: _sim(d, d / "nope.parquet"), "nope.parquet does not exist"),
    ("deal_missing", lambda d, t: _sim(d, t)[:4] + [str(d / "nope.yaml")] + _sim(d, t)[5:], "deal file not found"),
    ("deal_garbled", lambda d, t: _sim(d, t)[:4] + [str(_garbled_deal(d))] + _sim(d, t)[5:], "garbled.yaml"),
    # --- simulate: --out
    ("out_is_a_file", lambda d, t: _sim(d, t, out=_a_file(d)), "--out"),
    ("out_foreign_nonempty_dir", lambda d, t: _sim(d, t, out=_foreign_dir(d)), "not a creditsim result"),
    ("out_foreign_meta_json", lambda d, t: _sim(d, t, out=_foreign_meta(d)), "not a creditsim result"),
    ("out_our_run_with_user_file", lambda d, t: _sim(d, t, out=_our_run_plus_user_file(d)), "--out"),
    ("out_parent_is_a_file", lambda d, t: _sim(d, t, out=_a_file(d) / "run"), "--out"),
    ("out_under_file_deeper", lambda d, t: _sim(d, t, out=_a_file(d) / "x" / "run"), "not a directory"),
    # --- report
    ("report_missing_dir", lambda d, t: ["report", str(d / "nope")], "run directory not found"),
    ("report_foreign_dir", lambda d, t: ["report", str(_foreign_dir(d)), "-o", str(d / "r.html")], "meta.json"),
    ("report_foreign_meta", lambda d, t: ["report", str(_foreign_meta(d)), "-o", str(d / "r.html")],
     "format_version"),
    ("report_incomplete_run", lambda d, t: ["report", str(_incomplete_run(d)), "-o", str(d / "r.html")],
     "portfolio.parquet"),
    ("report_output_is_a_dir", lambda d, t: ["report", str(_saved_run(d)), "-o", str(_foreign_dir(d))],
     "--output"),
    ("report_output_parent_is_file", lambda d, t: ["report", str(_saved_run(d)), "-o", str(_a_file(d) / "r.html")],
     "--output"),
    ("report_excel_is_a_dir", lambda d, t: ["report", str(_saved_run(d)), "-o", str(d / "r.html"),
                                            "--excel", str(_foreign_dir(d))], "--excel"),
    ("report_excel_parent_is_file", lambda d, t: ["report", str(_saved_run(d)), "-o", str(d / "r.html"),
                                                  "--excel", str(_a_file(d) / "r.xlsx")], "--excel"),
    # --- deal run
    ("deal_run_missing_file", lambda d, t: ["deal", "run", str(d / "nope.yaml")], "nope.yaml"),
    ("deal_run_garbled_file", lambda d, t: ["deal", "run", str(_garbled_deal(d))], "garbled.yaml"),
    ("deal_run_excel_not_xlsx", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--excel", str(d / "x.csv")],
     "--excel"),
    ("deal_run_excel_is_a_dir", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--excel",
                                              str(_foreign_dir(d).rename(d / "dir.xlsx"))], "--excel"),
    ("deal_run_excel_parent_is_file", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--excel",
                                                    str(_a_file(d) / "x.xlsx")], "--excel"),
    ("deal_run_horizon_huge", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--horizon", "10000000"],
     "--horizon"),
    ("deal_run_term_huge", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--term", "99999"], "--term"),
    ("deal_run_lag_huge", lambda d, t: ["deal", "run", str(EXAMPLE_DEAL), "--lag", "5000"], "--lag"),
]


def _snapshot(d: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("case, build, match", CASES, ids=[c[0] for c in CASES])
def test_bad_cli_input_is_one_line_exit_2_and_deletes_nothing(case, build, match, tape, tmp_path, capsys):
    argv = build(tmp_path, tape)
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    assert _snapshot(tmp_path) == before  # nothing deleted, nothing half-written


def test_out_into_missing_parents_is_created(tape, tmp_path, capsys):
    """Documented result: missing parents of --out are created (runs/NAME), not an error."""
    out = tmp_path / "runs" / "deep" / "r1"
    with pytest.raises(SystemExit) as e:
        main(_sim(tmp_path, tape, out=out))
    assert e.value.code == 0
    assert SimulationResults.load(out).n_sims == 12


def test_replacing_our_previous_run_keeps_nothing_stale(tape, tmp_path, capsys):
    """Documented result: an --out holding only a previous creditsim run is replaced (new numbers)."""
    out = _saved_run(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(_sim(tmp_path, tape, out=out))
    assert e.value.code == 0
    assert SimulationResults.load(out).n_sims == 12
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
