"""Data whose licence does not allow redistribution: not shipped in the wheel, found at the user's site.

The Apache-2.0 package may only carry data whose licence allows redistribution. The ICE BofA option-
adjusted spreads, the S&P CoreLogic Case-Shiller index and the FRED-MD database (Moody's, S&P, CBOE and
Michigan series inside) do not; neither do two S&P Global Ratings tables: the 1981-2000 annual obligor
and default counts by rating (redistributed by the GPL-licensed R package QRM, a licence the Apache-2.0
wheel cannot carry) and the 1981-2024 average cumulative default rates (S&P's copyright, transcribed by
repositories with no licence at all). :func:`restricted_path` looks for them, in this order, in

1. ``$CREDITSIM_DATA_DIR`` (a directory the user or an administrator filled),
2. the user cache, ``$XDG_CACHE_HOME/creditsim`` or ``~/.cache/creditsim`` (where ``creditsim data
   fetch`` writes),
3. for development and tests only: ``shared/data/macro/`` beside a source checkout (the directory that
   holds ``pyproject.toml`` and ``creditsim/``), used only if it exists,
4. for development and tests only: the file's own place in that checkout (``dev_path``: the S&P tables
   lie in ``../shared/data/ratings/`` or ``tests/data/sp_ratings/``).

Directories 1 and 2 have the layout ``fred_series/<SERIES>.csv``, ``fred_md_2019-10.csv`` and
``ratings/<file>.csv`` (a ``.gz`` of any is read as well). Nothing is found: a one-line
:class:`~creditsim.errors.DataError` names the data, its publisher and licence and the fix.

The S&P tables have no public download address (``url`` empty): ``creditsim data fetch`` skips them and
the user places them by hand (from a licensed S&P source or a creditsim source checkout). The models the
simulation needs from them ship as fitted parameters instead (``creditsim/pretrained/``: the Z-factor
correlation and the lifetime-PD mixture), which are this project's estimates, not S&P's tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from creditsim.errors import DataError, RestrictedDataMissing

__all__ = [
    "ENV_DATA_DIR",
    "RestrictedFile",
    "RESTRICTED_FILES",
    "FRED_MD_KEY",
    "FRED_GRAPH_CSV",
    "FRED_MD_PAGE",
    "user_cache_dir",
    "sibling_data_dir",
    "search_dirs",
    "restricted_path",
    "checkout_root",
    "SP_COUNTS_KEY",
    "SP_CUMULATIVE_KEY",
    "check_restricted_span",
    "data_provenance",
    "is_restricted",
]

#: environment variable naming a directory with the restricted files (searched first)
ENV_DATA_DIR = "CREDITSIM_DATA_DIR"
#: FRED's public CSV endpoint, one series per request (``{series}`` is the FRED mnemonic)
FRED_GRAPH_CSV = "https://fred.stlouisfed.org/graph/fredgraph.csv?id={series}"
#: page of the FRED-MD database (McCracken & Ng), where current and past vintages are listed
FRED_MD_PAGE = "https://www.stlouisfed.org/research/economists/mccracken/fred-databases"
#: key of the FRED-MD vintage in :data:`RESTRICTED_FILES` (``--series FRED-MD`` on the command line)
FRED_MD_KEY = "FRED-MD"
#: key of S&P's 1981-2000 annual obligor / default counts by rating
SP_COUNTS_KEY = "SP-COUNTS"
#: key of S&P's 1981-2024 average cumulative default rates by rating
SP_CUMULATIVE_KEY = "SP-CUMULATIVE"
_SP = "S&P Global Ratings"
_SP_COUNTS_HOW = ("no public download: export data set spdata.raw of the R package QRM (CRAN) to this CSV "
                  "layout (year, <grade>obligors, <grade>defaults for A, BBB, BB, B, CCC)")
_SP_CUMULATIVE_HOW = ("no public download: transcribe Table 24 of S&P's 2024 Annual Global Corporate Default And "
                      "Rating Transition Study as grade,year,cumulative_default_rate (fractions)")


@dataclass(frozen=True)
class RestrictedFile:
    """One restricted data file: where it lies in a data directory, who publishes it, where to fetch it.

    Attributes:
        key: the name used in messages and by ``creditsim data fetch --series`` (the FRED mnemonic).
        relpath: path inside a data directory (layout of ``shared/data/macro/``).
        title: what the series is, with units.
        publisher: the copyright holder / original publisher.
        licence: the licence note that keeps it out of the wheel.
        url: where ``creditsim data fetch`` downloads it.
        covers_from: earliest observation (ISO date) the loaders need; a download starting later is
            refused, since the macro history and its back-fill regressions would silently change.
        covers_to: latest observation (ISO date) a complete file reaches at least (the vintage creditsim
            was built on); a file ending before it is truncated or of an older vintage.
        dev_path: the development copy's path relative to a source checkout's root, or None for the
            macro layout (``shared/data/macro/<relpath>`` beside the checkout).
    """

    key: str
    relpath: str
    title: str
    publisher: str
    licence: str
    url: str
    covers_from: str
    covers_to: str = "1900-01-01"
    dev_path: str | None = None

    @property
    def downloadable(self) -> bool:
        """Whether ``creditsim data fetch`` can download it (the S&P tables have no public address)."""
        return bool(self.url)


_ICE = "ICE Data Indices, LLC (ICE BofA indices, via FRED)"
_ICE_LICENCE = "copyrighted, reproduction restricted"

#: every restricted file creditsim reads, by key
RESTRICTED_FILES: dict[str, RestrictedFile] = {
    f.key: f
    for f in (
        RestrictedFile(
            "BAMLC0A0CM", "fred_series/BAMLC0A0CM.csv", "ICE BofA US Corporate Index option-adjusted spread, "
            "percent, daily", _ICE, _ICE_LICENCE, FRED_GRAPH_CSV.format(series="BAMLC0A0CM"), "1996-12-31",
            "2025-09-01",
        ),
        RestrictedFile(
            "BAMLH0A0HYM2", "fred_series/BAMLH0A0HYM2.csv", "ICE BofA US High Yield Index option-adjusted "
            "spread, percent, daily", _ICE, _ICE_LICENCE, FRED_GRAPH_CSV.format(series="BAMLH0A0HYM2"), "1996-12-31",
            "2025-09-01",
        ),
        RestrictedFile(
            "CSUSHPINSA", "fred_series/CSUSHPINSA.csv", "S&P CoreLogic Case-Shiller U.S. National Home Price "
            "Index, NSA, Jan-2000 = 100, monthly", "S&P Dow Jones Indices LLC and CoreLogic (via FRED)",
            "copyrighted, reproduction restricted", FRED_GRAPH_CSV.format(series="CSUSHPINSA"), "1987-01-01",
            "2025-09-01",
        ),
        RestrictedFile(
            # the 2019-10 vintage, not the current one: the back-fill regressions of the macro history are
            # estimated on it, so another vintage would move the back-filled 1980s values
            FRED_MD_KEY, "fred_md_2019-10.csv", "FRED-MD monthly database, vintage 2019-10 (McCracken & Ng 2016)",
            "Federal Reserve Bank of St. Louis, FRED-MD; includes Moody's, S&P, CBOE and Michigan series",
            "no licence stated, third-party copyrighted series inside",
            "https://files.stlouisfed.org/files/htdocs/fred-md/monthly/2019-10.csv", "1959-01-01", "2019-09-01",
        ),
        RestrictedFile(
            SP_COUNTS_KEY, "ratings/sp_annual_obligors_defaults_by_rating_1981_2000_wide.csv",
            "S&P annual obligors and defaults by rating (A..CCC/C), 1981-2000, via R package QRM 0.4-35", _SP,
            f"S&P copyright, redistributed under GPL >= 2 (not the wheel's Apache-2.0); {_SP_COUNTS_HOW}", "",
            "1981-01-01", "2000-01-01",
            dev_path="../shared/data/ratings/sp_annual_obligors_defaults_by_rating_1981_2000_wide.csv",
        ),
        RestrictedFile(
            SP_CUMULATIVE_KEY, "ratings/sp_global_avg_cumulative_default_rates_1981_2024.csv",
            "S&P global corporate average cumulative default rates by rating, 1981-2024 (2024 study, "
            "Table 24), fractions", _SP, f"S&P copyright, no licence to republish; {_SP_CUMULATIVE_HOW}", "",
            "1981-01-01", "2024-01-01",
            dev_path="tests/data/sp_ratings/sp_global_avg_cumulative_default_rates_1981_2024.csv",
        ),
    )
}


def is_restricted(key: str) -> bool:
    """Whether ``key`` (a FRED mnemonic, ``"FRED-MD"``, ``"SP-COUNTS"`` or ``"SP-CUMULATIVE"``) is a restricted
    file, i.e. not in the wheel."""
    return key in RESTRICTED_FILES


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/creditsim``, or ``~/.cache/creditsim`` when XDG_CACHE_HOME is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "creditsim"


def checkout_root() -> Path | None:
    """Root of the source checkout this package was imported from, or None for an installed package.

    Only a checkout counts (its root holds ``pyproject.toml``): an installed wheel in ``site-packages``
    must never pick up whatever happens to lie next to it.
    """
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else None


def sibling_data_dir() -> Path | None:
    """``shared/data/macro`` beside the source checkout this package was imported from, if both exist."""
    checkout = checkout_root()
    if checkout is None:
        return None
    shared = checkout.parent / "shared" / "data" / "macro"
    return shared if shared.is_dir() else None


def search_dirs() -> list[tuple[str, Path]]:
    """The directories searched, in order, each with its label for messages: env dir, cache, sibling
    ``shared/data/macro`` and the checkout (the last two only in a source checkout)."""
    dirs: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        dirs.append((ENV_DATA_DIR, Path(env).expanduser()))
    dirs.append(("cache", user_cache_dir()))
    sibling = sibling_data_dir()
    if sibling is not None:
        dirs.append(("shared", sibling))
    checkout = checkout_root()
    if checkout is not None:
        dirs.append(("checkout", checkout))
    return dirs


def _candidates(spec: RestrictedFile, dirs: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Where ``spec`` may lie in each searched directory: ``<dir>/<relpath>`` in the env dir and cache,
    the macro layout in the sibling ``shared/data/macro`` and ``dev_path`` in the checkout."""
    out = []
    for label, directory in dirs:
        if label == "shared":
            if spec.dev_path is None:
                out.append((label, directory / spec.relpath))
        elif label == "checkout":
            if spec.dev_path is not None:
                out.append((label, directory / spec.dev_path))
        else:
            out.append((label, directory / spec.relpath))
    return out


