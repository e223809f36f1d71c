"""`creditsim data freddie`: Freddie Mac files in, tape and panel files out that the harness reads out of time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

_spec = importlib.util.spec_from_file_location("freddie_files", Path(__file__).parents[1] / "datasets" / "test_freddie_mac.py")
_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_files)


def _release(folder: Path, n_loans: int = 240, seed: int = 0) -> Path:
    """Loans originated 2006-2007 and followed to 2010 in the published layout, their statuses drawn from a
    small chain (the reader and the commands are under test here, not a model)."""
    rng = np.random.default_rng(seed)
    orig, perf = [], []
    for i in range(n_loans):
        loan, first = f"F06Q1{i:07d}", str(pd.Period("2006-02", "M") + int(rng.integers(0, 18)))
        orig.append(_files._orig_row(loan, first, 360, 150_000 + 1_000 * i, 6.0 + rng.random()))
        statuses, zb, k = [], {}, 0
        months = (pd.Period("2010-12", "M") - pd.Period(first, "M")).n
        while k < months:
            last = int(statuses[-1]) if statuses and statuses[-1].isdigit() else 0
            u = rng.random()
            if u < 0.01:
                zb[k] = "01"
            elif last >= 3 and u < 0.15:
                zb[k] = "09"
            step = last + 1 if u < 0.05 + 0.4 * (last > 0) else 0
            statuses.append(str(step))
            if k in zb:
                break
            k += 1
        perf += _files._perf_rows(loan, first, statuses, zb=zb)
    folder.mkdir(parents=True)
    (folder / "sample_orig_2006.txt").write_text("\n".join(orig) + "\n")
    (folder / "sample_svcg_2006.txt").write_text("\n".join(perf) + "\n")
    return folder


def test_freddie_files_to_an_out_of_time_table(tmp_path, capsys, run_cli) -> None:
    raw = _release(tmp_path / "raw")
    out = tmp_path / "fm"
    assert run_cli(["data", "freddie", str(raw), "--out", str(out), "--default-months", "6"]) == 0
    text = capsys.readouterr().out
    assert "Freddie Mac: 240 loans" in text and "--split oot:2008-01" in text
    assert "severity" in text and (out / "losses.parquet").is_file()
    panel = pd.read_parquet(out / "panel.parquet")
    assert set(panel["loan_state"]) <= set(range(7)) and (panel["loan_state"] == 4).any()
    code = run_cli(["eval", "transitions", "--panel", str(out / "panel.parquet"), "--tape", str(out / "loans.parquet"),
                    "--split", "oot:2008-01", "--models", "markov,markov_segment,logit", "--tape-features",
                    "external_score,ltv_origination", "--macro", "history", "--macro-features", "unemployment_rate",
                    "--n-boot", "10"])
    assert code == 0
    assert "Next-state prediction, split oot:2008-01" in capsys.readouterr().out


def test_freddie_errors_are_one_line(tmp_path, run_cli, one_line_error) -> None:
    assert run_cli(["data", "freddie", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in one_line_error()


def test_a_panel_past_the_macro_history_is_told_to_end(tmp_path, capsys, run_cli) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "sample_orig_2025.txt").write_text(_files._orig_row("F25Q10000001", "2025-06", 360, 1e5, 6.0) + "\n")
    rows = _files._perf_rows("F25Q10000001", "2025-06", ["0"] * 8)  # to 2026-01
    (raw / "sample_perf_2025.txt").write_text("\n".join(rows) + "\n")
    assert run_cli(["data", "freddie", str(raw), "--out", str(tmp_path / "a")]) == 0
    assert "write it again with --end 2025-09" in " ".join(capsys.readouterr().out.split())
    assert run_cli(["data", "freddie", str(raw), "--out", str(tmp_path / "b"), "--end", "2025-09"]) == 0
    assert "--split oot:2025-08" in " ".join(capsys.readouterr().out.split())  # no 2008 in it: its last 30 %
    assert pd.read_parquet(tmp_path / "b" / "panel.parquet")["reporting_month"].max() == pd.Timestamp("2025-09-01")
    assert run_cli(["data", "freddie", str(raw), "--out", str(tmp_path / "c"), "--default-months", "1"]) == 2
