"""One scale measurement per process, so its peak RSS is its own (run by benchmarks.run).

    python -m benchmarks.scale ann --n 1000000 --kind ivf     # FAISS build, recall, latency
    python -m benchmarks.scale bm25 --n 1000000               # bm25s index and query time

Prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import numpy as np

from benchmarks import synthetic
from benchmarks.common import self_peak_rss_mib, summary_ms, time_calls

DIM = 384
QUERIES = 200


def _rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def ann(n: int, kind: str, clusters: int, sweep: list[int], onnx_dir: str | None) -> dict[str, Any]:
    """Build one FAISS index over n clustered vectors; recall@10 vs exact and query latency."""
    import faiss

    from rag.index.ann import make_faiss_index

    t0 = time.perf_counter()
    vectors = synthetic.clustered_vectors(n, DIM, clusters=clusters)
    queries = synthetic.query_vectors(QUERIES, DIM, clusters=clusters)
    gen_s = time.perf_counter() - t0

    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    t0 = time.perf_counter()
    _, truth = exact.search(queries, 10)
    exact_batch_s = time.perf_counter() - t0
    exact_single = time_calls(lambda i: exact.search(queries[i : i + 1], 10), 30, warmup=2)
    exact.reset()  # frees its copy of the vectors before the index under test is built
    gc.collect()

    rss_before = _rss_mib()
    t0 = time.perf_counter()
    index, params = make_faiss_index(vectors, kind)
    build_s = time.perf_counter() - t0
    rss_after = _rss_mib()

    # The serving path encodes the query text first; time it with the real ONNX model.
    embed = None
    if onnx_dir:
        from rag.models.onnx import OnnxEmbedder

        embed = OnnxEmbedder(onnx_dir).embed
    texts = synthetic.queries(QUERIES)

    def measure(label: str, knob: int | None) -> dict[str, Any]:
        if knob is not None:
            if "IVF" in params["type"]:
                index.nprobe = knob
            elif "HNSW" in params["type"]:
                index.hnsw.efSearch = knob
        _, found = index.search(queries, 10)
        recall = float(
            np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        )
        search = time_calls(lambda i: index.search(queries[i : i + 1], 10), QUERIES)
        row: dict[str, Any] = {
            "setting": label,
            "recall_at_10": round(recall, 4),
            "search": summary_ms(search),
        }
        if embed is not None:

            def both(i: int) -> None:
                embed([texts[i]])
                index.search(queries[i : i + 1], 10)

            row["search_with_encode"] = summary_ms(time_calls(both, QUERIES))
        return row

    rows = []
    if "IVF" in params["type"]:
        default = index.nprobe
        for knob in sorted(set(sweep) | {default}):
            rows.append(measure(f"nprobe={knob}" + (" (default)" if knob == default else ""), knob))
        index.nprobe = default
    elif "HNSW" in params["type"]:
        default = index.hnsw.efSearch
        for knob in sorted(set(sweep) | {default}):
            rows.append(
                measure(f"efSearch={knob}" + (" (default)" if knob == default else ""), knob)
            )
    else:
        rows.append(measure("exact", None))
    return {
        "n": n,
        "kind": kind,
        "params": params,
        "clusters": clusters,
        "generate_s": round(gen_s, 2),
        "build_s": round(build_s, 2),
        "index_rss_mib": round(rss_after - rss_before, 1),
        "vectors_mib": round(vectors.nbytes / 2**20, 1),
        "exact_batch_ms_per_query": round(exact_batch_s * 1000 / QUERIES, 3),
        "exact_single": summary_ms(exact_single),
        "rows": rows,
        "peak_rss_mib": self_peak_rss_mib(),
    }


def bm25(n: int) -> dict[str, Any]:
    """bm25s over n synthetic passages, as rag.index builds it and rag.search queries it."""
    import Stemmer

    from rag.index.lexical import BM25_PARAMS, build_bm25, import_bm25s

    t0 = time.perf_counter()
    texts = list(synthetic.passages(n))
    gen_s = time.perf_counter() - t0
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    index = build_bm25(texts)
    build_s = time.perf_counter() - t0
    rss1 = _rss_mib()
    words = sum(len(t.split()) for t in texts[:1000]) / min(n, 1000)
    del texts
    gc.collect()

    bm25s = import_bm25s()
    stemmer = Stemmer.Stemmer(BM25_PARAMS["stemmer"])
    queries = synthetic.queries(QUERIES)
    k = 50

    def query(i: int) -> None:
        tokens = bm25s.tokenize(
            queries[i], stopwords=BM25_PARAMS["stopwords"], stemmer=stemmer,
            return_ids=False, show_progress=False,
        )[0]  # fmt: skip
        scores = np.asarray(index.get_scores(tokens))
        top = np.argpartition(-scores, k - 1)[:k]
        top[np.argsort(-scores[top], kind="stable")]

    return {
        "n": n,
        "words_per_passage": round(words, 1),
        "generate_s": round(gen_s, 2),
        "build_s": round(build_s, 2),
        "build_rss_mib": round(rss1 - rss0, 1),
        "query": summary_ms(time_calls(query, QUERIES)),
        "peak_rss_mib": self_peak_rss_mib(),
    }


def main() -> None:
    """Run one measurement and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("ann")
    a.add_argument("--n", type=int, required=True)
    a.add_argument("--kind", default="auto")
    a.add_argument("--clusters", type=int, default=2000)
    a.add_argument("--sweep", default="", help="nprobe or efSearch values, comma-separated")
    a.add_argument("--onnx", default=None, help="ONNX export directory, to time the encode too")
    b = sub.add_parser("bm25")
    b.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    if args.what == "ann":
        sweep = [int(x) for x in args.sweep.split(",") if x]
        out = ann(args.n, args.kind, args.clusters, sweep, args.onnx)
    else:
        out = bm25(args.n)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
