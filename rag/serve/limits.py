"""Per-client rate limits on the query, feedback and MCP endpoints and on the admin sign-in (the
``rate_limit`` setting).

Counting is the `limits` library's moving window in process memory: a client may make at most
N requests to one endpoint in any window of the given length, not N per clock minute (which
allows 2N across a minute boundary). Each endpoint has its own budget, so rating answers does
not use up a client's questions. The client is ``scope["client"]``, which
``ProxyHeadersMiddleware`` has already set from X-Forwarded-For when the peer is a trusted
proxy. Several worker processes each count on their own: the limit is per process.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from rag.serve.errors import error_response

# Counted by exact path and POST only. /v1/chat/completions (the OpenAI-compatible chat) is a
# question like /chat, with its own budget; /admin/login too: the rate is also how many admin
# tokens a client may try. /mcp: every MCP message is a POST there (each tool call, and a
# client's initialize and notifications).
LIMITED_PATHS = frozenset(
    {"/search", "/ask", "/chat", "/v1/chat/completions", "/feedback", "/admin/login", "/mcp"}
)
# Of those, the ones every collection serves under its prefix.
COLLECTION_PATHS = frozenset({"/search", "/ask", "/chat", "/feedback", "/mcp"})


# A collection's own paths: /c/NAME/search is limited as /search is, at that collection's rate.
_COLLECTION_PATH = re.compile(r"^/c/([^/]+)(/.*)$")


class RateLimit:
    """ASGI middleware answering 429 (with Retry-After) to a client over its rate.

    ``rate`` limits the paths of ``paths``; ``rates`` gives a collection its own rate on those
    paths under its prefix (``/c/NAME/search``) and, for the default collection, on the
    unprefixed ones too. Each path keeps its own budget.
    """

    def __init__(
        self,
        app: Any,
        rate: str,
        paths: Iterable[str] = LIMITED_PATHS,
        rates: Mapping[str, str] | None = None,
        default: str | None = None,
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.rates = {name: _Rate(r) for name, r in (rates or {}).items()}
        self.global_rate = _Rate(rate)
        # The unprefixed query paths serve the default collection: its rate applies to them.
        self.plain_rate = self.rates.get(default or "", self.global_rate)
        # Expired windows are dropped by the storage's own timer, so memory follows the
        # clients of the last window, not every client ever seen.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def _rate_for(self, path: str) -> _Rate | None:
        """The rate that limits ``path``, or None when it is not limited."""
        if path in self.paths:
            return self.plain_rate if path in COLLECTION_PATHS else self.global_rate
        match = _COLLECTION_PATH.match(path)
        if match and match.group(2) in COLLECTION_PATHS and match.group(1) in self.rates:
            return self.rates[match.group(1)]
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        rate = (
            self._rate_for(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if rate is None or not rate.items:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "unknown"
        for item in rate.items:
            if not await self.limiter.hit(item, scope["path"], key):
                stats = await self.limiter.get_window_stats(item, scope["path"], key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                detail = f"too many requests: at most {rate.text} on {scope['path']} per client"
                response = error_response(
                    429, detail, kind="rate_limited", headers={"Retry-After": str(retry)}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Rate:
    """A rate as configured and as the `limits` library counts it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[RateLimitItem] = [] if text == "off" else parse_many(text)
