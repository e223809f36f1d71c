"""The honest evaluation harness for transition models: real panels, leak-free splits, strong baselines.

- :mod:`~creditsim.harness.moves`: a panel's one-period moves with start-of-period covariates, and the
  account / out-of-time splits.
- :mod:`~creditsim.harness.contestants`: pooled, segmented and calendar Markov chains, a multinomial
  logit and a gradient-boosted classifier, all fitted on the training split only.
- :mod:`~creditsim.harness.scoring`: NLL, Brier, default AUC and ECE per move, with loan-clustered
  paired bootstrap intervals.
- :mod:`~creditsim.harness.run`: :func:`evaluate_transitions`, the side-by-side table.
- :mod:`~creditsim.harness.fit`: :func:`fit_transitions`, a model fitted on your own panel.
"""

from creditsim.harness.fit import fit_transitions
from creditsim.harness.registry import CONTESTANT_NAMES, make_contestant
from creditsim.harness.moves import MoveTable, build_moves, split_moves
from creditsim.harness.run import HarnessResult, evaluate_transitions

__all__ = ["CONTESTANT_NAMES", "HarnessResult", "MoveTable", "build_moves", "evaluate_transitions", "fit_transitions",
           "make_contestant", "split_moves"]
