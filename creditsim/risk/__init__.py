"""Risk: the Monte Carlo that wires the stages together, its results and the risk measures.

- :mod:`~creditsim.risk.config`: :class:`RunConfig`, the validated settings of a run (YAML-loadable).
- :mod:`~creditsim.risk.simulate`: :func:`simulate` (macro paths -> matrices -> pool cashflows ->
  waterfall, chunked over scenarios).
- :mod:`~creditsim.risk.pool_engine`: :class:`PoolEngine`, one chunk of scenarios through the loan models.
- :mod:`~creditsim.risk.backends`: local and dask.distributed execution of scenario chunks.
- :mod:`~creditsim.risk.results`: :class:`SimulationResults`, :class:`TrancheResult`.
- :mod:`~creditsim.risk.measures`: exact EL / VaR / CVaR estimators and Monte Carlo standard errors.
- :mod:`~creditsim.risk.aggregator`: :class:`PortfolioAggregator` (loan trajectories -> pool -> deal).
- :mod:`~creditsim.risk.report`: the HTML report.
- :mod:`~creditsim.risk.summary_pdf`: :func:`write_summary_pdf`, the one-page PDF summary of a run."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "simulate": "creditsim.risk.simulate",
    "RunConfig": "creditsim.risk.config",
    "monte_carlo_simulate": "creditsim.risk.simulate",
    "PoolEngine": "creditsim.risk.pool_engine",
    "SimulationResults": "creditsim.risk.results",
    "TrancheResult": "creditsim.risk.results",
    "PortfolioAggregator": "creditsim.risk.aggregator",
    "write_report": "creditsim.risk.report",
    "write_summary_pdf": "creditsim.risk.summary_pdf",
    "value_at_risk": "creditsim.risk.measures",
    "expected_shortfall": "creditsim.risk.measures",
})
