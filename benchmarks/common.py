"""Shared helpers for the benchmark scripts: machine facts, timing, child processes."""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEV = ROOT / "tests" / "data" / "dev_questions.jsonl"
# GNU time (Debian package `time`) measures a child's peak RSS from a small parent. wait4 from
# this process cannot: a child forked from a parent holding torch inherits its RSS until exec.
GNU_TIME = "/usr/bin/time"


def bench_queries(n: int = 256) -> list[str]:
    """The dev questions, topped up with synthetic ones: distinct, realistic query texts."""
    from benchmarks import synthetic

    dev = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]
    return (dev + synthetic.queries(max(0, n - len(dev))))[:n]


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and software versions, for the top of RESULTS.md."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("torch", "sentence-transformers", "onnxruntime", "faiss-cpu", "bm25s", "uvicorn"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
    }


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    """UTC time, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
    }


def time_calls(fn: Callable[[int], Any], n: int, *, warmup: int = 5) -> list[float]:
    """Durations in seconds of ``fn(i)`` for i in range(n), after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def run_child(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 3600
) -> dict[str, Any]:
    """Run a command; its wall time, output and own peak RSS in MiB (via GNU time)."""
    import tempfile

    rss_file = None
    if Path(GNU_TIME).exists():
        rss_file = tempfile.NamedTemporaryFile("r", suffix=".rss")
        cmd = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = t0 + timeout
    # Drain pipes in threads so a chatty child cannot block on a full pipe.
    import threading

    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def drain(stream: Any, key: str) -> None:
        for line in stream:
            chunks[key].append(line)

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    for t in threads:
        t.join(timeout=5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = float(usage.ru_maxrss)  # an upper bound (see GNU_TIME) when GNU time is missing
    if rss_file is not None:
        try:
            peak_kib = float(rss_file.read().strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
        rss_file.close()
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "user_s": round(usage.ru_utime, 2),
        "sys_s": round(usage.ru_stime, 2),
        "stdout": "".join(chunks["out"]),
        "stderr": "".join(chunks["err"]),
        "timed_out": wall > timeout,
    }


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 180) -> None:
    """Poll ``url`` until it answers 200 (the server's /ready), or raise."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not up yet, or still loading (503)
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s: {last}")


def self_peak_rss_mib() -> float:
    """This process's peak RSS so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and the shared/private split of a process, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def dump(obj: Any) -> str:
    """JSON for a child's last stdout line."""
    return json.dumps(obj, default=float)
