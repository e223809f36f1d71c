"""A plain training loop: AdamW, gradient clipping, KL annealing, early stopping, rich progress bar.

No framework magic: :func:`fit` takes a model, a ``loss_fn(model, batch, epoch) -> dict`` returning at
least a scalar ``"loss"``, and tensors for the training and validation sets; it keeps the weights of
the epoch with the lowest validation loss and restores them at the end.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from creditsim.devices import check_device, torch_device
from creditsim.errors import ConfigError

#: one INFO line per epoch and one at the end (``creditsim -v``; library users configure ``logging``)
log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "fit", "beta_schedule"]

LossFn = Callable[[torch.nn.Module, Sequence[torch.Tensor], int], dict[str, torch.Tensor]]


@dataclass
class TrainConfig:
    """Optimisation settings.

    ``patience``: epochs without a validation improvement before stopping. ``min_epochs``: epochs
    before which no weights are kept as "best" and patience does not count -- a floor on training
    length for models whose validation loss is a poor proxy early on (see
    :mod:`creditsim.macro.pretrained`). ``kl_warmup``: epochs of linear KL annealing from 0 to beta.
    ``epoch_size``: training rows per epoch, drawn afresh each epoch from the seeded permutation (None =
    all rows): on a large panel an "epoch" of a few ten thousand sequences lets early stopping look at
    the validation loss often enough to stop in minutes, not after hours of full passes.
    """

    epochs: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 40
    min_epochs: int = 30
    kl_warmup: int = 50
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    epoch_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.epoch_size is not None and (isinstance(self.epoch_size, bool) or
                                            not isinstance(self.epoch_size, (int, np.integer)) or self.epoch_size < 1):
            raise ConfigError(f"epoch_size must be a positive integer or None, got {self.epoch_size!r}")
        for name in ("min_epochs", "kl_warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.device = check_device(self.device)


@dataclass
class TrainResult:
    """What :func:`fit` measured. ``history``: one dict per epoch (epoch, train_*, val_*, beta)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def beta_schedule(epoch: int, beta: float, warmup: int) -> float:
    """KL weight at ``epoch`` (0-based): linear from beta/warmup up to beta over ``warmup`` epochs."""
    return beta if warmup <= 0 else beta * min(1.0, (epoch + 1) / warmup)


def _mean_losses(model, loss_fn, tensors, batch_size, epoch, device) -> dict[str, float]:
    n = tensors[0].shape[0]
    sums: dict[str, float] = {}
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch_size):
            batch = [t[i:i + batch_size].to(device) for t in tensors]
            out = loss_fn(model, batch, epoch)
            m = batch[0].shape[0]
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * m
    return {k: v / n for k, v in sums.items()}


def fit(model: torch.nn.Module, loss_fn: LossFn, train: Sequence[torch.Tensor], val: Sequence[torch.Tensor] | None,
        cfg: TrainConfig, description: str = "training", keep_last: bool = False) -> TrainResult:
    """Train ``model`` in place; returns a :class:`TrainResult`. Early-stops on the validation ``loss``
    (or the training loss when ``val`` is None) and restores the best weights; ``keep_last`` instead
    runs all ``cfg.epochs`` and keeps the final weights (used to refit for a known number of epochs)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    device = torch_device(cfg.device)
    model.to(device)
    n = train[0].shape[0]
    if n == 0:
        raise ConfigError("training set is empty")
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    bad_epochs = 0
    t0 = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, disable=not cfg.progress, transient=False) as bar:
        task = bar.add_task(description, total=cfg.epochs, stats="")
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(n, generator=g)[:cfg.epoch_size]  # the same draw as before for epoch_size None
            sums: dict[str, float] = {}
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                batch = [t[idx].to(device) for t in train]
                out = loss_fn(model, batch, epoch)
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            row = {"epoch": epoch, **{f"train_{k}": v / len(order) for k, v in sums.items()}}
            # validation uses the final KL weight so that epochs are comparable during annealing
            monitor_epoch = max(epoch, cfg.kl_warmup)
            if val is not None and val[0].shape[0] > 0:
                row.update({f"val_{k}": v for k, v in _mean_losses(model, loss_fn, val, 256, monitor_epoch, device).items()})
                score = row["val_loss"]
            else:
                score = _mean_losses(model, loss_fn, train, 256, monitor_epoch, device)["loss"]
            result.history.append(row)
            result.epochs_run = epoch + 1
            if not math.isfinite(score):
                raise ConfigError(f"{description}: loss became {score} at epoch {epoch}; lower the learning rate")
            candidate = epoch >= min(cfg.min_epochs, cfg.epochs - 1)  # warm-up epochs never count
            if candidate and score < result.best_val_loss - 1e-4:
                result.best_val_loss, result.best_epoch, bad_epochs = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            elif candidate:
                bad_epochs += 1
            stats = f"train {row['train_loss']:.3f}" + (f"  val {row['val_loss']:.3f}" if "val_loss" in row else "") \
                + f"  best {result.best_val_loss:.3f}@{result.best_epoch + 1}"
            bar.update(task, advance=1, stats=stats)
            # epochs counted from 1 in the bar, the log and the last line (TrainResult keeps 0-based indices)
            best = "none yet" if not math.isfinite(result.best_val_loss) else \
                f"{result.best_val_loss:.4f} at epoch {result.best_epoch + 1}"
            log.info("%s epoch %d/%d: loss %.4f, monitored %.4f, best %s (%.1f s)", description, epoch + 1, cfg.epochs,
                     row["train_loss"], score, best, time.perf_counter() - t0)
            if bad_epochs >= cfg.patience and not keep_last:
                result.stopped_early = True
                break
    if not keep_last:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d epochs in %.1f s, best loss %.4f at epoch %d%s", description, result.epochs_run, result.seconds,
             result.best_val_loss, result.best_epoch + 1, " (stopped early)" if result.stopped_early else "")
    return result
