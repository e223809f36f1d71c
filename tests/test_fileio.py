"""The shared output helpers: every writer gets the umask's mode and spreadsheet-safe text."""

import os

import pandas as pd
import pytest

from creditsim.fileio import atomic_write, escape_excel_text, escape_frame
from creditsim.checkpoints import write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoint_json_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_json(tmp_path / "ckpt" / "config.json", {"a": 1})
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == mode
    assert path.read_text().strip().startswith("{")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken, suffix=".html")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_escape_frame_covers_cells_columns_and_index():
    df = pd.DataFrame({"=cmd": ["@SUM(A1)", "plain", "-2"], "x": [1.0, -2.0, 3.0]},
                      index=pd.Index(["+a", "b", "c"], name="=idx"))
    out = escape_frame(df)
    assert list(out.columns) == ["'=cmd", "x"]
    assert out["'=cmd"].tolist() == ["'@SUM(A1)", "plain", "'-2"]
    assert out["x"].tolist() == [1.0, -2.0, 3.0]  # numbers untouched
    assert out.index.tolist() == ["'+a", "b", "c"] and out.index.name == "'=idx"
    assert escape_excel_text(5) == 5


@pytest.mark.parametrize("module, cls", [
    ("creditsim.macro.vae", "MacroVAEConfig"),
    ("creditsim.transitions.transformer", "TransitionConfig"),
    ("creditsim.loans.trajectory", "TrajectoryConfig"),
])
def test_model_configs_round_trip_through_json_and_reject_unknown_fields(module, cls):
    import importlib
    import json

    from creditsim.errors import ConfigError

    config_cls = getattr(importlib.import_module(module), cls)
    cfg = config_cls()
    assert config_cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match=rf"{cls}: unknown fields \['warp_drive'\]"):
        config_cls.from_dict({**cfg.to_dict(), "warp_drive": 1})
