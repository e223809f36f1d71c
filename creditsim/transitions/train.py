"""Train the :class:`~creditsim.transitions.transformer.TransitionTransformer` on synthetic cohorts.

    python -m creditsim.transitions.train [--out DIR] [--epochs N] [--quiet]

Training data (decision). Real loan panels with many different macro paths do not exist in the
bundled data (the UCI credit-card panel spans six months of one economy), so the model learns from
synthetic books whose roll rates respond to the macro path (:class:`~creditsim.transitions.synthetic.
LoanTapeGenerator`, whose link is the Markov overlay's calibration on the bank delinquency history, per
asset class): for every scenario type, ``paths_per_scenario`` macro paths of
:class:`~creditsim.macro.synthetic.MacroScenarioGenerator` (its own seed per scenario), each shifted
by an independent level and drift per variable (``macro_jitter`` sds,
:func:`~creditsim.transitions.synthetic.jitter_macro_path`) and driving its own freshly drawn loan tape
(its own seed).

Jitter (decision, issue 13). In the generator's scenarios the drivers move together (unemployment up,
GDP down, spreads wider, policy rate cut), so a model fitted to them cannot separate the drivers: trained
on the calibrated link without jitter the transformer raised PD with the policy rate but lowered it with
rising unemployment for three classes and with falling house prices for corporate loans (whose link has no
house-price term). Independent shifts of each variable make every driver's effect identifiable. Every panel is turned into monthly transition counts
per cohort with :func:`~creditsim.transitions.cohorts.transition_counts` under two cohort definitions: the
default ``asset_class|vintage|risk`` cohorts and the coarse ``asset_class`` cohorts the simulation
engine uses, so the model serves both granularities. A row with the cut-off state (all loans CURRENT)
is prepended to each panel so that count month ``t`` is the move *during* macro month ``t`` (the
convention of the ``(S, C, T, 7, 7)`` matrices).

Split (blocked by macro path): within each scenario the first paths train, the next ones validate
(early stopping) and the last ones are held out for :mod:`creditsim.transitions.evaluate`; no
macro path, and no loan, is shared between splits.

Homogeneous baselines come from the *same training panels*: :class:`~creditsim.transitions.markov.
MarkovTransitionModel` is fitted on each training panel and the per-panel counts are summed (the
multinomial MLE of the concatenated panels is the row-normalised sum, since no move crosses panels;
concatenating millions of rows only to count them again would waste memory), plus a per-cohort
homogeneous chain from the summed training counts.

The trainer is :func:`creditsim.nn.trainer.fit` (AdamW, clipping, early stopping on the
validation NLL, best weights restored, rich progress bar); its KL warm-up is unused here (0).
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError
from creditsim.macro.synthetic import MacroScenarioGenerator
from creditsim.nn.trainer import TrainConfig, TrainResult, fit
from creditsim.states import N_STATES, SCENARIOS
from creditsim.transitions.cohorts import COHORT_FEATURES, cohort_features, transition_counts
from creditsim.transitions.evaluate import (
    evaluate_transition_models,
    homogeneous_matrix,
)
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.transitions.synthetic import LoanTapeGenerator, jitter_macro_path
from creditsim.transitions.transformer import (
    PRETRAINED_DIR,
    TransitionConfig,
    TransitionTransformer,
)

__all__ = [
    "TransitionDataConfig",
    "CohortMonthData",
    "TransitionTrainingResult",
    "SHIPPED_CONFIG",
    "SHIPPED_TRAINING",
    "SHIPPED_DATA",
    "build_transition_data",
    "train_transition_model",
    "main",
]

COHORT_DEFINITIONS: tuple[str, ...] = ("asset_class_vintage_risk", "asset_class")


@dataclass
class TransitionDataConfig:
    """Size of the synthetic training set.

    ``paths_per_scenario`` macro paths per scenario type are split into ``n_val`` validation and
    ``n_test`` test paths (the last ones) and the rest for training.
    ``macro_jitter``: size (in standard deviations) of the independent per-variable level shift and
    drift added to every path (:func:`~creditsim.transitions.synthetic.jitter_macro_path`; 0 = the
    generator's paths as they are).
    """

    paths_per_scenario: int = 14
    n_val: int = 3
    n_test: int = 3
    n_loans: int = 3000
    n_months: int = 60
    seed: int = 0
    cutoff: str = "2025-01-01"
    scenarios: tuple[int, ...] = (0, 1, 2, 3)
    cohort_definitions: tuple[str, ...] = COHORT_DEFINITIONS
    macro_jitter: float = 1.0

    def __post_init__(self) -> None:
        for name in ("paths_per_scenario", "n_loans", "n_months"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"TransitionDataConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.macro_jitter, bool) or not isinstance(self.macro_jitter, (int, float)) \
                or not (np.isfinite(self.macro_jitter) and self.macro_jitter >= 0):
            raise ConfigError(f"TransitionDataConfig.macro_jitter must be a number >= 0, got {self.macro_jitter!r}")
        for name in ("n_val", "n_test", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"TransitionDataConfig.{name} must be an integer >= 0, got {value!r}")
        if self.paths_per_scenario - self.n_val - self.n_test < 1:
            raise ConfigError(f"TransitionDataConfig: paths_per_scenario ({self.paths_per_scenario}) must exceed "
                              f"n_val + n_test ({self.n_val + self.n_test}) to leave training paths")
        self.scenarios = tuple(int(s) for s in self.scenarios)
        if not self.scenarios or any(not 0 <= s < len(SCENARIOS) for s in self.scenarios):
            raise ConfigError(f"TransitionDataConfig.scenarios must be indices in 0..{len(SCENARIOS) - 1}, "
                              f"got {self.scenarios}")
        self.cohort_definitions = tuple(self.cohort_definitions)
        if not self.cohort_definitions:
            raise ConfigError("TransitionDataConfig.cohort_definitions must not be empty")


@dataclass
class CohortMonthData:
    """Cohort sequences of one split. N sequences = (macro path, cohort definition, cohort).

    Attributes:
        cohort_features: ``(N, 16)`` float64, natural units (``COHORT_FEATURES``; a 12-feature model
            reads the first 12, ``BASE_COHORT_FEATURES``).
        macro: ``(N, T, 9)`` float64 decimals; month t drives count month t.
        counts: ``(N, T, 7, 7)`` int64 moves during month t, from-state x to-state.
        cohort: ``(N,)`` cohort labels; ``definition``: ``(N,)`` cohort definition of each row.
        path: ``(N,)`` global macro path id; ``scenario``: ``(N,)`` scenario index.
        markov_counts: ``(7, 7)`` int64 summed ``counts_`` of MarkovTransitionModel fits on the panels.
        period_months: months between the two rows of a counted move (1; 3 for a quarterly panel, whose
            ``counts[:, t]`` are moves from month ``t - 3`` to month ``t``).
    """

    cohort_features: np.ndarray
    macro: np.ndarray
    counts: np.ndarray
    cohort: np.ndarray
    definition: np.ndarray
    path: np.ndarray
    scenario: np.ndarray
    markov_counts: np.ndarray = field(default_factory=lambda: np.zeros((N_STATES, N_STATES), np.int64))
    period_months: int = 1

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def subset(self, mask: np.ndarray) -> CohortMonthData:
        """Rows where ``mask`` is True (``markov_counts`` kept: it describes the panels)."""
        m = np.asarray(mask, dtype=bool)
        return CohortMonthData(self.cohort_features[m], self.macro[m], self.counts[m], self.cohort[m],
                               self.definition[m], self.path[m], self.scenario[m], self.markov_counts,
                               self.period_months)

    def tensors(self, n_features: int | None = None) -> list[torch.Tensor]:
        """``[cohort_features (N, F), macro (N, T, 9), counts (N, T, 7, 7)]`` float32 tensors; ``F`` =
        ``n_features`` (the first ``F`` columns, for a model that reads fewer), default all."""
        return [torch.as_tensor(self.cohort_features[:, :n_features], dtype=torch.float32),
                torch.as_tensor(self.macro, dtype=torch.float32),
                torch.as_tensor(self.counts, dtype=torch.float32)]


def _panel_with_cutoff_row(panel: pd.DataFrame, loans: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Prepend each loan's cut-off state (CURRENT, month before the first panel month)."""
    ids = panel["loan_id"]
    categories = ids.cat.categories if isinstance(ids.dtype, pd.CategoricalDtype) else None
    loan_id = pd.Categorical(loans["loan_id"], categories=categories) if categories is not None else loans["loan_id"]
    first = pd.DataFrame({
        "loan_id": loan_id,
        "reporting_month": np.full(len(loans), (cutoff - pd.offsets.MonthBegin(1)).to_datetime64()),
        "current_balance": loans["current_balance"].to_numpy(np.float64),
        "loan_state": np.zeros(len(loans), dtype=np.int64),
    })
    rest = panel[["loan_id", "reporting_month", "current_balance", "loan_state"]]
    return pd.concat([first, rest], ignore_index=True)


def build_transition_data(cfg: TransitionDataConfig | None = None, progress: bool = True) -> dict[str, CohortMonthData]:
    """Simulate the synthetic books and return ``{"train", "val", "test"}`` :class:`CohortMonthData`.

    Deterministic for a given ``cfg.seed`` (one SeedSequence, spawned per scenario and per path).
    """
    from rich.progress import Progress

    cfg = cfg if cfg is not None else TransitionDataConfig()
    if not isinstance(cfg, TransitionDataConfig):
        raise ConfigError(f"data config must be a TransitionDataConfig, got {type(cfg).__name__}")
    cutoff = pd.Timestamp(cfg.cutoff).to_period("M").to_timestamp()
    root = np.random.SeedSequence(cfg.seed)
    macro_ss, tape_ss = root.spawn(2)
    (jitter_ss,) = root.spawn(1)  # a third child: the first two (and so the paths and tapes) are unchanged
    jitter_seeds = jitter_ss.spawn(len(cfg.scenarios) * cfg.paths_per_scenario)
    scen_seeds = [int(s.generate_state(1)[0]) for s in macro_ss.spawn(len(SCENARIOS))]
    n_paths = len(cfg.scenarios) * cfg.paths_per_scenario
    tape_seeds = [int(s.generate_state(1)[0]) for s in tape_ss.spawn(n_paths)]
    gen = MacroScenarioGenerator(cfg.n_months, start=cutoff)
    n_train = cfg.paths_per_scenario - cfg.n_val - cfg.n_test
    split_of = ["train"] * n_train + ["val"] * cfg.n_val + ["test"] * cfg.n_test
    fields_ = ("feat", "macro", "counts", "cohort", "definition", "path", "scenario")
    rows: dict[str, dict[str, list[Any]]] = {s: {k: [] for k in fields_} for s in ("train", "val", "test")}
    markov_counts = {s: np.zeros((N_STATES, N_STATES), np.int64) for s in rows}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("simulating cohort panels", total=n_paths)
        path_id = 0
        for scenario in cfg.scenarios:
            paths = gen.generate_scenario(scenario, cfg.paths_per_scenario, seed=scen_seeds[scenario])
            for k in range(cfg.paths_per_scenario):
                split = split_of[k]
                macro = jitter_macro_path(paths[k], np.random.default_rng(jitter_seeds[path_id]), cfg.macro_jitter)
                loans, panel = LoanTapeGenerator(cfg.n_loans, cfg.n_months, random_seed=tape_seeds[path_id],
                                                 macro_path=macro, cutoff=cutoff).generate()
                full = _panel_with_cutoff_row(panel, loans, cutoff)
                with warnings.catch_warnings():
                    # a small panel may lack a row (e.g. no DPD90 yet); only the summed counts are used
                    warnings.filterwarnings("ignore", message="MarkovTransitionModel.fit: rows without")
                    markov = MarkovTransitionModel().fit(full)
                markov_counts[split] += markov.counts_
                for definition in cfg.cohort_definitions:
                    counts, cohorts, _ = transition_counts(full, loans, definition)
                    feats = cohort_features(loans, definition, as_of=cutoff).loc[cohorts]
                    r = rows[split]
                    r["feat"].append(feats.to_numpy(np.float64))
                    r["counts"].append(counts[:, : cfg.n_months])
                    r["macro"].append(np.broadcast_to(macro[None], (len(cohorts), *macro.shape)))
                    r["cohort"].append(np.asarray(cohorts, dtype=object))
                    r["definition"].append(np.full(len(cohorts), definition, dtype=object))
                    r["path"].append(np.full(len(cohorts), path_id))
                    r["scenario"].append(np.full(len(cohorts), scenario))
                path_id += 1
                bar.advance(task)
    out = {}
    for split, r in rows.items():
        if not r["feat"]:
            shape_t = cfg.n_months
            out[split] = CohortMonthData(np.zeros((0, len(COHORT_FEATURES))), np.zeros((0, shape_t, 9)),
                                         np.zeros((0, shape_t, N_STATES, N_STATES), np.int64),
                                         np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64),
                                         np.zeros(0, np.int64), markov_counts[split])
            continue
        out[split] = CohortMonthData(
            np.concatenate(r["feat"]), np.concatenate(r["macro"]), np.concatenate(r["counts"]),
            np.concatenate(r["cohort"]), np.concatenate(r["definition"]), np.concatenate(r["path"]),
            np.concatenate(r["scenario"]), markov_counts[split],
        )
    return out


