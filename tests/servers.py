"""Real ``rag`` subprocesses for the tests: their environment, waiting on them, and ``rag serve``
on a free port of 127.0.0.1, stopped whatever happens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll until ``predicate()`` is truthy and return it; a hang guard, not a timing check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what} after {timeout} s")


def child_env(index_dir: Path, corpus: Path, data: Path, **extra: str) -> dict[str, str]:
    """What a ``rag`` subprocess needs: this checkout, the index, no download, no rate limit,
    and no RAG_* setting leaking in from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
            "RAG_INDEX_DIR": str(index_dir), "RAG_CORPUS_DIR": str(corpus),
            "RAG_DATA_DIR": str(data), "RAG_RATE_LIMIT": "off", **extra}  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def rag_serve(
    env: dict[str, str], log_path: Path, *, workers: int = 1, ready: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m rag serve`` on a free port, its output in ``log_path``; yields its URL once
    it answers /health (and, with ``ready``, once /ready says the index is loaded)."""
    port = free_port()
    cmd = [sys.executable, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers(path: str) -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}{path}", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    # Each worker process loads the index itself, and each request (a new connection) reaches
    # any of them: only a run of ready answers says that every worker has loaded it.
    in_a_row = 1 if workers == 1 else 20 * workers
    streak = [0]

    def all_ready() -> bool:
        streak[0] = streak[0] + 1 if answers("/ready") else 0
        return streak[0] >= in_a_row

    try:
        wait_for(lambda: answers("/health"), "the server to start", 120)
        if ready:
            wait_for(all_ready, "the index to load in every worker", 120)
        yield url, proc
    finally:
        stop(proc)
