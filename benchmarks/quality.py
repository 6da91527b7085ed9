"""The quality sets of every corpus (tests/data/quality): retrieval, answers and refusals.

For each corpus `make eval` (benchmarks/corpora.py) reports, from its quality sets:

- hit@1, hit@5 and MRR@10 of the hybrid ranking on the 30 answerable questions (``rag eval``);
- answered: the share of those 30 that ``Retriever.answer`` answers;
- holding evidence: the share of those 30 answered with a quoted sentence that holds one of
  the question's evidence strings (normalised as ``rag.evaluation.normalise`` does);
- near-miss refused: the share of the 12 near-misses left unanswered;
- off-topic refused: the share of the shared off-topic set left unanswered on that corpus.

Questions are asked as benchmarks/coverage.py asks them (top 5, the shipped answer).
``python -m benchmarks.quality moved BEFORE.json AFTER.json`` lists the questions whose rank or
answer changed between two runs saved with ``python -m benchmarks.corpora --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

LEGEND = [
    "Hybrid hit@1 / hit@5 / MRR@10 on the 30 answerable questions; answered: share of them "
    "answered; evidence: share answered with a quoted sentence holding an evidence string; "
    "near-miss and off-topic refused: share of the 12 near-misses and of the shared off-topic "
    "set left unanswered.",
]
HEADER = [
    "| corpus | hit@1 | hit@5 | MRR@10 | answered | evidence | near-miss refused "
    "| off-topic refused |",
    "|---|---|---|---|---|---|---|---|",
]


def score(corpus: Any, index: Path, hybrid: Any) -> dict[str, Any]:
    """Every quality figure of one corpus, with the per-question results behind them."""
    from benchmarks.coverage import Asked, ask, offtopic
    from rag.config import Settings
    from rag.evaluation import load_questions
    from rag.search.retriever import Retriever

    questions = [Asked("in", q.id, q.question, "answerable", tuple(q.evidence))
                 for q in load_questions(corpus.questions)]  # fmt: skip
    near = [json.loads(line) for line in corpus.nearmiss.read_text().splitlines() if line.strip()]
    asked = questions + [Asked("near", n["id"], n["question"], n["kind"]) for n in near]
    retriever = Retriever.from_settings(Settings(index_dir=index, corpus_dir=corpus.path))
    try:
        rows = ask(retriever, corpus.name, asked + offtopic())
    finally:
        retriever.index.close()

    def of(cls: str, key: str) -> dict[str, bool]:
        return {r["id"]: bool(r[key]) for r in rows if r["cls"] == cls}

    return {
        "hit_at_1": hybrid.hit_at_1,
        "hit_at_5": hybrid.hit_at_5,
        "mrr_at_10": hybrid.mrr_at_10,
        "ranks": hybrid.ranks,
        "answered": of("in", "answered"),
        "evidence": of("in", "holds_evidence"),
        "near_answered": of("near", "answered"),
        "off_answered": of("off", "answered"),
    }


def figures(s: dict[str, Any]) -> dict[str, float]:
    """The shares of one corpus's results."""

    def share(d: dict[str, bool], value: bool = True) -> float:
        return sum(v == value for v in d.values()) / len(d) if d else 0.0

    return {
        "hit@1": s["hit_at_1"],
        "hit@5": s["hit_at_5"],
        "MRR@10": s["mrr_at_10"],
        "answered": share(s["answered"]),
        "evidence": share(s["evidence"]),
        "near-miss refused": share(s["near_answered"], False),
        "off-topic refused": share(s["off_answered"], False),
    }


def row(name: str, s: dict[str, Any]) -> str:
    """One corpus's line of the table."""
    f = figures(s)
    cells = [f"{f['hit@1']:.2f}", f"{f['hit@5']:.2f}", f"{f['MRR@10']:.3f}"]
    cells += [f"{f[k]:.2f}" for k in ("answered", "evidence", "near-miss refused",
                                      "off-topic refused")]  # fmt: skip
    return f"| {name} | " + " | ".join(cells) + " |"


def table(scores: dict[str, dict[str, Any]]) -> list[str]:
    """The quality table, one line per corpus."""
    return [*HEADER, *(row(name, s) for name, s in scores.items())]


def moved(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Each question whose rank, answer or quoted evidence changed, corpus by corpus."""
    out = []
    for name in after:
        if name not in before:
            continue
        b, a = before[name], after[name]
        for qid, rank in a["ranks"].items():
            old = b["ranks"].get(qid)
            if old != rank:
                out.append(f"{name} {qid}: rank {old or '-'} → {rank or '-'}")
        for key, what in (("answered", "answered"), ("evidence", "holds evidence"),
                          ("near_answered", "answered"), ("off_answered", "answered")):  # fmt: skip
            for qid, now in a[key].items():
                if b[key].get(qid) is not None and b[key][qid] != now:
                    out.append(f"{name} {qid}: {what} {b[key][qid]} → {now}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the questions that moved between two saved runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("moved", help="questions that moved between two runs")
    cmd.add_argument("before", type=Path)
    cmd.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before = json.loads(args.before.read_text())["corpora"]
    after = json.loads(args.after.read_text())["corpora"]
    print("\n".join(table(after)))
    print("\n".join(moved(before, after)) or "nothing moved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
