"""Calibrate and measure the "not covered" decision (rag.search.coverage) on every corpus.

For each corpus of `make eval` (benchmarks/corpora.py) it asks the corpus's in-domain
questions (its question sets, no conversations, and the answerable questions of its quality
set), its near-misses (tests/data/quality) and the shared off-topic set
(tests/data/offtopic_questions.jsonl), records the coverage signals of each, and reports the
share answered and refused with the shipped CoverageConfig.

The decision is calibrated once, for every corpus, on three of them (``CALIBRATION``): a
logistic model on the signals, then the two thresholds that refuse the most near-miss and
off-topic questions while every calibration corpus still answers 95% of its in-domain ones.
The other corpora are held out: their figures are the honest estimate, the calibration
corpora's are in-sample. ``--fit`` prints the configuration that calibration gives (what
CoverageConfig ships); ``python -m benchmarks.coverage`` writes benchmarks/COVERAGE.md and
coverage.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import loadavg, machine, now
from benchmarks.corpora import CACHE, DATA, corpora, rag
from rag.search.coverage import CoverageConfig

ROOT = Path(__file__).resolve().parent.parent
OFFTOPIC = DATA / "offtopic_questions.jsonl"
TARGETS = {"answered": 0.95, "refused": 0.90, "near-miss refused": 0.70}
# The corpora the decision is calibrated on; every other corpus is held out.
CALIBRATION = ("guide", "handbook", "interview")
# The thresholds tried, in steps of this size.
STEP = 0.02
FEATURES = ("sentence_weight", "dense_weight", "lexical_weight", "phrase_weight", "terms_weight")


def signals() -> list[dict[str, Any]]:
    """Coverage signals of every in-domain, near-miss and off-topic question on every corpus."""
    from rag.config import Settings
    from rag.evaluation import load_questions
    from rag.search.retriever import Retriever

    off = offtopic()
    rows = []
    for corpus in corpora(with_conversions=False):
        index = CACHE / corpus.name
        rag("index", "--if-stale", "--corpus", str(corpus.path), "--index", str(index))
        retriever = Retriever.from_settings(Settings(index_dir=index, corpus_dir=corpus.path))
        paths = [p for p in corpus.sets if "conversations" not in p.name]
        paths += [corpus.questions] if corpus.questions else []
        asked = [
            Asked("in", q.id, q.question, "in-domain", tuple(q.evidence))
            for path in paths
            for q in load_questions(path)
        ]
        if corpus.nearmiss:
            lines = corpus.nearmiss.read_text().splitlines()
            near = [json.loads(line) for line in lines if line.strip()]
            asked += [Asked("near", n["id"], n["question"], "near_miss") for n in near]
        rows += ask(retriever, corpus.name, asked + off)
        retriever.index.close()
    return rows


@dataclass(frozen=True)
class Asked:
    """A question put to a corpus: in-domain ("in", with evidence), a near-miss ("near") or
    off-topic ("off")."""

    cls: str
    id: str
    question: str
    kind: str
    evidence: tuple[str, ...] = ()


def offtopic() -> list[Asked]:
    """The shared off-topic set (tests/data/offtopic_questions.jsonl)."""
    lines = [json.loads(line) for line in OFFTOPIC.read_text().splitlines() if line.strip()]
    return [Asked("off", o["id"], o["question"], o["kind"]) for o in lines]


def ask(retriever: Any, corpus: str, asked: Sequence[Asked], k: int = 5) -> list[dict[str, Any]]:
    """Search and answer each question as the product does; its coverage signals, whether it
    was answered, and whether the answer quotes one of its evidence strings."""
    from rag.evaluation import normalise

    rows = []
    for a in asked:
        result = retriever.search(a.question, k)
        answer = retriever.answer(result)
        holds = bool(answer.answered) and any(
            normalise(e) in normalise(answer.text) for e in a.evidence
        )
        rows.append({"corpus": corpus, "cls": a.cls, "id": a.id, "kind": a.kind,
                     "question": a.question, **(answer.coverage or {}),
                     "holds_evidence": holds})  # fmt: skip
    return rows


def features(row: dict[str, Any], c: CoverageConfig) -> list[float]:
    """The model's inputs, in ``FEATURES``' order."""
    terms = min(row["terms"], c.full_terms) / c.full_terms
    return [row["sentence"], row["dense"], row["lexical"], row.get("phrases", 1.0), terms]


def probability(row: dict[str, Any], c: CoverageConfig) -> float:
    """The logistic score ``c`` gives the row, as rag.search.coverage computes it."""
    weights = [getattr(c, name) for name in FEATURES]
    z = sum(w * x for w, x in zip(weights, features(row, c), strict=True)) + c.bias
    return 1 / (1 + math.exp(-z))


def decide(c: CoverageConfig) -> Callable[[dict[str, Any]], bool]:
    """Whether ``c`` answers a row: its score against the bar its subject sets."""

    def answered(row: dict[str, Any]) -> bool:
        bar = c.unknown_subject_threshold if row.get("unknown_subjects") else c.threshold
        return probability(row, c) >= bar

    return answered


def rates(rows: list[dict[str, Any]], answered: Callable[[dict[str, Any]], bool]) -> dict:
    """Share of in-domain questions answered, of off-topic and near-miss ones refused, per
    corpus."""
    out = {}
    for name in dict.fromkeys(r["corpus"] for r in rows):
        of = {cls: [r for r in rows if r["corpus"] == name and r["cls"] == cls]
              for cls in ("in", "off", "near")}  # fmt: skip
        out[name] = {
            "in": len(of["in"]),
            "answered": sum(map(answered, of["in"])) / len(of["in"]),
            "refused": sum(not answered(r) for r in of["off"]) / len(of["off"]),
            "near": len(of["near"]),
            "near_refused": (
                sum(not answered(r) for r in of["near"]) / len(of["near"])
                if of["near"]
                else float("nan")
            ),  # fmt: skip
            "evidence": sum(bool(r.get("holds_evidence")) for r in of["in"]),
        }
    return out


def fit(rows: list[dict[str, Any]], c: CoverageConfig) -> CoverageConfig:
    """The configuration calibrated on ``CALIBRATION``: logistic weights (balanced classes),
    then the thresholds that refuse the most while each corpus answers 95% in-domain."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train = [r for r in rows if r["corpus"] in CALIBRATION]
    x = np.array([features(r, c) for r in train])
    y = np.array([r["cls"] == "in" for r in train])
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)
    weights = {n: round(float(w), 2) for n, w in zip(FEATURES, model.coef_[0], strict=True)}
    fitted = replace(c, **weights, bias=round(float(model.intercept_[0]), 2))
    best: tuple[float, CoverageConfig] | None = None
    grid = [round(STEP * n, 2) for n in range(int(0.1 / STEP), int(0.99 / STEP) + 1)]
    for low in grid:
        for high in (g for g in grid if g >= low):
            trial = replace(fitted, threshold=low, unknown_subject_threshold=high)
            got = rates(train, decide(trial))
            if min(s["answered"] for s in got.values()) < TARGETS["answered"]:
                continue
            score = sum(s["refused"] + s["near_refused"] for s in got.values())
            if best is None or score > best[0] + 1e-9:
                best = (score, trial)
    if best is None:
        raise SystemExit("no thresholds answer 95% of the in-domain questions")
    return best[1]


