"""Retrieval evaluation by the evidence rule: a passage is relevant if it contains an evidence
string once both are normalised."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.search.chat import resolve_query

_DROP_RE = re.compile(r"[*#_`•]")
_SPACE_RE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Drop asterisks, hashes, underscores, backticks and bullets; collapse spaces; lowercase."""
    return _SPACE_RE.sub(" ", _DROP_RE.sub("", text)).strip().lower()


@dataclass
class Question:
    """An evaluation question: text (or a conversation) and evidence strings."""

    id: str
    question: str
    evidence: list[str]
    turns: list[dict[str, str]] = field(default_factory=list)


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question set; raises RagError naming the bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RagError(f"cannot read question file {path}: {exc}") from exc
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            turns = obj.get("turns") or []
            question = obj.get("question") or (turns[-1]["content"] if turns else "")
            evidence = obj["evidence"]
            if not question or not isinstance(evidence, list) or not evidence:
                raise ValueError("needs a question (or turns) and a non-empty evidence list")
            out.append(Question(str(obj.get("id", n)), question, [str(e) for e in evidence], turns))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RagError(f"{path}:{n}: not a valid question line ({exc})") from exc
    if not out:
        raise RagError(f"{path} has no questions")
    return out


def first_relevant_rank(texts: Sequence[str], evidence: Iterable[str]) -> int | None:
    """1-based rank of the first text containing any evidence string, or None."""
    return _first_hit(relevance(texts, evidence))


def _first_hit(rel: Sequence[int]) -> int | None:
    return next((i + 1 for i, r in enumerate(rel) if r), None)


def relevance(texts: Sequence[str], evidence: Iterable[str]) -> list[int]:
    """Binary relevance of each ranked text."""
    needles = [normalise(e) for e in evidence]
    return [int(any(n and n in normalise(t) for n in needles)) for t in texts]


@dataclass
class Report:
    """Metrics of one retriever over one question set."""

    name: str
    n: int
    hit_at_1: float
    hit_at_3: float
    hit_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    mean_chars: float
    max_chars: int
    ranks: dict[str, int | None]
    misses: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def evaluate(
    name: str,
    questions: Sequence[Question],
    retrieve: Callable[[Question], list[str]],
    k: int = 10,
) -> Report:
    """Run ``retrieve`` on every question and score the ranked texts."""
    ranks: dict[str, int | None] = {}
    h1 = h3 = h5 = 0
    rr = ndcg = 0.0
    lengths: list[int] = []
    misses = []
    for q in questions:
        texts = retrieve(q)[:k]
        lengths.extend(len(t) for t in texts)
        rel = relevance(texts, q.evidence)
        rank = _first_hit(rel)
        ranks[q.id] = rank
        if rank is not None:
            h1 += rank <= 1
            h3 += rank <= 3
            h5 += rank <= 5
            rr += 1.0 / rank
        ndcg += _ndcg(rel, k)
        if rank is None or rank > 1:
            misses.append({"id": q.id, "question": q.question, "rank": rank,
                           "top": texts[0][:160] if texts else ""})  # fmt: skip
    n = len(questions)
    return Report(
        name=name,
        n=n,
        hit_at_1=h1 / n,
        hit_at_3=h3 / n,
        hit_at_5=h5 / n,
        mrr_at_10=rr / n,
        ndcg_at_10=ndcg / n,
        mean_chars=sum(lengths) / len(lengths) if lengths else 0.0,
        max_chars=max(lengths, default=0),
        ranks=ranks,
        misses=misses,
    )


def _ndcg(rel: Sequence[int], k: int) -> float:
    """nDCG@k with binary gains; the ideal puts every relevant result found first."""
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel[:k]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(sum(rel), k)))
    return dcg / ideal if ideal else 0.0


def query_for(question: Question, known_subjects: Sequence[str] = ()) -> str:
    """The retrieval query of a question; a conversation is resolved as /chat resolves it."""
    if not question.turns:
        return question.question
    return resolve_query(question.turns, known_subjects)


def compare(
    retriever: Any,
    questions: Sequence[Question],
    modes: Sequence[str],
    k: int = 10,
) -> list[Report]:
    """Evaluate several ranking modes of one retriever on one question set, each question
    asked through the query pipeline the server and the CLI use (conversations resolved as
    /chat resolves them)."""
    from rag.search.qa import Pipeline
    from rag.search.question import Limits
    from rag.search.question import Question as Asked

    pipeline = Pipeline(retriever, Limits(k=k, max_k=max(k, Limits.max_k)))
    reports = []
    for mode in modes:

        def retrieve(q: Question, mode: Any = mode) -> list[str]:
            asked = (Asked.conversation(q.turns, mode=mode) if q.turns
                     else Asked(q.question, mode=mode))  # fmt: skip
            return [h.chunk.text for h in pipeline.search_now(asked, "eval").hits]

        reports.append(evaluate(mode, questions, retrieve, k))
    return reports


def plot_reports(reports: dict[str, Sequence[Report]], path: Path) -> Path:
    """Bar chart of hit@1, hit@5, MRR@10 and nDCG@10 per retriever, one panel per question set."""
    # The object API draws without pyplot, so the caller's backend (a notebook's) is untouched.
    from matplotlib.figure import Figure

    metrics = [("hit@1", "hit_at_1"), ("hit@5", "hit_at_5"), ("MRR@10", "mrr_at_10"),
               ("nDCG@10", "ndcg_at_10")]  # fmt: skip
    # At most three panels a row, so the chart stays readable at the width of a README.
    cols = min(len(reports), 3) or 1
    rows = -(-len(reports) // cols)
    fig = Figure(figsize=(6 * cols, 4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(reports) :]:
        ax.set_visible(False)
    for ax, (name, reps) in zip(axes, reports.items(), strict=False):
        width = 0.8 / max(len(reps), 1)
        for i, rep in enumerate(reps):
            xs = [j + i * width for j in range(len(metrics))]
            values = [getattr(rep, attr) for _, attr in metrics]
            bars = ax.bar(xs, values, width, label=rep.name)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks([j + width * (len(reps) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels([m for m, _ in metrics])
        ax.set_ylim(0, 1.08)
        n = reps[0].n if reps else 0
        ax.set_title(f"{name} ({n} questions)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
