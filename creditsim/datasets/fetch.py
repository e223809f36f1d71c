"""``creditsim data fetch``: download the restricted series at the user's site, into the user cache.

The series listed in :data:`creditsim.datasets.restricted.RESTRICTED_FILES` may not be republished, so
the wheel does not carry them; each user downloads them from the publisher's public endpoint (FRED's
CSV service; the St. Louis Fed's FRED-MD file) under the publisher's own terms. Every file is checked
(parsed by the reader that will use it, long enough for the macro history) before it replaces anything,
and written atomically (:func:`creditsim.fileio.atomic_write`): an interrupted or refused download
leaves the previous file, or nothing.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from creditsim.datasets.files import parse_fred_csv
from creditsim.datasets.fred import parse_fred_md
from creditsim.datasets.restricted import (
    ENV_DATA_DIR,
    FRED_MD_KEY,
    FRED_MD_PAGE,
    RESTRICTED_FILES,
    RestrictedFile,
    check_restricted_span,
    user_cache_dir,
)
from creditsim.errors import ConfigError, DataError
from creditsim.fileio import atomic_write

__all__ = ["FetchedFile", "download", "fetch_restricted", "FRED_MD_COLUMNS", "DOWNLOAD_TIMEOUT_S"]

#: seconds to wait for a server before the download counts as failed (offline, firewall)
DOWNLOAD_TIMEOUT_S: float = 60.0
#: FRED-MD columns :mod:`creditsim.datasets.macro` reads (1979 CPI base, back-fill regressors)
FRED_MD_COLUMNS: tuple[str, ...] = ("CPIAUCSL", "UNRATE", "INDPRO", "BAA", "GS10")


@dataclass(frozen=True)
class FetchedFile:
    """Outcome of one file: ``status`` is ``"fetched"`` (downloaded now) or ``"present"`` (kept)."""

    key: str
    path: Path
    status: str
    first: str
    last: str


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The body of ``url`` (HTTP GET). Tests replace this function: the suite never uses the network.

    Raises:
        DataError: no connection, a timeout or an HTTP error (one line, with the reason).
    """
    request = urllib.request.Request(url, headers={"User-Agent": "creditsim data fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
            return response.read()
    except urllib.error.HTTPError as exc:
        raise DataError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"no connection ({' '.join(str(reason).split())})") from None


def _check(spec: RestrictedFile, path: Path) -> tuple[str, str]:
    """Parse a downloaded file as its loader will; ``(first, last)`` observation dates, ``YYYY-MM-DD``.

    Refuses a file that starts after :attr:`RestrictedFile.covers_from` (a publisher serving a shorter
    history would silently change the macro history) or, for FRED-MD, lacks a column creditsim reads.
    """
    if spec.key == FRED_MD_KEY:
        values, _ = parse_fred_md(path)
        missing = [c for c in FRED_MD_COLUMNS if c not in values.columns]
        if missing:
            raise DataError(f"{spec.key}: the downloaded file lacks the columns {missing}")
        observed = values.index
    else:
        series = parse_fred_csv(path, spec.key).dropna()
        if series.empty:
            raise DataError(f"{spec.key}: the downloaded file has no observations")
        observed = series.index
    first, last = observed[0], observed[-1]
    if first > pd.Timestamp(spec.covers_from):
        raise DataError(f"{spec.key}: the download starts {first:%Y-%m-%d}, but creditsim needs it from "
                        f"{spec.covers_from}; the file was not saved")
    check_restricted_span(spec.key, path, observed)  # and it reaches the vintage creditsim was built on
    return f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"


def _observed_range(spec: RestrictedFile, path: Path) -> tuple[str, str]:
    """``(first, last)`` of a file already present; ``("?", "?")`` if it cannot be parsed."""
    try:
        return _check(spec, path)
    except DataError:
        return "?", "?"


def _fetch_one(spec: RestrictedFile, target: Path) -> FetchedFile:
    try:
        payload = download(spec.url)
    except DataError as exc:
        hint = f" (vintages: {FRED_MD_PAGE})" if spec.key == FRED_MD_KEY else ""
        raise DataError(f"cannot download {spec.key} from {spec.url}: {exc}; offline? Save the file as "
                        f"{target} by hand{hint}, or set {ENV_DATA_DIR} to a directory holding {spec.relpath}") from None
    span: list[tuple[str, str]] = []

    def write(tmp: Path) -> None:
        tmp.write_bytes(payload)
        span.append(_check(spec, tmp))  # a refused file raises here: atomic_write removes it

    atomic_write(target, write)
    return FetchedFile(spec.key, target, "fetched", *span[0])


def fetch_restricted(
    series: Iterable[str] | None = None, directory: str | Path | None = None, force: bool = False
) -> list[FetchedFile]:
    """Download restricted series into ``directory`` (default: the user cache), in the searched layout.

    Args:
        series: keys of :data:`~creditsim.datasets.restricted.RESTRICTED_FILES` (FRED mnemonics, or
            ``"FRED-MD"``); ``None`` fetches all. Case-insensitive.
        directory: target data directory; ``None`` is :func:`~creditsim.datasets.restricted.user_cache_dir`,
            searched automatically. Another directory is searched once ``CREDITSIM_DATA_DIR`` names it.
        force: download again even where the file exists (a newer vintage: the macro history changes).

    Returns:
        One :class:`FetchedFile` per series, in request order.

    Raises:
        ConfigError: an unknown series key.
        DataError: a download failed (offline: one line, naming the series and the manual fix) or the
            server sent a file that does not parse or starts too late; files fetched before it are kept.
    """
    known = {k.lower(): k for k in RESTRICTED_FILES}
    wanted = list(RESTRICTED_FILES) if series is None else [str(s).strip() for s in series]
    unknown = [s for s in wanted if s.lower() not in known]
    if unknown or not wanted:
        raise ConfigError(f"series must be among {list(RESTRICTED_FILES)}, got {unknown or wanted}")
    root = Path(directory).expanduser() if directory is not None else user_cache_dir()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--dir {root} exists and is not a directory")
    results = []
    for key in dict.fromkeys(known[s.lower()] for s in wanted):  # dedupe, keep order
        spec = RESTRICTED_FILES[key]
        target = root / spec.relpath
        if target.is_file() and not force:
            first, last = _observed_range(spec, target)
            if first != "?":
                results.append(FetchedFile(key, target, "present", first, last))
                continue
            # an unreadable or truncated copy would shadow good data: replace it
        results.append(_fetch_one(spec, target))
    return results
