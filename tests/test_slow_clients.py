"""Slow and malformed clients against a real uvicorn on 127.0.0.1, run with the options of
``rag.serve.runner.uvicorn_options``: every half-sent request is cut off by its deadline, every
refusal is JSON, and shutdown is not held up by a slow client (run with -s for the figures)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from rag.config import Settings
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from rag.serve.runner import uvicorn_options

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # the head, body and keep-alive deadlines of these servers
SLACK = 2.0  # how much later than its deadline a connection may close on a busy machine


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "header_timeout_s": TIMEOUT,
        "body_timeout_s": TIMEOUT,
        "keepalive_timeout_s": TIMEOUT,
        "graceful_timeout_s": 2.0,
        "rate_limit": "off",
    }
    return Settings(**{**values, **overrides})


class Running:
    """A uvicorn server in a thread on a free port of 127.0.0.1."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self.server, self.thread, self.port = server, thread, port

    @property
    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock


@contextmanager
def serving(settings: Settings, retriever: Retriever) -> Iterator[Running]:
    """Serve the app as ``run_server`` would; stop it (bounded) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, retriever), log_level="critical", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # hang guard: starts in well under a second
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield Running(server, thread, port)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s; got {data[:200]!r}")
    except ConnectionResetError:
        pass
    return data, time.monotonic() - t0


def status_and_json(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def server(tmp_path: Path, retriever: Retriever) -> Iterator[Running]:
    with serving(settings_for(tmp_path), retriever) as running:
        yield running


HEAD = b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"", None),  # connected, sent nothing: closed without a word
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", 408),  # headers never end
        (HEAD + b"Content-Length: 100\r\n\r\n" + b'{"query": "', 408),  # body never ends
        (HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"que\r\n', 408),  # no last chunk
    ],
    ids=["nothing", "partial headers", "partial body", "unterminated chunked body"],
)
def test_server_cuts_off_a_half_sent_request(
    server: Running, sent: bytes, status: int | None
) -> None:
    with server.connect() as sock:
        sock.sendall(sent)
        data, took = read_until_closed(sock, TIMEOUT + SLACK)
    assert TIMEOUT * 0.8 <= took <= TIMEOUT + SLACK
    if status is None:
        assert data == b""
    else:
        code, body = status_and_json(data)
        assert code == status and "did not arrive within 1 s" in body["detail"]


def test_server_cuts_off_headers_sent_a_byte_at_a_time(server: Running) -> None:
    # The deadline is for the whole head, not between bytes: a trickle does not extend it.
    with server.connect() as sock:
        t0 = time.monotonic()
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - t0 > TIMEOUT + SLACK:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, _ = read_until_closed(sock, TIMEOUT + SLACK)
    assert time.monotonic() - t0 <= TIMEOUT + 2 * SLACK
    assert status_and_json(data)[0] == 408


def test_server_closes_an_idle_keep_alive_connection(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data, took = read_until_closed(sock, TIMEOUT + SLACK)
    assert data.startswith(b"HTTP/1.1 200") and took <= TIMEOUT + SLACK


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 32768 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 2_000_000, 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
         b"Content-Length: 2\r\n\r\n", 400),
    ],
    ids=["32 KiB header", "2 MB header in pieces", "20 KB URL", "garbage", "bad length",
         "two lengths"],
)  # fmt: skip
def test_server_refuses_malformed_or_oversized_requests_in_json(
    server: Running, request_bytes: bytes, status: int
) -> None:
    with server.connect() as sock:
        try:
            sock.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent; the answer is waiting
        data, took = read_until_closed(sock, SLACK)
    code, body = status_and_json(data)
    assert code == status and body["detail"] and body["errors"] == []


def test_half_sent_connections_are_all_closed_after_the_deadline(server: Running) -> None:
    n = 300
    socks = []
    try:
        for i in range(n):
            sock = server.connect()
            # A third each: nothing, half a head, half a body.
            sock.sendall(
                [b"", b"GET /health HTTP/1.1\r\n", HEAD + b"Content-Length: 9\r\n\r\n{"][i % 3]
            )
            socks.append(sock)
        deadline = time.monotonic() + 5
        while server.open_connections < n and time.monotonic() < deadline:
            time.sleep(0.05)
        held_before = server.open_connections
        time.sleep(TIMEOUT + SLACK)
        held_after = server.open_connections
        # A health check still gets through meanwhile and after.
        with server.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_until_closed(sock, SLACK)[0].startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    print(f"\nhalf-sent connections: {held_before} held before the deadline, {held_after} after")
    assert held_before == n and held_after == 0


def test_connections_over_the_cap_get_503_at_once(tmp_path: Path, retriever: Retriever) -> None:
    with serving(settings_for(tmp_path, max_connections=5), retriever) as server:
        idle = [server.connect() for _ in range(5)]
        try:
            deadline = time.monotonic() + 5
            while server.open_connections < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            with server.connect() as sock:
                data, took = read_until_closed(sock, SLACK)
            code, body = status_and_json(data)
            assert code == 503 and b"retry-after: 1" in data.lower() and took < TIMEOUT
        finally:
            for sock in idle:
                sock.close()


def test_a_slow_client_does_not_hold_up_shutdown(tmp_path: Path, retriever: Retriever) -> None:
    # Deadlines longer than the graceful timeout: only the latter can end the slow request.
    settings = settings_for(tmp_path, header_timeout_s=60, body_timeout_s=60, graceful_timeout_s=1)
    with serving(settings, retriever) as server:
        slow = server.connect()
        slow.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
        time.sleep(0.2)
        t0 = time.monotonic()
        server.server.should_exit = True
        server.thread.join(10)
        took = time.monotonic() - t0
        slow.close()
    print(f"\nshutdown with a slow client: {took:.2f} s (graceful timeout 1 s)")
    assert not server.thread.is_alive() and took < 1 + SLACK
