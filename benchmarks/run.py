"""Run the benchmarks and write benchmarks/RESULTS.md (``make bench``).

Every figure is set against the model's own floor measured in the same run (a raw encode), since
absolute times on a shared 2-core machine drift; the load average is recorded beside each part.

    python -m benchmarks.run                       # everything (about 20-40 min on 2 cores)
    python -m benchmarks.run --only latency,cold   # some parts, merged into results.json
    python -m benchmarks.run --quick               # small sizes, for checking the scripts

Parts: latency, throughput, cold, build, scale, bm25, memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import synthetic
from benchmarks.common import (
    PYTHON,
    ROOT,
    bench_queries,
    children,
    free_port,
    loadavg,
    machine,
    now,
    run_child,
    smaps_rollup,
    summary_ms,
    wait_ready,
)
from benchmarks.loadgen import run_load
from benchmarks.report import render

HERE = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"
PARTS = ("latency", "throughput", "cold", "build", "memory", "bm25", "scale")
RAG = str(Path(PYTHON).with_name("rag"))


class Bench:
    """Holds the shared fixtures (index, embedders) and the results of each part."""

    def __init__(self, work: Path, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.work.mkdir(parents=True, exist_ok=True)
        self.index_dir = work / "index"
        self.queries = bench_queries()
        self._index_ready = False

    # ------------------------------------------------------------------ fixtures

    def ensure_index(self) -> Path:
        """The real corpus indexed with the real model by `rag index` (reused while fresh)."""
        from rag.models.onnx import CONFIG, EXPORT_VERSION, has_onnx

        if self._index_ready:
            return self.index_dir
        onnx = self.index_dir / "onnx"
        current = has_onnx(onnx) and (
            json.loads((onnx / CONFIG).read_text()).get("export_version") == EXPORT_VERSION
        )
        r = run_child(
            [RAG, "index", "--json", *([] if not current else ["--if-stale"])],
            env={"RAG_CORPUS_DIR": str(CORPUS), "RAG_INDEX_DIR": str(self.index_dir)},
        )
        if r["returncode"] != 0 or not has_onnx(onnx):
            raise RuntimeError(f"rag index failed: {r['stderr'][-2000:]}")
        self._index_ready = True
        return self.index_dir

    def floor(self, what: str, n: int | None = None, corpus: Path | None = None) -> dict[str, Any]:
        """One floor from benchmarks.floors, in its own process."""
        cmd = [PYTHON, "-m", "benchmarks.floors", what, "--index", str(self.ensure_index())]
        if n is not None:
            cmd += ["--n", str(n)]
        if corpus is not None:
            cmd += ["--corpus", str(corpus)]
        r = run_child(cmd, timeout=3600)
        if r["returncode"] != 0:
            raise RuntimeError(f"{what} failed: {r['stderr'][-2000:]}")
        out = json.loads(r["stdout"].strip().splitlines()[-1])
        out["load"] = loadavg()
        return out

    @contextmanager
    def server(
        self,
        backend: str,
        *,
        index: Path | None = None,
        workers: int = 1,
        mmap: bool = True,
        shipped: bool = False,
    ) -> Iterator[tuple[int, subprocess.Popen]]:
        """A real uvicorn serving the API on 127.0.0.1, stopped (by its own pid) on exit.

        ``shipped`` runs `rag serve` itself (Retriever.from_settings, RAG_QUERY_BACKEND).
        """
        port = free_port()
        index = index or self.ensure_index()
        cmd = [PYTHON, "-m", "benchmarks.serve", "--index", str(index),
               "--port", str(port), "--backend", backend, "--workers", str(workers)]  # fmt: skip
        if not mmap:
            cmd.append("--no-mmap")
        if shipped:
            cmd = [RAG, "serve", "--port", str(port), "--workers", str(workers)]
        # One load generator is one client: the rate limit would answer most of it with 429,
        # and the per-client cap would stop logging it (every request is logged, as measured
        # before the cap).
        env = {**os.environ, "RAG_DATA_DIR": str(self.work / "data"), "RAG_INDEX_DIR": str(index),
               "RAG_QUERY_BACKEND": backend, "RAG_RATE_LIMIT": "off",
               "RAG_LOG_MAX_ROWS_PER_CLIENT_HOUR": "0"}  # fmt: skip
        log = open(self.work / f"server-{port}.log", "w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://127.0.0.1:{port}/ready", timeout=300)
            yield port, proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    def bodies(self) -> list[dict[str, Any]]:
        return [{"query": q} for q in self.queries]

    # ------------------------------------------------------------------ parts

    def latency(self) -> dict[str, Any]:
        """One query at a time: raw encodes (the floor) vs library search vs HTTP /search."""
        n = 60 if self.quick else 300
        out: dict[str, Any] = {"load_before": loadavg()}
        out["raw_st_encode"] = self.floor("st-single", n)
        out["raw_onnx_encode"] = self.floor("onnx-single", n)
        out["library_search_onnx"] = self.floor("search-onnx", n)
        out["library_search_torch"] = self.floor("search-torch", n)
        for backend in ("onnx", "torch"):
            with self.server(backend) as (port, _):
                run_load(port, self.bodies(), concurrency=1, max_requests=20, max_seconds=10)
                out[f"http_search_{backend}"] = run_load(
                    port, self.bodies(), concurrency=1, max_requests=n, max_seconds=60
                )
                out[f"http_search_{backend}"]["load"] = loadavg()
                if backend == "onnx":
                    # The framework's own floor: uvicorn + FastAPI + middleware on a trivial GET.
                    out["http_health"] = run_load(
                        port, [None], concurrency=1, max_requests=n, max_seconds=30,
                        path="/health",
                    )  # fmt: skip
        out["load_after"] = loadavg()
        return out

    def throughput(self) -> dict[str, Any]:
        """Raw batch-64 encode ceilings vs HTTP /search under 1-64 concurrent clients."""
        out: dict[str, Any] = {"load_before": loadavg()}
        reps = 90 if self.quick else 300  # floors time n // 30 batches
        out["raw_st_batch64"] = self.floor("st-batch", reps)
        out["raw_onnx_batch64"] = self.floor("onnx-batch", reps)
        levels = [1, 4, 16] if self.quick else [1, 4, 16, 64]
        seconds = 5 if self.quick else 15
        for backend in ("onnx", "torch"):
            rows = []
            with self.server(backend) as (port, _):
                run_load(port, self.bodies(), concurrency=4, max_requests=60, max_seconds=10)
                for c in levels:
                    row = run_load(
                        port, self.bodies(), concurrency=c,
                        max_requests=max(200, 100 * c), max_seconds=seconds,
                    )  # fmt: skip
                    row["load"] = loadavg()
                    rows.append(row)
            out[f"http_{backend}"] = rows
        out["load_after"] = loadavg()
        return out

    def cold(self) -> dict[str, Any]:
        """``rag search --json`` from a cold process, and what it imports."""
        runs = 3 if self.quick else 10
        env = {"RAG_INDEX_DIR": str(self.ensure_index()), "RAG_CORPUS_DIR": str(CORPUS),
               "RAG_DATA_DIR": str(self.work / "data")}  # fmt: skip
        out: dict[str, Any] = {"load_before": loadavg()}
        import inspect

        from rag.search.retriever import Retriever

        source = inspect.getsource(Retriever.from_settings) + inspect.getsource(
            Retriever.from_index
        )
        uses_onnx = "load_query_embedder" in source
        out["from_settings_uses_onnx"] = uses_onnx
        query = ["search", "data engineer salary", "--json"]
        cases = {
            "python_startup": [PYTHON, "-c", "pass"],
            "import_rag_cli": [PYTHON, "-c", "import rag.cli"],
            "rag_search_auto": [RAG, *query],
        }
        if not uses_onnx:
            # What `rag search` costs once from_settings takes the ONNX export (proposed change).
            cases["rag_search_onnx_patched"] = [PYTHON, "-c", PATCHED_CLI, *query]
        cases["rag_search_torch"] = [RAG, *query]
        for name, cmd in cases.items():
            case_env = {**env, "RAG_QUERY_BACKEND": "torch" if name.endswith("torch") else "auto"}
            walls, rss = [], []
            for _ in range(runs):
                r = run_child(cmd, env=case_env, timeout=120)
                if r["returncode"] != 0:
                    raise RuntimeError(f"{cmd} failed: {r['stderr'][-2000:]}")
                walls.append(r["wall_s"])
                rss.append(r["peak_rss_mib"])
            out[name] = {**summary_ms(walls), "min_ms": round(min(walls) * 1000, 1),
                         "peak_rss_mib": max(rss)}  # fmt: skip
        probe = (
            "import sys, json\nfrom rag.cli import main\nimport io, contextlib\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['search', 'data engineer salary', '--json'])\n"
            "heavy = ('torch', 'sentence_transformers', 'transformers', 'numba', 'scipy')\n"
            "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
        )
        if not uses_onnx:
            probe = PATCHED_CLI.split("from rag.cli import main")[0] + probe
        r = run_child([PYTHON, "-c", probe], env={**env, "RAG_QUERY_BACKEND": "auto"})
        out["heavy_modules_imported"] = json.loads(r["stdout"].strip().splitlines()[-1])
        r = run_child(
            [PYTHON, "-X", "importtime", "-c", probe], env={**env, "RAG_QUERY_BACKEND": "auto"}
        )
        out["slowest_imports_ms"] = _top_imports(r["stderr"])
        out["load_after"] = loadavg()
        return out

    def build(self) -> dict[str, Any]:
        """Raw encode throughput on the chunk texts vs ``rag index`` end to end."""
        from rag.index import sentence_units
        from rag.ingest.chunking import ChunkerSettings, chunk_documents
        from rag.ingest.loader import load_corpus

        out: dict[str, Any] = {"load_before": loadavg()}
        docs = 20 if self.quick else 100
        corpora = {
            "real": CORPUS,
            f"synthetic_{docs}_docs": synthetic.write_corpus(
                self.work / f"synthetic-corpus-{docs}", docs
            ),
        }
        for name, corpus in corpora.items():
            documents, _ = load_corpus(corpus)
            chunks = chunk_documents(documents, ChunkerSettings())
            sentences, _ = sentence_units(chunks)
            raw_st = self.floor("st-chunks", corpus=corpus)
            raw_onnx = self.floor("onnx-chunks", corpus=corpus)
            target = self.work / f"built-{name}"
            shutil.rmtree(target, ignore_errors=True)
            load = loadavg()
            r = run_child(
                [RAG, "index", "--json"],
                env={"RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(target)},
                timeout=3600,
            )
            if r["returncode"] != 0:
                raise RuntimeError(f"rag index failed: {r['stderr'][-2000:]}")
            manifest = json.loads((target / "manifest.json").read_text())
            out[name] = {
                "chunks": len(chunks),
                "sentences": len(sentences),
                "raw_st_encode_chunks_per_s": raw_st["chunks_per_s"],
                "raw_onnx_encode_chunks_per_s": raw_onnx["chunks_per_s"],
                "rag_index_wall_s": round(r["wall_s"], 2),
                "rag_index_chunks_per_s": round(len(chunks) / r["wall_s"], 1),
                "build_seconds_in_manifest": manifest["build_seconds"],
                "onnx_export_s": manifest.get("extra", {}).get("onnx", {}).get("seconds"),
                "adapt_s": manifest.get("extra", {}).get("adapted", {}).get("seconds"),
                "adapt_pairs": manifest.get("extra", {}).get("adapted", {}).get("pairs"),
                "peak_rss_mib": r["peak_rss_mib"],
                "load_before": load,
                "load_after": loadavg(),
            }
        return out

    def scale(self, sizes: list[int], hnsw_max: int, hard_clusters: int) -> dict[str, Any]:
        """FAISS at 10k-1M clustered vectors: build, memory, recall@10, latency with encode."""
        onnx_dir = str(self.ensure_index() / "onnx")
        runs = []
        for n in sizes:
            runs += [(n, "flat", 2000), (n, "ivf", 2000)]
            if n <= hnsw_max:
                runs.append((n, "hnsw", 2000))
        if hard_clusters:
            # Ten times more, smaller topics: neighbours spread over more IVF lists.
            runs.append((max(sizes), "ivf", hard_clusters))
            if max(sizes) <= hnsw_max:
                runs.append((max(sizes), "hnsw", hard_clusters))
        rows = []
        for n, kind, clusters in runs:
            sweep = {"ivf": "4,8,16,32,64,128", "hnsw": "32,64,128,256"}.get(kind, "")
            load = loadavg()
            r = run_child(
                [PYTHON, "-m", "benchmarks.scale", "ann", "--n", str(n), "--kind", kind,
                 "--clusters", str(clusters), "--sweep", sweep, "--onnx", onnx_dir],
                timeout=3 * 3600,
            )  # fmt: skip
            if r["returncode"] != 0:
                rows.append({"n": n, "kind": kind, "clusters": clusters,
                             "error": r["stderr"][-1500:]})  # fmt: skip
                continue
            row = json.loads(r["stdout"].strip().splitlines()[-1])
            row["child_peak_rss_mib"] = r["peak_rss_mib"]
            row["load_before"] = load
            row["load_after"] = loadavg()
            rows.append(row)
            print(f"  scale n={n} {kind} clusters={clusters}: build {row['build_s']} s", flush=True)
        return {"rows": rows}

    def bm25(self, sizes: list[int]) -> dict[str, Any]:
        """bm25s index and query time on synthetic passages."""
        rows = []
        for n in sizes:
            load = loadavg()
            r = run_child([PYTHON, "-m", "benchmarks.scale", "bm25", "--n", str(n)], timeout=7200)
            if r["returncode"] != 0:
                rows.append({"n": n, "error": r["stderr"][-1500:]})
                continue
            row = json.loads(r["stdout"].strip().splitlines()[-1])
            row["child_peak_rss_mib"] = r["peak_rss_mib"]
            row["load_before"], row["load_after"] = load, loadavg()
            rows.append(row)
            print(f"  bm25 n={n}: build {row['build_s']} s", flush=True)
        return {"rows": rows}

    def memory(self, chunks: int) -> dict[str, Any]:
        """RSS and PSS per uvicorn worker (2 workers), FAISS memory-mapped or not."""
        index = self.synthetic_index(chunks)
        # Freshly written pages are dirty in the page cache and would show as private dirty.
        os.sync()
        out: dict[str, Any] = {"chunks": chunks, "load_before": loadavg()}
        out["vectors_faiss_mib"] = round((index / "vectors.faiss").stat().st_size / 2**20, 1)
        for key, mmap, shipped in (
            ("mmap", True, False),
            ("no_mmap", False, False),
            ("rag_serve", True, True),
        ):
            with self.server("auto", index=index, workers=2, mmap=mmap, shipped=shipped) as (
                port,
                proc,
            ):
                workers = [pid for pid in children(proc.pid) if _is_worker(pid)]
                start = {pid: _cpu_seconds(pid) for pid in workers}
                # New connections each round until every worker has served (the kernel hands
                # a burst of connections to whichever worker accepts first).
                for _ in range(20):
                    run_load(port, self.bodies(), concurrency=8, max_requests=40, max_seconds=20)
                    if all(_cpu_seconds(pid) - start[pid] > 0.3 for pid in workers):
                        break
                mem = [smaps_rollup(pid) for pid in workers]
                cpu = [round(_cpu_seconds(pid) - start[pid], 2) for pid in workers]
            out[key] = [
                {"pid": pid, "cpu_s_serving": used,
                 **{k: round(m.get(k, 0) / 1024, 1) for k in
                    ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                     "Private_Dirty", "Anonymous")}}
                for pid, m, used in zip(workers, mem, cpu, strict=True)
            ]  # fmt: skip
        out["load_after"] = loadavg()
        return out

    def synthetic_index(self, chunks: int) -> Path:
        """An index of synthetic guides with clustered placeholder vectors and the real export.

        Embedding ~100k chunks with the real model would take an hour here; memory does not
        depend on what the vectors mean, only on their number, so placeholders stand in.
        """
        from rag.index import Manifest, build_index
        from rag.models.onnx import copy_export

        target = self.work / f"serve-index-{chunks}"
        real = Manifest.read(self.ensure_index())
        if not (target / "manifest.json").exists():
            docs = max(1, chunks // 9)  # about 9 chunks per synthetic guide
            corpus = synthetic.write_corpus(self.work / f"synthetic-corpus-{docs}", docs)

            class Placeholder:
                model_id = real.model
                dim = real.dim
                offset = 0

                def embed(self, texts: Any, *, progress: bool = False) -> Any:
                    v = synthetic.clustered_vectors(len(texts), self.dim, seed=self.offset)
                    self.offset += 1
                    return v

            build_index(corpus, target, Placeholder(), sentence_index=False, onnx=False)
        # Always the current export (hard links), so a changed export format is what is measured.
        shutil.rmtree(target / "onnx", ignore_errors=True)
        copy_export(self.ensure_index() / "onnx", target / "onnx")
        manifest = Manifest.read(target)
        manifest.extra["onnx"] = real.extra["onnx"]
        manifest.write(target)
        return target


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _is_worker(pid: int) -> bool:
    """A uvicorn worker (multiprocessing spawn), not the resource tracker beside it."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# Runs the real CLI with Retriever.from_settings replaced by the one-line change proposed for
