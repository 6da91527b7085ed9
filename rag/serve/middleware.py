"""ASGI middleware: every request body is read, bounded and checked before the app sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rag.serve.errors import error_response

Scope = MutableMapping[str, Any]


Message = MutableMapping[str, Any]


ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


class BodyGuard:
    """Reads each request body (at most ``max_bytes`` of it) before the app sees it.

    A body over the limit gets 413 whatever its Content-Length says (chunked uploads have none),
    and a JSON body that is not UTF-8 gets 400, both naming the field ``body``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        too_big = f"request body is larger than {self.max_bytes} bytes"
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, too_big, "body", kind="too_large")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(413, too_big, "body", kind="too_large")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (not content_type or content_type.endswith((b"/json", b"+json"))):
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
