"""Macro scenarios: generators of monthly macro paths and their evaluation (stage 1 of the pipeline).

- :mod:`~creditsim.macro.vae`: :class:`MacroVAE`, the conditional VAE (scenario label, start state).
- :mod:`~creditsim.macro.synthetic`: :class:`MacroScenarioGenerator`, a rule-based factor model.
- :mod:`~creditsim.macro.baselines`: VAR(p) and block-bootstrap generators (the baselines).
- :mod:`~creditsim.macro.scenarios`: scenario mix, stratified labels, :func:`build_macro_paths` (what
  :func:`creditsim.simulate` calls), the start state.
- :mod:`~creditsim.macro.sensitivity`: the roll-rate sensitivities to standardised macro shocks.
- :mod:`~creditsim.macro.metrics`, :mod:`~creditsim.macro.evaluate`: path metrics, generator comparison.
- :mod:`~creditsim.macro.train`, :mod:`~creditsim.macro.pretrained`: training and the shipped checkpoint.

Shapes: paths are ``(n_paths, n_months, 9)`` decimals in :data:`creditsim.states.MACRO_VARS` order."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "MacroVAE": "creditsim.macro.vae",
    "MacroVAEConfig": "creditsim.macro.vae",
    "MacroScenarioGenerator": "creditsim.macro.synthetic",
    "activity_level_drawdown": "creditsim.macro.synthetic",
    "VARGenerator": "creditsim.macro.baselines",
    "BlockBootstrapGenerator": "creditsim.macro.baselines",
    "DEFAULT_SCENARIO_MIX": "creditsim.macro.scenarios",
    "parse_scenario_mix": "creditsim.macro.scenarios",
    "draw_scenario_labels": "creditsim.macro.scenarios",
    "build_macro_paths": "creditsim.macro.scenarios",
    "macro_paths": "creditsim.macro.paths",
    "MacroPaths": "creditsim.macro.paths",
    "evaluate_macro": "creditsim.macro.evaluate",
    "compare_generators": "creditsim.macro.evaluate",
    "train_macro_vae": "creditsim.macro.train",
})
