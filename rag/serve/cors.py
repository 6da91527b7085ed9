"""Which browser origins may call the API: the settings' ``cors_origins``, and per collection
its own (a public careers collection bound to the careers site).

Starlette's CORS middleware answers each origin question; one is set up per collection, and a
request goes through the one of the collection its path names (``/c/NAME/...``), the default
collection's for the unprefixed query paths, and the server's for everything else.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response

from rag.collections import Catalog
from rag.config import Settings
from rag.serve.errors import error_response
from rag.serve.limits import COLLECTION_PATHS

_COLLECTION_PATH = re.compile(r"^/c/([^/]+)/")
# The unprefixed paths that serve the default collection (the query paths, its documents and
# viewer): they follow its origins.
_DEFAULT_COLLECTION_PATH = re.compile(
    "^(?:" + "|".join(re.escape(p) for p in sorted(COLLECTION_PATHS)) + r"|/documents|/ready)\b"
)
# With the headers an MCP client in a page sends to /mcp.
ALLOW_HEADERS = ["Content-Type", "Authorization", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name"]


def origins(settings: Settings) -> list[str]:
    """The origins ``settings`` allow: its ``cors_origins`` and the server's own address."""
    allowed = list(settings.cors_origins)
    own = [settings.public_url]
    if settings.host not in ("0.0.0.0", "::"):
        own.append(f"http://{settings.host}:{settings.port}")
    for url in own:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in allowed:
                allowed.append(origin)
    return allowed


class _CORS(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight in the API's JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.startswith(("access-", "vary"))}
        detail = f"CORS preflight refused: {bytes(response.body).decode()}"
        return error_response(response.status_code, detail, kind="cors", headers=headers)


def _cors(app: Any, allowed: list[str]) -> _CORS:
    return _CORS(
        app,
        allow_origins=allowed,
        allow_methods=["GET", "POST"],
        allow_headers=ALLOW_HEADERS,
        max_age=600,
    )


class CollectionCORS:
    """ASGI middleware: CORS by the origins of the collection a request is for."""

    def __init__(self, app: Any, settings: Settings, catalog: Catalog) -> None:
        self.server = _cors(app, origins(settings))
        self.per = {c.name: _cors(app, origins(c.settings)) for c in catalog}
        default = catalog.default
        self.default = self.per[default] if default is not None else self.server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.server(scope, receive, send)
            return
        path = scope["path"]
        match = _COLLECTION_PATH.match(path)
        if match is not None:
            cors = self.per.get(match.group(1), self.server)
        elif _DEFAULT_COLLECTION_PATH.match(path):
            cors = self.default
        else:
            cors = self.server
        await cors(scope, receive, send)
