"""End-to-end hybrid ``/search`` at scale: a real ``rag serve`` over a synthetic index.

    python -m benchmarks.e2e_scale --chunks 1000000 --out /tmp/e2e1m
    python -m benchmarks.e2e_scale --chunks 100000 --out /tmp/e2e100k
    python -m benchmarks.e2e_scale --report        # the RESULTS.md section, from the JSON

Each run writes a synthetic corpus (``benchmarks.synthetic``, about 9.8 chunks per guide) into
``OUT/corpus`` and builds ``OUT/index`` with the project's own ``build_index`` in a child process
(its wall time and peak RSS, via GNU time, are the build's). Embedding a million passages with
the real model would take hours on 2 cores, so the build embeds with ``SyntheticEmbedder``:
clustered unit vectors under the default model's id. The index then gets the real ONNX export
of that model (from a test index), so the server encodes queries exactly as production does;
only the stored vectors are placeholders. The built index is reused when ``OUT/build.json``
records the same parameters.

The server is ``python -m rag serve`` itself (``Retriever.from_settings``, FAISS and BM25
memory-mapped, query log on), in its own process group, stopped at the end whatever happens.
Measured over HTTP on 127.0.0.1 with the raw keep-alive client of ``benchmarks.loadgen``:
the first search on its own (it builds what the retriever caches), sequential hybrid searches
(k=10), 4 closed-loop clients for at most 30 s, and filtered
searches (``filters.source``, a prefix matching about 0.1%, 1% and 10% of the guides).
Results are merged into ``benchmarks/e2e_scale.json`` under the chunk count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks import synthetic
from benchmarks.common import (
    PYTHON,
    ROOT,
    bench_queries,
    dump,
    free_port,
    loadavg,
    machine,
    now,
    run_child,
    self_peak_rss_mib,
    smaps_rollup,
)
from benchmarks.loadgen import run_load

RESULTS = ROOT / "benchmarks" / "e2e_scale.json"
# A real index built with the default model and its ONNX export (`make test` keeps it here).
REAL_INDEX = Path(os.environ.get("E2E_REAL_INDEX", "/work/main/.cache/test-index"))
# The default chunker cut the first 10,177 synthetic guides into 100,804 chunks.
CHUNKS_PER_DOC = 9.905
CLUSTERS = 2000
DIM = 384
K = 10
WARMUP = 20
CONCURRENCY = 4
CONCURRENT_SECONDS = 30.0
FILTERED_REQUESTS = 100
# Share of the guides a filter's source prefix matches; the middle one is the headline figure.
SELECTIVITIES = (0.001, 0.01, 0.1)
HEADLINE_SELECTIVITY = 0.01
SMAPS_KEYS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty",
              "Anonymous")  # fmt: skip


class SyntheticEmbedder:
    """The Embedder protocol with clustered unit vectors instead of a model (benchmarks only).

    It carries the default model's id so that the index it builds is the one a server with the
    default settings accepts; the vectors depend only on how many texts each call gets and on
    the call's number, so a build is reproducible.
    """

    def __init__(self, clusters: int = CLUSTERS) -> None:
        from rag.config import DEFAULT_MODEL

        self.model_id = DEFAULT_MODEL
        self.dim = DIM
        self.clusters = clusters
        self.calls = 0
        self.seconds = 0.0

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors around ``clusters`` fixed centres."""
        t0 = time.perf_counter()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = synthetic.clustered_vectors(
            len(texts), self.dim, clusters=self.clusters, seed=self.calls
        )
        self.calls += 1
        self.seconds += time.perf_counter() - t0
        return out


# ---------------------------------------------------------------------------------------- build


def _timed(phases: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - t0, 2)

    return wrapper


