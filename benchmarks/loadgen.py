"""A small closed-loop HTTP load generator for 127.0.0.1, bounded in requests and time.

Each of ``concurrency`` clients keeps one HTTP/1.1 keep-alive connection and sends its next
request as soon as the previous answer arrives. The client is hand-written on asyncio streams
because on a 2-core machine the load generator shares the CPU with the server: httpx costs
about 5x more CPU per request, which would be measured as server slowness.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import summary_ms


def _request(host: str, port: int, path: str, body: dict[str, Any] | None) -> bytes:
    if body is None:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
        )
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += data[:-2]
    raise RuntimeError("response without length")


async def _run(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[dict[str, Any] | None],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> dict[str, Any]:
    payloads = [_request(host, port, path, b) for b in bodies]
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def client(cid: int) -> None:
        nonlocal issued, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while issued < max_requests and time.perf_counter() < deadline:
                i = issued
                issued += 1
                t0 = time.perf_counter()
                writer.write(payloads[(i * 7 + cid) % len(payloads)])
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1) if wall else 0.0,
        **summary_ms(latencies),
    }


def run_load(
    port: int,
    bodies: Sequence[dict[str, Any] | None],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    path: str = "/search",
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """Closed-loop load at ``concurrency``; stops after max_requests or max_seconds.

    A body of None sends a GET (for the /health baseline).
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load tests only target this machine")
    return asyncio.run(_run(host, port, path, bodies, concurrency, max_requests, max_seconds))
