"""Issues 16 and 22's findings, re-run against `rag serve` on 127.0.0.1: writes
benchmarks/HARDENING.md.

    python -m benchmarks.hardening [--index DIR] [--quick] [--before-16 COMMIT] [--before COMMIT]

Each part starts its own server (the shipped `rag serve`, so run_server's uvicorn options and
protocol are what is measured) with the settings it needs, and stops it by its own pid:

* bounded work: the 1.7 KB ReDoS /chat body, 60 KB messages, and /health latency meanwhile,
  probed every 20 ms from a second client;
* slow clients: 3,000 half-sent connections, how many the server holds while they wait and
  after the head deadline (counted as the server process's open sockets), a 32 MiB header,
  and how long SIGTERM takes with a slow client connected;
* the 500s and non-JSON answers of the issue, HEAD, the Content-Type;
* abuse: 100 back-to-back searches under the default rate limit, 1,000 ratings of one query,
  and the query log after 10,000 searches with RAG_LOG_MAX_ROWS=1000.

Issue 22's parts (the /v1 appendix bodies, admin guessing, the low findings) are in
benchmarks.hardening22. Every loop is bounded in count and time; the index defaults to the one
the test suite builds (.cache/test-index).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks import hardening22
from benchmarks.common import PYTHON, ROOT, free_port, loadavg, machine, now, wait_ready

RAG = str(Path(PYTHON).with_name("rag"))
OUT_MD = ROOT / "benchmarks" / "HARDENING.md"
OUT_JSON = ROOT / "benchmarks" / "hardening.json"


@contextmanager
def rag_serve(
    index: Path, work: Path, source: Path | None = None, **settings: object
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rag serve` on a free port of 127.0.0.1 with RAG_* settings; yields (base URL, process).

    ``source`` serves the `rag` package of another checkout (an older commit, to compare).
    """
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_CORPUS_DIR": str(ROOT / "corpus"),
           "RAG_DATA_DIR": str(work / f"data-{port}")}  # fmt: skip
    env.update({f"RAG_{k.upper()}": str(v) for k, v in settings.items()})
    command = [RAG, "serve", "--port", str(port)]
    if source is not None:
        env["PYTHONPATH"] = str(source)
        command = [PYTHON, "-c", f"from rag.cli import main; main(['serve', '--port', '{port}'])"]
    log = open(work / f"server-{port}.log", "w")
    proc = subprocess.Popen(command, cwd=source or ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready", timeout=300)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def open_sockets(pid: int) -> int:
    """Sockets the process has open (its listening socket included)."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            n += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return n


class HealthProbe:
    """GET /health every 20 ms from its own thread and connection, while a block runs."""

    def __init__(self, base: str) -> None:
        self.base, self.ms, self._stop = base, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as c:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                c.get("/health")
                self.ms.append((time.perf_counter() - t0) * 1000)
                self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(70)

    def summary(self) -> dict[str, float]:
        ms = sorted(self.ms)
        return {"probes": len(ms), "p50_ms": round(statistics.median(ms), 1),
                "max_ms": round(ms[-1], 1)}  # fmt: skip


def chat(*turns: str) -> dict[str, Any]:
    roles = ("user", "assistant")
    return {"messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]}


def work_cases() -> dict[str, dict[str, Any]]:
    """The bodies of the bounded-work part, each under the 64 KiB body cap."""
    listing = "Data engineers build pipelines, warehouses and dashboards; they use Python, SQL "
    listing += "and Spark. "
    return {
        "1.7 KB ReDoS body (assistant turn 'a' + 1,500 spaces + 'b')": chat(
            "What are the key skills of a data engineer?", "a" + " " * 1500 + "b",
            "tell me more about the first one"),
        "60 KB assistant turn of whitespace ('a' + 60,000 spaces + 'b')": chat(
            "What are the key skills of a data engineer?", "a" + " " * 60_000 + "b",
            "tell me more about the first one"),
        "60 KB assistant turn of prose (an enumeration, 700 sentences)": chat(
            "What does a data engineer do?", (listing * 700)[:60_000],
            "tell me more about the first one"),
        "60 KB assistant turn of '1,1,1,...' and ', and '": chat(
            "How much do data engineers earn?", ("1,1, and " * 7000)[:60_000],
            "how much do they earn?"),
        "60 KB earlier user turn (over the query limit: refused)": chat(
            "What " + "data engineer " * 4200 + "?", "Pipelines.", "How much do they earn?"),
    }  # fmt: skip


def bounded_work(
    index: Path, work: Path, reps: int, source: Path | None = None
) -> list[dict[str, Any]]:
    rows = []
    cases = work_cases()
    if source is not None:  # the old code: only the ReDoS body, once (it takes seconds)
        cases = dict(list(cases.items())[:1])
    with (
        rag_serve(index, work, source, rate_limit="off") as (base, _),
        httpx.Client(base_url=base, timeout=300) as c,
    ):
        c.post("/search", json={"query": "warm up"})
        for name, body in cases.items():
            size = len(json.dumps(body).encode())
            load_before = loadavg()
            with HealthProbe(base) as probe:
                times, statuses = [], set()
                started = time.monotonic()
                # At least `reps` requests and 2 s of them, so /health is probed often meanwhile.
                while len(times) < reps or (
                    source is None and time.monotonic() - started < 2 and len(times) < 50 * reps
                ):
                    t0 = time.perf_counter()
                    statuses.add(c.post("/chat", json=body).status_code)
                    times.append((time.perf_counter() - t0) * 1000)
            rows.append({"case": name, "bytes": size, "statuses": sorted(statuses), "n": len(times),
                         "p50_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "health": probe.summary(),
                         "load": load_before})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def slow_clients(index: Path, work: Path, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"opened": n}
    # The defaults: the head deadline is 10 s, the body deadline 15 s.
    deadline = 15.0
    with rag_serve(index, work, rate_limit="off") as (base, proc):
        pid = proc.pid
        port = int(base.rsplit(":", 1)[1])
        baseline = open_sockets(pid)
        socks = []
        pieces = [
            b"",
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
        ]
        t0 = time.monotonic()
        try:
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    s.sendall(pieces[i % 3])
                except OSError:
                    pass
                socks.append(s)
            time.sleep(1.0)
            out["held_at_1s"] = open_sockets(pid) - baseline
            with httpx.Client(base_url=base, timeout=30) as c:
                t1 = time.perf_counter()
                c.get("/health")
                out["health_ms_while_held"] = round((time.perf_counter() - t1) * 1000, 1)
            time.sleep(max(0.0, deadline + 3 - (time.monotonic() - t0)))
            out["held_after_deadline"] = open_sockets(pid) - baseline
            refused = 0
            for s in socks:
                s.settimeout(0.01)
                try:
                    refused += b" 503 " in s.recv(200)
                except OSError:
                    pass
            out["answered_503_at_connect"] = refused
        finally:
            for s in socks:
                s.close()
        # A 32 MiB header, sent as fast as the server reads it.
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        t1 = time.perf_counter()
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (32 << 20))
        except OSError:
            pass
        out["header_32mib"] = s.recv(300).split(b"\r\n")[0].decode()
        out["header_32mib_ms"] = round((time.perf_counter() - t1) * 1000, 1)
        s.close()
    # SIGTERM with a slow client: graceful timeout 10 s, body deadline longer than that.
    with rag_serve(index, work, body_timeout_s=120, header_timeout_s=120) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.5)
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        out["sigterm_with_slow_client_s"] = round(time.monotonic() - t1, 2)
        s.close()
    print(out, flush=True)
    return out


def errors(index: Path, work: Path) -> list[dict[str, Any]]:
    probes = [
        ("GET", "/web/a%00.js", {}, None),
        ("GET", "/web/" + "a" * 300 + ".js", {}, None),
        ("HEAD", "/health", {}, None),
        ("HEAD", "/documents", {}, None),
        ("POST", "/search", {"Content-Type": "text/plain"}, b'{"query": "x"}'),
        ("POST", "/search", {"Host": "evil.example"}, b'{"query": "x"}'),
        ("GET", "/docs", {}, None),
    ]
    rows = []
    with rag_serve(index, work, rate_limit="off") as (base, _), httpx.Client(base_url=base) as c:
        for method, path, headers, body in probes:
            headers = {"Content-Type": "application/json", **headers} if body else headers
            r = c.request(method, path, headers=headers, content=body)
            rows.append({"request": f"{method} {path[:40]}{'...' if len(path) > 40 else ''}"
                         f"{' ' + str(headers) if headers else ''}", "status": r.status_code,
                         "type": r.headers.get("content-type", "")})  # fmt: skip
        port = int(base.rsplit(":", 1)[1])
        for raw in (b"GARBAGE\r\n\r\n",
                    b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
                    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):  # fmt: skip
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                try:
                    s.sendall(raw)
                except OSError:
                    pass
                answer = s.recv(4096)
            head = answer.split(b"\r\n\r\n")[0].decode("latin-1").lower()
            rows.append(
                {
                    "request": f"raw {raw[:30]!r}...",
                    "status": int(head.split()[1]),
                    "type": "application/json" if "application/json" in head else head,
                }
            )
    print(rows, flush=True)
    return rows


def abuse(index: Path, work: Path, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with rag_serve(index, work) as (base, _), httpx.Client(base_url=base, timeout=60) as c:
        statuses = [c.post("/search", json={"query": "data engineer"}) for _ in range(100)]
        out["default_rate_limit"] = "60/minute"
        out["searches_200"] = sum(r.status_code == 200 for r in statuses)
        out["searches_429"] = sum(r.status_code == 429 for r in statuses)
        limited = next(r for r in statuses if r.status_code == 429)
        out["retry_after_s"] = int(limited.headers["retry-after"])
        out["429_body"] = limited.json()
        query_id = statuses[0].json()["query_id"]
    with rag_serve(index, work, rate_limit="off") as (base, _):
        rated = work / f"data-{base.rsplit(':', 1)[1]}"
        with httpx.Client(base_url=base, timeout=60) as c:
            query_id = c.post("/search", json={"query": "data"}).json()["query_id"]
            for n in range(1000):
                c.post("/feedback", json={"query_id": query_id, "rating": ("up", "down")[n % 2],
                                          "comment": "x" * 2000})  # fmt: skip
    con = sqlite3.connect(rated / "querylog.sqlite")
    out["feedback_rows_for_one_query_after_1000_ratings"] = con.execute(
        "SELECT COUNT(*) FROM feedback WHERE query_id = ?", (query_id,)
    ).fetchone()[0]
    con.close()
    # One client's 10,000 searches: no per-client cap here, so retention alone bounds the log.
    with rag_serve(
        index, work, rate_limit="off", log_max_rows=1000, log_max_rows_per_client_hour=0
    ) as (base, _):
        data = work / f"data-{base.rsplit(':', 1)[1]}"
        with httpx.Client(base_url=base, timeout=60) as c:
            t0 = time.perf_counter()
            for n in range(requests):
                c.post("/search", json={"query": f"data engineer skills {n % 50}", "k": 3})
            out["log_requests"] = requests
            out["log_requests_per_s"] = round(requests / (time.perf_counter() - t0), 1)
    con = sqlite3.connect(data / "querylog.sqlite")
    out["log_rows"] = con.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    con.close()
    out["log_bytes"] = sum(p.stat().st_size for p in data.glob("querylog.sqlite*"))
    print(out, flush=True)
    return out


def write_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    lines = [
        "# Hardening (issues 16 and 22), re-measured",
        "",
        "Written by `python -m benchmarks.hardening`; raw numbers in `hardening.json`. Every "
        "server is the shipped `rag serve` on 127.0.0.1 (one worker), index "
        f"`{result['index']}`. The machine is shared: read each row with its load average.",
        "",
        f"- {result['date']}; CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gib']} GiB; "
        f"Python {m['python']}; uvicorn {m['versions']['uvicorn']}",
        "",
        "## Bounded work (issue 16): one /chat at a time, /health probed every 20 ms meanwhile",
        "",
        "Before (issue 16): the 1.7 KB body took 12.6 s and /health 12.5 s meanwhile; a legal "
        "60 KB message cost 0.6-1.0 s of event-loop time.",
        "",
    ]
    before = result.get("before")
    if before:
        b = before["rows"][0]
        lines += [
            f"Before, measured in this run (`--before-16`, the server of commit {before['commit']}): "
            f"the 1.7 KB body took {b['max_ms'] / 1000:.1f} s and /health "
            f"{b['health']['max_ms'] / 1000:.1f} s meanwhile (load before {b['load']}).",
            "",
        ]
    lines += [
        "| body | bytes | status | /chat requests | /chat p50 ms | /chat max ms | /health p50 ms | "
        "/health max ms | probes | load before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["bounded_work"]:
        h = r["health"]
        lines.append(
            f"| {r['case']} | {r['bytes']:,} | {'/'.join(map(str, r['statuses']))} | {r['n']} | "
            f"{r['p50_ms']} | {r['max_ms']} | {h['p50_ms']} | {h['max_ms']} | {h['probes']} | "
            f"{r['load']} |"
        )
    s = result["slow_clients"]
    lines += [
        "",
        "## Slow clients (defaults: head deadline 10 s, body deadline 15 s, max_connections 1000)",
        "",
        "Before: 3,000 half-sent connections all held (file descriptors 27 -> 3,027), a 32 MiB "
        "header accepted, SIGTERM held up for as long as a slow client stayed.",
        "",
        "| what | measured |",
        "|---|---|",
        f"| half-sent connections opened (a third each: nothing, half a head, half a body) | "
        f"{s['opened']:,} |",
        f"| answered 503 at connect (over max_connections) | {s['answered_503_at_connect']:,} |",
        f"| held by the server 1 s later | {s['held_at_1s']:,} |",
        f"| /health meanwhile | {s['health_ms_while_held']} ms |",
        f"| held 3 s after the body deadline | {s['held_after_deadline']:,} |",
        f"| 32 MiB header | `{s['header_32mib']}` after {s['header_32mib_ms']} ms |",
        f"| SIGTERM with a slow client (graceful timeout 10 s) | "
        f"{s['sigterm_with_slow_client_s']} s |",
        "",
        "## Errors",
        "",
        "| request | status | content type |",
        "|---|---|---|",
    ]
    lines += [f"| `{r['request']}` | {r['status']} | {r['type']} |" for r in result["errors"]]
    a = result["abuse"]
    lines += [
        "",
        "## Abuse limits",
        "",
        "| what | measured |",
        "|---|---|",
        f"| 100 back-to-back /search, default {a['default_rate_limit']} | {a['searches_200']} "
        f"answered, {a['searches_429']} got 429 (Retry-After {a['retry_after_s']} s) |",
        f"| ratings of one query_id after 1,000 (2 KB comments) | "
        f"{a['feedback_rows_for_one_query_after_1000_ratings']} row |",
        f"| query log after {a['log_requests']:,} searches with RAG_LOG_MAX_ROWS=1000 | "
        f"{a['log_rows']:,} rows, {a['log_bytes']:,} bytes on disk "
        f"({a['log_requests_per_s']} req/s) |",
        "",
    ]
    if "openai_appendix" in result:
        lines += hardening22.report_lines(result)
    OUT_MD.write_text("\n".join(lines) + "\n")


@contextmanager
def checkout(commit: str, work: Path) -> Iterator[Path]:
    """``commit`` checked out into a temporary worktree under ``work``, removed afterwards."""
    old = work / f"before-{commit}"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), commit], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield old
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                       capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / ".cache" / "test-index")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and requests")
    parser.add_argument(
        "--before-16",
        metavar="COMMIT",
        help="also time issue 16's ReDoS body "
        "on the server of this commit (checked out into a temporary worktree)",
    )
    parser.add_argument("--before", metavar="COMMIT", help="also time issue 22's /v1 appendix "
                        "bodies on the server of this commit")  # fmt: skip
    args = parser.parse_args()
    if not (args.index / "manifest.json").is_file():
        raise SystemExit(f"no index at {args.index}: build one with `rag index` or the tests")
    with tempfile.TemporaryDirectory(prefix="rag-hardening-") as tmp:
        work = Path(tmp)
        result = {"date": now(), "machine": machine(), "index": str(args.index)}
        if args.before_16:
            with checkout(args.before_16, work) as old:
                rows = bounded_work(args.index, work, 1, source=old)
            result["before"] = {"commit": args.before_16, "rows": rows}
        if args.before:
            with checkout(args.before, work) as old:
                result["before_appendix"] = hardening22.openai_appendix(
                    rag_serve, HealthProbe, args.index, work, 1, source=old
                )
            result["before_22"] = {"commit": args.before}
        result["bounded_work"] = bounded_work(args.index, work, 3 if args.quick else 7)
        result["slow_clients"] = slow_clients(args.index, work, 300 if args.quick else 3000)
        result["errors"] = errors(args.index, work)
        result["abuse"] = abuse(args.index, work, 1000 if args.quick else 10_000)
        result["openai_appendix"] = hardening22.openai_appendix(
            rag_serve, HealthProbe, args.index, work, 3 if args.quick else 10
        )
        result["admin_guesses"] = hardening22.admin_guesses(rag_serve, args.index, work)
        result["findings"] = [
            *hardening22.admin_findings(rag_serve, args.index, work),
            *hardening22.log_findings(rag_serve, args.index, work),
            *hardening22.protocol_findings(rag_serve, args.index, work),
        ]
    OUT_JSON.write_text(json.dumps(result, indent=1) + "\n")
    write_report(result)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
