"""creditsim.simulation: the Monte Carlo that wires the model hierarchy together.

- :mod:`~creditsim.simulation.monte_carlo`: :func:`simulate` and ``monte_carlo_simulate`` (orchestration).
- :mod:`~creditsim.simulation.engine`: :class:`PoolEngine` (macro paths -> cohort matrices -> pool
  cashflows, rated loans through rating-chain default hazards).
- :mod:`~creditsim.simulation.scenarios`: scenario mix, stratified labels, macro paths.
- :mod:`~creditsim.simulation.backends`: local and dask.distributed execution of scenario chunks.
- :mod:`~creditsim.simulation.results`: :class:`SimulationResults`, :class:`TrancheResult`.
- :mod:`~creditsim.simulation.risk`: exact EL / VaR / CVaR estimators and Monte Carlo standard errors.

Submodules are imported on use so that ``import creditsim.simulation`` stays cheap.
"""