#: shipped model: small enough to train in about two minutes on one CPU core and to ship (< 200 KB)
SHIPPED_CONFIG = TransitionConfig(n_cohort_features=len(COHORT_FEATURES), n_macro_vars=9, d_model=32, n_heads=4, n_layers=2,
                                  n_states=7, dropout=0.0, max_months=120, unemployment_change=True, macro_link=True)
SHIPPED_TRAINING = TrainConfig(epochs=100, batch_size=64, lr=3e-3, weight_decay=1e-4, grad_clip=1.0, patience=15,
                               min_epochs=10, kl_warmup=0, seed=0, device="cpu")
#: shipped data (issue 13): 24 paths per scenario type (was 14) with a 2.5-sd jitter -- 18 training paths per
#: type; with 14 unjittered paths the drivers' effects were not separable (see the module docstring).
#: Measured (worst-year PD from CURRENT, real estate, unemployment +2 pp: the link's weakest term, +2.8 % in
#: the Markov chain; the test asks > +1 %): learnt without the link offset it came out -0.5 % (1.5 sd),
#: +1.05 % (1.5 sd, 48 paths), +1.4 % (2.5 sd, seed 0) and +0.8 % (2.5 sd, seed 1, with receivables x GDP
#: and corporate x house prices wrong too); with the offset (``macro_link``) +3.7 % (seed 0) and +3.1 %
#: (seed 1), every driver and class with its documented sign for both seeds.
SHIPPED_DATA = TransitionDataConfig(paths_per_scenario=24, macro_jitter=2.5)


