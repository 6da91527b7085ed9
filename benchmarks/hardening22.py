"""Issue 22's findings, re-run against `rag serve` on 127.0.0.1 (part of benchmarks.hardening).

* /v1 appendix bodies: an earlier assistant message of "\\n\\nNote: " repeated to 64 KiB and
  128 KiB (RAG_MAX_BODY_BYTES raised to 256 KiB), and 1 KiB for comparison, each alone, then
  10 at a time while /health is probed every 20 ms;
* admin guessing: 200 wrong Bearer tokens, the 401s before the first 429;
* each low finding: the request the issue sent, and what it answers now.

Servers are started by benchmarks.hardening.rag_serve and stopped by their own pid; every loop
is bounded in count and time.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import PYTHON, ROOT, loadavg

RAG = str(Path(PYTHON).with_name("rag"))
NOTE = "\n\nNote: "
BIG_BODY = 256 * 1024


def appendix_body(content_bytes: int) -> dict[str, Any]:
    """A completion whose earlier answer is "\\n\\nNote: " repeated to ``content_bytes``."""
    return {"model": "career-rag", "messages": [
        {"role": "user", "content": "What does a data engineer do?"},
        {"role": "assistant", "content": NOTE * (content_bytes // len(NOTE))},
        {"role": "user", "content": "And what do they earn?"}]}  # fmt: skip


def _ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "max_ms": round(ms[-1], 1)}


def openai_appendix(
    serve: Any, probe: Any, index: Path, work: Path, reps: int, source: Path | None = None
) -> list[dict[str, Any]]:
    """Each body alone (``reps`` times), then 10 clients at once; /health probed meanwhile."""
    rows = []
    with serve(index, work, source, rate_limit="off", max_body_bytes=BIG_BODY) as (base, _):
        with httpx.Client(base_url=base, timeout=300) as c:
            c.post("/v1/chat/completions", json=appendix_body(1024))  # warm up
            # 1 KiB: the same conversation with a short answer, what the model's work costs.
            for kib in (1, 64, 128):
                body = appendix_body(kib * 1024)
                size = len(json.dumps(body).encode())
                load = loadavg()
                times, statuses = [], set()
                with probe(base) as health:
                    for _ in range(1 if source else reps):
                        t0 = time.perf_counter()
                        statuses.add(c.post("/v1/chat/completions", json=body).status_code)
                        times.append(time.perf_counter() - t0)
                rows.append({"case": f"{kib} KiB appendix, one at a time", "bytes": size,
                             "statuses": sorted(statuses), **_ms(times),
                             "health": health.summary(), "load": load})  # fmt: skip
                print(rows[-1], flush=True)
                if source is not None:
                    continue
                rows.append(_concurrent(base, probe, body, kib, size, reps))
                print(rows[-1], flush=True)
    return rows


def _concurrent(
    base: str, probe: Any, body: dict[str, Any], kib: int, size: int, reps: int
) -> dict[str, Any]:
    times: list[float] = []
    statuses: set[int] = set()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=300) as c:
            for _ in range(reps):
                t0 = time.perf_counter()
                status = c.post("/v1/chat/completions", json=body).status_code
                with lock:
                    times.append(time.perf_counter() - t0)
                    statuses.add(status)

    load = loadavg()
    with probe(base) as health:
        threads = [threading.Thread(target=client) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    return {"case": f"{kib} KiB appendix, 10 clients at once", "bytes": size,
            "statuses": sorted(statuses), **_ms(times), "health": health.summary(),
            "load": load}  # fmt: skip


def admin_guesses(serve: Any, index: Path, work: Path) -> dict[str, Any]:
    """200 wrong Bearer tokens at /admin/report.json, back to back, with the defaults."""
    token = secrets.token_urlsafe(32)
    with serve(index, work, admin_token=token) as (base, _), httpx.Client(base_url=base) as c:
        t0 = time.perf_counter()
        answers = [c.get("/admin/report.json", headers={"Authorization": f"Bearer guess-{n:05d}"
                                                         "-abcdefghij"}) for n in range(200)]  # fmt: skip
        seconds = time.perf_counter() - t0
        right = c.get("/admin/report.json", headers={"Authorization": f"Bearer {token}"})
    codes = [r.status_code for r in answers]
    first = codes.index(429) if 429 in codes else None
    return {"guesses": len(codes), "401_before_first_429": first,
            "count": {str(k): codes.count(k) for k in sorted(set(codes))},
            "retry_after_s": answers[-1].headers.get("retry-after"),
            "seconds": round(seconds, 2), "right_token_meanwhile": right.status_code,
            "429_detail": answers[-1].json()["detail"]}  # fmt: skip


def _row(request: str, answer: str) -> dict[str, str]:
    print(request, "->", answer, flush=True)
    return {"request": request, "answer": answer}


def _short(response: httpx.Response) -> str:
    text = response.text if len(response.text) < 240 else response.text[:237] + "..."
    return f"{response.status_code} {response.headers.get('content-type', '')}: `{text}`"


def admin_findings(serve: Any, index: Path, work: Path) -> list[dict[str, str]]:
    """The malformed admin inputs, and the cookie across sign-ins and sign-out."""
    rows = []
    token = secrets.token_urlsafe(32)
    bearer = {"Authorization": f"Bearer {token}"}
    with serve(index, work, admin_token=token) as (base, _), httpx.Client(base_url=base) as c:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        rows.append(_row("`POST /admin/login` body `&&&&&&&&&&` (11 fields)",
                         _short(c.post("/admin/login", content=b"&" * 10, headers=form))))  # fmt: skip
        for path in ("/admin", "/admin/report.csv", "/admin/report.json"):
            answer = c.get(path, params={"since": "999999w"}, headers=bearer)
            rows.append(_row(f"`GET {path}?since=999999w` with the token", _short(answer)))
        signed = [c.post("/admin/login", data={"token": token}).cookies.get("rag_admin")
                  for _ in range(2)]  # fmt: skip
        c.cookies.clear()
        rows.append(_row("two sign-ins: the cookies", f"differ: {signed[0] != signed[1]} "
                         f"(`{signed[0][:24]}...`, `{signed[1][:24]}...`)"))  # fmt: skip
        jar = {"Cookie": f"rag_admin={signed[0]}"}
        before = c.get("/admin/report.json", headers=jar).status_code
        c.post("/admin/logout", headers=jar)
        after = c.get("/admin/report.json", headers=jar).status_code
        c.cookies.clear()
        rows.append(_row("the first cookie before and after its sign-out, replayed",
                         f"{before}, then {after}"))  # fmt: skip
    data = work / "data-cli"
    data.mkdir(exist_ok=True)
    cli = subprocess.run([RAG, "report", "--since", "999999w",
                          "--data", str(data)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)  # fmt: skip
    rows.append(_row("`rag report --since 999999w`",
                     f"exit {cli.returncode}, stderr `{cli.stderr.strip()}`"))  # fmt: skip
    return rows


def log_findings(serve: Any, index: Path, work: Path) -> list[dict[str, str]]:
    """Retention while idle, the files' modes, secure_delete, and the per-client cap."""
    rows = []
    with serve(index, work, rate_limit="off", log_max_rows=1) as (base, _):
        data = work / f"data-{base.rsplit(':', 1)[1]}"
        secret = "secret-question-" + secrets.token_hex(8)
        with httpx.Client(base_url=base, timeout=60) as c:
            c.post("/search", json={"query": secret})
            for n in range(5):
                c.post("/search", json={"query": f"later question {n}"})
    stored = b"".join(p.read_bytes() for p in data.glob("querylog.sqlite*"))
    rows.append(_row("a question pruned (RAG_LOG_MAX_ROWS=1), then the log's files read as bytes",
                     f"the question's text found: {secret.encode() in stored}"))  # fmt: skip
    with serve(index, work, rate_limit="off") as (base, _):
        data = work / f"data-{base.rsplit(':', 1)[1]}"
        with httpx.Client(base_url=base, timeout=60) as c:
            c.post("/search", json={"query": "data engineer"})
            time.sleep(1)  # the writer commits within a moment; the files then exist
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in sorted(data.iterdir())}
            rows.append(_row("the modes of the log's files after one query",
                             ", ".join(f"`{k}` {v}" for k, v in modes.items())))  # fmt: skip
            old = (datetime.now(UTC) - timedelta(days=220)).isoformat(timespec="milliseconds")
            con = sqlite3.connect(data / "querylog.sqlite", timeout=30)
            with con:
                con.execute("INSERT INTO queries (ts, query_id, endpoint, query, chunk_ids, "
                            "scores, n_results, latency_ms) VALUES (?, 'aged', 'search', 'aged',"
                            " '[]', '[]', 0, 1)", (old,))  # fmt: skip
            t0 = time.monotonic()
            while time.monotonic() - t0 < 90:
                if not con.execute("SELECT 1 FROM queries WHERE query_id = 'aged'").fetchone():
                    break
                time.sleep(1)
            gone = con.execute("SELECT 1 FROM queries WHERE query_id = 'aged'").fetchone() is None
            con.close()
            rows.append(_row("a row 220 days old put in the log of an idle server (90-day limit)",
                             f"deleted: {gone}, after {time.monotonic() - t0:.0f} s idle"))  # fmt: skip
    with serve(index, work) as (base, _), httpx.Client(base_url=base, timeout=60) as c:
        data = work / f"data-{base.rsplit(':', 1)[1]}"
        flood = {"X-Forwarded-For": "203.0.113.9"}  # 127.0.0.1 is a trusted proxy by default
        question = {"query": "data engineer skills"}
        chat = {"messages": [{"role": "user", "content": "data engineer skills"}]}
        completion = {"messages": chat["messages"]}
        codes = []
        t0 = time.monotonic()
        for path, body in (("/search", question), ("/ask", question), ("/chat", chat),
                           ("/v1/chat/completions", completion)):  # fmt: skip
            codes += [c.post(path, json=body, headers=flood).status_code for _ in range(60)]
        seconds = time.monotonic() - t0
        reader = [c.post("/ask", json={"query": f"salary {n}"},
                         headers={"X-Forwarded-For": "198.51.100.7"}).status_code
                  for n in range(5)]  # fmt: skip
    con = sqlite3.connect(data / "querylog.sqlite")
    logged = con.execute("SELECT COUNT(*) FROM queries WHERE query LIKE '%engineer skills%'"
                         ).fetchone()[0]  # fmt: skip
    readers = con.execute("SELECT COUNT(*) FROM queries WHERE query LIKE 'salary%'").fetchone()[0]
    con.close()
    rows.append(_row(f"one client: 60 each of /search, /ask, /chat, /v1/chat/completions in "
                     f"{seconds:.0f} s (default limits), then another client asks 5",
                     f"{codes.count(200)} of {len(codes)} answered, {logged} logged; the other "
                     f"client's {reader.count(200)} answered, {readers} logged"))  # fmt: skip
    return rows


