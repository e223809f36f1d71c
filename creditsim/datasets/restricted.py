"""Series whose publishers forbid republication: not shipped in the wheel, found at the user's site.

The Apache-2.0 package may only carry data whose licence allows redistribution. The ICE BofA option-
adjusted spreads, the S&P CoreLogic Case-Shiller index and the FRED-MD database (Moody's, S&P, CBOE and
Michigan series inside) do not, so :func:`restricted_path` looks for them, in this order, in

1. ``$CREDITSIM_DATA_DIR`` (a directory the user or an administrator filled),
2. the user cache, ``$XDG_CACHE_HOME/creditsim`` or ``~/.cache/creditsim`` (where ``creditsim data
   fetch`` writes),
3. for development and tests only: ``shared/data/macro/`` beside a source checkout (the directory that
   holds ``pyproject.toml`` and ``creditsim/``), used only if it exists.

Every directory has the layout of ``shared/data/macro/``: ``fred_series/<SERIES>.csv`` and
``fred_md_2019-10.csv`` (a ``.gz`` of either is read as well). Nothing is found: a one-line
:class:`~creditsim.errors.DataError` names the series, its publisher and licence and the fix.
"""

from __future__ import annotations

import os
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
    """

    key: str
    relpath: str
    title: str
    publisher: str
    licence: str
    url: str
    covers_from: str
    covers_to: str = "1900-01-01"


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
    )
}


def is_restricted(key: str) -> bool:
    """Whether ``key`` (a FRED mnemonic or ``"FRED-MD"``) is a restricted file, i.e. not in the wheel."""
    return key in RESTRICTED_FILES


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/creditsim``, or ``~/.cache/creditsim`` when XDG_CACHE_HOME is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "creditsim"


def sibling_data_dir() -> Path | None:
    """``shared/data/macro`` beside the source checkout this package was imported from, if both exist.

    Only a checkout counts (its root holds ``pyproject.toml``): an installed wheel in ``site-packages``
    must never pick up whatever happens to lie next to it.
    """
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "pyproject.toml").is_file():
        return None
    shared = checkout.parent / "shared" / "data" / "macro"
    return shared if shared.is_dir() else None


def search_dirs() -> list[tuple[str, Path]]:
    """The directories searched, in order, each with its label for messages: env dir, cache, sibling."""
    dirs: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        dirs.append((ENV_DATA_DIR, Path(env).expanduser()))
    dirs.append(("cache", user_cache_dir()))
    sibling = sibling_data_dir()
    if sibling is not None:
        dirs.append(("shared", sibling))
    return dirs


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


def data_provenance() -> dict[str, dict[str, str]]:
    """For model governance: every restricted file this process would read, ``{key: {"path", "sha256"}}``
    (the first match in the search order; files not on this machine are left out). Runs record it, so a
    result says which vintage of the third-party series it was computed on."""
    import hashlib

    out = {}
    for key in RESTRICTED_FILES:
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
    for _, directory in dirs:
        for name in (spec.relpath, spec.relpath + ".gz"):
            candidate = directory / name
            if candidate.is_file():
                return candidate
    searched = ", ".join(f"{label} {path}" for label, path in dirs)
    raise RestrictedDataMissing(
        f"{key} ({spec.title}; {spec.publisher}; {spec.licence}) is not shipped with creditsim and was not "
        f"found as {spec.relpath} in: {searched}; run `creditsim data fetch`, or set {ENV_DATA_DIR} to a "
        f"directory holding {spec.relpath}"
    )
