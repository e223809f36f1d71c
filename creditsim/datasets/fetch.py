"""``creditsim data fetch``: download the restricted series at the user's site, into the user cache.

The series listed in :data:`creditsim.datasets.restricted.RESTRICTED_FILES` may not be republished, so
the wheel does not carry them; each user downloads them from the publisher's public endpoint (FRED's
CSV service; the St. Louis Fed's FRED-MD file) under the publisher's own terms. Every file is checked
(parsed by the reader that will use it, long enough for the macro history) before it replaces anything,
and written atomically (:func:`creditsim.fileio.atomic_write`): an interrupted or refused download
leaves the previous file, or nothing.

**Mirror.** Behind a firewall the publisher is often unreachable while an internal mirror (or a caching
proxy that serves the publisher's paths) is. ``mirror`` -- ``--mirror URL``, else the environment
variable ``CREDITSIM_FETCH_MIRROR`` -- is an ``http://`` or ``https://`` URL ``scheme://host[:port][/prefix]``
that replaces the scheme and host of every download URL, with its path prefix put in front of the
publisher's path; path and query are kept. With ``mirror = https://mirror.corp/fred``:

- ``https://fred.stlouisfed.org/graph/fredgraph.csv?id=CSUSHPINSA`` ->
  ``https://mirror.corp/fred/graph/fredgraph.csv?id=CSUSHPINSA``
- ``https://files.stlouisfed.org/files/htdocs/fred-md/monthly/2019-10.csv`` ->
  ``https://mirror.corp/fred/files/htdocs/fred-md/monthly/2019-10.csv``

Both publisher hosts map onto the one mirror (their paths do not collide). An empty value means the
publisher's own URLs (``--mirror ''`` ignores the environment variable). A forward proxy needs no
mirror: urllib honours ``https_proxy`` / ``no_proxy``.

**Transfer.** A server that sends no byte for ``timeout`` seconds (default :data:`DOWNLOAD_TIMEOUT_S`,
looked up at each call) fails the download. urllib asks for an uncompressed body
(``Accept-Encoding: identity``), but a proxy or a mirror of ``.gz`` copies may still send gzip: a
``Content-Encoding: gzip`` body, or one starting with the gzip magic bytes, is decompressed; another
encoding is refused. An HTML page where a CSV belongs (a proxy's login or error page) is refused.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from creditsim.datasets.files import parse_fred_csv
from creditsim.datasets.fred import parse_fred_md
from creditsim.datasets.restricted import (
    ENV_DATA_DIR,
    FRED_MD_KEY,
    FRED_MD_PAGE,
    RESTRICTED_FILES,
    SP_COUNTS_KEY,
    RestrictedFile,
    check_restricted_span,
    restricted_path,
    user_cache_dir,
)
from creditsim.errors import ConfigError, DataError, RestrictedDataMissing
from creditsim.fileio import atomic_write

log = logging.getLogger(__name__)

__all__ = [
    "FetchedFile",
    "DownloadError",
    "download",
    "fetch_restricted",
    "mirror_url",
    "resolve_mirror",
    "ENV_FETCH_MIRROR",
    "FRED_MD_COLUMNS",
    "DOWNLOAD_TIMEOUT_S",
    "USER_AGENT",
]

#: seconds without a byte from the server before the download counts as failed (offline, firewall)
DOWNLOAD_TIMEOUT_S: float = 60.0
#: environment variable with the mirror URL (``--mirror`` beats it)
ENV_FETCH_MIRROR = "CREDITSIM_FETCH_MIRROR"
#: ``User-Agent`` header of every request, so a mirror's or publisher's log can tell who asked
USER_AGENT = "creditsim data fetch"
#: FRED-MD columns :mod:`creditsim.datasets.macro` reads (1979 CPI base, back-fill regressors)
FRED_MD_COLUMNS: tuple[str, ...] = ("CPIAUCSL", "UNRATE", "INDPRO", "BAA", "GS10")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class FetchedFile:
    """Outcome of one file: ``status`` is ``"fetched"`` (downloaded now, from ``url``) or ``"present"``
    (kept; ``url`` is empty)."""

    key: str
    path: Path
    status: str
    first: str
    last: str
    url: str = ""


class DownloadError(DataError):
    """A download failed. ``status`` is the HTTP status the server answered with, ``None`` when no answer
    came (no connection, a timeout, a broken transfer): the caller's hint differs (offline vs. wrong URL)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror URL to use, checked, without a trailing ``/``; ``None``: the publisher's own URLs.

    ``mirror`` (the ``--mirror`` option) beats ``$CREDITSIM_FETCH_MIRROR``; ``None`` reads the variable,
    an empty string means no mirror. Checked before any download, so a typo fails at once, not after a
    timeout.

    Raises:
        ConfigError: not ``http(s)://host[:port][/prefix]``; a query or fragment (the rule has no place
            for them); user credentials (urllib does not send them, and messages would print them).
    """
    label = "--mirror"
    if mirror is None:
        label, mirror = ENV_FETCH_MIRROR, os.environ.get(ENV_FETCH_MIRROR, "")
    text = mirror.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0..65535
    except ValueError as exc:
        raise ConfigError(f"{label} is not a valid URL ({exc}): {text!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{label} must be an http:// or https:// URL such as https://mirror.example.com/fred, "
                          f"got {text!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{label} must not hold credentials (user@host): they are not sent and would be "
                          "printed in messages")
    if parts.query or parts.fragment:
        raise ConfigError(f"{label} must be scheme://host[:port][/prefix], without a query or fragment, got "
                          f"{text!r}")
    return text.rstrip("/")


def mirror_url(url: str, mirror: str | None) -> str:
    """``url`` fetched through ``mirror`` (a :func:`resolve_mirror` result): the mirror's scheme and host,
    the mirror's path prefix followed by ``url``'s path, and ``url``'s query. ``None``: ``url`` itself."""
    if not mirror:
        return url
    base, source = urlsplit(mirror), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + source.path, source.query, ""))