def protocol_findings(serve: Any, index: Path, work: Path) -> list[dict[str, str]]:
    """/mcp's Origin, tool errors and argument types; /v1/models/{id}."""
    rows = []
    accept = {"Accept": "application/json, text/event-stream"}
    with serve(index, work, rate_limit="off") as (base, _), httpx.Client(base_url=base) as c:
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        foreign = c.post("/mcp", json=listing, headers={**accept, "Origin": "https://evil.example"})
        rows.append(_row("`POST /mcp` with `Origin: https://evil.example`", _short(foreign)))
        for k in ('"5"', "true", "0"):
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "search",
                    "arguments": {"query": "data engineer", "k": json.loads(k)},
                },
            }
            result = c.post("/mcp", json=call, headers=accept).json()["result"]
            text = result["content"][0]["text"] if result.get("isError") else "(results)"
            rows.append(_row(f"`tools/call search` with `k: {k}`",
                             f"isError {result.get('isError', False)}: `{text}`"))  # fmt: skip
        envelope = c.post("/mcp", content=b'{"jsonrpc": "1.0", "id": 1}',
                          headers={**accept, "Content-Type": "application/json"})  # fmt: skip
        rows.append(_row('`POST /mcp` body `{"jsonrpc": "1.0", "id": 1}`', _short(envelope)))
        for name in ("career-rag", "gpt-4o"):
            rows.append(_row(f"`GET /v1/models/{name}`", _short(c.get(f"/v1/models/{name}"))))
    return rows


