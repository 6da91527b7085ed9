"""Polite HTTP for a web source: robots.txt obeyed, a User-Agent, one or two connections, a delay
between requests, a byte cap per response, and redirects followed only within scope.

httpx makes the requests (async, connection pooling, HTTP/1.1 keep-alive, streamed bodies so a
cap holds before a large body is read); Protego, Scrapy's maintained parser, reads robots.txt
as Google and RFC 9309 do (wildcards, longest match, Crawl-delay); aiolimiter's leaky bucket
spaces request starts by the delay across both connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import httpx
from aiolimiter import AsyncLimiter
from protego import Protego

from rag.sources.config import WebSource
from rag.sources.scope import Scope, normalize

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# RFC 9309 asks crawlers to read at least 500 KiB of a robots.txt.
MAX_ROBOTS_BYTES = 512 * 1024
ACCEPT = (
    "text/html,application/xhtml+xml;q=0.9,application/pdf;q=0.8,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document;q=0.8,"
    "application/xml;q=0.5,*/*;q=0.1"
)


class FetchFailed(Exception):
    """No usable answer: a timeout, a refused connection, a body over the cap, a redirect loop."""


class RedirectRefused(Exception):
    """A redirect leads out of scope or to a URL robots.txt disallows."""

    def __init__(self, target: str, why: str) -> None:
        super().__init__(f"redirected {why} to {target}")
        self.target = target
        self.why = why


@dataclass
class Answer:
    """A final (non-redirect) answer: the URL that gave it, its status, headers and body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The media type, lowercase, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset parameter of the Content-Type, if any."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None


class Fetcher:
    """One source's HTTP client with its politeness rules; use as an async context manager."""

    def __init__(self, source: WebSource, scope: Scope) -> None:
        self.source = source
        self.scope = scope
        self.robots: Protego = Protego.parse("")
        self.delay = source.delay_seconds
        self.requests = 0
        self._limiter: AsyncLimiter | None = None
        self._slots = asyncio.Semaphore(source.connections)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": source.user_agent, "Accept": ACCEPT},
            timeout=httpx.Timeout(source.timeout_seconds),
            limits=httpx.Limits(
                max_connections=source.connections, max_keepalive_connections=source.connections
            ),
            follow_redirects=False,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def load_robots(self) -> None:
        """Read the site's robots.txt and take its delay; FetchFailed on a 5xx or no answer."""
        # RFC 9309: a 4xx means no rules; a 5xx or no answer means the whole site is
        # disallowed, so the sync stops there rather than crawl what it may not.
        url = self.scope.robots_url()
        answer = await self._request(url, {}, MAX_ROBOTS_BYTES, hops=5, any_redirect=True)
        if answer.status >= 500:
            raise FetchFailed(f"{url} answered {answer.status}: the site may not be crawled now")
        if 200 <= answer.status < 300:
            self.robots = Protego.parse(answer.body.decode("utf-8", errors="replace"))
        ua = self.source.user_agent
        delays = [self.source.delay_seconds, self.robots.crawl_delay(ua) or 0.0]
        rate = self.robots.request_rate(ua)
        if rate is not None and rate.requests:
            delays.append(rate.seconds / rate.requests)
        self.delay = max(delays)
        if self.delay > 0:
            self._limiter = AsyncLimiter(1, self.delay)
            await self._limiter.acquire()  # robots.txt was the first request: the next waits

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this User-Agent fetch the URL."""
        return bool(self.robots.can_fetch(url, self.source.user_agent))

    async def get(
        self,
        url: str,
        validators: Callable[[str], dict[str, str]],
        max_bytes: int,
        *,
        scoped: bool = True,
    ) -> Answer:
        """GET ``url`` with ``validators(url)``, following redirects in scope that robots allows."""
        # Not ``scoped`` (sitemaps): any path of the origin will do.
        return await self._request(url, validators, max_bytes, hops=MAX_REDIRECTS, scoped=scoped)

    async def _request(
        self,
        url: str,
        validators: Callable[[str], dict[str, str]] | dict[str, str],
        max_bytes: int,
        *,
        hops: int,
        scoped: bool = True,
        any_redirect: bool = False,
    ) -> Answer:
        for _ in range(hops + 1):
            headers = validators(url) if callable(validators) else validators
            answer = await self._once(url, headers, max_bytes)
            if answer.status not in REDIRECTS:
                return answer
            target = normalize(answer.headers.get("location", ""), url)
            if target is None:
                raise FetchFailed(f"HTTP {answer.status} without a usable Location")
            if not any_redirect:
                inside = (
                    self.scope.contains(target)
                    if scoped
                    else target.startswith(self.scope.origin + "/")
                )
                if not inside:
                    raise RedirectRefused(target, "out of scope")
                if not self.allowed(target):
                    raise RedirectRefused(target, "to a path robots.txt disallows,")
            url = target
        raise FetchFailed(f"more than {hops} redirects")

    async def _once(self, url: str, headers: dict[str, str], max_bytes: int) -> Answer:
        """One request, paced and counted; the body is read only for a 2xx, up to the cap."""
        async with self._slots:
            async with self._limiter or nullcontext():
                self.requests += 1
            try:
                async with self._client.stream("GET", url, headers=headers) as response:
                    answer = Answer(url, response.status_code, response.headers)
                    if 200 <= response.status_code < 300:
                        answer.body = await _read(response, max_bytes)
                    return answer
            except httpx.TimeoutException:
                raise FetchFailed(f"no answer within {self.source.timeout_seconds:g} s") from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    """The (decoded) body, or FetchFailed once it passes ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"larger than {max_bytes} bytes (Content-Length {declared})")
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > max_bytes:
            raise FetchFailed(f"larger than {max_bytes} bytes")
        parts.append(part)
    return b"".join(parts)
