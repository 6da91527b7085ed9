"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol with the limits it lacks.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but puts no deadline on a
request's head, and its httptools parser takes a head of any size: one client could hold
thousands of half-sent requests open, or send a 32 MiB header. ``GuardedHttpToolsProtocol``
adds, per connection:

* a head deadline: from the connection's first byte (or a keep-alive request's first byte) the
  request line and headers must arrive within ``header_timeout`` seconds, else 408 and close
  (a connection that sent nothing is closed without a word);
* a head-size cap: request line and headers over ``max_header_bytes`` get 431 (414 for the URL
  alone) and close;
* a connection cap: past ``max_connections`` open connections, a new one gets 503 at once
  (uvicorn's ``limit_concurrency`` would read its request first, answer it in plain text, and
  count the connection itself, refusing the last allowed one);
* JSON for the requests uvicorn would refuse in plain text (a malformed request, a bad
  Content-Length): 400 in the API's error shape.

The body's deadline is the app's (rag.serve.middleware.BodyGuard answers 408), where it can be
told from a slow handler.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits of ``GuardedHttpToolsProtocol``."""

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000


def error_bytes(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response in the API's JSON error shape that closes the connection."""
    body = json.dumps({"detail": detail, "field": None, "errors": []}).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Refused(Exception):
    """A parser callback refuses the request; ``data_received`` answers it."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head-size cap and a connection cap."""

    def __init__(self, *args: Any, limits: HttpLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or HttpLimits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0  # bytes read while inside the current head
        self._header_size = 0  # of the current head's parsed headers
        self._received = False  # any byte of the current request yet
        self._refusal: tuple[int, str] | None = None

    # -- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._answer(503, "the server has too many open connections", {"retry-after": "1"})
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        self._received = True
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            # Still inside a head after this read: every byte of it counts (a read that began
            # with the end of an earlier body overcounts by that, which errs on the safe side).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer(431, self._head_too_large())

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for any parser error, including one a callback raised on purpose.
        status, detail = self._refusal or (400, "malformed HTTP request")
        self._answer(status, detail)

    def shutdown(self) -> None:
        self._cancel_head_timer()
        super().shutdown()

    # -- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_size = 0
        if self._head_timer is None:  # a keep-alive request: the idle timer just stopped
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_header_bytes:
            self._refuse(414, f"the URL is longer than {self.limits.max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        # A head that arrived in one read is only seen here: count it as it is parsed.
        self._header_size += len(name) + len(value) + 4
        if len(self.url) + self._header_size > self.limits.max_header_bytes:
            self._refuse(431, self._head_too_large())

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._received = False
        super().on_response_complete()

    # -- helpers

    def _head_too_large(self) -> str:
        return f"the request headers are larger than {self.limits.max_header_bytes} bytes"

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise _Refused(detail)

    def _answer(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(error_bytes(status, detail, headers))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if not self._received or busy:
            # Nothing asked (a preconnect), or a response still being written: just close.
            self.transport.close()
            return
        self._answer(
            408, f"the request headers did not arrive within {self.limits.header_timeout:g} s"
        )
