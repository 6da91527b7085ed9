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
import time
from collections.abc import Iterable
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


class RateLimit:
    """ASGI middleware answering 429 (with Retry-After) to a client over its rate."""

    def __init__(self, app: Any, rate: str, paths: Iterable[str] = LIMITED_PATHS) -> None:
        self.app = app
        self.rate = rate
        self.items: list[RateLimitItem] = [] if rate == "off" else parse_many(rate)
        self.paths = frozenset(paths)
        # Expired windows are dropped by the storage's own timer, so memory follows the
        # clients of the last window, not every client ever seen.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            not self.items
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.paths
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "unknown"
        for item in self.items:
            if not await self.limiter.hit(item, scope["path"], key):
                stats = await self.limiter.get_window_stats(item, scope["path"], key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                detail = f"too many requests: at most {self.rate} on {scope['path']} per client"
                response = error_response(
                    429, detail, kind="rate_limited", headers={"Retry-After": str(retry)}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
