"""Web source sync on a realistic local site: crawl time, pages per second, and a re-sync with
nothing changed (issue 24).

A markdown docs corpus is rendered with pandoc into a static site as docs sites publish it: one
page per file with a header, a sidebar listing every page, the guide in <main> and a footer; an
index page; a sitemap.xml listing every page; and a robots.txt that disallows one of them. The
site is served by http.server (HTTP/1.1 keep-alive, Last-Modified and If-Modified-Since, as a
static server answers) on 127.0.0.1, and synced from its sitemap and by a crawl from the index,
first into an empty mirror, then again with nothing changed, then after three pages changed.

    python -m benchmarks.sources                                   # the interview handbook
    python -m benchmarks.sources --corpus benchmarks/corpora/18f/source --delays 0,1

Writes benchmarks/sources.json (every run) and prints a markdown table for SOURCES.md.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, loadavg, machine, now
from rag.sources import State, WebSource, sync
from rag.sources.extract import read_page
from rag.sources.scope import Scope

DEFAULT_CORPUS = ROOT / "benchmarks" / "corpora" / "interview_handbook" / "contents"
OUT = ROOT / "benchmarks" / "sources.json"
TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$pagetitle$ | Handbook</title>
<link rel="canonical" href="$canonical$">
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><header class="top"><a href="/handbook/">Handbook</a> <a href="/about/">About</a>
<form action="/search"><input name="q" placeholder="Search"></form></header>
<nav class="sidebar"><ul>$sidebar$</ul></nav>
<main><article><h1>$pagetitle$</h1>
$body$
</article></main>
<footer><p>Last updated by the handbook team. Edit this page. Privacy. Accessibility.
Copyright the authors.</p></footer></body></html>
"""
# What docs sites move out of the page body, and template tags no renderer would leave in it.
_STRIP = [re.compile(r"<head>.*?</head>", re.S), re.compile(r"\{%.*?%\}", re.S)]
# Links between markdown files, which a docs site publishes as links between pages.
_MD_LINK = re.compile(r"\]\(([^)\s]+?)\.mdx?(#[^)\s]*)?\)")


class _Quiet(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def build_site(corpus: Path, site: Path) -> tuple[list[str], str]:
    """Render every markdown file of ``corpus`` under ``site/handbook/``; returns the page
    paths and the one robots.txt disallows."""
    files = sorted(p for p in corpus.rglob("*.md") if not p.name.startswith("_"))
    paths = [f"/handbook/{p.relative_to(corpus).with_suffix('.html').as_posix()}" for p in files]
    sidebar = "".join(f'<li><a href="{u}">{html.escape(Path(u).stem)}</a></li>' for u in paths)
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "page.html"
        template.write_text(TEMPLATE.replace("$sidebar$", sidebar))
        for src, path in zip(files, paths, strict=True):
            text = src.read_text(encoding="utf-8")
            for pattern in _STRIP:
                text = pattern.sub("", text)
            text = _MD_LINK.sub(lambda m: f"]({m[1]}.html{m[2] or ''})", text)
            clean = Path(tmp) / src.name
            clean.write_text(text, encoding="utf-8")
            out = site / path.lstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["pandoc", str(clean), "-f", "markdown", "-t", "html5", "-s",
                 f"--template={template}", "--metadata", f"pagetitle={src.stem}",
                 "--variable", f"canonical={path}", "-o", str(out)],
                check=True, capture_output=True,
            )  # fmt: skip
    (site / "handbook" / "index.html").write_text(
        TEMPLATE.replace("$sidebar$", sidebar)
        .replace("$canonical$", "/handbook/")
        .replace("$pagetitle$", "Handbook")
        .replace("$body$", "<p>Every guide of the handbook.</p>")
    )
    disallowed = paths[len(paths) // 2]
    (site / "robots.txt").write_text(f"User-agent: *\nDisallow: {disallowed}\n")
    return paths, disallowed


def write_sitemap(site: Path, base: str, paths: list[str]) -> None:
    """sitemap.xml listing every page (the disallowed one too, as sites do)."""
    items = "".join(f"<url><loc>{base}{p}</loc></url>" for p in paths)
    (site / "sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'
    )


def change_pages(site: Path, paths: list[str], n: int = 3) -> None:
    """Add a sentence to the main content of ``n`` pages."""
    for path in paths[:n]:
        page = site / path.lstrip("/")
        text = page.read_text(encoding="utf-8")
        page.write_text(text.replace("</article>", "<p>A sentence added for the benchmark.</p>"
                                     "</article>"), encoding="utf-8")  # fmt: skip


def extraction(site: Path, base: str, paths: list[str], mirror: Path) -> dict[str, Any]:
    """The floor (reading every page once, in this thread, as a sync does) and what the main
    content kept: the headings under <main>, and pages where the template's chrome leaked in."""
    scope = Scope.of(base + "/handbook/", [])
    load = loadavg()
    started = time.perf_counter()
    for path in paths:
        read_page((site / path.lstrip("/")).read_bytes(), base + path, scope)
    floor = time.perf_counter() - started
    headings = kept = leaked = 0
    for name, entry in State.read(mirror).files.items():
        source = (site / entry.url[len(base) + 1 :]).read_text(encoding="utf-8")
        main = source.split("<main>", 1)[1].split("</main>", 1)[0]
        saved = " ".join((mirror / name).read_text(encoding="utf-8").split())
        for heading in re.findall(r"<h[2-6][^>]*>(.*?)</h[2-6]>", main, re.S):
            text = " ".join(re.sub(r"<[^>]+>", "", heading).split())
            headings += 1
            kept += html.escape(text, quote=False)[:40] in saved
        sidebar = sum(f"<li>{Path(p).stem}</li>" in saved for p in paths)
        leaked += "Edit this page" in saved or sidebar >= 5
    return {"extract_floor_s": round(floor, 3), "load_before": load, "headings": headings,
            "headings_kept": kept, "pages_with_chrome": leaked}  # fmt: skip


def run(source: WebSource, mirror: Path, label: str) -> dict[str, Any]:
    """One sync, with the figures SOURCES.md reports."""
    load = loadavg()
    report = sync(source, mirror)
    assert report.status == "ok", report
    return {
        "run": label,
        "load_before": load,
        "seconds": report.seconds,
        "documents": report.documents,
        "requests": report.requests,
        "fetched": report.fetched,
        "unchanged": report.unchanged,
        "changed": report.changed,
        "pages_per_s": round((report.fetched + report.unchanged) / report.seconds, 1),
        "delay_seconds": report.delay_seconds,
    }


def serve_site(
    corpus: Path, site: Path, handler: type[SimpleHTTPRequestHandler]
) -> tuple[ThreadingHTTPServer, str, list[str], str]:
    """Render ``corpus`` into ``site`` and serve it on a free loopback port with its sitemap;
    returns the running server, its base URL, the page paths and the one robots.txt disallows."""
    paths, disallowed = build_site(corpus, site)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(site)))
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    write_sitemap(site, base, paths)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, base, paths, disallowed


