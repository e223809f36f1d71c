"""``creditsim data fetch`` against a real HTTP server on 127.0.0.1: the real ``download`` (urllib, sockets,
redirects, timeouts) with ``--mirror`` pointing at a ``ThreadingHTTPServer`` in a thread.

Never the internet: ``urlopen`` is wrapped to refuse any host but 127.0.0.1, proxies are bypassed, and
every test checks that the server saw each request it expected. The default (publisher) URLs are checked
to be untouched. The bodies are built here, FRED-style, as in ``test_restricted.py``.
"""

from __future__ import annotations

import gzip
import re
import socketserver
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

import creditsim.datasets.fetch as fetch_mod
from creditsim.datasets.fetch import ENV_FETCH_MIRROR, USER_AGENT, fetch_restricted, mirror_url, resolve_mirror
from creditsim.datasets.restricted import ENV_DATA_DIR, FRED_MD_KEY, RESTRICTED_FILES
from creditsim.errors import ConfigError, DataError

#: the publisher URLs as shipped: a mirror must never change them
PUBLISHER_URLS = {
    "BAMLC0A0CM": "https://fred.stlouisfed.org/graph/fredgraph.csv?id=BAMLC0A0CM",
    "BAMLH0A0HYM2": "https://fred.stlouisfed.org/graph/fredgraph.csv?id=BAMLH0A0HYM2",
    "CSUSHPINSA": "https://fred.stlouisfed.org/graph/fredgraph.csv?id=CSUSHPINSA",
    FRED_MD_KEY: "https://files.stlouisfed.org/files/htdocs/fred-md/monthly/2019-10.csv",
}
#: the server answers without a byte until the test ends (a firewall that accepts and drops)
HANG = "hang"
#: the server closes the connection without an answer (a proxy that drops the request)
CLOSE = "close"


def fred_csv(key: str) -> bytes:
    """A FRED CSV as the endpoint writes it (``observation_date`` header, empty field = missing), spanning
    what creditsim needs of ``key``."""
    start = RESTRICTED_FILES[key].covers_from
    return f"observation_date,{key}\n{start},3.13\n1997-01-01,\n1997-01-02,3.06\n2025-12-30,2.84\n".encode()


def fred_md_csv() -> bytes:
    """A FRED-MD file: header, ``Transform:`` row, months 1959-01 .. 2019-10, trailing empty line."""
    columns = ("CPIAUCSL", "UNRATE", "INDPRO", "BAA", "GS10")
    rows = ["sasdate," + ",".join(columns), "Transform:," + ",".join("5" for _ in columns)]
    for i, month in enumerate(pd.date_range("1959-01-01", "2019-10-01", freq="MS")):
        rows.append(f"{month.month}/1/{month.year}," + ",".join(f"{10 + i + j:.1f}" for j in range(len(columns))))
    return ("\n".join(rows) + "\n" + "," * len(columns) + "\n").encode()


def publisher_path(key: str) -> str:
    """Path and query of ``key``'s publisher URL: what a mirror copying the publisher serves."""
    parts = urlsplit(PUBLISHER_URLS[key])
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@dataclass
class Hit:
    path: str
    query: str
    user_agent: str | None
    accept_encoding: str | None


@dataclass
class Server:
    """The fixture server: ``routes`` maps a request target (path?query) to ``(status, headers, body)`` or
    :data:`HANG`; an unknown target is a 404. ``hits`` records every request, in order."""

    url: str
    routes: dict[str, object] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def serve_publisher_paths(self, prefix: str = "") -> dict[str, bytes]:
        """Serve every restricted file under ``prefix`` at the publisher's path; the bodies, by key."""
        bodies = {key: fred_md_csv() if key == FRED_MD_KEY else fred_csv(key) for key in PUBLISHER_URLS}
        for key, body in bodies.items():
            self.routes[prefix + publisher_path(key)] = (200, {"Content-Type": "text/csv"}, body)
        return bodies


