"""Score every variant on every set and write benchmarks/ABLATIONS.md."""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.ablations import variants as v
from benchmarks.ablations.lab import ROOT, SETS, Lab, Score, score_sets
from benchmarks.ablations.learned import run_learned_fusion
from rag.config import Settings
from rag.search.fusion import FusionConfig


def shipped_label(lab: Lab) -> str:
    """The first row's label, saying which model the index was built with."""
    f = lab.retriever.fusion
    model = (
        "model adapted to the corpus" if lab.index.manifest.extra.get("adapted") else "base model"
    )
    return (
        f"**shipped**: {model}; z-score fusion (weights {f.dense_weight:g} : "
        f"{f.sentence_weight:g} : {f.bm25_weight:g}) of passage, best-sentence and BM25 scores, "
        f"+ {f.role_weight:g} for the named guide"
    )


def variants(lab: Lab) -> list[tuple[str, Callable[[], dict[str, Score]]]]:
    """Every row of the table: a label and how to score it; the first is the shipped retriever."""

    def on_sets(build: Callable[[], v.Ranked]) -> Callable[[], dict[str, Score]]:
        return lambda: score_sets(lab, build())

    rows: list[tuple[str, Callable[[], v.Ranked]]] = [
        (shipped_label(lab), lambda: lab.asking(lab.retriever)),
        ("z-score fusion, equal weights", lambda: v.fusion(lab, FusionConfig(sentence_weight=1.0))),
        ("z-score fusion, weights 1 : 2 : 1", lambda: v.fusion(lab, FusionConfig(sentence_weight=2.0))),
        ("z-score fusion without the bonus for the named guide", lambda: v.fusion(lab, FusionConfig(role_weight=0.0))),
        ("z-score fusion, named-guide bonus 0.5", lambda: v.fusion(lab, FusionConfig(role_weight=0.5))),
        ("z-score fusion, hubness reduction on both vector rankings (CSLS-style, k=10, weight 0.25)", lambda: v.hubness(lab, 10, 0.25)),
        ("z-score fusion, query embedded half with the named role replaced by \"they\"", lambda: v.role_stripped(lab, 0.5)),
        ("z-score fusion, closing summaries moved from a part's last subsection to its introduction", lambda: v.summaries_to_parent(lab)),
        ("z-score fusion, BM25 k1=0.9, b=0.4", lambda: v.bm25(lab, 0.9, 0.4)),
        ("z-score fusion, BM25 with the heading path counted twice", lambda: v.bm25(lab, 1.2, 0.75, path_twice=True)),
        ("previously shipped: RRF (k=60) of the same rankings + one vote for the named guide", lambda: v.rrf(lab)),
        ("RRF without the vote for the named guide", lambda: v.rrf(lab, role=0.0)),
        ("RRF constant k=10", lambda: v.rrf(lab, k=10)),
        ("RRF constant k=30", lambda: v.rrf(lab, k=30)),
        ("RRF weights chosen on our set (sentence 2, k=5)", lambda: v.rrf(lab, (1, 2, 1), 5)),
        ("RRF, BM25 weight 0.5", lambda: v.rrf(lab, (1, 1, 0.5))),
        ("RRF, BM25 weight 1.5", lambda: v.rrf(lab, (1, 1, 1.5))),
        ("RRF without BM25", lambda: v.rrf(lab, (1, 1, 0))),
        ("RRF without sentence vectors", lambda: v.rrf(lab, (1, 0, 1))),
        ("RRF + heading-path vectors (4th ranking, weight 1)", lambda: v.extra_vectors(lab, "path", [c.section for c in lab.chunks], 1.0)),
        ("RRF + last-heading vectors (4th ranking, weight 0.5)", lambda: v.extra_vectors(lab, "heading", [c.section_path[-1] for c in lab.chunks], 0.5)),
        ("RRF + questions made from headings (4th ranking, weight 0.5)", lambda: v.question_templates(lab, 0.5)),
        ("RRF + IDF-weighted query-term coverage (4th ranking, weight 0.5)", lambda: v.term_coverage(lab, 0.5)),
        ("RRF + bonus for query terms in the last heading (0.005)", lambda: v.heading_bonus(lab, 0.005)),
        ("RRF, part introductions capped below their best subsection", lambda: v.intro_cap(lab, 2)),
        ("RRF, dense pseudo-relevance feedback (beta 0.3, top 3)", lambda: v.prf(lab, 0.3, 3)),
        ("RRF, top-10 re-scored by best-sentence cosine (gain 0.05)", lambda: v.sentence_rescore(lab, 10, 0.05)),
        ("RRF, sentence ranking by soft maximum (log-sum-exp, T=0.05)", lambda: v.sentence_lse(lab, 0.05)),
        ("RRF + token-level late interaction, MaxSim (4th ranking, weight 0.5)", lambda: v.maxsim(lab, 0.5)),
        *(
            (f"RRF, small sibling sections merged into passages of at most {n} characters",
             lambda n=n: v.merged(lab, n))
            for n in (500, 800)
        ),
    ]  # fmt: skip
    out = [(label, on_sets(build)) for label, build in rows]
    out.append((
        "learned fusion: pairwise logistic regression on 11 features (trained on our sets)",
        lambda: run_learned_fusion(lab),
    ))  # fmt: skip
    if lab.index.manifest.extra.get("adapted"):
        label = "without adapting the model to the corpus (the base model as it ships)"
        out.append((label, lambda: v.unadapted(lab.settings)))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Score every variant and write the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/ABLATIONS.md")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    lab = Lab(Settings())
    rows: list[tuple[str, dict[str, Score]]] = []
    for label, run in variants(lab):
        rows.append((label, run()))
        print(f"{label}: {rows[-1][1]['dev'].cell()}", flush=True)
    write_report(args.out, rows, time.perf_counter() - t0)
    print(f"wrote {args.out}")