def child_build(out: Path, clusters: int) -> dict[str, Any]:
    """Build OUT/index from OUT/corpus with build_index (run in its own process)."""
    import rag.index.build as build
    from rag.index.manifest import Manifest
    from rag.models.onnx import copy_export

    # Time build_index's phases by wrapping the functions it calls; what they do is unchanged.
    phases: dict[str, float] = {}
    for name in ("load_corpus", "chunk_documents", "make_faiss_index", "build_bm25", "write_meta"):
        setattr(build, name, _timed(phases, name, getattr(build, name)))
    real = Manifest.read(REAL_INDEX)

    def attach_onnx(tmp: Path) -> None:
        # The real export of the same model, so queries are encoded as in production.
        t0 = time.perf_counter()
        copy_export(REAL_INDEX / "onnx", tmp / "onnx")
        manifest = Manifest.read(tmp)
        manifest.extra["onnx"] = real.extra["onnx"]
        manifest.write(tmp)
        phases["attach_onnx"] = round(time.perf_counter() - t0, 2)

    embedder = SyntheticEmbedder(clusters)
    t0 = time.perf_counter()
    manifest = build.build_index(
        out / "corpus",
        out / "index",
        embedder,
        onnx=False,
        sentence_index=False,
        before_swap=attach_onnx,
    )
    phases["embed"] = round(embedder.seconds, 2)
    return {
        "build_index_s": round(time.perf_counter() - t0, 2),
        "manifest_build_seconds": manifest.build_seconds,
        "build_id": manifest.build_id,
        "counts": manifest.counts,
        "faiss": manifest.faiss,
        "phases_s": phases,
        "peak_rss_self_mib": self_peak_rss_mib(),
    }


def ensure_index(out: Path, docs: int, clusters: int, rebuild: bool) -> dict[str, Any]:
    """The corpus and index under ``out``, built unless a matching build is recorded."""
    from rag.index.manifest import FORMAT_VERSION, Manifest
    from rag.ingest.chunking import ChunkerSettings
    from rag.ingest.loader import PARSER_VERSION

    params = {"docs": docs, "seed": 0, "clusters": clusters, "dim": DIM,
              "chunker": ChunkerSettings().to_dict(), "format_version": FORMAT_VERSION,
              "parser_version": PARSER_VERSION, "sentence_index": False,
              "onnx_fingerprint": Manifest.read(REAL_INDEX).extra["onnx"].get("fingerprint")}  # fmt: skip
    record_path = out / "build.json"
    if not rebuild and record_path.exists():
        record = json.loads(record_path.read_text())
        try:
            same = Manifest.read(out / "index").build_id == record["build"]["build_id"]
        except Exception:
            same = False
        if same and record.get("params") == params:
            return {**record, "reused": True}
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "corpus", ignore_errors=True)
    record_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    synthetic.write_corpus(out / "corpus", docs)
    corpus_s = round(time.perf_counter() - t0, 2)
    print(f"[e2e] wrote {docs} guides in {corpus_s} s; building the index", flush=True)
    load_before = loadavg()
    child = run_child(
        [PYTHON, "-m", "benchmarks.e2e_scale", "--child-build", str(out), "--clusters",
         str(clusters)],
        timeout=3 * 3600,
    )  # fmt: skip
    if child["returncode"] != 0:
        raise RuntimeError(f"index build failed:\n{child['stderr'][-4000:]}")
    build = json.loads(child["stdout"].strip().splitlines()[-1])
    record = {
        "params": params,
        "corpus_write_s": corpus_s,
        "build": {
            **build,
            "wall_s": round(child["wall_s"], 2),
            "peak_rss_mib": child["peak_rss_mib"],
            "user_s": child["user_s"],
            "sys_s": child["sys_s"],
            "load_before": load_before,
            "load_after": loadavg(),
            "at": now(),
        },
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "reused": False}


def disk_usage(index: Path) -> dict[str, float]:
    """Size of every file of the index in MiB (allocated blocks, as du counts them)."""
    out = {}
    for p in sorted(index.rglob("*")):
        if p.is_file():
            out[p.relative_to(index).as_posix()] = round(p.stat().st_blocks * 512 / 2**20, 1)
    out["total"] = round(sum(out.values()), 1)
    return out


def onnx_query_path(index: Path) -> str | None:
    """Where the server will find the ONNX query model (rag.models.query), or None."""
    from rag.index.manifest import Manifest
    from rag.models.query import onnx_dir_of

    found = onnx_dir_of(SimpleNamespace(manifest=Manifest.read(index), path=index))
    return str(found) if found else None


