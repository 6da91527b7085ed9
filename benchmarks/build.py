"""Index builds: throughput against a raw encode of the same texts, and incremental re-indexing.

    python -m benchmarks.build throughput [--synthetic-docs 300] [--rounds 1]
    python -m benchmarks.build incremental [--docs 10000] [--sections 2]
    python -m benchmarks.build embed-ab CORPUS_DIR     # one embed call vs the build's calls
    python -m benchmarks.build profile CORPUS_DIR      # cProfile of one build, top functions
    python -m benchmarks.build report                  # rewrite the RESULTS.md section

Each part merges its figures into ``benchmarks/build.json`` and rewrites its section at the end
of ``benchmarks/RESULTS.md``. Everything runs in this one process with the model loaded once
(``rag.models.embedder.load_embedder``), so no figure but the cold CLI run includes start-up.

Throughput: *texts* are every passage's ``embedding_text()`` plus every sentence text the build
embeds (``rag.index.build.sentence_units``); *raw* is one ``embedder.embed(texts)`` over exactly
those texts, timed before and after the builds of the same round; *build* is the wall time of
``build_index(..., full=True)`` into an empty directory, with ``onnx=False`` and with ``onnx=True``
(a fresh export). The ratio is raw seconds (mean of the two) over build seconds.

Stages come from wrapping the functions ``rag.index.build`` calls (``StageTimer``), which
leaves the build code as it is; what no wrapper covers is reported as "other".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import synthetic
from benchmarks.common import PYTHON, ROOT, loadavg, machine, now, run_child

RESULTS_JSON = ROOT / "benchmarks" / "build.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Index builds: throughput and incremental re-indexing"
HANDBOOK = ROOT.parent / "shared" / "corpora" / "handbook"

# Functions of rag.index.build, timed as stages. Nested ones (inside _vectors) are subtracted
# from it; "vector assembly" is what _vectors does besides them.
STAGES = {
    "load_corpus": "parse",
    "chunk_documents": "chunk",
    "chunk_key": "content keys",
    "_reusable": "open previous index",
    "_vectors": "_vectors",
    "_sentence_texts": "sentence split",
    "_embed": "embed",
    "_stored": "copy stored vectors",
    "_changes": "change report",
    "make_faiss_index": "faiss",
    "build_bm25": "bm25",
    "write_meta": "sqlite",
    "_export_onnx": "onnx export",
    "swap_into_place": "swap",
}
NESTED = ("sentence split", "embed", "copy stored vectors")
ORDER = [
    "parse", "chunk", "content keys", "open previous index", "sentence split", "embed",
    "copy stored vectors", "vector assembly", "change report", "faiss", "bm25", "sqlite",
    "onnx export", "swap", "other",
]  # fmt: skip


class StageTimer:
    """Seconds spent in each build stage, by wrapping the functions the build calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.embedded = 0  # texts passed to the embedder
        self.embed_calls = 0
        self._build_bm25: Callable[..., Any] | None = None

    def _add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def _wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self._add(stage, time.perf_counter() - t0)
            if stage == "embed":
                self.embedded += len(args[1])
                self.embed_calls += 1
            if fn is self._build_bm25:  # the caller saves the index: time that too
                out.save = self._wrap("bm25", out.save)
            return out

        return timed

    @contextlib.contextmanager
    def patched(self) -> Iterator[StageTimer]:
        """Wrap the stages for the duration of one build."""
        import faiss

        import rag.index.build as build

        saved = {name: getattr(build, name) for name in STAGES}
        self._build_bm25 = saved["build_bm25"]
        write_index = faiss.write_index
        try:
            for name, stage in STAGES.items():
                setattr(build, name, self._wrap(stage, saved[name]))
            faiss.write_index = self._wrap("faiss", write_index)
            yield self
        finally:
            for name, fn in saved.items():
                setattr(build, name, fn)
            faiss.write_index = write_index

    def stages(self, wall: float) -> dict[str, float]:
        """Seconds per stage, with vector assembly and other as the remainders."""
        s = dict(self.seconds)
        inner = s.pop("_vectors", 0.0)
        top = sum(v for k, v in s.items() if k not in NESTED)
        s["vector assembly"] = max(0.0, inner - sum(s.get(k, 0.0) for k in NESTED))
        s["other"] = max(0.0, wall - inner - top)
        return {k: round(s[k], 3) for k in ORDER if k in s}


