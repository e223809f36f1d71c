"""``evaluate_transitions``: every contestant fitted on one split, scored on the other, side by side."""

from __future__ import annotations

import json
import shutil
import warnings
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.fileio import RESULT_MARKER, check_output_target, make_temp_dir, replace_result_dir
from creditsim.harness.cycle import LINK_SERIES, check_link_history, last_training_month, resolve_link
from creditsim.harness.registry import applicable_contestants, check_names, make_contestant
from creditsim.harness.moves import build_moves, split_moves
from creditsim.harness.scoring import bootstrap_table, check_cluster, move_scores
from creditsim.schema import validate_macro

__all__ = ["HarnessResult", "evaluate_transitions"]


@dataclass
class HarnessResult:
    """Scores of every contestant on one split.

    Attributes:
        table: one row per model (:func:`creditsim.harness.scoring.bootstrap_table` columns) plus
            ``fit_seconds``; sorted as the models were given.
        settings: the split, features, reference model, bootstrap size and seed, and the move counts.
        replicates: ``(n_boot, models)`` NLL per move in each loan-bootstrap replicate (paired rows).
    """

    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    replicates: pd.DataFrame | None = None

    def compare(self, model: str, other: str) -> dict[str, float]:
        """Paired NLL difference ``model - other`` (negative: ``model`` is better) with its 95 % interval
        and the share of bootstrap replicates in which ``model`` is better."""
        for name in (model, other):
            if name not in self.table.index:
                raise ConfigError(f"compare: {name!r} was not evaluated; models are {list(self.table.index)}")
        diff = (self.replicates[model] - self.replicates[other]).to_numpy()
        return {"difference": float(self.table.loc[model, "nll"] - self.table.loc[other, "nll"]),
                "lo": float(np.quantile(diff, 0.025)), "hi": float(np.quantile(diff, 0.975)),
                "share_better": float((diff < 0).mean())}

    def verdicts(self) -> pd.DataFrame:
        """Each of the library's models (transformer, trajectory) against the best chain and the best
        classifier evaluated (lowest NLL): paired difference, 95 % interval, share of replicates won."""
        chains = [m for m in self.table.index if m.startswith("markov")]
        classifiers = [m for m in self.table.index if m in ("logit", "gbm")]
        rows = []
        for model in (m for m in ("transformer", "trajectory") if m in self.table.index):
            for family in (chains, classifiers):
                if family:
                    best = str(self.table.loc[family, "nll"].idxmin())
                    rows.append({"model": model, "against": best, **self.compare(model, best)})
        return pd.DataFrame(rows, columns=["model", "against", "difference", "lo", "hi", "share_better"])

    def summary(self) -> pd.DataFrame:
        """The headline columns, rounded for reading: NLL per move with its interval, the paired
        difference to the reference, Brier, default AUC and ECE."""
        t = self.table
        fmt = lambda v, lo, hi, d=4: f"{v:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"  # noqa: E731
        return pd.DataFrame({
            "NLL per move": [fmt(*r) for r in t[["nll", "nll_lo", "nll_hi"]].itertuples(index=False)],
            f"vs {self.settings['reference']}": [fmt(*r) for r in t[["nll_vs_ref", "nll_vs_ref_lo", "nll_vs_ref_hi"]].itertuples(index=False)],
            "Brier (states)": [fmt(*r) if self.settings.get("test_observed_share", 1.0) >= 0.5 else "n/a (censored)"
                               for r in t[["brier", "brier_lo", "brier_hi"]].itertuples(index=False)],
            "Brier (default)": t["brier_default"].map(lambda v: f"{v:.4f}"),
            "default AUC": [fmt(*r, d=3) for r in t[["auc_default", "auc_lo", "auc_hi"]].itertuples(index=False)],
            "default ECE": t["ece_default"].map(lambda v: f"{v:.4f}"),
        }, index=t.index)

    def plot(self, path: str | Path | None = None) -> Any:
        """Two panels: each model's NLL per move with its 95 % interval, and its paired difference to the
        reference (left of 0: better). Saved as PNG when ``path`` is given. Returns the figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.table.iloc[::-1]  # first model on top
        y = np.arange(len(t))
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(t) + 1.6), sharey=True)
        for ax, col, title in ((left, "nll", "NLL per move"), (right, "nll_vs_ref", f"minus {self.settings['reference']}")):
            lo, hi = t[f"{col}_lo"].to_numpy(), t[f"{col}_hi"].to_numpy()
            mid = t[col].to_numpy()
            colors = ["C2" if h < 0 else "C3" if lo_ > 0 else "C7" for lo_, h in zip(lo, hi)] if col != "nll" else ["C0"] * len(t)
            for j, colour in enumerate(colors):
                ax.errorbar(mid[j], y[j], xerr=[[mid[j] - lo[j]], [hi[j] - mid[j]]], fmt="o", color=colour, capsize=3)
            ax.set_title(title)
            ax.grid(alpha=0.3, axis="x")
        right.axvline(0.0, color="k", lw=0.8)
        left.set_yticks(y, list(t.index))
        fig.suptitle(f"Transition models, split {self.settings['split']}: 95 % intervals, bootstrap by "
                     f"{self.settings['cluster']} (green: better than the reference, red: worse)", fontsize=10)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110, format="png")
        plt.close(fig)
        return fig

    def save(self, out: str | Path) -> Path:
        """Write ``scores.csv``, ``summary.txt``, ``bootstrap_nll.csv``, ``harness.png`` and ``meta.json``
        (settings) as a creditsim result directory.

        The files are built in a temporary sibling that then replaces ``out`` in one step
        (:func:`creditsim.fileio.replace_result_dir`); an existing ``out`` is replaced only if it is empty
        or a creditsim result (:func:`creditsim.fileio.check_output_target`).
        """
        out = check_output_target(out, "result_dir", "out")
        out.parent.mkdir(parents=True, exist_ok=True)
        files = {"scores.csv": self.table.to_csv(), "summary.txt": self.summary().to_string() + "\n",
                 "bootstrap_nll.csv": self.replicates.to_csv(index_label="replicate")}
        meta = {"producer": RESULT_MARKER, "command": "eval transitions", "files": sorted(files), "settings": self.settings}
        meta["files"].append("harness.png")
        tmp = make_temp_dir(out)
        try:
            for name, text in {**files, "meta.json": json.dumps(meta, indent=2, default=str) + "\n"}.items():
                (tmp / name).write_text(text, encoding="utf-8")
            self.plot(tmp / "harness.png")
            replace_result_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out


def _resolve_link(credit_link: str | None, macro: pd.DataFrame | None, train: Any, models: list[str], defaulted: bool,
                  reference: str, progress: Callable[[str], None] | None) -> tuple[str | None, list[str]]:
    """The credit-link series every linked contestant uses (resolved once, checked before any fit), and the
    models: ``markov_link`` is dropped from a defaulted list, and refused when asked for, if ``"auto"``
    finds too short a history (it would be a plain recent chain under the link's name)."""
    if macro is None or credit_link is None or not ({"transformer", "markov_link"} & set(models)):
        return None, models
    last = last_training_month(train)
    series = resolve_link(credit_link, macro, last)
    if series is None:
        if "markov_link" in models and (not defaulted or reference == "markov_link"):
            raise ConfigError("markov_link: credit_link='auto' found too short a bank history before the split to fit "
                              "a link (see the warning); leave markov_link out or split later")
        models = [m for m in models if m != "markov_link"]
        return None, models
    check_link_history(series, macro, last)  # a named series: refused before any fit, not after the others
    if progress is not None:
        progress(f"credit link: the {series} bank delinquency rate, fitted on the quarters before the split")
    return series, models


def evaluate_transitions(panel: pd.DataFrame, tape: pd.DataFrame | None = None, split: str = "account",
                         models: Sequence[str] | None = None, panel_features: Sequence[str] = (),
                         tape_features: Sequence[str] = (), segment_by: Sequence[str] = ("prev_state",),
                         period: str = "month", reference: str = "markov", test_share: float = 0.3,
                         n_boot: int = 200, seed: int = 0, cohort_by: Sequence[str] = (),
                         macro: pd.DataFrame | None = None, macro_features: Sequence[str] = (), n_bins: int = 5, lags: int = 0,
                         cluster: str = "loan", credit_link: str | None = "auto",
                         progress: Callable[[str], None] | None = None) -> HarnessResult:
    """Fit each contestant on the training moves, score it on the test moves, with paired intervals.

    Args:
        panel, tape: the loan-month panel and (for ``tape_features``) the static tape
            (:func:`creditsim.harness.moves.build_moves`).
        split: ``"account"`` (a seeded ``test_share`` of the loans held out whole) or ``"oot:YYYY-MM"``
            (moves ending before the date train, the rest test).
        models: contestant names (:data:`creditsim.harness.registry.CONTESTANT_NAMES`); None: every one,
            but ``markov_link`` only with ``macro``.
        panel_features, tape_features: covariates every covariate-using model sees (the chains read
            only their keys: ``segment_by`` and the calendar month).
        segment_by: categorical covariates of ``markov_segment`` and of the cohort key.
        cohort_by: numeric covariates cut at ``n_bins`` training quantiles that complete the cohort key of
            ``markov_cohort_calendar`` and ``transformer``.
        macro: optional monthly macro frame (MACRO_VARS columns); each move gets its period's average,
            the macro input of the transformer and the trajectory model.
        macro_features: MACRO_VARS names the covariate models (logit, gbm, trajectory) also see.
        credit_link: with ``macro``, the bank delinquency series (``"all"``, ``"business"``, ``"consumer"``,
            ``"credit_card"``, ``"residential_mortgage"``) whose link, fitted on the quarters before the
            split, carries the economy into the transformer in place of the macro path
            (:mod:`creditsim.harness.cycle`: one panel spans too little of the cycle to learn a macro
            response from); ``"auto"``: ``"all"`` where its history before the split is long enough, else
            the path with a warning (:func:`creditsim.harness.cycle.resolve_link`); None: the transformer
            reads the path itself. Ignored without ``macro``.
        lags: lagged panel features for every covariate model (:func:`creditsim.harness.moves.build_moves`).
        cluster: the bootstrap's resampling unit, ``"loan"`` or ``"period"``
            (:func:`creditsim.harness.scoring.bootstrap_table`).
        reference: the model the paired NLL differences are taken against (must be in ``models``).
        n_boot, seed: loan-bootstrap replicates and the seed of the split, the bootstrap and the GBM.
        progress: called with one line per fitted model (the CLI prints it).

    Returns:
        :class:`HarnessResult`.
    """
    defaulted = models is None
    if defaulted:  # every contestant this call can run
        models = applicable_contestants(tape, macro is not None and credit_link is not None)[0]
    models = list(models)
    check_names(models)
    if credit_link not in (None, "auto") and macro is None:
        raise ConfigError(f"credit_link={credit_link!r} needs a macro frame (macro=... / --macro history): the link is "
                          "projected on the macro path")
    check_cluster(cluster)  # every option is checked before any fit
    if credit_link is not None and credit_link not in (*LINK_SERIES, "auto"):
        raise ConfigError(f"credit_link: unknown series {credit_link!r}; expected one of {list(LINK_SERIES)}, 'auto' or None")
    if "markov_link" in models and (macro is None or credit_link is None):
        raise ConfigError("markov_link needs a macro frame (macro=... / --macro) and a credit link (not none)")
    if reference not in models:
        raise ConfigError(f"reference: {reference!r} is not among the models {models}")
    known = ("prev_state", "period", *panel_features, *tape_features)
    for option, cols in (("segment_by", segment_by), ("cohort_by", cohort_by)):
        for c in cols:
            if c not in known:
                raise ConfigError(f"{option}: {c!r} is not a covariate; expected one of {list(known)}")
    moves = build_moves(panel, tape, panel_features, tape_features, period, lags, macro, macro_features)
    train, test = split_moves(moves, split, test_share, seed)
    if macro is not None:
        macro = validate_macro(macro)
    series, models = _resolve_link(credit_link, macro, train, models, defaulted, reference, progress)
    contestants = {name: make_contestant(name, tuple(segment_by), seed, tuple(cohort_by), n_bins, tape=tape,
                                         credit_link=series, macro=macro) for name in models}
    if not (train.to_state == 4).any() and (test.to_state == 4).any():
        warnings.warn(f"split {split!r}: the training moves hold no default but the test moves hold "
                      f"{int((test.to_state == 4).sum())}; every model's default probability is a prior, and a chain "
                      "that saw none scores each test default at the probability floor", stacklevel=2)
    scores, seconds = {}, {}
    for name in models:
        start = time.perf_counter()
        model = contestants[name].fit(train)
        scores[name] = move_scores(model.predict(test), test)
        seconds[name] = time.perf_counter() - start
        if progress is not None:
            progress(f"{name}: NLL {scores[name].nll.mean():.4f} per move ({seconds[name]:.1f} s)")
    if progress is not None:
        progress(f"bootstrap: {n_boot} replicates by {cluster} over {len(test):,} test moves ...")
    table, replicates = bootstrap_table(scores, test, reference, n_boot, seed, cluster)
    table["fit_seconds"] = pd.Series(seconds)
    settings = {"split": split, "test_share": test_share if split == "account" else None, "models": models,
                "reference": reference, "panel_features": list(panel_features), "tape_features": list(tape_features),
                "segment_by": list(segment_by), "cohort_by": list(cohort_by), "n_bins": n_bins, "lags": lags,
                "macro": None if macro is None else f"{len(macro)} months", "macro_features": list(macro_features), "cluster": cluster,
                "credit_link": series,
                "period": period, "n_boot": n_boot, "seed": seed,
                "train_moves": len(train), "test_moves": len(test), "train_loans": len(set(train.loan_id)),
                "test_loans": len(set(test.loan_id)), "test_defaults": int((test.to_state == 4).sum()),
                "test_observed_share": float(test.observed.mean())}
    return HarnessResult(table, settings, replicates)
