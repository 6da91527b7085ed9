"""`rag sync` end to end on a real static site, with the real model (issue 24's acceptance).

The interview handbook's markdown is rendered with pandoc into a static site (benchmarks.sources:
a page per guide under /handbook/, a sitemap.xml listing every page, a robots.txt disallowing
one), served by http.server on 127.0.0.1 with an access log (Last-Modified and 304s, as a static
server answers). `python -m rag sync --json` runs in a process of its own, as a user runs it:

1. first sync (the crawl, then a full build with the real model);
2. a sync with nothing changed;
3. a sync after one page was edited and one removed.

Each run's wall time, the crawl's own seconds and pages per second, the build's seconds, the
access log's lines for robots.txt, the disallowed page and the 304s, and a search's citations
are written to benchmarks/sync_site.json and printed as markdown for SOURCES.md.

    python -m benchmarks.sync_site [--delay 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, loadavg, machine, now
from benchmarks.sources import DEFAULT_CORPUS, serve_site

OUT = ROOT / "benchmarks" / "sync_site.json"


class _Logged(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lines: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # The access log a static server keeps: "GET /path HTTP/1.1" 304 -
        self.lines.append(f"{self.address_string()} - - {format % args}")


def rag(env: dict[str, str], *argv: str) -> tuple[float, dict[str, Any]]:
    """Run ``python -m rag ... --json``; its wall time and output."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "rag", *argv, "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)  # fmt: skip
    took = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"rag {' '.join(argv)} failed: {run.stderr[-2000:]}")
    return round(took, 2), json.loads(run.stdout)


def summary(label: str, wall: float, outcome: dict[str, Any], load: Any) -> dict[str, Any]:
    (web,) = outcome["sources"]
    index = outcome["index"]
    pages = web["fetched"] + web["unchanged"]
    return {
        "run": label, "wall_s": wall, "crawl_s": web["seconds"],
        "pages_per_s": round(pages / web["seconds"], 1) if web["seconds"] else None,
        "requests": web["requests"], **{k: web[k] for k in
        ("fetched", "unchanged", "added", "changed", "removed", "documents")},
        "skipped_robots": web["skipped_robots"], "errors": web["errors"],
        "index": index["status"], "build_s": index["seconds"],
        "index_documents": index.get("documents"), "load_before": load,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Build the site, serve it, sync it three times, and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--delay", type=float, default=0.0, help="the source's delay_seconds")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", type=Path, help="only print the tables of a results file")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="rag-bench-sync-"))
    site = work / "site"
    server, base, paths, disallowed = serve_site(args.corpus, site, _Logged)
    config = work / "rag.toml"
    config.write_text(
        "[collections.handbook]\npublic = true\n\n[[collections.handbook.sources]]\n"
        f'type = "web"\nurl = "{base}/sitemap.xml"\ninclude = ["/handbook/"]\nmax_pages = 500\n'
        f"delay_seconds = {args.delay}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", RAG_CONFIG=str(config),
               RAG_INDEX_DIR=str(work / "index"), RAG_DATA_DIR=str(work / "data"))  # fmt: skip
    rows, logs = [], {}
    try:
        for label in ("first", "nothing changed", "1 edited, 1 removed"):
            if label == "1 edited, 1 removed":
                kept = [p for p in paths if p != disallowed]
                edited, removed = site / kept[0].lstrip("/"), site / kept[1].lstrip("/")
                time.sleep(1.1)  # Last-Modified has one-second resolution: a later second
                edited.write_text(edited.read_text().replace(
                    "</article>", "<p>A paragraph added for the benchmark.</p></article>"))  # fmt: skip
                removed.unlink()
            _Logged.lines.clear()
            load = loadavg()
            wall, out = rag(env, "sync")
            rows.append(summary(label, wall, out["collections"][0], load))
            logs[label] = list(_Logged.lines)
        _, found = rag(env, "search", "how do I negotiate a job offer", "-k", "3")
        citations = [{k: h["citation"][k] for k in ("title", "source", "source_url")}
                     for h in found["results"]]  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)
    result = {"date": now(), "machine": machine(), "corpus": str(args.corpus), "pages": len(paths),
              "disallowed": disallowed, "delay_seconds": args.delay, "base": base, "rows": rows,
              "access_log": logs, "citations": citations}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def table(result: dict[str, Any]) -> str:
    """The runs as a markdown table, with the access log's telling lines."""
    lines = [
        f"{result['pages']} pages, delay_seconds {result['delay_seconds']:g}, {result['date']}",
        "",
        "| sync | wall s (`rag sync`) | crawl s | pages/s | requests | fetched | unchanged | "
        "added | changed | removed | index | build s | 1-min load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['run']} | {r['wall_s']:.1f} | {r['crawl_s']:.2f} | {r['pages_per_s']} | "
            f"{r['requests']} | {r['fetched']} | {r['unchanged']} | {r['added']} | "
            f"{r['changed']} | {r['removed']} | {r['index']} | {r['build_s']:.1f} | "
            f"{r['load_before'][0]:.2f} |"
        )
    disallowed = result["disallowed"]
    for label, log in result["access_log"].items():
        requests = [ln for ln in log if '"GET ' in ln]  # not http.server's error lines
        asked = sum(f" {disallowed} " in line for line in requests)
        others = [ln for ln in requests if " 304 " not in ln]
        shown = others[:6] + [f"... {len(others) - 6} more like these"] * (len(others) > 6)
        shown += [ln for ln in requests if " 304 " in ln][:3]
        statuses: dict[str, int] = {}
        for line in requests:
            code = line.split('" ')[-1].split(" ")[0]
            statuses[code] = statuses.get(code, 0) + 1
        lines += ["", f"Access log, {label}: {len(requests)} requests {statuses}; "
                  f"{disallowed} requested {asked} times", "```", *shown, "```"]  # fmt: skip
    lines += ["", "```json", json.dumps(result["citations"], indent=1), "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