def timed_build(corpus: Path, index_dir: Path, embedder: Any, **kwargs: Any) -> dict[str, Any]:
    """One ``build_index`` call: wall seconds, stages, what it embedded and its change report."""
    from rag.index import build_index

    timer = StageTimer()
    load = loadavg()
    with timer.patched():
        c0, t0 = time.process_time(), time.perf_counter()
        manifest = build_index(corpus, index_dir, embedder, **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "stages_s": timer.stages(wall),
        "texts_embedded": timer.embedded,
        "embed_calls": timer.embed_calls,
        "changes": manifest.extra.get("changes"),
        "onnx": manifest.extra.get("onnx"),
        "counts": manifest.counts,
        "load_before": load,
    }


def corpus_texts(corpus: Path) -> tuple[list[str], dict[str, Any]]:
    """Every text a build embeds for ``corpus`` (passages, then sentences) and its shape."""
    from rag.index.build import sentence_units
    from rag.ingest.chunking import ChunkerSettings, chunk_documents
    from rag.ingest.loader import load_corpus

    docs, sources = load_corpus(corpus)
    chunks = chunk_documents(docs, ChunkerSettings())
    passages = [c.embedding_text() for c in chunks]
    sentences, _ = sentence_units(chunks)
    files = [p for p in corpus.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    shape = {
        "files": len(files),
        "documents": len(docs),
        "bytes": size,
        "bytes_per_document": round(size / len(docs)),
        "passages": len(passages),
        "sentences": len(sentences),
        "texts": len(passages) + len(sentences),
        "passages_per_document": round(len(passages) / len(docs), 2),
        "sentences_per_document": round(len(sentences) / len(docs), 2),
        "chars_per_passage": round(statistics.fmean(map(len, passages)), 1),
        "chars_per_sentence": round(statistics.fmean(map(len, sentences)), 1),
    }
    return passages + sentences, shape


def raw_encode(embedder: Any, texts: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) of one ``embedder.embed(texts)``."""
    load = loadavg()
    c0, t0 = time.process_time(), time.perf_counter()
    vectors = embedder.embed(texts)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert vectors.shape[0] == len(texts)
    print(
        f"    raw embed {len(texts)} texts: {seconds:.1f} s, cpu {cpu:.1f} s (load {load})",
        flush=True,
    )
    return seconds, cpu


def throughput(
    work: Path, synthetic_docs: int, rounds: int, first_round: dict[str, int] | None = None
) -> dict[str, Any]:
    """Build vs raw encode of the same texts on synthetic guides and two small real corpora.
    ``first_round`` numbers the rounds of a run appended to an earlier one, by corpus."""
    from rag.models.embedder import load_embedder

    out: dict[str, Any] = {"started": now(), "load_before": loadavg()}
    t0 = time.perf_counter()
    embedder = load_embedder()
    out["model_load_s"] = round(time.perf_counter() - t0, 2)
    embedder.embed(["warm-up text"] * 64)
    corpora = {
        f"synthetic {synthetic_docs} docs": synthetic.write_corpus(
            work / f"synthetic-{synthetic_docs}", synthetic_docs
        ),
        "corpus/ (repo)": ROOT / "corpus",
    }
    if HANDBOOK.is_dir():
        corpora["shared/corpora/handbook"] = HANDBOOK
    rows = []
    for name, corpus in corpora.items():
        texts, shape = corpus_texts(corpus)
        print(f"  {name}: {shape}", flush=True)
        for r in range(rounds):
            target = work / "throughput-index"
            started = now()
            raw_before = raw_encode(embedder, texts)
            builds = {}
            for label, onnx in (("no_export", False), ("fresh_export", True)):
                shutil.rmtree(target, ignore_errors=True)
                b = timed_build(corpus, target, embedder, full=True, onnx=onnx)
                if b["texts_embedded"] != len(texts):
                    raise RuntimeError(f"build embedded {b['texts_embedded']}, not {len(texts)}")
                print(f"    build {label}: {b['wall_s']:.1f} s {b['stages_s']}", flush=True)
                builds[label] = b
            raw_after = raw_encode(embedder, texts)
            raw = (raw_before[0] + raw_after[0]) / 2
            raw_cpu = (raw_before[1] + raw_after[1]) / 2
            b0, b1 = builds["no_export"], builds["fresh_export"]
            rows.append(
                {
                    "corpus": name,
                    "round": (first_round or {}).get(name, 0) + r + 1,
                    "started": started,
                    **shape,
                    "raw_s": [round(raw_before[0], 3), round(raw_after[0], 3)],
                    "raw_cpu_s": [round(raw_before[1], 3), round(raw_after[1], 3)],
                    "raw_texts_per_s": round(len(texts) / raw, 1),
                    "builds": builds,
                    "ratio_no_export": round(raw / b0["wall_s"], 3),
                    "ratio_fresh_export": round(raw / b1["wall_s"], 3),
                    "cpu_ratio_no_export": round(raw_cpu / b0["cpu_s"], 3),
                    "cpu_ratio_fresh_export": round(raw_cpu / b1["cpu_s"], 3),
                    "load_after": loadavg(),
                }
            )
        shutil.rmtree(work / "throughput-index", ignore_errors=True)
    out["rows"] = rows
    out["finished"] = now()
    out["load_after"] = loadavg()
    return out


EDIT = "\nA benchmark edit: this guide gained one more sentence about on-call rotas.\n"


def incremental(work: Path, docs: int, sections: int | None) -> dict[str, Any]:
    """Full build of ``docs`` small guides, then re-index after one change, add and remove."""
    from rag.models.embedder import load_embedder

    out: dict[str, Any] = {"started": now(), "load_before": loadavg()}
    corpus = work / f"incremental-{docs}x{sections}"
    index = work / f"incremental-{docs}x{sections}-index"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    synthetic.write_corpus(corpus, docs, sections=sections)
    _, shape = corpus_texts(corpus)
    out["corpus"] = {"docs": docs, "sections_per_doc": sections, **shape}
    print(f"  corpus: {out['corpus']}", flush=True)
    t0 = time.perf_counter()
    embedder = load_embedder()
    out["model_load_s"] = round(time.perf_counter() - t0, 2)
    embedder.embed(["warm-up text"] * 64)

    steps: dict[str, Any] = {}

    def step(name: str, **kwargs: Any) -> dict[str, Any]:
        b = timed_build(corpus, index, embedder, **kwargs)
        b["load_after"] = loadavg()
        steps[name] = b
        c = b["changes"] or {}
        print(
            f"    {name}: {b['wall_s']:.1f} s, {c.get('documents')} {c.get('chunks')}", flush=True
        )
        return b

    # The default build (onnx on): the first exports the model, later ones link that export.
    step("full build", full=True)
    step("no change")
    victim = corpus / f"guide-{docs // 2:06d}.md"
    with victim.open("a", encoding="utf-8") as f:
        f.write(EDIT)
    step("one document changed")
    extra = corpus / f"guide-{docs:06d}.md"
    extra.write_text(synthetic.document(docs, 0, sections), encoding="utf-8")
    step("one document added")
    extra.unlink()
    step("one document removed")
    # A cold `python -m rag index` after another edit: process start, imports, model load.
    with victim.open("a", encoding="utf-8") as f:
        f.write(EDIT.replace("one more", "a second"))
    load = loadavg()
    r = run_child(
        [PYTHON, "-m", "rag", "index", "--json"],
        env={"RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(index), "PYTHONPATH": str(ROOT)},
        timeout=3600,
    )
    if r["returncode"] != 0:
        raise RuntimeError(f"rag index failed: {r['stderr'][-2000:]}")
    reported = json.loads(r["stdout"])
    steps["one document changed, cold CLI"] = {
        "wall_s": round(r["wall_s"], 3),
        "build_seconds_in_manifest": reported["build_seconds"],
        "peak_rss_mib": r["peak_rss_mib"],
        "changes": reported["changes"],
        "load_before": load,
        "load_after": loadavg(),
    }
    print(f"    cold CLI: {r['wall_s']:.1f} s, {reported['changes']}", flush=True)
    full = steps["full build"]["wall_s"]
    for s in steps.values():
        s["ratio_to_full"] = round(s["wall_s"] / full, 4)
    out["steps"] = steps
    checks = {
        "one document changed": {"changed": 1, "added": 0, "removed": 0, "reused": docs - 1},
        "one document changed, cold CLI": {
            "changed": 1, "added": 0, "removed": 0, "reused": docs - 1,
        },
        "one document added": {"changed": 0, "added": 1, "removed": 0, "reused": docs},
        "one document removed": {"changed": 0, "added": 0, "removed": 1, "reused": docs},
        "no change": {"changed": 0, "added": 0, "removed": 0, "reused": docs},
    }  # fmt: skip
    out["change_reports_as_expected"] = {
        name: (steps[name]["changes"] or {}).get("documents") == want
        for name, want in checks.items()
    }
    out["finished"] = now()
    out["load_after"] = loadavg()
    shutil.rmtree(index, ignore_errors=True)
    return out


def embed_ab(corpus: Path, rounds: int) -> dict[str, Any]:
    """One ``embed`` over all texts (A) against the build's calls (B: passages, then sentences,
    in ``EMBED_SLICE`` slices, through ``rag.index.build._embed``), in ABBA order."""
    from rag.index import build
    from rag.models.embedder import load_embedder

    embedder = load_embedder()
    embedder.embed(["warm-up text"] * 64)
    texts, shape = corpus_texts(corpus)
    passages, sentences = texts[: shape["passages"]], texts[shape["passages"] :]

    def build_way() -> None:
        build._embed(embedder, passages, build._Silent())
        build._embed(embedder, sentences, build._Silent())

    out: dict[str, Any] = {"corpus": str(corpus), **shape, "embed_slice": build.EMBED_SLICE}
    out["load_before"] = loadavg()
    runs: dict[str, list[list[float]]] = {"one_call": [], "build_calls": []}
    for r in range(rounds):
        order = [("one_call", lambda: embedder.embed(texts)), ("build_calls", build_way)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs[name].append([round(wall, 3), round(cpu, 3)])
            print(f"    {name}: {wall:.1f} s, cpu {cpu:.1f} s (load {loadavg()})", flush=True)
    out["runs_wall_cpu_s"] = runs
    for i, what in enumerate(("wall", "cpu")):
        a = sum(x[i] for x in runs["one_call"])
        b = sum(x[i] for x in runs["build_calls"])
        out[f"{what}_ratio_one_call_over_build_calls"] = round(a / b, 3)
    out["load_after"] = loadavg()
    return out


def profile(corpus: Path, work: Path, top: int) -> None:
    """cProfile one full build (no export) with the model loaded; print the top functions."""
    import cProfile
    import pstats

    from rag.index import build_index
    from rag.models.embedder import load_embedder

    embedder = load_embedder()
    embedder.embed(["warm-up text"] * 64)
    target = work / "profile-index"
    shutil.rmtree(target, ignore_errors=True)
    prof = cProfile.Profile()
    prof.enable()
    build_index(corpus, target, embedder, full=True, onnx=False)
    prof.disable()
    shutil.rmtree(target, ignore_errors=True)
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


# ---- report ----------------------------------------------------------------------------------


def _f(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _table(head: list[str], rows: list[list[Any]], nd: int = 1) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(_f(c, nd) for c in row) + " |" for row in rows] + [""]


def _stage_rows(named: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    used = [s for s in ORDER if any(b["stages_s"].get(s, 0) >= 0.0005 for _, b in named)]
    rows = []
    for name, b in named:
        rows.append([name, b["wall_s"]] + [b["stages_s"].get(s, 0.0) for s in used])
    return [["build", "wall s", *[f"{s} s" for s in used]], *rows]


def render(results: dict[str, Any]) -> str:
    """The RESULTS.md section."""
    m = results.get("machine") or {}
    lines = [SECTION, ""]
    lines += [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB, Python "
        f"{m.get('python')}, torch {m.get('versions', {}).get('torch')}, sentence-transformers "
        f"{m.get('versions', {}).get('sentence-transformers')}, faiss "
        f"{m.get('versions', {}).get('faiss-cpu')}. Shared with other agents' jobs: every figure "
        "below carries the load average it was taken under. `python -m benchmarks.build` "
        "(raw figures in `benchmarks/build.json`).",
        "",
    ]
    t = results.get("throughput")
    if t:
        lines += [
            f"### Build throughput without adaptation ({t['started']} to {t['finished']})",
            "",
            f"load average (1/5/15 min) {t['load_before']} at the start, {t['load_after']} at "
            f"the end; model load {t['model_load_s']} s (not in any figure below).",
            "",
            "*texts* = every passage's `embedding_text()` plus every sentence text the build "
            "embeds (`sentence_units`); *raw* = one `embedder.embed(texts)` (batch 64, model "
            "loaded), run before and after the builds, mean used; *build* = `build_index(..., "
            "full=True)` into an empty directory, model loaded, without (`onnx=False`) and with "
            "a fresh ONNX export; ratio = raw s / build s (texts/s of the build over texts/s of "
            "the raw encode).",
            "",
        ]
        shapes = {r["corpus"]: r for r in t["rows"]}
        lines += _table(
            ["corpus", "docs", "bytes", "passages", "sentences", "texts"],
            [[name, r["documents"], r["bytes"], r["passages"], r["sentences"], r["texts"]]
             for name, r in shapes.items()],
        )  # fmt: skip
        rows = []
        for r in t["rows"]:
            raw_wall = statistics.fmean(r["raw_s"])
            raw_cpu = statistics.fmean(r["raw_cpu_s"])
            for label, b in r["builds"].items():
                outside = b["wall_s"] - b["stages_s"].get("embed", 0.0)
                rows.append([
                    f"{r['corpus']}, round {r['round']}", label.replace("_", " "),
                    " / ".join(_f(x) for x in r["raw_s"]), b["wall_s"],
                    f"{raw_wall / b['wall_s']:.2f}",
                    " / ".join(_f(x) for x in r["raw_cpu_s"]), b["cpu_s"],
                    f"{raw_cpu / b['cpu_s']:.2f}",
                    f"{outside:.2f} ({100 * outside / b['wall_s']:.1f}%)",
                    f"{b['load_before']} / {r['load_after']}",
                ])  # fmt: skip
        lines += _table(
            ["corpus", "build", "raw wall s (before / after)", "build wall s", "wall ratio",
             "raw CPU s (before / after)", "build CPU s", "CPU ratio",
             "build s outside embed (share)", "load at build / end of round"],
            rows,
        )  # fmt: skip
        lines += ["Where the build time goes (seconds; embed = the embedder's calls):", ""]
        named = []
        for r in t["rows"]:
            for label, b in r["builds"].items():
                named.append((f"{r['corpus']} r{r['round']}, {label.replace('_', ' ')}", b))
        head, *body = _stage_rows(named)
        lines += _table(head, body, nd=2)
        for note in t.get("notes", []):
            lines.append(f"- {note}")
        if t.get("notes"):
            lines.append("")
    inc = results.get("incremental")
    if inc:
        c = inc["corpus"]
        lines += [
            f"### Re-indexing a {c['documents']:,}-document corpus ({inc['started']} to "
            f"{inc['finished']})",
            "",
            f"load average (1/5/15 min) {inc['load_before']} at the start, {inc['load_after']} "
            f"at the end; model load {inc['model_load_s']} s (only the cold CLI row pays it).",
            "",
            f"Corpus: {c['documents']:,} synthetic guides (`python -m benchmarks.synthetic corpus "
            f"DIR --docs {c['docs']} --sections {c['sections_per_doc']}`), {c['bytes']:,} bytes "
            f"({c['bytes_per_document']:,} per document), {c['passages']:,} passages "
            f"({c['passages_per_document']} per document, {c['chars_per_passage']} chars) and "
            f"{c['sentences']:,} sentences ({c['sentences_per_document']} per document, "
            f"{c['chars_per_sentence']} chars): {c['texts']:,} texts to embed. Each step is "
            "`build_index` with default settings (ONNX export on: the full build exports, later "
            "builds link that export) on the index the previous step left; the change is one "
            "appended sentence.",
            "",
        ]
        rows = []
        for name, s in inc["steps"].items():
            ch = s.get("changes") or {}
            d, p = ch.get("documents") or {}, ch.get("chunks") or {}
            rows.append([
                name, s["wall_s"], f"{100 * s['ratio_to_full']:.2f}%",
                s.get("texts_embedded", "-"),
                f"{d.get('added')}/{d.get('changed')}/{d.get('removed')}/{d.get('reused')}",
                f"{p.get('added')}/{p.get('changed')}/{p.get('removed')}/{p.get('reused')}",
                f"{s['load_before']} / {s['load_after']}",
            ])  # fmt: skip
        lines += _table(
            ["step", "wall s", "of full build", "texts embedded",
             "documents added/changed/removed/reused", "passages added/changed/removed/reused",
             "load before / after"],
            rows,
        )  # fmt: skip
        ok = inc["change_reports_as_expected"]
        lines += [
            "Change reports as expected: "
            + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in ok.items())
            + ".",
            "",
            "Where the time goes (seconds):",
            "",
        ]
        named = [(k, v) for k, v in inc["steps"].items() if "stages_s" in v]
        head, *body = _stage_rows(named)
        lines += _table(head, body, nd=2)
        for note in inc.get("notes", []):
            lines.append(f"- {note}")
        if inc.get("notes"):
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_section(results: dict[str, Any], path: Path = RESULTS_MD) -> None:
    """Append the section to RESULTS.md, or replace it there (it stays the last section)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    head, _, _ = text.partition(SECTION)
    path.write_text(head.rstrip() + "\n\n" + render(results), encoding="utf-8")


