"""Terminal output of the ``rag`` command: rich tables and panels, and JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from rag.config import Settings
    from rag.search import Hit


def print_eval(out: Console, path: Path, n: int, k: int, reports: list[Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{path.name}: {n} questions, k={k}")
    table.add_column("mode")
    for label in ("hit@1", "hit@3", "hit@5", f"MRR@{k}", f"nDCG@{k}", "mean chars", "max chars"):
        table.add_column(label, justify="right")
    for r in reports:
        table.add_row(
            r.name,
            *(f"{v:.3f}" for v in (r.hit_at_1, r.hit_at_3, r.hit_at_5, r.mrr_at_10, r.ndcg_at_10)),
            f"{r.mean_chars:.0f}",
            str(r.max_chars),
        )
    out.print(table)
    focus = next((r for r in reports if r.name == "hybrid"), reports[-1])
    if not focus.misses:
        out.print(f"{focus.name}: every question has evidence at rank 1.")
        return
    misses = Table(title=f"{focus.name}: questions without evidence at rank 1")
    misses.add_column("id")
    misses.add_column("rank", justify="right")
    misses.add_column("question")
    for m in focus.misses:
        misses.add_row(str(m["id"]), str(m["rank"]) if m["rank"] else f">{k}", m["question"])
    out.print(misses)


def citation_label(hit: Hit) -> str:
    """A citation as 'title > section (source:start-end)'."""
    c = hit.chunk
    # Section paths start with the document title; do not print it twice.
    path = list(c.section_path)
    if path and path[0] == c.title:
        path = path[1:]
    place = " > ".join([c.title, *path]) if c.title else " > ".join(path)
    return f"{place} ({c.source}:{c.start}-{c.end})"


def print_hit(out: Console, hit: Hit) -> None:
    from rich.padding import Padding
    from rich.text import Text

    head = Text(f"[{hit.rank}] ", style="bold cyan")
    head.append(citation_label(hit), style="bold")
    head.append(f"  score {hit.score:.4f}", style="dim")
    out.print(head, soft_wrap=True)
    out.print(Padding(Text(hit.chunk.text.strip()), (0, 0, 1, 4), expand=False))


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # Created per call so that it writes to whatever sys.stdout is now (pytest swaps it).
    return Console(stderr=stderr, highlight=False)


def print_json(obj: Any, *, lines: bool = False) -> None:
    """Print JSON: indented, or as one line of a JSON Lines stream (``lines``)."""
    text = (
        json.dumps(obj, ensure_ascii=False)
        if lines
        else json.dumps(obj, indent=2, ensure_ascii=False)
    )
    print(text, flush=lines)


def print_documents(out: Console, docs: list[dict[str, Any]], index_dir: Path, model: str) -> None:
    """The indexed documents as a table."""
    from rich.table import Table

    table = Table(
        title=f"{len(docs)} documents in {index_dir}",
        caption=f"{sum(d['chunks'] for d in docs)} chunks, model {model}",
    )
    # Ids are what `--doc` takes, so they are never wrapped; the other columns give way.
    table.add_column("id", no_wrap=True)
    table.add_column("title")
    table.add_column("source", overflow="fold")
    table.add_column("sections", justify="right")
    table.add_column("chunks", justify="right")
    for d in docs:
        table.add_row(d["id"], d["title"], d["source"], str(d["sections"]), str(d["chunks"]))
    out.print(table)


def index_json(settings: Settings, manifest: Any, *, built: bool) -> dict[str, Any]:
    """What `rag index --json` prints about a build (or a build found up to date)."""
    return {
        "built": built,
        "index_dir": str(settings.index_dir),
        "model": manifest.model,
        "counts": manifest.counts,
        "built_at": manifest.built_at,
        "build_seconds": manifest.build_seconds,
        "build_id": manifest.build_id,
        "changes": manifest.extra.get("changes"),
        "skipped": [
            {"path": path, "reason": why}
            for path, why in (manifest.extra.get("skipped") or {}).items()
        ],
    }


def changes_line(manifest: Any) -> str:
    """One line on what a build added, changed, removed and reused."""
    changes = manifest.extra.get("changes") or {}
    docs, chunks = changes.get("documents") or {}, changes.get("chunks") or {}
    if not changes.get("incremental"):
        why = changes.get("full_rebuild_reason")
        return f"Full build ({why})." if why else "Full build."
    return (
        f"Documents: {docs.get('added', 0)} added, {docs.get('changed', 0)} changed, "
        f"{docs.get('removed', 0)} removed, {docs.get('reused', 0)} unchanged. "
        f"Passages: {chunks.get('added', 0) + chunks.get('changed', 0)} embedded, "
        f"{chunks.get('removed', 0)} removed, {chunks.get('reused', 0)} reused."
    )


class BuildBar:
    """A build's progress on the terminal: one bar per stage, with a count and an ETA."""

    def __init__(self, out: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=out,
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> BuildBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def stage(self, name: str, total: int) -> None:
        """Start the bar of a new stage."""
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        self._task = self._bar.add_task(name, total=total)

    def advance(self, steps: int = 1) -> None:
        """Move the current stage's bar on."""
        if self._task is not None:
            self._bar.advance(self._task, steps)


def settings_error(exc: Any) -> str:
    """A pydantic ValidationError from Settings as one line naming the RAG_* variable."""
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e.get("loc", ()))
        value = e.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        if field == "admin_token":  # a secret, even a bad one, is not echoed to a terminal
            shown = ""
        parts.append(f"RAG_{field.upper()}{shown}: {e.get('msg', 'invalid')}")
    return "invalid setting " + "; ".join(parts)