@dataclass
class TransitionTrainingResult:
    """What :func:`train_transition_model` produced: the model, the fit record, the data and the
    held-out evaluation table (``evaluation``, see ``transition_eval.evaluate_transition_models``)."""

    model: TransitionTransformer
    fit: TrainResult
    data: dict[str, CohortMonthData]
    evaluation: pd.DataFrame | None = None
    seconds_data: float = 0.0
    seconds_train: float = 0.0


def _loss_fn(model: TransitionTransformer, batch: list[torch.Tensor], epoch: int,
             period_months: int = 1) -> dict[str, torch.Tensor]:
    cf, macro, counts = batch
    return {"loss": model.loss(cf, macro, counts, period_months=period_months)}


def _model_view(model: TransitionTransformer, data: CohortMonthData) -> list[torch.Tensor]:
    """``data.tensors`` with the cohort features the model reads (all 16, or the first 12)."""
    return data.tensors(len(model.cohort_feature_names))


def prepare_model(model: TransitionTransformer, train: CohortMonthData) -> TransitionTransformer:
    """Set the scalers (training macro and cohort-feature mean / sd), the pooled prior matrix and, with
    ``macro_link``, the calibrated credit link (``MarkovTransitionModel.default()``'s overlay)."""

    if len(train) == 0:
        raise ConfigError("training set is empty")
    macro = train.macro.reshape(-1, train.macro.shape[-1])
    feats = train.cohort_features[:, : len(model.cohort_feature_names)]
    model.set_scalers(macro.mean(0), macro.std(0), feats.mean(0), feats.std(0),
                      macro.min(0), macro.max(0))
    if train.period_months == 1:
        model.set_prior(homogeneous_matrix(train.counts.sum(axis=(0, 1))))
    else:  # the monthly chain behind the k-month moves
        from creditsim.transitions.embed import embed_monthly_chain

        model.set_prior(embed_monthly_chain(train.counts.sum(axis=(0, 1)), train.period_months).matrix)
    if model.config.macro_link:  # the link the synthetic panels are drawn with: the calibrated overlay
        model.set_macro_link(MarkovTransitionModel.default())
    return model