def _decoded(body: bytes, encoding: str, status: int) -> bytes:
    """The body without its ``Content-Encoding``: gzip (by header, or by magic bytes: a mirror serving a
    ``.gz`` copy as is) is decompressed; ``identity`` passes; anything else is refused (with the HTTP
    ``status`` of the answer: the server was reached)."""
    if encoding in ("gzip", "x-gzip") or body[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise DownloadError(f"a corrupt gzip body ({' '.join(str(exc).split())})", status=status) from None
    if encoding not in ("", "identity"):
        raise DownloadError(f"unsupported Content-Encoding {encoding!r} (creditsim reads plain or gzip)",
                            status=status)
    return body


def download(url: str, timeout: float | None = None) -> bytes:
    """The body of ``url`` (HTTP GET), decoded if the server compressed it.

    Args:
        url: the URL; redirects are followed, and ``https_proxy`` / ``no_proxy`` apply (urllib).
        timeout: seconds without a byte before giving up; ``None`` is :data:`DOWNLOAD_TIMEOUT_S`, read at
            the call (tests and users can change it).

    Raises:
        DownloadError: no connection, a timeout, a broken transfer or an HTTP error status (one line,
            with the reason; ``status`` holds the HTTP status if there was one).
    """
    wait = DOWNLOAD_TIMEOUT_S if timeout is None else timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=wait) as response:  # noqa: S310 - http(s) URLs only
            body = response.read()
            encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} {' '.join(str(exc.reason).split())}", status=exc.code) from None
    except (TimeoutError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise DownloadError(f"no answer within {wait:g} s (timed out)") from None
        raise DownloadError(f"no connection ({' '.join(str(reason).split())})") from None
    except (OSError, http.client.HTTPException) as exc:  # reset, closed mid-body (IncompleteRead), bad status
        text = " ".join(str(exc).split())
        why = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
        raise DownloadError(f"the transfer broke off ({why})") from None
    return _decoded(body, encoding, status)


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


def _looks_like_html(payload: bytes) -> bool:
    """Whether a body is an HTML page: a proxy's login page or a server's error page sent with status 200
    (the readers would refuse it too, but with a message about columns, not about the proxy)."""
    start = payload[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))


def _placed_file(spec: RestrictedFile) -> FetchedFile:
    """A file with no download address (the S&P tables): ``"present"`` where the search finds it, else a
    one-line ConfigError saying how to make it and where to put it."""
    from creditsim.datasets.ratings import read_sp_counts, read_sp_cumulative

    try:
        path = restricted_path(spec.key)
    except RestrictedDataMissing:
        raise ConfigError(f"{spec.key} ({spec.publisher}) has no public download address: place "
                          f"{spec.relpath} in ${ENV_DATA_DIR} or {user_cache_dir()} by hand ({spec.licence})") from None
    if spec.key == SP_COUNTS_KEY:  # the loaders' own checks: a copy of another period is not "present"
        years = read_sp_counts(path)[0].index
    else:
        years = read_sp_cumulative(path).index
    return FetchedFile(spec.key, path, "present", f"year {years[0]}", f"{years[-1]}")


