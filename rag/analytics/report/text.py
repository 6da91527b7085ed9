"""The report as plain text for ``rag report``: the same sections as the page, shortened."""

from __future__ import annotations

from typing import Any

SHOWN = 10


def format_report(report: dict[str, Any]) -> str:
    """Plain-text report of ``build_report()``."""
    since = f" since {report['since']}" if report["since"] else ""
    lines = [f"Coverage report of {report['path']}{since}"]
    if not report["queries"]:
        lines.append(f"No queries logged{since}.")
    else:
        by = ", ".join(f"{n} {e}" for e, n in report["by_endpoint"].items())
        lines.append(
            f"{report['queries']} queries ({by}) from {report['first']} to {report['last']}"
        )
        lines += ["", f"{'day':<10} {'queries':>8} {'p50 ms':>9} {'p95 ms':>9}"]
        for d in report["volume"]:
            lines.append(f"{d['day']:<10} {d['queries']:>8} {_ms(d['p50_ms'])} {_ms(d['p95_ms'])}")
    nc = report["not_covered"]
    sections = (
        ("top questions", report["top"], ""),
        ("not covered", nc, f" of {nc['of_answers']} answers"),
        ("zero-hit queries", report["zero_hit"], ""),
        (f"low-score queries (top score < {report['low_score_threshold']:g})",
         report["low_score"], ""),
    )  # fmt: skip
    for title, section, extra in sections:
        lines += ["", f"{title}: {section['count']}{extra}"]
        for g in section["groups"][:SHOWN]:
            score = f"  {g['min_score']:.2f}" if "min_score" in g else ""
            variants = len(g["variants"])
            also = (
                f"  (+{variants - 1} variant{'s' if variants > 2 else ''})" if variants > 1 else ""
            )
            lines.append(f"  {g['count']:>4} x {g['question']!r}{score}{also}")
    thumbs = report["thumbs_down"]
    lines += ["", f"thumbs down: {thumbs['count']}"]
    for t in thumbs["items"][:SHOWN]:
        comment = f" {t['comment']!r}" if t["comment"] else " (no comment)"
        lines.append(f"  {t['asked'][:16]}{comment} on {t['query']!r}")
    cited = report["cited"]
    lines += ["", f"documents cited: {cited['count']}"]
    for d in cited["documents"][:SHOWN]:
        lines.append(f"  {d['queries']:>4} x {d['title']} ({d['id']})")
    docs = report["documents"]
    if not docs["available"]:
        lines += ["", f"never cited: unknown, the document list is missing: {docs['reason']}"]
    else:
        never = report["never_cited"]
        lines += ["", f"never cited: {never['count']} of {docs['count']} documents"]
        lines += [f"  {d['title']} ({d['id']})" for d in never["documents"]]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:>9.1f}"