def main(argv: list[str] | None = None) -> int:
    """Measure, write the table; with --fit, print the configuration to ship."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the calibrated configuration")
    parser.add_argument("--signals", type=Path, help="reuse signals saved by an earlier run")
    args = parser.parse_args(argv)
    c = CoverageConfig()
    started, load0 = now(), loadavg()
    rows = json.loads(args.signals.read_text())["rows"] if args.signals else signals()
    if args.fit:
        print(json.dumps(asdict(fit(rows, c))))
    ship = rates(rows, decide(c))
    kinds: dict[str, int] = {}
    for r in rows:
        if r["cls"] == "off" and r["corpus"] == rows[0]["corpus"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    lines = [
        "# Not covered: answered and refused questions per corpus",
        "",
        f"`python -m benchmarks.coverage`, {started}; load average {load0}. In-domain: each "
        "corpus's question sets (no conversations) and the answerable questions of its quality "
        "set; near-misses: its quality set's (tests/data/quality); off-topic: "
        f"tests/data/offtopic_questions.jsonl ({', '.join(f'{n} {k}' for k, n in kinds.items())})"
        f". Targets: answered ≥ {TARGETS['answered']:.0%}, off-topic refused ≥ "
        f"{TARGETS['refused']:.0%}, near-misses refused ≥ {TARGETS['near-miss refused']:.0%}.",
        "",
        f"Calibrated on {', '.join(CALIBRATION)} (in-sample); every other corpus is held out.",
        "",
        "| corpus | calibration | in-domain | answered | off-topic refused | near-misses refused "
        "| answers holding evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in ship.items():
        role = "in-sample" if name in CALIBRATION else "held out"
        lines.append(f"| {name} | {role} | {s['in']} | {s['answered']:.3f} | {s['refused']:.3f} | "
                     f"{s['near_refused']:.3f} ({s['near']}) | {s['evidence']} / {s['in']} |")  # fmt: skip
    lines += ["", f"Shipped config: `{asdict(c)}`", ""]
    answered = decide(c)
    wrong = [r for r in rows if (r["cls"] == "in") != answered(r)]
    lines += ["## Misjudged by the shipped config", "", "| corpus | kind | question | p |",
              "|---|---|---|---|"]  # fmt: skip
    for r in sorted(wrong, key=lambda r: (r["corpus"], r["cls"], r["id"])):
        q = r["question"].replace("|", "\\|")
        lines.append(f"| {r['corpus']} | {r['kind']} | {q} | {probability(r, c):.2f} |")
    (ROOT / "benchmarks" / "COVERAGE.md").write_text("\n".join(lines) + "\n")
    (ROOT / "benchmarks" / "coverage.json").write_text(json.dumps(
        {"started": started, "load": [load0, loadavg()], "machine": machine(), "shipped": ship,
         "rows": rows}, indent=1) + "\n")  # fmt: skip
    print("\n".join(lines[:16]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
