"""Real data bundled with creditsim (pattern of ``arch.data``): compressed CSV under
``creditsim/datasets/<name>/`` and one short loader per data set returning a typed DataFrame.

- :func:`load_macro_history` — the 9 macro variables, monthly decimals, from 1980-01 to their common end
  (2025-09: GDP's last published quarter), or to 2025-12 with NaN past each series' end
  (``ragged="keep"``) (FRED; the default-rate proxy ``DRALACBS`` from the Federal Reserve Board).
- :func:`load_fred_md` — FRED-MD 2019-10 vintage with transformation codes (restricted: fetched, not shipped).
- :func:`load_recession_indicator` — NBER recession months (FRED ``USREC``), 1980-01 .. 2025-12.
- :func:`load_fed_scenarios` — Federal Reserve supervisory stress-test scenarios.
- :func:`load_credit_card_panel` / :func:`load_credit_card_tape` — UCI credit-card data as a loan-month
  panel in our states and the matching loan tape.
- :func:`load_sp_ratings` — S&P rating migration matrices (bundled) and annual default counts (restricted).
- :func:`load_sp_cumulative_default_rates` — S&P average cumulative default rates by rating, 1981-2024
  (restricted: not in the wheel, see :mod:`creditsim.datasets.restricted`).
- :func:`load_bank_loss_rates` — US commercial-bank delinquency (1985-) and charge-off (2020-24) rates by
  loan type (Federal Reserve Board).
- :func:`read_freddie_mac` — Freddie Mac's Single-Family Loan-Level Dataset (not shipped: the user downloads
  it under Freddie Mac's terms) as a loan tape and a monthly panel in our states.
- :func:`read_sba_loans` — the US SBA 7(a) loan file of Li, Mickel & Taylor (2018) (not shipped: read where
  the user keeps it) as a monthly charge-off panel with the 2008-09 recession in it.

Licences differ per source: every loader's docstring cites the original publisher and the licence
note. Series whose publishers forbid republication (ICE BofA spreads, S&P CoreLogic Case-Shiller, the
FRED-MD vintage) are not shipped: :mod:`creditsim.datasets.restricted` finds them in
``$CREDITSIM_DATA_DIR``, the user cache (``creditsim data fetch``, :mod:`creditsim.datasets.fetch`) or
``../shared/data/macro`` beside a source checkout; :func:`load_macro_history` and :func:`load_fred_md`
need them.
"""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "load_bank_loss_rates": "creditsim.datasets.credit_losses",
    "load_credit_card_panel": "creditsim.datasets.credit_card",
    "load_credit_card_tape": "creditsim.datasets.credit_card",
    "read_freddie_mac": "creditsim.datasets.freddie_mac",
    "read_sba_loans": "creditsim.datasets.sba",
    "available_fed_scenarios": "creditsim.datasets.fed",
    "load_fed_scenarios": "creditsim.datasets.fed",
    "load_fred_md": "creditsim.datasets.fred",
    "load_recession_indicator": "creditsim.datasets.fred",
    "load_macro_history": "creditsim.datasets.macro",
    "macro_state": "creditsim.datasets.macro",
    "load_sp_ratings": "creditsim.datasets.ratings",
    "load_sp_cumulative_default_rates": "creditsim.datasets.ratings",
})
