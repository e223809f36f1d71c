"""The shipped per-asset-class macro overlay (``creditsim/pretrained/markov_overlay``), read back.

Written by :func:`creditsim.transitions.calibrate.calibrate_asset_classes` (``python -m
creditsim.transitions.calibrate``); read by :meth:`MarkovTransitionModel.default` and the synthetic panel
generator. The reader lives apart from the calibration so that the Markov model, which the calibration
builds on, can load it without importing the calibration back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from creditsim.errors import DataError
from creditsim.states import ASSET_CLASSES

__all__ = ["CALIBRATED_OVERLAY_FILE", "load_calibrated_overlay", "calibrated_sensitivities"]

#: the shipped result of :func:`creditsim.transitions.calibrate.calibrate_asset_classes`
CALIBRATED_OVERLAY_FILE = Path(__file__).resolve().parents[1] / "pretrained" / "markov_overlay" / "calibrated_overlay.json"


def load_calibrated_overlay() -> dict[str, dict[str, Any]]:
    """The shipped per-class calibration: ``{asset class: {"link", "series", "start_rate", "kappa",
    "link_ratio", "chain_ratio", "sensitivities"}}`` in ASSET_CLASSES order."""
    if not CALIBRATED_OVERLAY_FILE.is_file():
        raise DataError(f"{CALIBRATED_OVERLAY_FILE} is missing; regenerate it with "
                        "'python -m creditsim.transitions.calibrate' (or reinstall creditsim)")
    data = json.loads(CALIBRATED_OVERLAY_FILE.read_text())
    missing = [c for c in ASSET_CLASSES if c not in data.get("asset_classes", {})]
    if missing:
        raise DataError(f"{CALIBRATED_OVERLAY_FILE.name}: asset classes {missing} missing; regenerate it")
    return data["asset_classes"]


def calibrated_sensitivities() -> dict[str, dict[str, dict[str, float]]]:
    """``{asset class: sensitivities}`` of the shipped calibration, for
    ``MarkovTransitionModel(segment_sensitivities=...)``."""
    return {cls: {k: dict(v) for k, v in entry["sensitivities"].items()} for cls, entry in load_calibrated_overlay().items()}
