"""Transition models: macro paths -> monthly cohort transition matrices between the 7 loan states.

- :mod:`~creditsim.transitions.markov`: :class:`MarkovTransitionModel`, the (segmented, macro-overlaid)
  Markov chain -- the baseline every learned model must beat.
- :mod:`~creditsim.transitions.transformer`: :class:`TransitionTransformer` (cohort features x macro ->
  ``(C, T, 7, 7)`` matrices).
- :mod:`~creditsim.transitions.cohorts`: cohort keys, cohort features, transition counts of a panel.
- :mod:`~creditsim.transitions.sampler`: matrix validation, thresholds, risk shifts, the engine's streams.
- :mod:`~creditsim.transitions.evaluate`, :mod:`~creditsim.transitions.train`: metrics and training."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "MarkovTransitionModel": "creditsim.transitions.markov",
    "TransitionTransformer": "creditsim.transitions.transformer",
    "TransitionConfig": "creditsim.transitions.transformer",
    "cohort_keys": "creditsim.transitions.cohorts",
    "cohort_features": "creditsim.transitions.cohorts",
    "risk_bucket": "creditsim.transitions.cohorts",
    "transition_counts": "creditsim.transitions.cohorts",
    "validate_matrices": "creditsim.transitions.sampler",
    "evaluate_transition_models": "creditsim.transitions.evaluate",
    "train_transition_model": "creditsim.transitions.train",
})