class _Handler(BaseHTTPRequestHandler):
    server: _Fixture

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state = self.server.state
        parts = urlsplit(self.path)
        state.hits.append(Hit(parts.path, parts.query, self.headers.get("User-Agent"),
                              self.headers.get("Accept-Encoding")))
        route = state.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"not found"))
        if route == HANG:
            state.release.wait(10)
        if route in (HANG, CLOSE):
            return
        status, headers, body = route
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
        pass


class _Fixture(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # skip HTTPServer's getfqdn: a reverse DNS lookup can stall an offline machine
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _Fixture(("127.0.0.1", 0), _Handler)
    httpd.state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path: Path) -> Path:
    """Only 127.0.0.1 may be asked, past any proxy; the cache and data dir are empty folders of the test;
    the developer's mirror setting does not leak in. Returns the cache directory."""
    real = urllib.request.urlopen

    def guarded(request, *args, **kwargs):  # noqa: ANN001, ANN202
        url = request.full_url if isinstance(request, urllib.request.Request) else str(request)
        assert urlsplit(url).hostname == "127.0.0.1", f"the test suite must not use the network: {url}"
        return real(request, *args, **kwargs)

    monkeypatch.setattr("urllib.request.urlopen", guarded)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    monkeypatch.delenv(ENV_FETCH_MIRROR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env"))
    return tmp_path / "xdg" / "creditsim"


def test_cli_fetches_every_file_through_the_mirror_then_finds_them_present(server, local_only, run_cli, capsys):
    bodies = server.serve_publisher_paths()
    assert run_cli(["data", "fetch", "--mirror", server.url + "/"]) == 0
    printed = capsys.readouterr().out
    for key, body in bodies.items():
        assert (local_only / RESTRICTED_FILES[key].relpath).read_bytes() == body, key
    assert [(h.path, h.query) for h in server.hits] == [
        ("/graph/fredgraph.csv", "id=BAMLC0A0CM"), ("/graph/fredgraph.csv", "id=BAMLH0A0HYM2"),
        ("/graph/fredgraph.csv", "id=CSUSHPINSA"), ("/files/htdocs/fred-md/monthly/2019-10.csv", ""),
    ]
    assert {h.user_agent for h in server.hits} == {USER_AGENT}
    assert {h.accept_encoding for h in server.hits} == {"identity"}  # urllib asks for no compression
    assert printed.count("fetched") == 4 and f"downloaded from {server.url}" in printed
    assert sorted(p.name for p in (local_only / "fred_series").iterdir()) == [
        "BAMLC0A0CM.csv", "BAMLH0A0HYM2.csv", "CSUSHPINSA.csv"]  # no temp file left
    # second run: everything present, no request
    assert run_cli(["data", "fetch", "--mirror", server.url]) == 0
    printed = capsys.readouterr().out
    assert printed.count("present") == 4 and "downloaded from" not in printed and len(server.hits) == 4
    assert {k: f.url for k, f in RESTRICTED_FILES.items() if f.downloadable} == PUBLISHER_URLS


def test_env_mirror_with_a_path_prefix_and_the_option_beats_it(server, local_only, monkeypatch):
    server.serve_publisher_paths("/fred")
    monkeypatch.setenv(ENV_FETCH_MIRROR, f" {server.url}/fred/ ")
    (done,) = fetch_restricted(["csushpinsa"])
    assert done.status == "fetched" and done.url == f"{server.url}/fred/graph/fredgraph.csv?id=CSUSHPINSA"
    assert (server.hits[-1].path, server.hits[-1].query) == ("/fred/graph/fredgraph.csv", "id=CSUSHPINSA")
    monkeypatch.setenv(ENV_FETCH_MIRROR, f"{server.url}/wrong")  # a 404 there: never asked
    (done,) = fetch_restricted(["FRED-MD"], mirror=f"{server.url}/fred")
    assert done.url == f"{server.url}/fred/files/htdocs/fred-md/monthly/2019-10.csv" and len(server.hits) == 2
    assert done.path.read_bytes() == fred_md_csv()


def test_the_mirror_rule():
    hy = PUBLISHER_URLS["BAMLH0A0HYM2"]
    assert mirror_url(hy, None) == mirror_url(hy, "") == hy
    assert mirror_url(hy, "http://10.0.0.5:8080") == "http://10.0.0.5:8080/graph/fredgraph.csv?id=BAMLH0A0HYM2"
    assert mirror_url(PUBLISHER_URLS[FRED_MD_KEY], resolve_mirror("https://m.corp/a/fred/")) == (
        "https://m.corp/a/fred/files/htdocs/fred-md/monthly/2019-10.csv")
    assert resolve_mirror("") is None and resolve_mirror(None) is None  # no env var here: the publisher


@pytest.mark.parametrize("bad, why", [
    ("ftp://mirror.corp/fred", "must be an http:// or https:// URL"),
    ("mirror.corp:8080", "must be an http:// or https:// URL"),
    ("http://", "must be an http:// or https:// URL"),
    ("http://mirror.corp:99999", "is not a valid URL"),
    ("https://me:secret@mirror.corp", "must not hold credentials"),
    ("https://mirror.corp/fred?token=1", "without a query or fragment"),
])
def test_a_bad_mirror_is_a_one_line_config_error_before_any_request(bad, why, monkeypatch, run_cli, one_line_error):
    with pytest.raises(ConfigError, match=f"^--mirror .*{why}") as err:
        fetch_restricted(mirror=bad)
    assert "\n" not in str(err.value) and "secret" not in str(err.value)
    monkeypatch.setenv(ENV_FETCH_MIRROR, bad)
    assert run_cli(["data", "fetch", "--series", "CSUSHPINSA"]) == 2
    err = one_line_error()
    assert err.startswith(f"error: {ENV_FETCH_MIRROR} ") and re.search(why, err), err


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (500, "Internal Server Error")])
def test_an_http_error_keeps_the_previous_file(server, local_only, status, reason, run_cli, one_line_error):
    server.routes[publisher_path("BAMLH0A0HYM2")] = (status, {"Content-Type": "text/plain"}, b"no")
    previous = local_only / "fred_series" / "BAMLH0A0HYM2.csv"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(fred_csv("BAMLH0A0HYM2"))
    assert run_cli(["data", "fetch", "--series", "BAMLH0A0HYM2", "--force", "--mirror", server.url]) == 2
    err = one_line_error()
    assert f"cannot download BAMLH0A0HYM2 from {server.url}/graph/fredgraph.csv?id=BAMLH0A0HYM2: HTTP {status} " \
           f"{reason};" in err
    assert "offline?" not in err and "by hand" in err
    assert previous.read_bytes() == fred_csv("BAMLH0A0HYM2")
    assert [p.name for p in previous.parent.iterdir()] == ["BAMLH0A0HYM2.csv"]
    assert len(server.hits) == 1