def train_transition_model(
    data: dict[str, CohortMonthData] | None = None,
    model_config: TransitionConfig = SHIPPED_CONFIG,
    train_config: TrainConfig = SHIPPED_TRAINING,
    data_config: TransitionDataConfig | None = None,
    out: str | Path | None = None,
    evaluate: bool = True,
) -> TransitionTrainingResult:
    """Build (or take) the data, train with early stopping, evaluate on the test paths, save.

    Args:
        data: splits from :func:`build_transition_data`; built from ``data_config`` when None.
        model_config, train_config: model and optimisation settings.
        out: checkpoint folder to write (safetensors + JSON), or None.
        evaluate: compute the held-out table (transformer vs homogeneous Markov baselines).
    """

    t0 = time.perf_counter()
    if data is None:
        data_config = data_config if data_config is not None else TransitionDataConfig()
        data = build_transition_data(data_config, progress=train_config.progress)
    t_data = time.perf_counter() - t0
    torch.manual_seed(train_config.seed)
    model = prepare_model(TransitionTransformer(model_config), data["train"])
    val = _model_view(model, data["val"]) if len(data.get("val", [])) else None
    t1 = time.perf_counter()
    loss_fn = functools.partial(_loss_fn, period_months=data["train"].period_months)
    result = fit(model, loss_fn, _model_view(model, data["train"]), val, train_config, description="transition transformer")
    t_train = time.perf_counter() - t1
    table = None
    if evaluate and len(data.get("test", [])):
        table = evaluate_transition_models(model, data["train"], data["test"])
    if out is not None:
        extra: dict[str, Any] = {
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "best_val_nll": result.best_val_loss, "seconds_train": round(t_train, 1),
            "data": "given" if data_config is None else
                    {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(data_config).items()},
            "n_sequences": {k: len(v) for k, v in data.items()},
        }
        if data["train"].period_months != 1:  # a quarterly panel's model; the shipped model's record unchanged
            extra["period_months"] = data["train"].period_months
        if table is not None:
            extra["held_out"] = {name: {k: float(v) for k, v in row.items()} for name, row in table.iterrows()}
        model.save_pretrained(out, extra=extra)
    return TransitionTrainingResult(model, result, data, table, t_data, t_train)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PRETRAINED_DIR), help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    # one thread: the tensors are small, and on a shared 2-core machine more threads only contend
    torch.set_num_threads(1)
    train_cfg = replace(SHIPPED_TRAINING, progress=not args.quiet, **({"epochs": args.epochs} if args.epochs else {}))
    res = train_transition_model(model_config=SHIPPED_CONFIG, train_config=train_cfg, data_config=SHIPPED_DATA,
                                 out=args.out)
    print(f"TransitionTransformer written to {args.out}: best epoch {res.fit.best_epoch} of {res.fit.epochs_run}, "
          f"data {res.seconds_data:.0f} s, training {res.seconds_train:.0f} s")
    if res.evaluation is not None:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(res.evaluation.round(5).to_string())


if __name__ == "__main__":
    main()
