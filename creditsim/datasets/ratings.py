"""S&P (S&P Global Ratings) corporate rating statistics: average one-year migration matrix (bundled)
and, found at the user's site, annual obligor / default counts by rating 1981-2000 and average
cumulative default rates 1981-2024.

Publisher and licence (see ``creditsim/datasets/sp_ratings/PROVENANCE.md``): every number
originates in **S&P Global Ratings** publications, which hold the copyright of the underlying
statistics; cite "S&P Global Ratings" wherever the data are shown. The files were taken from
open-source packages that redistribute them:

- ``sp_global_avg_1y_transition_1981_2016_pct.csv`` and ``..._nr_adjusted.csv``: from the
  ``transitionMatrix`` package 0.5.1 (Open Risk, Apache-2.0; GitHub ``open-risk/transitionMatrix``,
  ``datasets/sp_1981-2016.csv`` and ``datasets/sp_NR_adjusted.json``). S&P global corporate average
  one-year transition rates 1981-2016; the NR-adjusted form spreads the NR (withdrawn) mass
  proportionally over the other columns.
- ``sp_annual_obligors_defaults_by_rating_1981_2000_wide.csv`` (**not in the wheel**, restricted key
  ``SP-COUNTS``: its redistributor's licence, GPL >= 2, is not the wheel's): from the R package ``QRM``
  0.4-35 (CRAN), data set ``spdata.raw`` ("Standard & Poors Credit Monitor"), used by McNeil, Frey &
  Embrechts, *Quantitative Risk Management*. Grades A, BBB, BB, B, CCC/C; no AAA/AA rows.
- ``sp_global_avg_cumulative_default_rates_1981_2024.csv`` (**not in the wheel**, restricted key
  ``SP-CUMULATIVE``: S&P's copyright, transcribed with no licence): see
  :func:`load_sp_cumulative_default_rates`.

Both restricted tables are found by :func:`creditsim.datasets.restricted.restricted_path`
(``$CREDITSIM_DATA_DIR/ratings/``, the user cache, or a source checkout); without them the matrices
still load, and ``obligors`` / ``defaults`` raise a one-line
:class:`~creditsim.errors.RestrictedDataMissing` when read.

Decisions (documented because the raw files admit several forms):

- ``matrix_8x8`` (AAA, AA, A, BBB, BB, B, CCC, D) is the **NR-adjusted** matrix with each row divided
  by its sum, so rows sum to 1 within 1e-15 (the published 5-decimal rounding leaves up to 1.2e-4)
  and D is absorbing. This is the default TTC anchor of the library (e.g. the CCC row and the
  i -> CCC column used by ``creditsim.ratings.ccc.expand_to_8x8(method="calibrated")``).
- ``matrix_pct_nr`` is the raw published table, percent, 7 rows (AAA..CCC) x 9 columns (.., D, NR).
- ``matrix_7x7`` (AAA, AA, A, BBB, BB, B, D) is what a source without a CCC grade would show:
  CCC merged into B. Columns B and CCC are summed; the merged B row is the obligor-weighted mix
  ``(1 - w) * row_B + w * row_CCC`` with ``w = ccc_share_of_b`` = pooled CCC obligors / (B + CCC
  obligors) in the 1981-2000 counts (784 / 8,390 = 0.0934; the two sums are kept as constants so the
  merge needs no restricted file, and a test checks them against the counts). Obligor weighting is the right rule because a
  matrix row is a ratio of migration counts to starting obligors.
- ``obligors`` / ``defaults``: int64 frames indexed by ``year`` (int, 1981..2000), columns
  ``["A", "BBB", "BB", "B", "CCC"]`` (S&P's CCC/C written ``CCC`` like ``GRADES_8``); each row is
  the number of issuers rated in that grade at the start of the year and how many of them
  defaulted within the year.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.datasets.restricted import SP_COUNTS_KEY, SP_CUMULATIVE_KEY, restricted_path
from creditsim.errors import DataError
from creditsim.states import GRADES_7, GRADES_8

__all__ = ["SPRatings", "load_sp_ratings", "load_sp_default_panel", "load_sp_cumulative_default_rates",
           "COUNT_GRADES", "CUMULATIVE_SOURCE", "merge_ccc_into_b", "CCC_OBLIGORS_1981_2000",
           "B_OBLIGORS_1981_2000", "read_sp_counts", "read_sp_cumulative"]

_DIR = Path(__file__).with_name("sp_ratings")
_MATRIX_NR_ADJ = "sp_global_avg_1y_transition_1981_2016_nr_adjusted.csv"
_MATRIX_PCT = "sp_global_avg_1y_transition_1981_2016_pct.csv"
#: pooled 1981-2000 obligor-years rated CCC/C and B in the S&P counts (SP-COUNTS): the CCC share of
#: the merged B grade, kept as counts so the wheel needs no restricted file for it
CCC_OBLIGORS_1981_2000 = 784
B_OBLIGORS_1981_2000 = 7606

#: grades present in the annual count data (S&P CCC/C written CCC)
COUNT_GRADES: tuple[str, ...] = ("A", "BBB", "BB", "B", "CCC")

SOURCE_NOTE = (
    "Source: S&P Global Ratings (copyright S&P). Matrices via transitionMatrix 0.5.1 (Open Risk, "
    "Apache-2.0); annual counts via R package QRM 0.4-35 (GPL>=2), spdata.raw."
)

CUMULATIVE_SOURCE = (
    "S&P Global Ratings, 'Default, Transition, and Recovery: 2024 Annual Global Corporate Default And "
    "Rating Transition Study' (27 March 2025), Table 24 'Global corporate average cumulative default "
    "rates, 1981-2024' (copyright S&P)."
)


@dataclass(frozen=True)
class SPRatings:
    """S&P rating statistics bundled with creditsim (see the module docstring for provenance).

    Attributes:
        matrix_8x8: DataFrame (8, 8) float64, fractions, index/columns ``GRADES_8``; average one-year
            matrix 1981-2016, NR-adjusted, rows renormalised to 1, D absorbing.
        matrix_7x7: DataFrame (7, 7) float64, fractions, index/columns ``GRADES_7``; CCC merged into B
            by obligor weight ``ccc_share_of_b``.
        matrix_pct_nr: DataFrame (7, 9) float64, percent as published, rows AAA..CCC, columns
            AAA..CCC, D, NR (rows sum to 100 +- 0.01).
        ccc_share_of_b: float, pooled 1981-2000 CCC obligors / (B + CCC obligors).
        source: str, citation line (S&P Global Ratings).

    ``obligors`` and ``defaults`` (properties, read from the restricted ``SP-COUNTS`` file when first
    asked for): DataFrame (20, 5) int64, index ``year`` 1981..2000, columns ``COUNT_GRADES``.
    """

    matrix_8x8: pd.DataFrame
    matrix_7x7: pd.DataFrame
    matrix_pct_nr: pd.DataFrame
    ccc_share_of_b: float
    source: str = SOURCE_NOTE

    @property
    def obligors(self) -> pd.DataFrame:
        """Issuers rated in each grade at the start of each year, (20, 5) int64 (a copy)."""
        return _load_counts()[0].copy()

    @property
    def defaults(self) -> pd.DataFrame:
        """Of them, how many defaulted within the year, (20, 5) int64 (a copy)."""
        return _load_counts()[1].copy()

    @property
    def default_rates(self) -> pd.DataFrame:
        """Annual default rates ``defaults / obligors``, (20, 5) float64 decimals, year index."""
        return self.defaults / self.obligors

    @property
    def pooled_default_rates(self) -> pd.Series:
        """Count-pooled 1981-2000 one-year default rate by grade (sum defaults / sum obligors)."""
        return self.defaults.sum() / self.obligors.sum()


def merge_ccc_into_b(matrix_8x8: np.ndarray, ccc_weight: float) -> np.ndarray:
    """Collapse an (8, 8) matrix (AAA..B, CCC, D) to (7, 7) (AAA..B, D) by merging CCC into B.

    Columns B and CCC are summed; the merged B row is ``(1 - ccc_weight) * row_B + ccc_weight *
    row_CCC`` (``ccc_weight`` = share of CCC obligors in the merged B+CCC pool, in [0, 1)).
    Rows of the result sum to 1 when the input rows do.
    """
    p = np.asarray(matrix_8x8, dtype=np.float64)
    if p.shape != (8, 8):
        raise DataError(f"merge_ccc_into_b needs an (8, 8) matrix (AAA..B, CCC, D), got shape {p.shape}")
    if not 0.0 <= float(ccc_weight) < 1.0:
        raise DataError(f"ccc_weight must be in [0, 1), got {ccc_weight}")
    b, c, d = 5, 6, 7
    cols = np.concatenate([p[:, :b], (p[:, b] + p[:, c])[:, None], p[:, d:d + 1]], axis=1)  # (8, 7)
    out = np.empty((7, 7))
    out[:b] = cols[:b]
    out[b] = (1.0 - ccc_weight) * cols[b] + ccc_weight * cols[c]
    out[6] = cols[d]
    return out


def _read_csv(name: str) -> pd.DataFrame:
    path = _DIR / name
    if not path.exists():
        raise DataError(f"bundled S&P file missing: {path} (reinstall creditsim)")
    return pd.read_csv(path)


@lru_cache(maxsize=1)
def _load_counts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(obligors, defaults)`` from the restricted SP-COUNTS file (one-line error where it is absent)."""
    return read_sp_counts(restricted_path(SP_COUNTS_KEY))