def main(argv: list[str] | None = None) -> None:
    """Build the site, serve it, sync it in each mode and delay, and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode with no delay")
    ap.add_argument("--delays", default="0", help="comma-separated delay_seconds to measure")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", type=Path, help="only print the table of a results file")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="rag-bench-sources-"))
    site = work / "site"
    server, base, paths, disallowed = serve_site(args.corpus, site, _Quiet)
    rows: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    try:
        for delay in (float(d) for d in args.delays.split(",")):
            for mode, start in (("sitemap", "/sitemap.xml"), ("crawl", "/handbook/")):
                source = WebSource(url=base + start, delay_seconds=delay, max_depth=2)
                for i in range(args.repeat if delay == 0 else 1):
                    mirror = work / f"mirror-{mode}-{delay}-{i}"
                    tag = {"mode": mode, "delay": delay, "try": i}
                    rows.append({**tag, **run(source, mirror, "first")})
                    if mode == "sitemap" and delay == 0:
                        floors.append(extraction(site, base, paths, mirror))
                    rows.append({**tag, **run(source, mirror, "unchanged")})
                    # Restored after, so every try syncs the same site.
                    saved = {p: (site / p.lstrip("/")).read_bytes() for p in paths[:3]}
                    change_pages(site, paths)
                    rows.append({**tag, **run(source, mirror, "3 changed")})
                    for p, data in saved.items():
                        (site / p.lstrip("/")).write_bytes(data)
                    assert disallowed not in {e.url[len(base):] for e in
                                              State.read(mirror).files.values()}  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)
    facts = machine()
    facts["versions"].update({p: version(p) for p in ("httpx", "trafilatura", "protego")})
    result = {"date": now(), "machine": facts, "corpus": str(args.corpus),
              "pages": len(paths), "rows": rows, "extraction": floors}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def table(result: dict[str, Any]) -> str:
    """The medians per mode, delay and run, as a markdown table."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for row in result["rows"]:
        groups.setdefault((row["mode"], row["delay"], row["run"]), []).append(row)
    corpus = Path(result["corpus"])
    shown = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    lines = [
        f"{result['pages']} pages from `{shown}`, {result['date']}",
        "",
        "| mode | delay s | sync | runs | seconds (median) | pages/s | requests | fetched | "
        "unchanged | documents | 1-min load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (mode, delay, run_), rows in groups.items():
        secs = statistics.median(r["seconds"] for r in rows)
        pps = statistics.median(r["pages_per_s"] for r in rows)
        r = rows[0]
        loads = sorted(row["load_before"][0] for row in rows)
        load = f"{loads[0]:.2f}" if len(loads) == 1 else f"{loads[0]:.2f}-{loads[-1]:.2f}"
        lines.append(
            f"| {mode} | {delay:g} | {run_} | {len(rows)} | {secs:.2f} | {pps:.1f} | "
            f"{r['requests']} | {r['fetched']} | {r['unchanged']} | {r['documents']} | {load} |"
        )
    if result["extraction"]:
        floor = statistics.median(e["extract_floor_s"] for e in result["extraction"])
        e = result["extraction"][0]
        lines += [
            "",
            f"Extraction floor (read_page over every page, one thread): {floor:.2f} s median "
            f"of {len(result['extraction'])}; headings under <main> kept: {e['headings_kept']} "
            f"of {e['headings']}; pages with the template's sidebar or footer: "
            f"{e['pages_with_chrome']}.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