def check_restricted_span(key: str, path: Path, observed: pd.Index) -> None:
    """Refuse a restricted file whose observations (dates, ``observed``) do not cover what creditsim
    needs: a truncated download or a hand-saved file of another vintage would silently change the macro
    history, or fail deep inside a back-fill regression. One line naming the file and the fix."""
    spec = RESTRICTED_FILES[key]
    first = observed[0] if len(observed) else None
    last = observed[-1] if len(observed) else None
    if first is None or first > pd.Timestamp(spec.covers_from) or last < pd.Timestamp(spec.covers_to):
        span = "no observations" if first is None else f"observations {first:%Y-%m} .. {last:%Y-%m}"
        raise DataError(f"{path}: {key} has {span}, but creditsim needs {spec.covers_from[:7]} .. at least "
                        f"{spec.covers_to[:7]} (a truncated or other-vintage file); delete it, or run "
                        f"`creditsim data fetch --series {key} --force`")


def data_provenance(keys: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """For model governance: the restricted files ``keys`` that this process would read,
    ``{key: {"path", "sha256"}}`` (the first match in the search order; files not on this machine are
    left out). ``None`` = the macro series (the FRED-served files a simulation's macro history reads; the
    S&P tables reach a simulation only through the shipped fits). Runs record it, so a result says which
    vintage of the third-party series it was computed on."""
    import hashlib

    out = {}
    for key in ([k for k, spec in RESTRICTED_FILES.items() if spec.dev_path is None] if keys is None else keys):
        try:
            path = restricted_path(key)
        except RestrictedDataMissing:
            continue
        out[key] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


def restricted_path(key: str) -> Path:
    """Path of restricted file ``key``: the first of ``<dir>/<relpath>`` or ``<dir>/<relpath>.gz`` that
    exists, over :func:`search_dirs` in order (environment directory, cache, sibling ``shared/``).

    Read the environment at every call, so a test or a user can redirect the search; the parsed frames
    are cached by the loaders, so a change takes effect in a new process.

    Raises:
        DataError: ``key`` is not a restricted file, or no directory has it (one line: the series, its
            publisher and licence, the directories searched, and the fix).
    """
    if key not in RESTRICTED_FILES:
        raise DataError(f"unknown restricted series {key!r}; known: {sorted(RESTRICTED_FILES)}")
    spec = RESTRICTED_FILES[key]
    dirs = search_dirs()
    for _, path in _candidates(spec, dirs):
        for candidate in (path, path.with_name(path.name + ".gz")):
            if candidate.is_file():
                return candidate
    searched = ", ".join(f"{label} {path}" for label, path in dirs if label != "checkout")
    fix = "run `creditsim data fetch`, or set" if spec.downloadable else "set"
    raise RestrictedDataMissing(
        f"{key} ({spec.title}; {spec.publisher}; {spec.licence}) is not shipped with creditsim and was not "
        f"found as {spec.relpath} in: {searched}; {fix} {ENV_DATA_DIR} to a directory holding {spec.relpath}"
    )