@pytest.mark.parametrize("redirect", [False, True], ids=["200 html", "302 to a login page"])
def test_an_html_page_is_refused_and_nothing_written(server, local_only, redirect):
    login = b"<!DOCTYPE html>\n<html><head><title>Proxy login</title></head><body><form></form></body></html>\n"
    page = (200, {"Content-Type": "text/html; charset=utf-8"}, login)
    if redirect:
        server.routes[publisher_path("CSUSHPINSA")] = (302, {"Location": f"{server.url}/login?next=x"}, b"")
        server.routes["/login?next=x"] = page
    else:
        server.routes[publisher_path("CSUSHPINSA")] = page
    with pytest.raises(DataError, match=r"^CSUSHPINSA: .* sent an HTML page, not the CSV file \(a proxy's login") as err:
        fetch_restricted(["CSUSHPINSA"], mirror=server.url)
    assert "\n" not in str(err.value)
    assert not local_only.exists()
    assert [h.path for h in server.hits] == ["/graph/fredgraph.csv", "/login"][: 1 + redirect]


def test_a_silent_server_times_out_quickly_in_one_line(server, local_only, run_cli, one_line_error, monkeypatch):
    server.routes[publisher_path("CSUSHPINSA")] = HANG
    start = time.perf_counter()
    assert run_cli(["data", "fetch", "--series", "CSUSHPINSA", "--mirror", server.url, "--timeout", "0.3"]) == 2
    err = one_line_error()
    assert "cannot download CSUSHPINSA" in err and "no answer within 0.3 s (timed out)" in err
    assert "offline? check the mirror" in err
    # the module default, looked up at the call, is what a test or a user changes
    monkeypatch.setattr(fetch_mod, "DOWNLOAD_TIMEOUT_S", 0.2)
    with pytest.raises(DataError, match=r"^no answer within 0\.2 s \(timed out\)$"):
        fetch_mod.download(server.url + publisher_path("CSUSHPINSA"))
    assert time.perf_counter() - start < 3
    assert len(server.hits) == 2 and not local_only.exists()
    for bad in ("0", "-1", "nan"):
        with pytest.raises(ConfigError, match="--timeout must be a positive number"):
            fetch_restricted(["CSUSHPINSA"], mirror=server.url, timeout=float(bad))


