"""/mcp: the MCP server (rag.serve.mcp_server) as the SDK's streamable HTTP transport.

The tools read the snapshot the API serves: each call takes it with ``Services.acquire`` and
gives it back when it ends, so a rebuilt index swapped in meanwhile never mixes into a call.

The transport is stateless and answers in JSON: every tool call is one POST and one response,
no session is kept, so several worker processes serve it alike and there is no session table
to fill. With no session there is nothing for the server to send unasked, so a GET (the
optional event stream) is answered 405, as the MCP spec allows; so is a DELETE (the SDK
answers that: no session to end). The SDK's session manager still runs a task group; ``McpEndpoint.running`` runs a new
one for each lifespan of the app (a Starlette app's own lifespan does not run when it is not
the app being served, so its routes are not mounted: the endpoint is).

The app's middleware sees /mcp as any other path: the Host check, the rate limit on POSTs, the
body guard (MCP posts JSON) and CORS. The SDK checks Host and Origin again, against the same
names (``transport_security``); an Origin it would refuse is refused here first, in the API's
JSON error shape. The SDK's other HTTP refusals are plain text or JSON-RPC errors whose message
may quote pydantic's (its types, the rejected input, a URL): ``public_errors`` turns the first
into the API's JSON shape and rewrites the second's message, so a client reads no internals.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from http import HTTPStatus
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from rag.collections import Catalog
from rag.config import Settings
from rag.errors import RagError
from rag.serve.cors import origins
from rag.serve.errors import error_response
from rag.serve.mcp_server import build_server
from rag.serve.middleware import host_of
from rag.serve.services import Services, Session
from rag.serve.state import ServerState

MCP_PATH = "/mcp"


class ServedIndex:
    """The tools' corpus over HTTP: the snapshot the API serves, held for one call at a time."""

    def __init__(self, prefix: str = "") -> None:
        self.services: Services | None = None
        # Citation links go to the viewer under this collection prefix ("/c/NAME" or "").
        self.prefix = prefix

    def served_documents(self) -> tuple[dict[str, Any], ...]:
        current = self.services.current if self.services is not None else None
        return current.documents if current is not None else ()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Session]:
        """The current snapshot for one call; a tool error while no index is loaded."""
        svc = self.services
        snapshot = svc.acquire() if svc is not None else None
        if svc is None or snapshot is None:
            why = (svc.error if svc is not None else None) or "the index is still loading"
            raise ToolError(f"no index is loaded: {why}; try again shortly")
        try:
            yield Session(svc, snapshot, prefix=self.prefix)
        finally:
            svc.release(snapshot)