# rag/search/retriever.py (load_query_embedder instead of load_embedder); everything else is as shipped.
PATCHED_CLI = """
import sys
from pathlib import Path
from rag.search import retriever as retrieval
from rag.models.query import load_query_embedder
from rag.index import load_index

def from_settings(cls, settings=None):
    settings = settings or retrieval.Settings()
    index = load_index(Path(settings.index_dir), settings.model)
    return cls(index, load_query_embedder(settings, index), max_k=settings.max_k,
               max_query_chars=settings.max_query_chars)

retrieval.Retriever.from_settings = classmethod(from_settings)
from rag.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _top_imports(stderr: str, n: int = 12) -> list[list[Any]]:
    """The slowest top-level imports from ``python -X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("   ") or not cumulative.strip().isdigit():
            continue  # nested
        rows.append([name.strip(), round(int(cumulative) / 1000, 1)])
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> None:
    """Run the chosen parts and write RESULTS.md and results.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-bench"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--bm25-sizes", default="100000,1000000")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000, help="largest n built as HNSW")
    parser.add_argument(
        "--hard-clusters",
        type=int,
        default=20_000,
        help="also run IVF at the largest size with this many clusters (0: no)",
    )
    parser.add_argument("--memory-chunks", type=int, default=100_000)
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if args.quick:
        args.sizes, args.bm25_sizes, args.memory_chunks = "10000", "10000", 5000

    results: dict[str, Any] = {}
    if args.results.exists():
        results = json.loads(args.results.read_text())
    results["machine"] = machine()
    # Notes are commentary written by hand about one run's figures; a new run makes them stale.
    results.pop("notes", None)
    bench = Bench(args.work, args.quick)
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "latency": bench.latency,
        "throughput": bench.throughput,
        "cold": bench.cold,
        "build": bench.build,
        "scale": lambda: bench.scale(
            [int(x) for x in args.sizes.split(",")], args.hnsw_max, args.hard_clusters
        ),
        "bm25": lambda: bench.bm25([int(x) for x in args.bm25_sizes.split(",")]),
        "memory": lambda: bench.memory(args.memory_chunks),
    }
    for part in parts:
        print(f"[{now()}] {part} (load {loadavg()})", flush=True)
        t0 = time.perf_counter()
        results[part] = steps[part]()
        results[part]["date"] = now()
        results[part]["seconds"] = round(time.perf_counter() - t0, 1)
        results[part]["quick"] = args.quick
        args.results.write_text(json.dumps(results, indent=1, default=float) + "\n")
    # Beside the JSON, so a --quick run into /tmp leaves the committed RESULTS.md alone.
    markdown = args.results.with_name("RESULTS.md")
    markdown.write_text(render(results))
    print(f"wrote {markdown}")


if __name__ == "__main__":
    sys.exit(main())