def child_breakdown(index: Path, docs: int, n: int) -> dict[str, Any]:
    """Median ms of each step of a hybrid search, in-process on the same index (own process)."""
    os.environ["RAG_INDEX_DIR"] = str(index)
    from rag.search.retriever import Retriever
    from rag.search.types import Filters

    t0 = time.perf_counter()
    r = Retriever.from_settings()
    load_s = time.perf_counter() - t0
    # The first hybrid search builds a SubjectFinder over every title, whose de-duplication
    # (`norm not in self._known`, a list) is quadratic in the documents: about ten minutes at
    # 100k guides. The server's first request pays it (``first_search``); here the finder is
    # given the same state through a set, so the per-query steps can be timed without it.
    from rag.search.subjects import SubjectFinder, tokenize

    docs_info = r.index.documents()
    t0 = time.perf_counter()
    finder, seen = SubjectFinder(), set()
    for d in docs_info:
        norm = tuple(x for t in tokenize(d.title) for x in t.norm)
        if norm and norm not in seen:
            seen.add(norm)
            finder._known.append(norm)
            finder._titles.append(d.title)
    r._roles = (finder, {d.title: d.id for d in docs_info})
    roles_s = time.perf_counter() - t0
    queries = bench_queries(n)
    for q in queries[:WARMUP]:
        r.search(q, K)
    vectors = {q: r.encode([q])[0] for q in queries}
    n_cand = min(r.index.size, max(r.fusion.candidates, 4 * K))
    prefix = filter_prefix(docs, HEADLINE_SELECTIVITY)
    rows = r.index.rows_where(source_prefix=prefix)

    def median_ms(fn: Callable[[str], Any]) -> float:
        times = []
        for q in queries:
            t = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t)
        return round(float(np.median(times)) * 1000, 3)

    steps = {
        "search": lambda q: r.search(q, K),
        "encode_onnx": lambda q: r.encode([q]),
        "search_vector": lambda q: r.search_vector(q, vectors[q], K),
        "dense_faiss": lambda q: r._dense(vectors[q], n_cand, None),
        "bm25_scores_top": lambda q: r._bm25_top(r._bm25_scores(q, None), n_cand),
        "named_document": lambda q: r.named_document(q),
        "filtered_rows_sqlite": lambda q: r.index.rows_where(source_prefix=prefix),
        "filtered_dense_faiss": lambda q: r._dense(vectors[q], n_cand, rows),
        "filtered_bm25": lambda q: r._bm25_top(r._bm25_scores(q, rows), n_cand),
        "filtered_search_vector": lambda q: r.search_vector(
            q, vectors[q], K, filters=Filters((), (), prefix)
        ),
    }
    return {
        "queries": n,
        "retriever_load_s": round(load_s, 2),
        "subject_finder_linear_build_s": round(roles_s, 2),
        "documents": len(docs_info),
        "filter_prefix": prefix,
        "filter_rows": int(rows.size),
        "median_ms": {name: median_ms(fn) for name, fn in steps.items()},
        "peak_rss_mib": self_peak_rss_mib(),
    }


def breakdown(out: Path, docs: int, n: int = 100) -> dict[str, Any]:
    """``child_breakdown`` in a child process, after the server has stopped."""
    child = run_child(
        [PYTHON, "-m", "benchmarks.e2e_scale", "--child-breakdown", str(out / "index"),
         "--docs", str(docs), "--queries", str(n)],
        timeout=1800,
    )  # fmt: skip
    if child["returncode"] != 0:
        return {"error": child["stderr"][-2000:]}
    return {**json.loads(child["stdout"].strip().splitlines()[-1]), "load_after": loadavg()}


# ---------------------------------------------------------------------------------------- serve


