"""A real static web site on 127.0.0.1 for the source tests: files from a folder, served by
http.server with ETag and Last-Modified (so conditional GETs get 304s), an access log to assert
on, and per-path answers a test can set (a status, a redirect, a request that never answers).

Nothing here mocks the network: the sync under test talks HTTP to this server over a socket.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# How long a stalled request waits at most before answering anyway: far past the client's
# timeout in the tests that stall, and teardown releases it at once.
STALL_LIMIT_S = 30
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    path: str
    status: int
    user_agent: str
    if_none_match: str | None
    if_modified_since: str | None


@dataclass
class Site:
    """The site's files, its per-path answers and its access log."""

    root: Path
    base: str = ""
    etags: bool = True
    # path -> status (404, 410, 500...), ("redirect", code, location), ("chunked", body) or
    # "stall" (no answer until the test ends)
    answers: dict[str, object] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        """The absolute URL of a path on this site."""
        return self.base + path

    def write(self, path: str, content: str | bytes) -> None:
        """Create or change a file of the site."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def remove(self, path: str) -> None:
        """Delete a file of the site (it then answers 404)."""
        (self.root / path.lstrip("/")).unlink()

    def requested(self, path: str | None = None) -> list[Request]:
        """Requests made so far, for one path or all."""
        with self.lock:
            return [r for r in self.log if path is None or r.path == path]

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [r.path for r in self.requested()]

    def clear_log(self) -> None:
        """Forget the requests so far."""
        with self.lock:
            self.log.clear()
            self.max_in_flight = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        site = self.server.site
        with site.lock:
            site.in_flight += 1
            site.max_in_flight = max(site.max_in_flight, site.in_flight)
        try:
            status = self._answer(site, urlsplit(self.path).path)
        finally:
            with site.lock:
                site.in_flight -= 1
        with site.lock:
            site.log.append(
                Request(
                    self.path,
                    status,
                    self.headers.get("User-Agent", ""),
                    self.headers.get("If-None-Match"),
                    self.headers.get("If-Modified-Since"),
                )
            )

    def _answer(self, site: Site, path: str) -> int:
        special = site.answers.get(path)
        if special == "stall":
            site.release.wait(STALL_LIMIT_S)
            return self._send(503, b"too late")
        if isinstance(special, int):
            return self._send(special, b"<html><body>an error page</body></html>")
        if isinstance(special, tuple) and special[0] == "chunked":
            return self._send_chunked(str(special[1]).encode())
        if isinstance(special, tuple):
            _, code, location = special
            return self._send(int(code), b"", {"Location": str(location)})
        file = site.root / path.lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            return self._send(404, b"<html><body>Not found</body></html>")
        data = file.read_bytes()
        mtime = int(file.stat().st_mtime)
        headers = {"Last-Modified": formatdate(mtime, usegmt=True)}
        etag = f'"{hashlib.sha1(data).hexdigest()[:16]}"'
        if site.etags:
            headers["ETag"] = etag
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if site.etags and inm is not None:
            if etag in [t.strip() for t in inm.split(",")]:
                return self._send(304, b"", headers)
        elif ims is not None and parsedate_to_datetime(ims).timestamp() >= mtime:
            return self._send(304, b"", headers)
        headers["Content-Type"] = _content_type(file.name)
        return self._send(200, data, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status != 304:
            if "Content-Type" not in (headers or {}):
                self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)
        return status

    def _send_chunked(self, body: bytes) -> int:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for start in range(0, len(body), 16384):
                part = body[start : start + 16384]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading at its cap
        return 200

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the site's own log is what tests read


def _content_type(name: str) -> str:
    if name.endswith(".gz"):
        return "application/gzip"
    if name.endswith(".docx"):
        return DOCX_TYPE
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


@contextmanager
def serve_site(root: Path) -> Iterator[Site]:
    """Serve ``root`` on a free port of 127.0.0.1 until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    site = Site(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.site = site
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def page(
    title: str, links: list[str] = (), *, canonical: str | None = None, words: str = ""
) -> str:
    """A guide page as sites write them: a header with navigation, the guide in <main>, a
    footer; its text is about ``title`` so each page differs."""
    nav = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    role = title.lower()
    body = (
        f"<h1>{title}</h1>"
        f"<p>A {role} works with teams across the company to plan, build and improve the work "
        f"that customers rely on every day. {words}</p>"
        f"<h2>Responsibilities</h2>"
        f"<p>The {role} owns the quality of their projects from the first design review to the "
        f"last release, writes down decisions so others can follow them, and mentors newer "
        f"colleagues through reviews and pairing sessions.</p>"
        f"<ul><li>Plan the quarter's work for the {role} track with the manager</li>"
        f"<li>Review designs and give clear written feedback</li>"
        f"<li>Keep the documentation of every service up to date</li></ul>"
        f"<h2>Career growth</h2>"
        f"<p>Promotion from this level depends on the scope of impact a {role} shows over "
        f"several review cycles, on the trust of peers and on the examples they set.</p>"
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title} | Example "
        f"Careers</title>{link}</head><body><header><a href='/'>Example Careers</a><nav><ul>"
        f"{nav}</ul></nav></header><main><article>{body}</article></main><footer><p>Copyright "
        f"Example Corp. All rights reserved. Privacy policy and terms.</p></footer></body></html>"
    )


def sitemap(urls: list[str]) -> str:
    """A sitemap listing ``urls``."""
    items = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'
    )


def sitemap_index(urls: list[str]) -> str:
    """A sitemap index listing the sitemaps at ``urls``."""
    items = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</sitemapindex>'
    )
