"""The /admin/sources page: each collection's sources with their last sync, its documents, and
forms to upload, delete an upload and sync now. No script; one inline stylesheet, allowed by
its hash in the page's CSP. Every string from a source, a file or a document is escaped."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 72rem;
  padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: .5rem 0; }
h2 { font-size: 1.3rem; margin: 2rem 0 .4rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee;
  vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
.notice { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: .5rem .8rem; }
.error { background: #fdecea; border-left: 4px solid #c62828; padding: .5rem .8rem; }
.muted { color: #666; }
.failed { color: #c62828; font-weight: 600; }
form { display: inline; }
form.block { display: block; margin: .5rem 0; }
nav { background: #f3f5f8; padding: .5rem .8rem; border-radius: 6px; }
nav a { margin-right: 1rem; }
button { cursor: pointer; }
"""
STYLE_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"
PAGE_CSP = (
    f"default-src 'none'; style-src {STYLE_HASH}; img-src data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
COUNTS = ("fetched", "unchanged", "added", "changed", "removed")


def render_sources(
    collections: list[dict[str, Any]], csrf: str, *, notice: str = "", error: str = ""
) -> str:
    """The whole page."""
    parts = [
        '<nav aria-label="Admin"><a href="/admin">Coverage report</a>'
        '<a href="/admin/sources">Sources and documents</a>'
        '<form method="post" action="/admin/logout"><button>Sign out</button></form></nav>',
        "<h1>Sources and documents</h1>",
    ]
    if notice:
        parts.append(f'<p class="notice" role="status">{escape(notice)}</p>')
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    parts += [_collection(c, csrf) for c in collections]
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Sources and documents</title><link rel="icon" href="data:,">'
        f"<style>{STYLE}</style></head>\n<body>\n{''.join(parts)}\n</body></html>\n"
    )


def _hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _collection(c: dict[str, Any], csrf: str) -> str:
    name = escape(c["name"])
    access = "public" if c["public"] else "private"
    head = f'<section id="c-{name}" aria-labelledby="h-{name}"><h2 id="h-{name}">{name}</h2>'
    index = (
        f"Index build {escape(str(c['build_id']))}, loaded {escape(str(c['loaded_at']))}"
        if c["build_id"]
        else "No index is served yet"
    )
    if c["index_error"]:
        index += f' <span class="failed">({escape(c["index_error"])})</span>'
    every = f"every {_duration(c['sync_every'])}" if c["sync_every"] else "with `rag sync` only"
    lines = [head, f'<p class="muted">{access}; {index}; synced {every}.</p>']
    last = c["last_sync"]
    if c["syncing"]:
        lines.append(f"<p>A sync is running (since {escape(str(c['sync_started']))}).</p>")
    elif last:
        idx = last.get("index") or {}
        status = escape(last["status"])
        cls = ' class="failed"' if last["status"] == "failed" else ""
        text = f"Last sync {escape(str(last['finished_at']))}: <span{cls}>{status}</span>"
        if idx:
            text += f"; index {escape(idx['status'])}"
            if idx.get("error"):
                text += f': <span class="failed">{escape(idx["error"])}</span>'
        lines.append(f"<p>{text}.</p>")
    lines.append(
        f'<form class="block" method="post" action="/admin/sources/{name}/sync">{_hidden(csrf)}'
        f'<button aria-label="Sync {name} now">Sync now</button></form>'
    )
    lines.append(_sources_table(c))
    lines.append(
        f"<h3>Upload documents</h3>"
        f'<form class="block" method="post" action="/admin/sources/{name}/upload" '
        f'enctype="multipart/form-data">{_hidden(csrf)}'
        f'<label>Files (md, mdx, html, pdf, docx, txt) <input type="file" name="files" multiple '
        f'required aria-label="Files to upload to {name}"></label> '
        f'<button aria-label="Upload to {name}">Upload</button></form>'
    )
    if c["uploads_error"]:
        lines.append(f'<p class="error">{escape(c["uploads_error"])}</p>')
    lines.append(_documents_table(c, csrf))
    return "".join(lines) + "</section>"


def _sources_table(c: dict[str, Any]) -> str:
    head = "".join(f'<th class="n">{k}</th>' for k in COUNTS)
    rows = []
    for s in c["sources"]:
        last = s["last"]
        label = f"<td>{escape(s['name'])}</td><td>{escape(s['type'])}</td><td>{escape(s['source'])}</td>"
        if last is None:
            rows.append(
                f'<tr>{label}<td colspan="{len(COUNTS) + 4}" class="muted">never synced</td></tr>'
            )
            continue
        status = escape(last["status"])
        if last["status"] == "failed":
            status = f'<span class="failed">failed</span>: {escape(str(last["error"]))}'
        counts = "".join(f'<td class="n">{int(last[k])}</td>' for k in COUNTS)
        errors = "".join(f"<li>{escape(u)}: {escape(e)}</li>" for u, e in last["errors"].items())
        errors = f"<ul>{errors}</ul>" if errors else "0"
        rows.append(
            f"<tr>{label}<td>{escape(str(s['synced_at']))}</td><td>{status}</td>{counts}"
            f'<td class="n">{len(last["skipped_robots"])}</td><td>{errors}</td></tr>'
        )
    return (
        f'<h3>Sources</h3><table aria-label="Sources of {escape(c["name"])}"><thead><tr>'
        f"<th>name</th><th>type</th><th>source</th><th>last sync</th><th>status</th>{head}"
        f'<th class="n">skipped by robots.txt</th><th>errors</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _documents_table(c: dict[str, Any], csrf: str) -> str:
    name = escape(c["name"])
    rows = []
    for d in c["documents"]:
        doc_id = escape(d["id"])
        action = ""
        if d["upload"]:
            action = (
                f'<form method="post" action="/admin/sources/{name}/delete">{_hidden(csrf)}'
                f'<input type="hidden" name="doc_id" value="{doc_id}">'
                f'<button aria-label="Delete {doc_id}">Delete</button></form>'
            )
        rows.append(
            f"<tr><td>{doc_id}</td><td>{escape(d['title'])}</td><td>{escape(d['source'])}</td>"
            f"<td>{escape(d['origin'])}</td><td>{action}</td></tr>"
        )
    more = c["document_count"] - len(c["documents"])
    note = f'<p class="muted">and {more} more</p>' if more > 0 else ""
    return (
        f'<h3>Documents ({c["document_count"]})</h3><table aria-label="Documents of {name}">'
        "<thead><tr><th>id</th><th>title</th><th>source</th><th>from</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
