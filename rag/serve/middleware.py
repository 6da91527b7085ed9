"""ASGI middleware: the Host header is checked, HEAD is answered as GET without a body, and
every request body is read, bounded and checked before the app sees it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import anyio

from rag.serve.errors import error_response

Scope = MutableMapping[str, Any]


Message = MutableMapping[str, Any]


ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


class BodyGuard:
    """Reads each request body (at most ``max_bytes`` of it) before the app sees it.

    A body over the limit gets 413 whatever its Content-Length says (chunked uploads have none),
    a body that has not all arrived within ``timeout_s`` gets 408 and the connection is closed
    (uvicorn has no body deadline: a client could hold a request open forever), and a JSON body
    that is not UTF-8 gets 400, all naming the field ``body``. Only the paths in ``form_paths``
    (the /admin sign-in form) or matching ``form_pattern`` (the admin page's forms) also take an
    HTML form's urlencoded body; only paths matching ``upload_pattern`` take a multipart body,
    of at most ``max_upload_bytes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float = 15.0,
        form_paths: Iterable[str] = (),
        form_pattern: re.Pattern[str] | None = None,
        upload_pattern: re.Pattern[str] | None = None,
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.form_paths = frozenset(form_paths)
        self.form_pattern = form_pattern
        self.upload_pattern = upload_pattern
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        # Any method: a PUT with a form is the router's to refuse (405), not a 415 here.
        upload = self.upload_pattern is not None and self.upload_pattern.match(path) is not None
        limit = max(self.max_upload_bytes, self.max_bytes) if upload else self.max_bytes
        too_big = f"request body is larger than {limit} bytes"
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await error_response(413, too_big, "body", kind="too_large")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout_s) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    too_large = error_response(413, too_big, "body", kind="too_large")
                    await too_large(scope, receive, send)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            detail = f"the request body did not arrive within {self.timeout_s:g} s"
            slow = error_response(
                408, detail, "body", kind="timeout", headers={"Connection": "close"}
            )
            await slow(scope, receive, send)
            return
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = content_type.endswith((b"/json", b"+json"))
        is_form = content_type == b"application/x-www-form-urlencoded" and (
            path in self.form_paths
            or (self.form_pattern is not None and self.form_pattern.match(path) is not None)
        )
        is_multipart = upload and content_type == b"multipart/form-data"
        if (
            body
            and not (is_json or is_form or is_multipart)
            and scope["method"] in ("POST", "PUT", "PATCH")
        ):
            # Every endpoint that takes a body takes JSON, the sign-in form aside (and FastAPI
            # parses none without a JSON Content-Type): say so, rather than fail validation.
            name = content_type.decode("latin-1") or "sent without a Content-Type"
            takes = "multipart/form-data" if upload else "application/json"
            detail = f"the body is {name}, but this endpoint takes {takes}"
            unsupported = error_response(415, detail, "body", kind="unsupported_media_type")
            await unsupported(scope, receive, send)
            return
        if body and is_json:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"request body is not valid UTF-8 (byte {exc.start})"
                await error_response(400, detail, "body", kind="not_utf8")(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Later calls wait for the client to go away, as streaming responses expect.
            return await receive()

        await self.app(scope, replay, send)


class HeadAsGet:
    """Answers HEAD wherever GET is answered: the GET response, headers only.

    FastAPI routes declared with GET do not take HEAD (a monitor's HEAD /health got 405).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server's own scope still says HEAD, so it sends no body either.
        await self.app({**scope, "method": "GET"}, receive, headers_only)


def host_of(value: str) -> str:
    """The host name of a Host header, without its port, lowercased (IPv6 without brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    """Answers only requests whose Host is allowed: 400 in JSON for any other.

    A page on another site can rebind its own name to 127.0.0.1 and then read a local server as
    same-origin; its requests still carry its own name as Host, which this refuses. ``"*"``
    allows any host; ``"*.example.com"`` allows example.com's subdomains.
    """

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.exact = {host_of(h) for h in allowed if not h.startswith("*.")}
        self.suffixes = tuple(h[1:].lower() for h in allowed if h.startswith("*."))

    def allows(self, host: str) -> bool:
        """Whether a request with this Host header value is answered."""
        name = host_of(host)
        return self.any or name in self.exact or (bool(name) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.any:
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not self.allows(host):
            detail = f"this server does not answer for host {host_of(host)!r}"
            await error_response(400, detail, kind="host_not_allowed")(scope, receive, send)
            return
        await self.app(scope, receive, send)