def load_results() -> dict[str, Any]:
    """build.json as it stands."""
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {}


def save(part: str, data: dict[str, Any]) -> None:
    """Merge one part into build.json and rewrite the RESULTS.md section."""
    results = load_results()
    notes = (results.get(part) or {}).get("notes")
    if notes and "notes" not in data:
        data["notes"] = notes  # hand-written; kept until replaced
    results[part] = data
    results["machine"] = machine()
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    write_section(results)


def main() -> None:
    """Run one part."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-bench-build"))
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--synthetic-docs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--append", action="store_true", help="keep the rounds already in build.json")
    p = sub.add_parser("incremental")
    p.add_argument("--docs", type=int, default=10_000)
    p.add_argument("--sections", type=int, default=2)
    p = sub.add_parser("profile")
    p.add_argument("corpus", type=Path)
    p.add_argument("--top", type=int, default=30)
    p = sub.add_parser("embed-ab")
    p.add_argument("corpus", type=Path)
    p.add_argument("--rounds", type=int, default=2)
    sub.add_parser("report")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "throughput":
        before = load_results().get("throughput") if args.append else None
        rounds: dict[str, int] = {}
        for row in (before or {}).get("rows", []):
            rounds[row["corpus"]] = max(rounds.get(row["corpus"], 0), row["round"])
        data = throughput(args.work, args.synthetic_docs, args.rounds, rounds)
        if before:
            data["rows"] = before["rows"] + data["rows"]
            data["started"], data["load_before"] = before["started"], before["load_before"]
            data["model_load_s"] = [before["model_load_s"], data["model_load_s"]]
        save("throughput", data)
    elif args.part == "incremental":
        save("incremental", incremental(args.work, args.docs, args.sections))
    elif args.part == "embed-ab":
        results = load_results()
        results.setdefault("embed_ab", []).append(
            {"started": now(), **embed_ab(args.corpus, args.rounds)}
        )
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    elif args.part == "profile":
        profile(args.corpus, args.work, args.top)
    else:
        write_section(load_results())


if __name__ == "__main__":
    main()
