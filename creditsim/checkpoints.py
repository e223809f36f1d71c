"""Checkpoint files: safetensors weights + JSON, always written atomically. Never pickle.

A checkpoint is a folder. Writers go through :func:`creditsim.fileio.atomic_write` (temporary file in the
same folder, then ``os.replace``, umask file mode) so an interrupted run never leaves a half-written file behind.

Loading validates in this order, each failure a one-line :class:`CheckpointError` naming the file and
field or tensor: ``config.json`` is a JSON object whose ``model`` field names the model
(:func:`read_model_meta`); its ``config`` has known fields of the right types within the config's
documented size bounds (:func:`config_from_meta`); the safetensors *header* lists exactly the tensors,
with exactly the shapes, that the config implies (:func:`check_weight_shapes`, which builds the model
on PyTorch's ``meta`` device, so nothing is allocated before the sizes are known to match a real
file); only then are the weights read, refused if any holds NaN (or infinity where none belongs,
:func:`check_finite`), and loaded strictly (:func:`load_model_weights`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from creditsim.devices import torch_device
from creditsim.errors import CheckpointError, ConfigError
from creditsim.fileio import atomic_write

__all__ = ["atomic_write", "write_json", "read_json", "save_tensors", "load_tensors", "save_model_checkpoint",
           "read_model_meta", "config_from_meta", "load_model_weights", "weight_shapes", "check_weight_shapes",
           "check_finite", "check_checkpoint_target", "checkpoint_model", "WEIGHTS_FILE", "CONFIG_FILE"]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False)
    return atomic_write(path, lambda p: Path(p).write_text(text + "\n"))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {path} is not valid JSON ({exc})") from None


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> Path:
    """Write CPU-contiguous copies of ``tensors`` to a safetensors file, atomically."""
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(cpu, p, metadata=dict(metadata or {})))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU; errors become :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read weights {path} ({exc})") from None


#: file names inside a model checkpoint folder
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
#: the file a Markov chain's folder holds (``MarkovTransitionModel.save``) instead of config + weights
MARKOV_MODEL_FILE = "markov_model.json"


def save_model_checkpoint(directory: str | os.PathLike, model_name: str, model: torch.nn.Module,
                          meta: Mapping[str, Any], exclude: Collection[str] = (),
                          extra_json: Mapping[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` (the state dict less the ``exclude`` keys), the ``extra_json`` files
    (file name -> JSON object, e.g. a model's scalers) and ``config.json`` (``{"model": model_name,
    **meta}``, last: a folder with a config has all its files), each atomically, into ``directory``;
    returns the folder. The one writer of every model checkpoint."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v for k, v in model.state_dict().items() if k not in exclude}
    save_tensors(out / WEIGHTS_FILE, tensors, metadata={"model": model_name})
    for name, obj in (extra_json or {}).items():
        write_json(out / name, obj)
    write_json(out / CONFIG_FILE, {"model": model_name, **meta})
    return out


def check_checkpoint_target(directory: str | os.PathLike, model_name: str, foreign: Collection[str] = ()) -> None:
    """Refuse (ConfigError) to write a ``model_name`` checkpoint into ``directory`` when it holds another
    model: a ``config.json`` naming another model, or one of the ``foreign`` files (e.g. a Markov chain's
    JSON). One model per folder, so a folder given to ``simulate`` is never ambiguous, and a training run
    does not half-overwrite another model's files. Checked before training, not after."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out must be a folder, but {out} is a file")
    held = [name for name in foreign if (out / name).is_file()]
    found = checkpoint_model(out)
    if found is not None and found != model_name:
        held.append(f"{CONFIG_FILE} of {found}")
    if held:
        raise ConfigError(f"{out} already holds another model ({', '.join(held)}); write the {model_name} to another "
                          "folder (one model per folder)")


