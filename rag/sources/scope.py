"""Which URLs a web source may fetch: its own site, under its path prefixes, pages and documents.

A crawl stays on the scheme, host and port it starts from, and under its start URL's section
unless ``include`` names other path prefixes: the folder of a file (``/guides/index.html`` and
``/sitemap.xml`` give ``/guides/`` and ``/``), else the path itself (``/careers`` gives
``/careers/``). A prefix ending in ``/`` also admits the path without it (``/careers``). URLs are compared once normalised: no fragment,
lowercase scheme and host, no default port, an empty path as ``/``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

# Links a crawl never requests: each would cost a request and give nothing to index. Anything
# else is requested and kept by its Content-Type, since a page's path may end in ".2" (/v1.2).
SKIPPED_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".bmp", ".tif", ".tiff", ".avif",
    ".css", ".js", ".mjs", ".map", ".json", ".xml", ".rss", ".atom", ".txt", ".csv",
    ".woff", ".woff2", ".ttf", ".otf", ".eot",
    ".mp3", ".mp4", ".m4a", ".wav", ".ogg", ".webm", ".mov", ".avi",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".dmg", ".exe", ".msi", ".apk",
    ".doc", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".epub",
})  # fmt: skip
DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(url: str, base: str | None = None) -> str | None:
    """``url`` (resolved against ``base``) in the form URLs are compared in; None if not http."""
    try:
        joined = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(urldefrag(joined).url)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def suffix(url: str) -> str:
    """The lowercase extension of the URL's last path segment ('' when it has none)."""
    return posixpath.splitext(urlsplit(url).path.rsplit("/", 1)[-1])[1].lower()


def is_document_link(url: str) -> bool:
    """Whether the URL names a PDF or Word file by its extension."""
    return suffix(url) in DOCUMENT_SUFFIXES


@dataclass(frozen=True)
class Scope:
    """The origin and path prefixes a source's URLs must have."""

    origin: str
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, url: str, include: list[str]) -> Scope:
        """The scope of a source at ``url``: its origin, and ``include`` or the URL's folder."""
        start = normalize(url)
        if start is None:
            raise ValueError(f"not an http(s) URL: {url}")
        parts = urlsplit(start)
        folder, _, last = parts.path.rpartition("/")
        # A route such as /careers names a section; a file such as /careers/index.html does not.
        section = f"{folder}/" if "." in last else f"{folder}/{last}/".replace("//", "/")
        return cls(f"{parts.scheme}://{parts.netloc}", tuple(include) or (section,))

    def contains(self, url: str) -> bool:
        """Whether a normalised URL is on this origin and under one of the prefixes."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            return False
        path = parts.path
        return any(
            path.startswith(prefix) or (prefix.endswith("/") and path == prefix[:-1])
            for prefix in self.prefixes
        )

    def robots_url(self) -> str:
        """Where this origin's robots.txt is."""
        return f"{self.origin}/robots.txt"


def followable(url: str) -> bool:
    """Whether a crawl should request a link: anything but a known asset or unread format."""
    return suffix(url) not in SKIPPED_SUFFIXES