def read_sp_counts(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(obligors, defaults)`` of an SP-COUNTS file: (20, 5) int64 frames, years 1981..2000, grades
    ``COUNT_GRADES``. DataError naming the file when it is another period or shape."""
    wide = pd.read_csv(path)
    need = ["year"] + [f"{g}{kind}" for g in COUNT_GRADES for kind in ("obligors", "defaults")]
    missing = [c for c in need if c not in wide.columns]
    if missing:
        raise DataError(f"{path}: columns {missing} missing (S&P counts by grade: year, <grade>obligors, <grade>defaults)")
    year = pd.Index(wide["year"].astype(np.int64), name="year")
    if year.tolist() != list(range(1981, 2001)):
        span = f"years {year.min()} .. {year.max()} ({len(year)} rows)" if len(year) else "no rows"
        raise DataError(f"{path}: {span}, but {SP_COUNTS_KEY} is S&P's 1981 .. 2000 table, one row a year "
                        f"(another period or source: `creditsim ratings fit --data FILE`)")
    obligors = pd.DataFrame({g: wide[f"{g}obligors"].to_numpy(np.int64) for g in COUNT_GRADES}, index=year)
    defaults = pd.DataFrame({g: wide[f"{g}defaults"].to_numpy(np.int64) for g in COUNT_GRADES}, index=year)
    if ((defaults < 0) | (defaults > obligors)).to_numpy().any():
        raise DataError(f"{path}: defaults must lie in 0 .. obligors for every year and grade")
    return obligors, defaults


@lru_cache(maxsize=1)
def _load() -> SPRatings:
    nr = _read_csv(_MATRIX_NR_ADJ).set_index("from")
    m8 = nr.to_numpy(dtype=np.float64)
    m8 = m8 / m8.sum(axis=1, keepdims=True)  # undo 5-decimal rounding drift (<= 1.2e-4)
    matrix_8x8 = pd.DataFrame(m8, index=list(GRADES_8), columns=list(GRADES_8))
    matrix_8x8.index.name = "from"

    pct = _read_csv(_MATRIX_PCT).set_index("from")
    pct.index = list(GRADES_8[:-1])
    pct.columns = list(GRADES_8) + ["NR"]
    pct.index.name = "from"
    pct = pct.astype(np.float64)

    share = CCC_OBLIGORS_1981_2000 / (CCC_OBLIGORS_1981_2000 + B_OBLIGORS_1981_2000)
    m7 = merge_ccc_into_b(m8, share)
    matrix_7x7 = pd.DataFrame(m7, index=list(GRADES_7), columns=list(GRADES_7))
    matrix_7x7.index.name = "from"
    return SPRatings(
        matrix_8x8=matrix_8x8,
        matrix_7x7=matrix_7x7,
        matrix_pct_nr=pct,
        ccc_share_of_b=share,
    )


def load_sp_ratings() -> SPRatings:
    """Load the S&P Global Ratings data (bundled average 1-year matrices; the 1981-2000 counts from the
    restricted SP-COUNTS file when ``obligors`` / ``defaults`` are read).

    Returns a frozen :class:`SPRatings`; frames are copies, so callers may modify them.
    Data: S&P Global Ratings (copyright S&P), redistributed via transitionMatrix 0.5.1
    (Apache-2.0) and QRM 0.4-35 (GPL >= 2, not in the wheel); see the module docstring and PROVENANCE.md.

    >>> sp = load_sp_ratings()
    >>> sp.matrix_8x8.shape, sp.obligors.index[0]
    ((8, 8), 1981)
    """
    d = _load()
    return SPRatings(
        matrix_8x8=d.matrix_8x8.copy(),
        matrix_7x7=d.matrix_7x7.copy(),
        matrix_pct_nr=d.matrix_pct_nr.copy(),
        ccc_share_of_b=d.ccc_share_of_b,
    )


def load_sp_default_panel() -> pd.DataFrame:
    """The 1981-2000 S&P annual counts as an obligor-year panel: one move per issuer and year.

    Each of the ``obligors[year, grade]`` issuers rated at the start of a year is one loan
    (``loan_id`` ``"BB-1990-00017"``) with a row in January of that year (``loan_state`` 0 CURRENT,
    ``rating`` the grade). The ``defaults[year, grade]`` defaulters get a second row in January of
    the next year in DEFAULT (4); the others carry ``censored`` True: followed through the year without
    a default, their next grade not given by this source. A model of the annual default probability
    by grade fitted on this panel has exactly the likelihood of the counts (each issuer-year is a
    Bernoulli trial), so it is the counts in the form the transition harness reads
    (:func:`creditsim.harness.evaluate_transitions` with ``period="year"``); the 1990-91 recession
    and the 2000 default wave lie inside it, which makes it the bundled out-of-time test with a
    recession. Rows: 31,524 issuer-years (~1,600 a year) plus one row per default.

    Returns:
        DataFrame with ``loan_id`` (str), ``reporting_month`` (datetime64, January 1), ``loan_state``
        (int8), ``censored`` (bool), ``rating`` (str, one of :data:`COUNT_GRADES`), sorted by loan.

    Data: S&P Global Ratings (copyright S&P) annual obligor and default counts by rating, via the R
    package QRM 0.4-35 (GPL >= 2) ``spdata.raw``; see the module docstring and PROVENANCE.md.
    """
    obligors, defaults = _load_counts()
    ids, months, states, censored, grades = [], [], [], [], []
    for year in obligors.index:
        start = pd.Timestamp(year=int(year), month=1, day=1)
        for grade in COUNT_GRADES:
            n, d = int(obligors.loc[year, grade]), int(defaults.loc[year, grade])
            names = [f"{grade}-{year}-{k:05d}" for k in range(n)]
            ids += names
            months += [start] * n
            states += [0] * n
            censored += [False] * d + [True] * (n - d)
            grades += [grade] * n
            ids += names[:d]
            months += [pd.Timestamp(year=int(year) + 1, month=1, day=1)] * d
            states += [4] * d
            censored += [False] * d
            grades += [grade] * d
    panel = pd.DataFrame({"loan_id": ids, "reporting_month": pd.to_datetime(months), "loan_state": np.array(states, np.int8),
                          "censored": censored, "rating": grades})
    return panel.sort_values(["loan_id", "reporting_month"], kind="stable").reset_index(drop=True)


@lru_cache(maxsize=1)
def _load_cumulative() -> pd.DataFrame:
    return read_sp_cumulative(restricted_path(SP_CUMULATIVE_KEY))


def read_sp_cumulative(path: Path) -> pd.DataFrame:
    """The (15, 7) cumulative default rates of an SP-CUMULATIVE file (see
    :func:`load_sp_cumulative_default_rates`); DataError naming the file when it is another shape."""
    long = pd.read_csv(path)
    absent = [c for c in ("grade", "year", "cumulative_default_rate") if c not in long.columns]
    if absent:
        raise DataError(f"{path}: columns {absent} missing (long form: grade, year, cumulative_default_rate)")
    wide = long.pivot(index="year", columns="grade", values="cumulative_default_rate")
    missing = [g for g in GRADES_8[:-1] if g not in wide.columns]
    if missing or wide.isna().any().any() or wide.index.tolist() != list(range(1, 16)):
        raise DataError(f"{path}: grades {missing} missing, or years other than 1 .. 15 or with gaps (need every "
                        f"grade AAA..CCC for years 1 .. 15)")
    wide = wide[list(GRADES_8[:-1])].astype(np.float64)
    wide.index = pd.Index(wide.index.astype(np.int64), name="year")
    wide.columns.name = "grade"
    return wide


def load_sp_cumulative_default_rates() -> pd.DataFrame:
    """S&P global corporate **average cumulative default rates** by rating category, 1981-2024.

    Returns a (15, 7) float64 frame, index ``year`` 1..15 (the horizon after the static pool's
    formation, int64), columns ``GRADES_8[:-1]`` (AAA, AA, A, BBB, BB, B, CCC; S&P's 'CCC/C' row
    written ``CCC``), values the cumulative default rate as a **fraction** (0.2612 = 26.12 %): the
    average, over the study's annual static pools of 1981-2024 (weighted by issuers at the start of
    each year, as the study states), of the share of issuers rated in the grade when the pool was
    formed that defaulted within ``year`` years. A copy, so callers may modify it.

    Source: S&P Global Ratings, "Default, Transition, and Recovery: 2024 Annual Global Corporate
    Default And Rating Transition Study", 27 March 2025, Table 24 "Global corporate average cumulative
    default rates, 1981-2024" (pp. 55-56); S&P holds the copyright, cite "S&P Global Ratings" wherever
    the numbers are shown. Transcribed (percent / 100, nothing else changed) from two independent
    public transcriptions that agree on all 105 numbers; see ``tests/data/sp_ratings/PROVENANCE.md`` (source repository) for
    the addresses, commits, retrieval date and licence note. **Not in the wheel** (restricted key
    ``SP-CUMULATIVE``: place the file in ``$CREDITSIM_DATA_DIR/ratings/``; a one-line
    :class:`~creditsim.errors.RestrictedDataMissing` otherwise). This is the *calibration* table of
    :mod:`creditsim.ratings.term_structure`; the 1981-2016 multi-year tables stay held out for
    validation and are not bundled.

    >>> cum = load_sp_cumulative_default_rates()
    >>> cum.shape, float(cum.loc[1, "CCC"])
    ((15, 7), 0.2612)
    """
    return _load_cumulative().copy()