class Server:
    """``python -m rag serve`` on 127.0.0.1 in its own process group."""

    def __init__(self, out: Path, port: int) -> None:
        self.port = port
        self.data = Path(tempfile.mkdtemp(prefix="data-", dir=out))
        self.log_path = out / f"server-{port}.log"
        env = {
            **os.environ,
            "RAG_INDEX_DIR": str(out / "index"),
            "RAG_CORPUS_DIR": str(out / "corpus"),
            "RAG_DATA_DIR": str(self.data),
            # One load generator is one client; keep the limiter in the path, but out of reach.
            "RAG_RATE_LIMIT": "1000000/minute",
            # Every request logged, as one client's share of the log was before it was capped.
            "RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR": "0",
            "RAG_QUERY_BACKEND": "auto",
            "HF_HUB_OFFLINE": "1",
        }
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str, timeout: float) -> tuple[int, Any]:
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            con.request("GET", path)
            resp = con.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            con.close()

    def wait_ready(self, timeout: float = 900) -> dict[str, Any]:
        """Seconds to /health and to /ready; the first /ready hashes the corpus, so its
        request gets a long timeout of its own instead of being retried every 2 s."""
        t0 = time.perf_counter()
        deadline = t0 + timeout
        health_s = None
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if health_s is None:
                    if self.get("/health", 2)[0] == 200:
                        health_s = time.perf_counter() - t0
                    continue
                status, body = self.get("/ready", max(1.0, deadline - time.perf_counter()))
                if status == 200:
                    return {"health_s": round(health_s, 2),
                            "ready_s": round(time.perf_counter() - t0, 2), "ready": body}  # fmt: skip
                if body and body.get("status") == "error":
                    raise RuntimeError(f"server could not load the index: {body}")
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s: {self.tail()}")

    def memory(self) -> dict[str, float]:
        m = smaps_rollup(self.proc.pid)
        return {k: round(m.get(k, 0) / 1024, 1) for k in SMAPS_KEYS}

    def tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()[-3000:]

    def stop(self) -> None:
        """SIGINT the process group, then SIGKILL it if it lingers."""
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGINT)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def check_searches(
    port: int, bodies: Sequence[dict[str, Any]], prefix: str | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Send each body once (http.client): status, hit count, the server's took_ms, and whether
    every hit honours the source filter."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    took, hits, bad, errors = [], [], 0, 0
    try:
        for body in bodies:
            con.request("POST", "/search", json.dumps(body), {"Content-Type": "application/json"})
            resp = con.getresponse()
            data = json.loads(resp.read())
            if resp.status != 200:
                errors += 1
                continue
            took.append(float(data["took_ms"]))
            hits.append(len(data["results"]))
            if prefix is not None:
                bad += sum(not r["citation"]["source"].startswith(prefix) for r in data["results"])
    finally:
        con.close()
    return {
        "n": len(bodies),
        "errors": errors,
        "server_took_ms_p50": round(float(np.median(took)), 3) if took else None,
        "hits_min": min(hits) if hits else 0,
        "hits_mean": round(float(np.mean(hits)), 2) if hits else 0.0,
        "hits_outside_filter": bad,
    }


def filter_prefix(docs: int, share: float) -> str:
    """A source prefix matching 10**j guides (guide-000000.md ...), 10**j about share * docs."""
    j = max(0, min(6, round(math.log10(max(1.0, share * docs)))))
    return "guide-" + "0" * (6 - j)


def matched_chunks(index: Path, prefix: str) -> int:
    con = sqlite3.connect(f"file:{index / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT COUNT(*) FROM chunks WHERE source GLOB ?",
                               (prefix + "*",)).fetchone()[0])  # fmt: skip
    finally:
        con.close()


def measure(out: Path, docs: int, queries: int) -> dict[str, Any]:
    """Serve OUT/index with `rag serve` and time /search over HTTP."""
    texts = bench_queries(queries + WARMUP)
    warm = [{"query": q, "k": K} for q in texts[queries:]]
    bodies = [{"query": q, "k": K} for q in texts[:queries]]
    index = out / "index"
    server = Server(out, free_port())
    res: dict[str, Any] = {}
    try:
        res["startup"] = server.wait_ready()
        res["memory_at_ready"] = server.memory()
        port = server.port
        # The first search builds what the retriever caches (the titles' SubjectFinder).
        t0 = time.perf_counter()
        first = check_searches(port, warm[:1], timeout=3600)
        res["first_search"] = {"client_ms": round((time.perf_counter() - t0) * 1000, 1),
                               "server_took_ms": first["server_took_ms_p50"],
                               "errors": first["errors"]}  # fmt: skip
        print(f"[e2e] first /search: {res['first_search']['client_ms']:.0f} ms", flush=True)
        run_load(port, warm, concurrency=1, max_requests=WARMUP, max_seconds=60)
        res["sequential"] = run_load(
            port, bodies, concurrency=1, max_requests=queries, max_seconds=300
        )
        res["sequential"]["load"] = loadavg()
        res["check"] = check_searches(port, bodies[:100])
        run_load(port, warm, concurrency=CONCURRENCY, max_requests=WARMUP, max_seconds=30)
        res["concurrent"] = run_load(
            port, bodies, concurrency=CONCURRENCY, max_requests=100 * queries,
            max_seconds=CONCURRENT_SECONDS,
        )  # fmt: skip
        res["concurrent"]["load"] = loadavg()
        res["filtered"] = []
        for share in SELECTIVITIES:
            prefix = filter_prefix(docs, share)
            if any(f["prefix"] == prefix for f in res["filtered"]):
                continue  # a small corpus: two shares round to the same prefix
            fbodies = [{**b, "filters": {"source": prefix}} for b in bodies[:FILTERED_REQUESTS]]
            run_load(port, fbodies[:5], concurrency=1, max_requests=5, max_seconds=60)
            row = run_load(
                port, fbodies, concurrency=1, max_requests=FILTERED_REQUESTS, max_seconds=90
            )
            row.update(
                share_target=share,
                prefix=prefix,
                matched_chunks=matched_chunks(index, prefix),
                check=check_searches(port, fbodies[:20], prefix),
                load=loadavg(),
            )
            res["filtered"].append(row)
            print(f"[e2e] filtered {prefix}: p50 {row['p50_ms']} ms", flush=True)
        res["memory_after"] = server.memory()
        res["server_pid"] = server.proc.pid
    except BaseException:
        print(f"[e2e] server log ends:\n{server.tail()}", file=sys.stderr, flush=True)
        raise
    finally:
        server.stop()
    return res


