"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

``rag report --html`` writes it and ``/admin`` serves it. The served page adds a toolbar (period
form, CSV download, sign-out, and the collections when the server has several) that a file on
disk has no server for. ``render_all_html`` puts every collection's report on one page. Every
string from the log (questions, comments) is escaped: readers wrote them.

The app's pages allow only same-origin stylesheets; this page must open from disk too, so its one
inline stylesheet is allowed by its hash (``STYLE_HASH``) in the CSP the admin route sends.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from rag.analytics.report.charts import Bar, hbar_chart, volume_chart
from rag.collections import ALL

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 60rem;
  padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: .5rem 0; }
h2 { font-size: 1.2rem; margin: 2rem 0 .4rem; border-bottom: 1px solid #ddd; }
p.lead, p.note { color: #555; margin: .2rem 0; }
.stats { display: flex; flex-wrap: wrap; gap: .6rem; padding: 0; list-style: none; }
.stats li { background: #f3f5f8; border-radius: 6px; padding: .4rem .8rem; }
.stats b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee;
  vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
.variants { color: #666; font-size: .85rem; }
blockquote { margin: 0; }
.missing { background: #fff4e5; border-left: 4px solid #f58518; padding: .5rem .8rem; }
svg { max-width: 100%; height: auto; }
nav form { display: inline; margin-right: 1rem; }
nav { background: #f3f5f8; padding: .5rem .8rem; border-radius: 6px; }
nav a { margin-right: 1rem; }
nav + nav { margin-top: .4rem; }
nav a[aria-current] { font-weight: 700; color: #222; text-decoration: none; }
section.collection { margin-top: 2.5rem; }
.login { max-width: 24rem; margin: 4rem auto; }
.login input { width: 100%; padding: .4rem; margin: .4rem 0 .8rem; box-sizing: border-box; }
"""
# What the served page's CSP names to allow the stylesheet above, and nothing else inline.
STYLE_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"
SHOWN = 10  # rows of a question table before the rest goes under "more"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="icon" href="data:,">'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def render_html(
    report: dict[str, Any], *, admin: bool = False, collections: Sequence[str] = ()
) -> str:
    """The report page; ``admin`` adds the served page's toolbar, with a link to each of
    ``collections`` when there are several."""
    parts = [
        "<header>",
        "<h1>Coverage report</h1>",
        f'<p class="lead">{escape(_period(report))}. Generated {escape(report["generated_at"])}.'
        "</p>",
        "</header>",
    ]
    if admin:
        parts.append(_toolbar(report["since"], report.get("collection"), collections))
    parts += ["<main>", *_sections(report), "</main>"]
    return _page("Coverage report · career-rag", "\n".join(parts))


def render_all_html(
    reports: Mapping[str, dict[str, Any]], *, admin: bool = False, collections: Sequence[str] = ()
) -> str:
    """One page holding the report of each collection of ``reports``, in their order."""
    first = next(iter(reports.values()))
    since = f" since {first['since']}" if first["since"] else ""
    parts = [
        "<header>",
        "<h1>Coverage report: every collection</h1>",
        f'<p class="lead">{len(reports)} collections{escape(since)}. Generated '
        f"{escape(first['generated_at'])}.</p>",
        "</header>",
    ]
    if admin:
        parts.append(_toolbar(first["since"], ALL, collections or list(reports)))
    links = "".join(f'<li><a href="#c-{escape(n)}">{escape(n)}</a></li>' for n in reports)
    parts += ["<main>", f'<ul aria-label="Collections in this report">{links}</ul>']
    for name, report in reports.items():
        parts.append(
            f'<section class="collection" id="c-{escape(name)}"><h2>Collection '
            f'{escape(name)}</h2><p class="lead">{escape(_period(report))}.</p>'
            f"{_nested(name, chr(10).join(_sections(report)))}</section>"
        )
    parts.append("</main>")
    return _page("Coverage report, every collection · career-rag", "\n".join(parts))


# The sections are written as a page of their own; nested in a page of several reports their
# ids take the collection's name and their headings go down a level. Text from the log is
# escaped, so no quote or tag of a reader's can match these.
_ID = re.compile(r'\b(id|aria-labelledby)="([^"]*)"')


def _nested(name: str, html: str) -> str:
    def rename(match: re.Match[str]) -> str:
        ids = " ".join(f"{name}-{i}" for i in match.group(2).split())
        return f'{match.group(1)}="{escape(ids)}"'

    html = _ID.sub(rename, html)
    return html.replace("<h2>", "<h3>").replace("</h2>", "</h3>")


def _sections(report: dict[str, Any]) -> list[str]:
    """The report's sections, from the totals to the documents never cited."""
    return [
        _totals(report),
        _volume(report),
        _questions(
            "top",
            "Top questions",
            "Questions asked most, near duplicates counted together.",
            report["top"],
        ),
        _questions(
            "not_covered",
            "Not covered",
            f"Asked of /ask or /chat and left without an answer: {report['not_covered']['count']}"
            f" of {report['not_covered']['of_answers']} answers. The guides may lack these.",
            report["not_covered"],
        ),
        _questions(
            "zero_hit",
            "Zero hits",
            "Queries that matched no passage at all.",
            report["zero_hit"],
        ),
        _questions(
            "low_score",
            "Low score",
            f"The best passage barely stood out (top score under "
            f"{report['low_score_threshold']:g}): likely answered from the wrong guide.",
            report["low_score"],
            score=True,
        ),
        _thumbs(report["thumbs_down"]),
        _documents(report),
    ]


def render_login(message: str = "") -> str:
    """The sign-in form of /admin: one password field, posted to /admin/login."""
    note = f'<p class="missing" role="alert">{escape(message)}</p>' if message else ""
    body = (
        '<main class="login"><h1>Coverage report</h1>'
        "<p>Sign in with the admin token (the server's <code>RAG_ADMIN_TOKEN</code>).</p>"
        f'{note}<form method="post" action="/admin/login">'
        '<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form></main>'
    )
    return _page("Sign in · career-rag", body)


def _period(report: dict[str, Any]) -> str:
    if not report["queries"]:
        since = f" since {report['since']}" if report["since"] else ""
        return f"No queries logged{since}"
    start = report["since"] or report["first"]
    return f"{report['queries']} queries from {start[:16]} to {report['last'][:16]} (UTC)"


def _query(since: str, collection: str | None) -> str:
    pairs = {"since": since, "collection": collection or ""}
    params = urlencode({k: v for k, v in pairs.items() if v})
    return f"?{params}" if params else ""


def _toolbar(since: str | None, collection: str | None, collections: Sequence[str]) -> str:
    """The period form, the exports and sign-out; with several collections, a link to each
    one's report and to all of them, and the exports of the one shown."""
    since = since or ""
    several = len(collections) > 1
    shown = collection if several else None
    query = _query(since, shown)
    menu, hidden = "", ""
    if several:
        current = ' aria-current="page"'
        links = "".join(
            f'<a href="/admin{escape(_query(since, name))}"{current if name == shown else ""}>'
            f"{escape(label)}</a>"
            for name, label in [*((n, n) for n in collections), (ALL, "All collections")]
        )
        menu = f'<nav aria-label="Collections">Collection: {links}</nav>'
        hidden = f'<input type="hidden" name="collection" value="{escape(shown or "")}">'
    return (
        f'{menu}<nav aria-label="Report">'
        f'<form method="get" action="/admin">{hidden}<label for="since">Since </label>'
        f'<input id="since" name="since" value="{escape(since)}" placeholder="7d or 2026-11-01"'
        ' size="14"> <button type="submit">Show</button></form>'
        f'<a href="/admin/report.csv{escape(query)}" download>Download CSV</a>'
        f'<a href="/admin/report.json{escape(query)}">JSON</a>'
        '<form method="post" action="/admin/logout"><button type="submit">Sign out</button></form>'
        "</nav>"
    )


def _totals(report: dict[str, Any]) -> str:
    items = [
        ("queries", report["queries"]),
        ("not covered", report["not_covered"]["count"]),
        ("zero hits", report["zero_hit"]["count"]),
        ("low score", report["low_score"]["count"]),
        ("thumbs down", report["thumbs_down"]["count"]),
    ]
    items += [(f"on {e}", n) for e, n in report["by_endpoint"].items()]
    cells = "".join(f"<li><b>{n}</b>{escape(label)}</li>" for label, n in items)
    return f'<ul class="stats" aria-label="Totals">{cells}</ul>'


def _volume(report: dict[str, Any]) -> str:
    volume = report["volume"]
    rows = "".join(
        f"<tr><td>{d['day']}</td><td class='n'>{d['queries']}</td>"
        f"<td class='n'>{_ms(d['p50_ms'])}</td><td class='n'>{_ms(d['p95_ms'])}</td></tr>"
        for d in volume
    )
    return (
        '<section id="volume"><h2>Volume and latency per day</h2>'
        f"<figure>{volume_chart(volume)}</figure><details><summary>The numbers</summary>"
        "<table><thead><tr><th>day (UTC)</th><th class='n'>queries</th>"
        "<th class='n'>p50 ms</th><th class='n'>p95 ms</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details></section>"
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _questions(
    key: str, heading: str, note: str, section: dict[str, Any], *, score: bool = False
) -> str:
    groups = section["groups"]
    head = f'<section id="{key}"><h2>{escape(heading)}</h2><p class="note">{escape(note)}</p>'
    if not groups:
        return f"{head}<p>None in this period.</p></section>"
    rows = []
    for g in groups:
        others = [v for v in g["variants"] if v["query"] != g["question"]]
        also = (
            '<div class="variants">also asked as: '
            + "; ".join(f"“{escape(v['query'])}” ×{v['count']}" for v in others)
            + "</div>"
            if others
            else ""
        )
        best = f"<td class='n'>{g['min_score']:.2f}</td>" if score else ""
        rows.append(
            f"<tr><td>{escape(g['question'])}{also}</td><td class='n'>{g['count']}</td>"
            f"{best}<td class='n'>{escape(g['last'][:10])}</td></tr>"
        )
    score_head = "<th class='n'>lowest top score</th>" if score else ""
    table_head = (
        f"<thead><tr><th>question</th><th class='n'>times</th>{score_head}"
        "<th class='n'>last asked</th></tr></thead>"
    )
    more = ""
    if len(rows) > SHOWN:
        more = (
            f"<details><summary>{len(rows) - SHOWN} more</summary><table>{table_head}"
            f"<tbody>{''.join(rows[SHOWN:])}</tbody></table></details>"
        )
    shown = f"<table>{table_head}<tbody>{''.join(rows[:SHOWN])}</tbody></table>"
    count = (
        f"<p class='note'>{section['count']} queries, {section['distinct']} distinct questions"
        + (
            f"; the {len(groups)} most asked are listed"
            if section["distinct"] > len(groups)
            else ""
        )
        + ".</p>"
    )
    return f"{head}{count}{shown}{more}</section>"


def _thumbs(section: dict[str, Any]) -> str:
    head = (
        '<section id="thumbs_down"><h2>Thumbs down</h2>'
        '<p class="note">Answers readers disliked, newest first, with what they wrote.</p>'
    )
    if not section["items"]:
        return f"{head}<p>None in this period.</p></section>"
    rows = "".join(
        f"<tr><td>{escape(t['query'])}</td>"
        f"<td><blockquote>{escape(t['comment'] or '')}</blockquote></td>"
        f"<td>{escape(t['endpoint'])}</td><td class='n'>{escape(t['asked'][:16])}</td></tr>"
        for t in section["items"]
    )
    shown = ""
    if section["count"] > len(section["items"]):
        shown = f"<p class='note'>The newest {len(section['items'])} of {section['count']}.</p>"
    return (
        f"{head}{shown}<table><thead><tr><th>question</th><th>comment</th><th>endpoint</th>"
        f"<th class='n'>asked (UTC)</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _documents(report: dict[str, Any]) -> str:
    cited = report["cited"]["documents"]
    bars = [
        Bar(d["title"], d["queries"], f"{d['title']}: in the results of {d['queries']} queries")
        for d in cited[:15]
    ]
    chart = hbar_chart(
        "cited",
        bars,
        "Documents cited most",
        "Each bar is the number of queries whose results included a passage of the document.",
    )
    rows = "".join(
        f"<tr><td>{escape(d['title'])}</td><td><code>{escape(d['id'])}</code></td>"
        f"<td class='n'>{d['queries']}</td><td class='n'>{d['top_ranked']}</td></tr>"
        for d in cited
    )
    parts = [
        '<section id="cited"><h2>Documents cited most</h2>'
        '<p class="note">Counted once per query whose results held one of its passages.</p>',
        f"<figure>{chart}</figure>",
        "<table><thead><tr><th>title</th><th>id</th><th class='n'>queries</th>"
        f"<th class='n'>ranked first</th></tr></thead><tbody>{rows}</tbody></table></section>",
        '<section id="never_cited"><h2>Never cited</h2>',
    ]
    docs = report["documents"]
    never = report["never_cited"]
    if not docs["available"]:
        parts.append(
            f'<p class="missing">The document list is missing: {escape(docs["reason"] or "")}.'
            " Only documents that were cited are known.</p>"
        )
    elif not never["documents"]:
        parts.append(f"<p>Every one of the {docs['count']} documents was cited.</p>")
    else:
        items = "".join(
            f"<li>{escape(d['title'])} <code>{escape(d['id'])}</code></li>"
            for d in never["documents"]
        )
        parts.append(
            f'<p class="note">{never["count"]} of {docs["count"]} documents came up in no '
            f"query's results in this period.</p><ul>{items}</ul>"
        )
    parts.append("</section>")
    return "\n".join(parts)