def _fetch_one(spec: RestrictedFile, target: Path, mirror: str | None, timeout: float | None) -> FetchedFile:
    """Download one file (through ``mirror`` if set), check it and move it onto ``target`` atomically."""
    url = mirror_url(spec.url, mirror)
    try:
        payload = download(url, timeout=timeout)
    except DataError as exc:
        vintages = f" (vintages: {FRED_MD_PAGE})" if spec.key == FRED_MD_KEY else ""
        manual = (f"save the file as {target} by hand{vintages}, or set {ENV_DATA_DIR} to a directory holding "
                  f"{spec.relpath}")
        if not (isinstance(exc, DownloadError) and exc.status is not None):  # no answer at all
            where = "check the mirror" if mirror else f"set {ENV_FETCH_MIRROR} to an internal mirror"
            manual = f"offline? {where}, {manual}"
        raise DataError(f"cannot download {spec.key} from {url}: {exc}; {manual}") from None
    if _looks_like_html(payload):
        raise DataError(f"{spec.key}: {url} sent an HTML page, not the CSV file (a proxy's login or error "
                        "page?); the file was not saved")
    span: list[tuple[str, str]] = []

    def write(tmp: Path) -> None:
        tmp.write_bytes(payload)
        span.append(_check(spec, tmp))  # a refused file raises here: atomic_write removes it

    atomic_write(target, write)
    log.info("%s: %d bytes from %s -> %s (observations %s .. %s)", spec.key, len(payload), url, target, *span[0])
    return FetchedFile(spec.key, target, "fetched", *span[0], url=url)


def fetch_restricted(
    series: Iterable[str] | None = None,
    directory: str | Path | None = None,
    force: bool = False,
    mirror: str | None = None,
    timeout: float | None = None,
) -> list[FetchedFile]:
    """Download restricted series into ``directory`` (default: the user cache), in the searched layout.

    Args:
        series: keys of :data:`~creditsim.datasets.restricted.RESTRICTED_FILES` (FRED mnemonics, or
            ``"FRED-MD"``); ``None`` fetches all that have a download address. The S&P rating tables
            have none: asking for one reports it ``"present"`` where the search finds it, else is a
            one-line error saying how to make it and where to place it. Case-insensitive.
        directory: target data directory; ``None`` is :func:`~creditsim.datasets.restricted.user_cache_dir`,
            searched automatically. Another directory is searched once ``CREDITSIM_DATA_DIR`` names it.
        force: download again even where the file exists (a newer vintage: the macro history changes).
        mirror: base URL replacing the publisher's scheme and host (rule: the module docstring);
            ``None`` reads ``$CREDITSIM_FETCH_MIRROR``, ``""`` uses the publisher's URLs.
        timeout: seconds without a byte from the server before a download fails; ``None`` is
            :data:`DOWNLOAD_TIMEOUT_S`.

    Returns:
        One :class:`FetchedFile` per series, in request order.

    Raises:
        ConfigError: an unknown series key, a malformed mirror URL or a timeout that is not positive.
        DataError: a download failed (offline, an HTTP error status: one line, naming the series, the
            URL and the manual fix) or the server sent a file that does not parse or starts too late;
            files fetched before it are kept.
    """
    fetchable = [k for k, spec in RESTRICTED_FILES.items() if spec.downloadable]
    known = {k.lower(): k for k in fetchable}
    wanted = fetchable if series is None else [str(s).strip() for s in series]
    placed = [s.upper() for s in wanted if s.lower() not in known and s.upper() in RESTRICTED_FILES]
    if placed:
        return [_placed_file(RESTRICTED_FILES[key]) for key in dict.fromkeys(placed)]
    unknown = [s for s in wanted if s.lower() not in known]
    if unknown or not wanted:
        raise ConfigError(f"series must be among {fetchable}, got {unknown or wanted}")
    base = resolve_mirror(mirror)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
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
        results.append(_fetch_one(spec, target, base, timeout))
    return results