def run(chunks: int, out: Path, queries: int, clusters: int, rebuild: bool) -> dict[str, Any]:
    """Build (or reuse) the index for about ``chunks`` chunks, serve it, measure it."""
    out = out.absolute()
    started, load_start = now(), loadavg()
    docs = max(1, round(chunks / CHUNKS_PER_DOC))
    built = ensure_index(out, docs, clusters, rebuild)
    index = out / "index"
    os.sync()  # freshly written pages would count as dirty in the server's smaps
    onnx = onnx_query_path(index)
    if onnx is None:
        raise RuntimeError(f"{index} has no usable ONNX export: the server would load torch")
    print(f"[e2e] index ready ({'reused' if built['reused'] else 'built'}); serving", flush=True)
    result = {
        "target_chunks": chunks,
        "docs": docs,
        "out": str(out),
        "started": started,
        "load_start": load_start,
        "machine": machine(),
        **built,
        "onnx_query_model": onnx,
        "disk_mib": disk_usage(index),
        "serve": measure(out, docs, queries),
    }
    print("[e2e] server stopped; timing the steps in-process", flush=True)
    result["breakdown"] = breakdown(out, docs)
    result["finished"], result["load_end"] = now(), loadavg()
    return result


# --------------------------------------------------------------------------------------- report