def transport_security(hosts: Sequence[str], origins: Sequence[str]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding check, allowing the Host names the app answers (any port) and
    the Origins its CORS allows. The SDK matches exact names only: with a wildcard among the
    hosts or origins its check is off, and HostGuard, in front of every path, applies them."""
    if "*" in origins or any(h == "*" or h.startswith("*.") for h in hosts):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed: list[str] = []
    for host in hosts:
        name = host_of(host)
        name = f"[{name}]" if ":" in name else name  # an IPv6 address, as a Host header has it
        allowed += [name, f"{name}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(allowed)),
        allowed_origins=list(origins),
    )


class McpEndpoint:
    """The ASGI app at /mcp; ``running(services)`` serves it for one lifespan of the app."""

    def __init__(
        self, settings: Settings, security: TransportSecuritySettings, prefix: str = ""
    ) -> None:
        self.corpus = ServedIndex(prefix)
        self.server = build_server(self.corpus, settings)
        self.security = security
        self.max_body_bytes = settings.max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        """Read ``services``' snapshots and run a session manager (and its task group) until
        the block ends; calls still running then are cancelled."""
        # streamable_http_app() is how the SDK makes a server's session manager; a manager
        # runs once, so each lifespan makes its own. The Starlette app it returns is not used.
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.max_body_bytes,
            transport_security=self.security,
        )
        manager = self.server.session_manager
        self.corpus.services = services
        try:
            async with manager.run():
                self._manager = manager
                try:
                    yield
                finally:
                    self._manager = None
        finally:
            self.corpus.services = None

    def origin_refused(self, scope: Any) -> str | None:
        """The Origin header when the SDK's DNS-rebinding check would refuse it, else None."""
        if not self.security.enable_dns_rebinding_protection:
            return None
        origin = next((v for k, v in scope["headers"] if k == b"origin"), b"").decode("latin-1")
        return origin if origin and origin not in self.security.allowed_origins else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        manager = self._manager
        origin = self.origin_refused(scope)
        if origin is not None:
            detail = f"origin {origin[:200]!r} may not call /mcp: it is not in RAG_CORS_ORIGINS"
            await error_response(403, detail, kind="forbidden_origin")(scope, receive, send)
            return
        if scope["method"] == "GET":
            # The SDK's stateless transport would hold the stream open, empty, until the
            # client left.
            detail = "this MCP endpoint has no event stream to GET: POST JSON-RPC messages"
            no_stream = error_response(
                405, detail, kind="method_not_allowed", headers={"Allow": "POST"}
            )
            await no_stream(scope, receive, send)
            return
        if manager is None:
            starting = error_response(
                503, "the server is starting", kind="unavailable", headers={"Retry-After": "5"}
            )
            await starting(scope, receive, send)
            return
        await manager.handle_request(scope, receive, public_errors(scope, receive, send))


# JSON-RPC errors the SDK words with pydantic's own report (types, input, a URL) when a body is
# not a JSON-RPC message; said plainly instead.
_INVALID_MESSAGE = (
    "Invalid Request: the body is not a JSON-RPC 2.0 request, notification or response"
)


def public_errors(scope: Any, receive: Any, send: Any) -> Any:
    """``send`` for the SDK: its 4xx/5xx answers reach the client with no library internals.

    A JSON-RPC error keeps its code and id, with a plain message when the SDK's quotes pydantic;
    any other refusal (plain text, or no body) becomes the API's JSON error shape, keeping its
    status and headers (Allow...). Successful answers pass as they are.
    """
    held: dict[str, Any] = {}
    body = bytearray()

    async def guarded(message: Any) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held["start"] = message
            return
        if "start" not in held:
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body", False):
            return
        await _rewritten(held["start"], bytes(body))(scope, receive, send)

    return guarded


def _rewritten(start: Any, body: bytes) -> Any:
    status = start["status"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
    headers = {
        k: v for k, v in headers.items() if k.lower() not in ("content-length", "content-type")
    }
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    if isinstance(message, dict) and isinstance(message.get("error"), dict):
        error = message["error"]
        text = str(error.get("message", ""))
        if "validation error" in text.lower() or "pydantic" in text:
            # -32600 is JSON-RPC's code for a body that is no request (the SDK says -32602).
            error = {**error, "code": -32600, "message": _INVALID_MESSAGE}
            error.pop("data", None)
        return JSONResponse({**message, "error": error}, status, headers)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    text = body.decode("utf-8", "replace").strip() or phrase
    kind = phrase.lower().replace(" ", "_")
    return error_response(status, f"/mcp: {text[:300]}", kind=kind, headers=headers)


class McpRoutes:
    """/mcp (the default collection's) and /c/{collection}/mcp: one MCP endpoint per
    collection, each behind its collection's access check (rag.serve.access)."""

    def __init__(self, settings: Settings, catalog: Catalog, hosts: Sequence[str]) -> None:
        self.catalog = catalog
        self.endpoints = {
            c.name: McpEndpoint(
                c.settings,
                transport_security(hosts, origins(c.settings)),
                "" if c.name == catalog.default else f"/c/{c.name}",
            )
            for c in catalog
        }
        self._state: ServerState | None = None

    @asynccontextmanager
    async def running(self, state: ServerState) -> AsyncIterator[None]:
        """Serve every collection's endpoint on ``state``'s services until the block ends."""
        async with AsyncExitStack() as stack:
            for name, endpoint in self.endpoints.items():
                await stack.enter_async_context(endpoint.running(state.services[name]))
            self._state = state
            try:
                yield
            finally:
                self._state = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = self._state
        if state is None:
            starting = error_response(
                503, "the server is starting", kind="unavailable", headers={"Retry-After": "5"}
            )
            await starting(scope, receive, send)
            return
        try:
            collection = self.catalog.get(scope.get("path_params", {}).get("collection"))
            await state.access.authorise(HTTPConnection(scope), collection)
        except RagError as exc:
            await error_response(404, str(exc), kind=type(exc).__name__)(scope, receive, send)
            return
        except HTTPException as exc:
            refused = error_response(exc.status_code, str(exc.detail), headers=exc.headers)
            await refused(scope, receive, send)
            return
        await self.endpoints[collection.name](scope, receive, send)
