"""Real data bundled with creditsim (pattern of ``arch.data``): compressed CSV under
``creditsim/datasets/<name>/`` and one short loader per data set returning a typed DataFrame.

- :func:`load_macro_history` — the 9 macro variables, monthly decimals, 1980-01 .. 2019-12 (FRED).
- :func:`load_fred_md` — FRED-MD 2019-10 vintage with transformation codes.
- :func:`load_recession_indicator` — NBER recession months (FRED ``USREC``).
- :func:`load_fed_scenarios` — Federal Reserve supervisory stress-test scenarios.
- :func:`load_credit_card_panel` / :func:`load_credit_card_tape` — UCI credit-card data as a loan-month
  panel in our states and the matching loan tape.
- :func:`load_sp_ratings` — S&P rating migration matrices and annual default counts.

Licences differ per source and several are "internal research use only": every loader's docstring
cites the original publisher and the licence note.
"""

from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape
from creditsim.datasets.fed import available_fed_scenarios, load_fed_scenarios
from creditsim.datasets.fred import load_fred_md, load_recession_indicator
from creditsim.datasets.macro import load_macro_history
from creditsim.datasets.ratings import load_sp_ratings

__all__ = [
    "load_macro_history",
    "load_fred_md",
    "load_recession_indicator",
    "load_fed_scenarios",
    "available_fed_scenarios",
    "load_credit_card_panel",
    "load_credit_card_tape",
    "load_sp_ratings",
]