def _f(x: Any, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def report(data: dict[str, Any]) -> str:
    """The RESULTS.md section for the runs in ``data``."""
    runs = sorted(data["runs"].values(), key=lambda r: r["build"]["counts"]["chunks"])
    lines = [
        "## End-to-end hybrid /search at 1M chunks",
        "",
        "`python -m benchmarks.e2e_scale --chunks N --out DIR` (raw numbers: "
        "`benchmarks/e2e_scale.json`). A real `rag serve` (one uvicorn worker, FAISS and BM25 "
        "memory-mapped, query log and rate limiter on) over an index written by "
        "`build_index` from synthetic guides (`benchmarks/synthetic.py`, about 9.8 chunks "
        "each), with clustered placeholder vectors (2,000 clusters) in place of real "
        "embeddings and the real ONNX export of all-MiniLM-L6-v2 encoding the queries; no "
        f"sentence index. Hybrid = dense + BM25 + z-score fusion + SQLite, k={K}. Sequential: "
        f"{WARMUP} warm-up then the timed queries (`bench_queries`), one keep-alive client "
        f"(`benchmarks/loadgen.py`); {CONCURRENCY} clients: closed loop for "
        f"{CONCURRENT_SECONDS:.0f} s; filtered: `filters.source` a file-name prefix matching "
        f"about {HEADLINE_SELECTIVITY:.0%} of the guides, {FILTERED_REQUESTS} sequential "
        "queries. Build peak RSS is the build process's (GNU time); server RSS/PSS from "
        "/proc/PID/smaps_rollup after all the requests.",
        "",
        "| chunks | index | build s | build peak RSS MiB | server RSS / PSS MiB | first /search s "
        "| p50 ms | p95 ms | p99 ms | 4-client req/s (p50 ms) | filtered p50 ms "
        "| load start -> end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s = r["serve"]
        head = min(s["filtered"], key=lambda f: abs(f["share_target"] - HEADLINE_SELECTIVITY))
        mem = s["memory_after"]
        lines.append(
            f"| {r['build']['counts']['chunks']:,} | {r['build']['faiss']['type']} "
            f"| {_f(r['build']['wall_s'], 0)} | {_f(r['build']['peak_rss_mib'], 0)} "
            f"| {_f(mem['Rss'], 0)} / {_f(mem['Pss'], 0)} "
            f"| {_f(s['first_search']['server_took_ms'] / 1000, 1)} "
            f"| {_f(s['sequential']['p50_ms'])} "
            f"| {_f(s['sequential']['p95_ms'])} | {_f(s['sequential']['p99_ms'])} "
            f"| {_f(s['concurrent']['rps'])} ({_f(s['concurrent']['p50_ms'])}) "
            f"| {_f(head['p50_ms'])} | {r['load_start']} -> {r['load_end']} |"
        )
    lines += ["", "Per run:", ""]
    for r in runs:
        s, b = r["serve"], r["build"]
        m = s["memory_after"]
        ph = ", ".join(f"{k} {v:.0f}" for k, v in b["phases_s"].items())
        filt = "; ".join(
            f"`{f['prefix']}` ({f['matched_chunks']:,} chunks) p50 {_f(f['p50_ms'])} / p95 "
            f"{_f(f['p95_ms'])} ms" for f in s["filtered"]
        )  # fmt: skip
        disk = ", ".join(
            f"{k} {v:,.1f}" for k, v in r["disk_mib"].items() if k != "total" and v >= 0.1
        )
        lines += [
            f"- {b['counts']['chunks']:,} chunks ({b['counts']['documents']:,} guides), "
            f"{r['started']} to {r['finished']}: build {'reused from ' + b['at'] if r['reused'] else 'at ' + b['at']}"
            f" (load {b['load_before']} -> {b['load_after']}), {_f(b['wall_s'], 0)} s wall "
            f"(phases, s: {ph}); server ready in {s['startup']['ready_s']} s; sequential "
            f"n={s['sequential']['requests']}, {_f(s['sequential']['rps'])} req/s, server's own "
            f"took_ms p50 {_f(s['check']['server_took_ms_p50'])}; {CONCURRENCY} clients "
            f"{s['concurrent']['requests']} requests, p50/p99 {_f(s['concurrent']['p50_ms'])}/"
            f"{_f(s['concurrent']['p99_ms'])} ms, errors {s['concurrent']['errors']}; "
            f"filtered: {filt}.",
            f"  Server memory after the run, MiB: RSS {m['Rss']:,.0f}, PSS {m['Pss']:,.0f}, "
            f"anonymous {m['Anonymous']:,.0f}, file-backed clean "
            f"{m['Shared_Clean'] + m['Private_Clean']:,.0f} (at /ready: RSS "
            f"{s['memory_at_ready']['Rss']:,.0f}). Index on disk, MiB: {disk}; total "
            f"{r['disk_mib']['total']:,.1f}.",
        ]
        bd = r.get("breakdown") or {}
        if "median_ms" in bd:
            steps = ", ".join(f"{k} {v:,.2f}" for k, v in bd["median_ms"].items())
            lines.append(
                f"  The same steps in-process (`Retriever`, {bd['queries']} queries, medians, "
                f"ms; filtered = `{bd['filter_prefix']}`, {bd['filter_rows']:,} rows): {steps}."
            )
    mach = runs[-1]["machine"]
    lines += ["", f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['ram_gib']} GiB, "
              f"Python {mach['python']}, kernel {mach['kernel']}.", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """Run one size and merge it into benchmarks/e2e_scale.json, or print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000, help="about this many chunks")
    parser.add_argument("--out", type=Path, help="work directory: corpus, index, logs")
    parser.add_argument("--queries", type=int, default=500, help="timed sequential queries")
    parser.add_argument("--clusters", type=int, default=CLUSTERS)
    parser.add_argument("--rebuild", action="store_true", help="build even if one is recorded")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file to merge into")
    parser.add_argument("--report", action="store_true", help="print the RESULTS.md section")
    parser.add_argument("--child-build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-breakdown", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build is not None:
        print(dump(child_build(args.child_build, args.clusters)))
        return
    if args.child_breakdown is not None:
        print(dump(child_breakdown(args.child_breakdown, args.docs, args.queries)))
        return
    if args.report:
        print(report(json.loads(args.json.read_text())))
        return
    if args.out is None:
        parser.error("--out is required")
    result = run(args.chunks, args.out, args.queries, args.clusters, args.rebuild)
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": {}}
    data["runs"][str(result["build"]["counts"]["chunks"])] = result
    args.json.write_text(json.dumps(data, indent=2, default=float) + "\n")
    s = result["serve"]
    print(
        f"[e2e] {result['build']['counts']['chunks']:,} chunks: sequential p50/p95/p99 "
        f"{s['sequential']['p50_ms']}/{s['sequential']['p95_ms']}/{s['sequential']['p99_ms']} ms, "
        f"{CONCURRENCY} clients {s['concurrent']['rps']} req/s, RSS/PSS "
        f"{s['memory_after']['Rss']}/{s['memory_after']['Pss']} MiB",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