def checkpoint_model(directory: str | os.PathLike) -> str | None:
    """The model a checkpoint folder holds, as its ``config.json`` names it (``"LoanTrajectoryModel"``,
    ``"TransitionTransformer"``, ``"MacroVAE"``, ...); ``"an unreadable config"`` for a config.json that is
    not a JSON object with a ``model`` field; None without config.json. Lets a loader that was handed the
    wrong kind of folder say which kind it is."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return "an unreadable config"
    return found if isinstance(found, str) else "an unreadable config"


def saved_model(directory: str | os.PathLike) -> str | None:
    """The model a folder holds: the network its ``config.json`` names when the weights are there too
    (:func:`checkpoint_model`), ``"MarkovTransitionModel"`` for a chain's :data:`MARKOV_MODEL_FILE`, else
    None. One answer for every option that takes a model folder."""
    folder = Path(directory)
    if (folder / WEIGHTS_FILE).is_file():
        return checkpoint_model(folder)
    return "MarkovTransitionModel" if (folder / MARKOV_MODEL_FILE).is_file() else None


def read_model_meta(folder: Path, model_name: str) -> dict[str, Any]:
    """Read ``config.json`` of a checkpoint folder and check it describes ``model_name``."""
    meta = read_json(folder / CONFIG_FILE)
    if not isinstance(meta, dict) or meta.get("model") != model_name:
        found = meta.get("model") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_FILE} describes {found!r}, expected {model_name!r}")
    return meta


def config_from_meta(folder: Path, meta: Mapping[str, Any], config_cls: Any) -> Any:
    """The model config stored under ``meta["config"]``; a missing or malformed one (not an object,
    unknown fields, wrong types, sizes outside the config's ``LIMITS``) is a CheckpointError."""
    if "config" not in meta:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG_FILE} has no 'config' field")
    try:
        return config_cls.from_dict(meta["config"])
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {folder}: bad {CONFIG_FILE} ({exc})") from None


def weight_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header, without reading the data. A missing,
    truncated or non-safetensors file is a CheckpointError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read weights {path} ({str(exc)[:200]})") from None


def check_weight_shapes(folder: Path, factory: Callable[[], torch.nn.Module], optional: Collection[str] = (),
                        any_shape: Collection[str] = ()) -> None:
    """Compare the weights file's header with the state dict of ``factory()`` built on the ``meta``
    device (no memory allocated): every expected tensor present (unless in ``optional``), none
    unexpected, every shape equal (unless in ``any_shape``, e.g. a bank of variable length)."""
    found = weight_shapes(folder / WEIGHTS_FILE)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in factory().state_dict().items()}
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {list(found[k])} (config implies {list(expected[k])})" for k in expected
             if k in found and k not in any_shape and found[k] != expected[k]]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS_FILE} does not match the config "
                              f"(missing tensors {missing[:5]}, unexpected {unexpected[:5]})")
    if wrong:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS_FILE} tensor shapes do not match the config: "
                              f"{'; '.join(wrong[:3])}")


def check_finite(folder: Path, tensors: Mapping[str, torch.Tensor], allow_inf: Collection[str] = ()) -> None:
    """Refuse weights holding NaN, or +-inf outside ``allow_inf`` (buffers where inf means 'unset')."""
    bad = [k for k, v in tensors.items() if v.is_floating_point()
           and (bool(torch.isnan(v).any()) or (k not in allow_inf and bool(torch.isinf(v).any())))]
    if bad:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS_FILE} tensor(s) {bad[:5]} hold NaN or infinite values")


def load_model_weights(model: torch.nn.Module, folder: Path, device: str | torch.device = "cpu",
                       allow_inf: Collection[str] = (), optional: Collection[str] = (),
                       before_load: Callable[[torch.nn.Module, dict[str, torch.Tensor]], None] | None = None,
                       after_load: Callable[[torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """Load ``model.safetensors`` into ``model`` strictly (every key but the ``optional`` ones, every
    shape, finite values: see :func:`check_finite`), move it to ``device`` and return it in eval mode.
    The one loader of every model checkpoint.

    ``before_load(model, tensors)`` runs before the state dict is loaded (e.g. to size a buffer whose
    length is data: the MacroVAE's start bank), ``after_load(model)`` after it and before the move to
    ``device`` (e.g. to set scalers kept in a JSON file). Mismatches are CheckpointErrors; CUDA asked
    for on a machine without it is a ConfigError."""
    dev = torch_device(device)
    tensors = load_tensors(folder / WEIGHTS_FILE)
    check_finite(folder, tensors, allow_inf)
    if before_load is not None:
        before_load(model, tensors)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise CheckpointError(f"checkpoint {folder}: weights do not match the config ({str(exc)[:300]})") from None
    missing = [k for k in missing if k not in optional]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {folder}: weights do not match the config "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    if after_load is not None:
        after_load(model)
    return model.to(dev).eval()