def test_a_refused_connection_is_one_line_naming_the_mirror(server, local_only):
    server.serve_publisher_paths()
    closed = server.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    with pytest.raises(DataError, match=r"^cannot download CSUSHPINSA from http://127\.0\.0\.1:1/graph/fredgraph\.csv"
                                        r"\?id=CSUSHPINSA: no connection \(.*refused.*\); offline\? check the mirror"):
        fetch_restricted(["CSUSHPINSA"], mirror=closed)
    assert not server.hits and not local_only.exists()


@pytest.mark.parametrize("headers, encode", [
    ({"Content-Encoding": "gzip"}, gzip.compress),
    ({"Content-Type": "application/gzip"}, gzip.compress),  # a mirror serving a .gz copy as is
    ({}, bytes),
])
def test_a_gzip_body_is_decoded(server, local_only, headers, encode):
    body = fred_csv("BAMLC0A0CM")
    server.routes[publisher_path("BAMLC0A0CM")] = (200, headers, encode(body))
    (done,) = fetch_restricted(["BAMLC0A0CM"], mirror=server.url)
    assert done.path.read_bytes() == body and len(server.hits) == 1


@pytest.mark.parametrize("route, why", [
    ((200, {"Content-Encoding": "br"}, b"\x0b\x02\x80"), r"unsupported Content-Encoding 'br' \(.*\); save"),
    ((200, {"Content-Encoding": "gzip"}, gzip.compress(b"observation_date,X\n")[:-6]),
     r"a corrupt gzip body \(.*\); save"),
    ((200, {"Content-Length": "9999"}, b"observation_date,BAMLC0A0CM\n1996-12-31,"),
     r"the transfer broke off \(IncompleteRead\(39 bytes read, 9960 more expected\)\); offline\? check"),
    (CLOSE, r"the transfer broke off \(RemoteDisconnected: Remote end closed connection without response\); "
            r"offline\? check"),
], ids=["br", "corrupt gzip", "cut short", "closed"])
def test_a_body_that_cannot_be_read_is_refused(server, local_only, route, why):
    server.routes[publisher_path("BAMLC0A0CM")] = route
    with pytest.raises(DataError, match=f"^cannot download BAMLC0A0CM from .*: {why}") as err:
        fetch_restricted(["BAMLC0A0CM"], mirror=server.url)
    assert "\n" not in str(err.value) and not local_only.exists() and len(server.hits) == 1
