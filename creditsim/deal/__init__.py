"""The SPV / CLO deal: tranches and triggers, the waterfall, tranche analytics.

Imports only the ground floor: a deal never depends on a model.

- :mod:`~creditsim.deal.config`: :class:`Tranche`, :class:`WaterfallConfig`, :func:`load_deal` (YAML).
- :mod:`~creditsim.deal.waterfall`: :func:`run_waterfall` (hard, straight-through and soft gates), one
  function per phase of a payment date.
- :mod:`~creditsim.deal.analytics`: level-pay pools, IRR, WAL, attachment points, break-even CDR."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "Tranche": "creditsim.deal.config",
    "WaterfallConfig": "creditsim.deal.config",
    "load_deal": "creditsim.deal.config",
    "dump_deal": "creditsim.deal.config",
    "run_waterfall": "creditsim.deal.waterfall",
    "cash_conservation_error": "creditsim.deal.waterfall",
    "level_pay_pool": "creditsim.deal.analytics",
    "irr": "creditsim.deal.analytics",
    "tranche_outcomes": "creditsim.deal.analytics",
    "tranche_summary": "creditsim.deal.analytics",
    "breakeven_cdr": "creditsim.deal.analytics",
})