def report_lines(result: dict[str, Any]) -> list[str]:
    """The issue 22 section of HARDENING.md."""
    lines = ["", "# Issue 22", "", "## /v1/chat/completions with an appendix body",
             "", "An earlier assistant message of `\"\\n\\nNote: \"` repeated to 64 or 128 KiB "
             "(1 KiB: the cost of the search and answer alone); RAG_MAX_BODY_BYTES=262144, rate "
             "limit off. Target: at most 100 ms a request and /health p50 at most 20 ms while 10 "
             "run at once. Ten at once on two cores queue for the model: compare each size with "
             "1 KiB.", ""]  # fmt: skip
    before = result.get("before_appendix")
    if before:
        lines += ["Before (the server of commit "
                  f"{result['before_22']['commit']}, measured in this run):", ""]  # fmt: skip
        lines += _work_table(before)
        lines += ["", "Now:", ""]
    lines += _work_table(result["openai_appendix"])
    g = result["admin_guesses"]
    lines += ["", "## Guessing the admin token", "",
              f"{g['guesses']} wrong Bearer tokens at `/admin/report.json`, back to back, default "
              f"RAG_ADMIN_AUTH_LIMIT (10/minute): **{g['401_before_first_429']} answered 401 "
              f"before the first 429**; in all {g['count']} in {g['seconds']} s, Retry-After "
              f"{g['retry_after_s']} s. The right token from the same client meanwhile: "
              f"{g['right_token_meanwhile']}. Before: 401 every time, about 890 a second.",
              "", "## The low findings, as sent now", "", "| request | answer now |", "|---|---|"]  # fmt: skip
    for row in result["findings"]:
        lines.append(f"| {row['request']} | {row['answer'].replace('|', '&#124;')} |")
    return lines


def _work_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| case | body bytes | status | requests | p50 ms | max ms | /health p50 ms | "
             "/health max ms | probes | load before |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        h = r["health"]
        lines.append(f"| {r['case']} | {r['bytes']:,} | {'/'.join(map(str, r['statuses']))} | "
                     f"{r['n']} | {r['p50_ms']} | {r['max_ms']} | {h['p50_ms']} | {h['max_ms']} "
                     f"| {h['probes']} | {r['load']} |")  # fmt: skip
    return lines
