"""Training data and training run for :class:`~creditsim.macro.vae.MacroVAE`.

Windows: every 60-month window of the monthly history (stride 1), real units.

Scenario labels (a documented rule; thresholds are constants below)
-------------------------------------------------------------------
For a window, let ``rise`` be its peak unemployment rise, the largest trough-to-peak increase
``max_t (u_t - min_{s<=t} u_s)`` (decimal, 0.03 = 3 pp), ``rec`` whether it contains an NBER recession
month (FRED ``USREC``; without it, months where the Sahm rule fires: 3-month mean unemployment 0.5 pp
above its low of the previous 12 months), and ``infl24`` the mean y/y CPI inflation of its first 24 months.
Checked in this order:

1. **stagflation** (3): ``infl24 >= 4.5 %`` and ``rise >= 1 pp`` -- high inflation as unemployment
   climbs (1981-82 and 1989-91 in the bundled history).
2. **severely adverse** (2): ``rec`` and ``rise >= 3 pp`` -- a deep recession (2008-09: +5.6 pp).
3. **adverse** (1): ``rec`` and ``rise >= 1 pp`` -- a mild recession (1990-91, 2001).
4. **baseline** (0): everything else (expansions; windows that end just as a recession starts).

Split: blocked in time. The last ``val_fraction`` of the months (at least one window long) form the
validation block; validation windows lie wholly inside it and training windows end before it starts,
so no month is seen by both. Scalers (mean / sd) come from the training windows only.

COVID months (decision)
-----------------------
:data:`COVID_MONTHS` (2020-03 .. 2020-12) are **left out of estimation**: a training window that
overlaps them is dropped (:func:`overlaps_months`), for the VAE here and, by the same rule, for the
VAR(1) and block-bootstrap baselines (:mod:`creditsim.macro.baselines`: no regression row or bootstrap
change touches them). The months stay in the data (``load_macro_history``) and in start states. Why:

* The shock was an administrative lockdown, not a credit-cycle recession: unemployment 3.5 % -> 14.8 %
  in one month (2020-04) and back below 7 % by 2020-10, while bank delinquency (the default proxy)
  *fell* under forbearance. Kept, the 67 60-month windows that contain it (starts 2015-04 .. 2020-10)
  would add 59 severely adverse windows (more than the 58 of 2003-08 that define that type now), each
  carrying a V the credit link does not follow; and the 2020-04 step (+10.4 pp, 63 sds of the other
  monthly changes) alone makes the VAR(1)'s unemployment innovation sd 3.3 times larger (0.48 pp vs
  0.15 pp a month, measured on the bundled history to 2025-09 vs to 2020-02).
* Lenza & Primiceri (2022), "How to estimate a vector autoregression after March 2020", J. Applied
  Econometrics 37(4): dropping the extreme observations is acceptable for *parameter estimation*; what
  it gets wrong is the forecast variance *right after* the shock (their scale factors decay at ~0.8 a
  month), which is irrelevant for forecasts started years later (the 2025 start state). Their
  alternative, a time-varying variance scale on those months, would need a per-month likelihood
  scale in the VAE's loss and estimated scale factors; dropping is the simpler honest choice.
* The credit-link fits (:mod:`creditsim.macro.credit_link`, :mod:`creditsim.transitions.calibrate`)
  stop in 2019-12 for the same reason (forbearance broke the macro-to-delinquency link).

Cost, stated plainly: with 60-month windows, no window fits between 2021-01 and 2025-09 (57 months),
so the VAE's windows end in 2020-02; the 2021-25 months (2022 inflation) reach the VAE only as start
states. The baselines, which work month by month, do use 2021-25.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import creditsim.datasets as ds
from creditsim.errors import ConfigError, DataError
from creditsim.macro.vae import MacroVAE, MacroVAEConfig
from creditsim.nn.trainer import TrainConfig, TrainResult, beta_schedule, fit
from creditsim.schema import validate_macro
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = [
    "STAGFLATION_INFLATION", "MILD_RISE", "SEVERE_RISE",
    "MacroTrainingResult", "make_windows", "peak_rise", "sahm_recession", "label_windows",
    "blocked_split", "train_macro_vae", "load_training_history", "COVID_MONTHS", "in_months", "overlaps_months",
]

STAGFLATION_INFLATION = 0.045  # mean y/y CPI over the first 24 months of the window
MILD_RISE = 0.01  # peak unemployment rise (decimal) of an adverse window
SEVERE_RISE = 0.03  # peak unemployment rise (decimal) of a severely adverse window

#: first and last month (inclusive) left out of every generator's estimation (module docstring)
COVID_MONTHS: tuple[str, str] = ("2020-03", "2020-12")

_U = MACRO_VARS.index("unemployment_rate")
_CPI = MACRO_VARS.index("inflation_rate")


def load_training_history(end: str | pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.Series | None]:
    """The bundled monthly history up to ``end`` (a month; None = all of it) and the NBER recession
    indicator over the same months (None when not bundled). ``end`` is how a model is trained on the
    data known at a date, for out-of-time evaluation."""
    history = ds.load_macro_history(end=end)
    recession = None
    loader = getattr(ds, "load_recession_indicator", None)
    if loader is not None:
        frame = loader()
        recession = frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else frame
        recession = recession.loc[: history.index[-1]]
    return history, recession


def make_windows(history: pd.DataFrame, seq_length: int = 60, stride: int = 1) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """All windows of ``seq_length`` months. Returns (windows (N, T, 9) float64, start months (N,))."""
    frame = validate_macro(history)
    if seq_length < 2:
        raise ConfigError(f"seq_length must be >= 2, got {seq_length}")
    if len(frame) < seq_length:
        raise DataError(f"macro history has {len(frame)} months; at least seq_length={seq_length} are needed")
    values = frame.to_numpy(np.float64)
    starts = np.arange(0, len(frame) - seq_length + 1, stride)
    windows = np.stack([values[s:s + seq_length] for s in starts])
    return windows, frame.index[starts]


def in_months(months: pd.DatetimeIndex, span: tuple[str, str] | None) -> np.ndarray:
    """(M,) bool: ``True`` where a month lies in ``span`` = (first, last) inclusive (None: nowhere)."""
    months = pd.DatetimeIndex(months).to_period("M").to_timestamp()
    if span is None:
        return np.zeros(len(months), dtype=bool)
    first, last = (pd.Timestamp(m).to_period("M").to_timestamp() for m in span)
    if first > last:
        raise ConfigError(f"exclude: first month {first:%Y-%m} is after last month {last:%Y-%m}")
    return np.asarray((months >= first) & (months <= last))


def overlaps_months(starts: pd.DatetimeIndex, seq_length: int, span: tuple[str, str] | None) -> np.ndarray:
    """(N,) bool: ``True`` where the window of ``seq_length`` months from ``starts[i]`` overlaps ``span``."""
    if span is None:
        return np.zeros(len(starts), dtype=bool)
    first, last = (pd.Timestamp(m).to_period("M").to_timestamp() for m in span)
    starts = pd.DatetimeIndex(starts).to_period("M").to_timestamp()
    ends = starts + pd.DateOffset(months=seq_length - 1)
    return np.asarray((starts <= last) & (ends >= first))


def peak_rise(x: np.ndarray) -> np.ndarray:
    """Largest trough-to-peak increase along the LAST axis (time): ``max_t (x_t - min_{s<=t} x_s)``.

    x: (..., T); returns (...,) >= 0, same units as x.
    """
    x = np.asarray(x, dtype=np.float64)
    return (x - np.minimum.accumulate(x, axis=-1)).max(axis=-1)


def sahm_recession(unemployment: pd.Series) -> pd.Series:
    """Recession months by the Sahm rule (0/1): the 3-month mean unemployment rate is >= 0.5 pp above
    its minimum over the previous 12 months. Used only when ``USREC`` is not available."""
    u3 = unemployment.rolling(3, min_periods=1).mean()
    low = u3.shift(1).rolling(12, min_periods=1).min()
    return ((u3 - low) >= 0.005).astype(int)


def label_windows(windows: np.ndarray, starts: pd.DatetimeIndex, recession: pd.Series | None = None,
                  history: pd.DataFrame | None = None) -> np.ndarray:
    """Scenario label (0..3) per window by the rule in the module docstring.

    windows: (N, T, 9) real units; starts: (N,) start months; recession: 0/1 monthly series indexed by
    month (NBER USREC); when None, the Sahm rule on ``history`` (or on the windows) stands in.
    """
    N, T, _ = windows.shape
    u = windows[:, :, _U]
    rise = peak_rise(u)  # (N,)
    infl24 = windows[:, : min(24, T), _CPI].mean(axis=1)
    months = [pd.date_range(s, periods=T, freq="MS") for s in starts]
    if recession is None:
        if history is None:
            raise ConfigError("label_windows needs either the recession indicator or the history")
        recession = sahm_recession(validate_macro(history)["unemployment_rate"])
    rec_series = pd.Series(np.asarray(recession, dtype=float), index=pd.DatetimeIndex(recession.index).to_period("M").to_timestamp())
    in_rec = np.array([rec_series.reindex(m).fillna(0.0).to_numpy().max() > 0 for m in months])
    labels = np.zeros(N, dtype=np.int64)
    labels[in_rec & (rise >= MILD_RISE)] = SCENARIOS.index("adverse")
    labels[in_rec & (rise >= SEVERE_RISE)] = SCENARIOS.index("severely_adverse")
    labels[(infl24 >= STAGFLATION_INFLATION) & (rise >= MILD_RISE)] = SCENARIOS.index("stagflation")
    return labels


def blocked_split(starts: pd.DatetimeIndex, n_months: int, seq_length: int, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation windows for a blocked time split (see module docstring).

    n_months: length of the history the windows were cut from (window i covers start_i .. start_i+T-1).
    The validation block is the last ``max(val_fraction * n_months, seq_length)`` months.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    offsets = np.asarray((starts.year - starts[0].year) * 12 + (starts.month - starts[0].month))
    if val_fraction == 0:
        return np.arange(len(starts)), np.array([], dtype=np.int64)
    block = max(int(round(val_fraction * n_months)), seq_length)
    first_val_month = n_months - block
    train = np.flatnonzero(offsets + seq_length <= first_val_month)
    val = np.flatnonzero(offsets >= first_val_month)
    if len(train) == 0:
        raise DataError(f"history of {n_months} months is too short for a blocked split with "
                        f"val_fraction={val_fraction} and seq_length={seq_length}")
    return train, val


@dataclass
class MacroTrainingResult:
    """Outcome of :func:`train_macro_vae`: the trained model plus what the run measured."""

    model: MacroVAE
    fit: TrainResult
    labels: np.ndarray  # (N,) scenario label of every window
    starts: pd.DatetimeIndex  # (N,) window start months
    train_index: np.ndarray
    val_index: np.ndarray
    seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)
    history_end: pd.Timestamp | None = None  # last month of the history given (after the ``end`` cut)
    excluded: tuple[str, str] | None = None  # months whose overlapping windows were dropped
    excluded_windows: int = 0

    def summary(self) -> pd.DataFrame:
        """Per-epoch losses as a DataFrame indexed by epoch."""
        return pd.DataFrame(self.fit.history)

    @property
    def last_window_end(self) -> pd.Timestamp:
        """Last month of the last window trained on."""
        return self.starts[-1] + pd.DateOffset(months=self.model.config.seq_length - 1)

    def metadata(self) -> dict:
        return {
            "windows": int(len(self.labels)), "train_windows": int(len(self.train_index)),
            "val_windows": int(len(self.val_index)), "label_counts": self.label_counts,
            "best_epoch": int(self.fit.best_epoch), "epochs_run": int(self.fit.epochs_run),
            "best_val_loss": float(self.fit.best_val_loss), "seconds": round(self.seconds, 1),
            "history_start": str(self.starts[0].date()),
            "history_end": str((self.history_end if self.history_end is not None else self.last_window_end).date()),
            "last_window_end": str(self.last_window_end.date()),
            "excluded_months": list(self.excluded) if self.excluded else None,
            "excluded_windows": int(self.excluded_windows),
            "label_rule": {"stagflation_inflation": STAGFLATION_INFLATION, "mild_rise": MILD_RISE, "severe_rise": SEVERE_RISE},
        }


def train_macro_vae(history: pd.DataFrame | None = None, config: MacroVAEConfig | None = None,
                    train_config: TrainConfig | None = None, *, recession: pd.Series | None = None,
                    val_fraction: float = 0.2, refit: bool = True, out: str | Path | None = None,
                    end: str | pd.Timestamp | None = None,
                    exclude: tuple[str, str] | None = COVID_MONTHS) -> MacroTrainingResult:
    """Train a MacroVAE on 60-month windows of ``history`` (default: the bundled history + USREC).

    history: monthly macro frame (DatetimeIndex, the 9 variables, decimals). config: model config
    (its ``seq_length`` is the window length). ``end``: train on the months up to this one only (the
    out-of-time cut; the checkpoint's ``history_start`` / ``history_end`` record the window seen).
    Writes a checkpoint folder to ``out`` when given.

    Two stages: (1) train on the training block with early stopping on the validation block; (2) with
    ``refit`` (default), train a fresh model with the same seed on *all* windows for the number of
    epochs that stage 1 found best. Why: the validation block is the last 20 % of the history (a calm,
    zero-lower-bound period); a model that never saw it would generate from 1981-2011 levels only, while
    the baselines it is compared with are fitted on the whole history. Scalers come from the windows
    each stage trains on.

    ``exclude``: (first, last) months whose overlapping windows are dropped before labelling counts,
    the split, scalers and training (default :data:`COVID_MONTHS`, see the module docstring; None keeps
    every window). The blocked split then runs on the months the kept windows span. The checkpoint
    records ``history_end`` (the last month of the history given), ``last_window_end`` (the last month
    trained on), ``excluded_months`` and ``excluded_windows``.
    """
    t0 = time.perf_counter()
    if history is None:
        history, loaded_rec = load_training_history(end)
        recession = loaded_rec if recession is None else recession
    elif end is not None:
        history = history.loc[:end]
    config = config or MacroVAEConfig()
    train_config = train_config or TrainConfig()
    frame = validate_macro(history)
    for var in config.log_variables:  # the model standardises their logs: each month must be > 0
        bad = frame.index[frame[var] <= 0] if var in frame.columns else frame.index[:0]
        if len(bad):
            raise DataError(f"history column {var!r} must be > 0 in every month (MacroVAEConfig.log_variables "
                            f"models its log); {len(bad)} months are not, first {bad[0]:%Y-%m}: "
                            f"{float(frame.loc[bad[0], var])!r}")
    windows, starts = make_windows(frame, config.seq_length)
    labels = label_windows(windows, starts, recession, frame)
    dropped = overlaps_months(starts, config.seq_length, exclude)
    if dropped.all():
        raise DataError(f"every {config.seq_length}-month window of the history overlaps the excluded months "
                        f"{exclude[0]} .. {exclude[1]}; pass exclude=None or a longer history")
    if dropped.any():
        keep = np.flatnonzero(~dropped)
        windows, starts, labels = windows[keep], starts[keep], labels[keep]
    offsets = (starts.year - starts[0].year) * 12 + (starts.month - starts[0].month)
    span = int(offsets[-1]) + config.seq_length  # months from the first to the last kept window's end
    tr, va = blocked_split(starts, span, config.seq_length, val_fraction)

    beta, warmup = config.beta, train_config.kl_warmup

    def loss_fn(m: MacroVAE, batch, epoch: int):
        return m.loss(batch[0], batch[1], beta=beta_schedule(epoch, beta, warmup))

    def new_model(index: np.ndarray) -> tuple[MacroVAE, torch.Tensor]:
        torch.manual_seed(train_config.seed)
        model = MacroVAE(config)
        months = windows[index].reshape(-1, windows.shape[-1])
        freq = np.bincount(labels[index], minlength=config.n_scenarios).astype(np.float64)
        freq = np.maximum(freq, 0.5)  # a scenario with no training window keeps a small prior weight
        seen = windows.reshape(-1, windows.shape[-1])  # every month of the kept windows (= the frame without exclusion)
        stats = model.to_model_units(torch.as_tensor(months, dtype=torch.float64)).numpy()  # logs where configured
        model.set_scalers(stats.mean(0), stats.std(0), seen.min(0), seen.max(0), freq)
        model.set_start_bank(windows[index, 0], labels[index])
        x_all = model.normalize(torch.as_tensor(windows, dtype=torch.float32))
        if config.linear_ar:
            model.set_linear_backbone(x_all[index], labels[index])
        return model, x_all

    s = torch.as_tensor(labels)
    model, x = new_model(tr)
    val = (x[va], s[va]) if len(va) else None
    result = fit(model, loss_fn, (x[tr], s[tr]), val, train_config, description="MacroVAE (early stopping)")
    if refit and len(va):
        everything = np.arange(len(windows))
        model, x = new_model(everything)
        refit_cfg = replace(train_config, epochs=result.best_epoch + 1)
        stage2 = fit(model, loss_fn, (x, s), None, refit_cfg, description="MacroVAE (refit, all windows)", keep_last=True)
        result.history += [{**row, "stage": "refit"} for row in stage2.history]
        result.seconds += stage2.seconds
    model.to("cpu").eval()
    counts = {SCENARIOS[k]: int(c) for k, c in enumerate(np.bincount(labels, minlength=config.n_scenarios))}
    res = MacroTrainingResult(model=model, fit=result, labels=labels, starts=starts, train_index=tr, val_index=va,
                              seconds=time.perf_counter() - t0, label_counts=counts, history_end=frame.index[-1],
                              excluded=(tuple(exclude) if exclude is not None and dropped.any() else None),
                              excluded_windows=int(dropped.sum()))
    if out is not None:
        model.save_pretrained(out, extra={**res.metadata(), "train_config": {
            k: getattr(train_config, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "patience",
                                                    "min_epochs", "kl_warmup", "seed")}})
    return res