def write_report(path: Path, rows: Sequence[tuple[str, dict[str, Score]]], seconds: float) -> None:
    """Markdown table, one row per variant; the first row is what ships."""
    base = rows[0][1]
    lines = [
        "# Retrieval ablations",
        "",
        "Written by `make ablations` (`python -m benchmarks.ablations`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, Python "
        f"{platform.python_version()}, in {seconds:.0f} s. Cells are hit@1 / hit@5 / MRR@10; "
        "a passage is a hit if it contains an evidence string once both are normalised. "
        "The dev set is the shared one (20 questions); *own* (48 questions) and *multi-turn* "
        "(18 conversations, resolved as `/chat` resolves them) are the sets fusion settings were "
        "chosen on; *held-out* (40 questions) and *held-out multi-turn* (10 conversations) were "
        "written by someone who had seen no ranking, and were scored only after the choice. "
        "The first row is the shipped `Retriever`; every other row searches the same index with "
        "the same query vectors through a `Retriever` given another fusion configuration or "
        "another `Ranker` (a fourth ranking, the fused list re-scored, vectors or BM25 built "
        "from other texts), so the named-guide rules apply to every row as they ship.",
        "",
        "| variant | " + " | ".join(SETS) + " | named guide in top 5 | dev below rank 1 |",
        "|---|" + "---|" * (len(SETS) + 2),
    ]
    role_queries = sum(s.role_queries for s in base.values())
    for label, scores in rows:
        cells = []
        for name in SETS:
            s = scores[name]
            mark = ""
            if scores is not base:
                diff = s.mrr - base[name].mrr
                mark = f" ({diff:+.3f})" if abs(diff) >= 0.0005 else " (=)"
            cells.append(s.cell() + mark)
        counted = [s for s in scores.values() if s.role_share is not None]
        n = sum(s.role_queries for s in counted)
        role = f"{sum(s.role_share * s.role_queries for s in counted) / n:.2f}" if n else "-"
        misses = ", ".join(scores["dev"].misses) or "none"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {role} | {misses} |")
    lines += [
        "",
        "The bracket is the MRR@10 change against the shipped row. *Named guide in top 5*: over "
        f"the questions of all sets that name exactly one guide's role ({role_queries} of "
        f"{sum(s.queries for s in base.values())}), the share of the top 5 passages that come "
        "from that guide. The learned-fusion row scores dev and the held-out sets with a model "
        "trained on all of our questions, and our sets by 5-fold cross-validation (each question "
        "scored by a model that did not see it). Rows marked RRF are variants of the fusion "
        "shipped before z-score fusion, each measured against it when it was tried.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
