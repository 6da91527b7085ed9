"""Calibrate and measure the "not covered" decision (rag.search.coverage) on every corpus.

For each corpus of `make eval` (benchmarks/corpora.py) it asks the corpus's own question sets
(in-domain) and the shared off-topic set (tests/data/offtopic_questions.jsonl), records the
coverage signals of each, and reports the share answered and refused:

- with the shipped CoverageConfig;
- leave-one-corpus-out: a logistic model fitted on the other corpora and on half the off-topic
  set, scored on the held-out corpus and the other half (the honest estimate);
- and ``--fit`` prints the weights fitted on everything (what CoverageConfig ships).

``python -m benchmarks.coverage [--fit]`` writes benchmarks/COVERAGE.md and coverage.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import loadavg, machine, now
from benchmarks.corpora import CACHE, DATA, corpora, rag
from rag.search.coverage import CoverageConfig

ROOT = Path(__file__).resolve().parent.parent
OFFTOPIC = DATA / "offtopic_questions.jsonl"
TARGETS = {"answered": 0.95, "refused": 0.90}


def signals() -> list[dict[str, Any]]:
    """Coverage signals of every in-domain and off-topic question on every corpus."""
    from rag.config import Settings
    from rag.evaluation import load_questions
    from rag.search.retriever import Retriever

    off = offtopic()
    rows = []
    for corpus in corpora(with_conversions=False):
        if not corpus.sets:
            continue  # a corpus with only the quality sets (benchmarks/quality.py)
        index = CACHE / corpus.name
        rag("index", "--if-stale", "--corpus", str(corpus.path), "--index", str(index))
        retriever = Retriever.from_settings(Settings(index_dir=index, corpus_dir=corpus.path))
        asked = [
            Asked("in", q.id, q.question, "in-domain", tuple(q.evidence))
            for path in corpus.sets
            if "conversations" not in path.name
            for q in load_questions(path)
        ]
        rows += ask(retriever, corpus.name, asked + off)
        retriever.index.close()
    return rows


@dataclass(frozen=True)
class Asked:
    """A question put to a corpus: in-domain ("in", with evidence) or not ("off")."""

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
    """The model's inputs, in CoverageConfig's order."""
    terms = min(row["terms"], c.full_terms) / c.full_terms
    return [row["sentence"], row["dense"], row["lexical"], terms]


def rates(rows: list[dict[str, Any]], answered: Any) -> dict[str, dict[str, float]]:
    """Share of in-domain questions answered and of off-topic ones refused, per corpus."""
    out = {}
    for name in dict.fromkeys(r["corpus"] for r in rows):
        ins = [r for r in rows if r["corpus"] == name and r["cls"] == "in"]
        offs = [r for r in rows if r["corpus"] == name and r["cls"] == "off"]
        out[name] = {
            "in": len(ins),
            "off": len(offs),
            "answered": sum(map(answered, ins)) / len(ins),
            "refused": sum(not answered(r) for r in offs) / len(offs),
            "evidence": sum(bool(r.get("holds_evidence")) for r in ins),
        }
    return out


def loco(rows: list[dict[str, Any]], c: CoverageConfig) -> dict[str, dict[str, float]]:
    """Leave one corpus and half the off-topic set out; fit on the rest; score what was left."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    names = list(dict.fromkeys(r["corpus"] for r in rows))
    out = {}
    for held in names:
        answered = refused = 0.0
        n_in = 0
        for half in (0, 1):

            def off_half(r: dict[str, Any], h: int = half) -> bool:
                return int(r["id"].lstrip("o")) % 2 == h

            train = [
                r for r in rows if r["corpus"] != held and not (r["cls"] == "off" and off_half(r))
            ]
            test = [r for r in rows if r["corpus"] == held and (r["cls"] == "in" or off_half(r))]
            x = np.array([features(r, c) for r in train])
            y = np.array([r["cls"] == "in" for r in train])
            model = LogisticRegression(class_weight="balanced").fit(x, y)
            p = model.predict_proba(np.array([features(r, c) for r in test]))[:, 1]
            is_in = np.array([r["cls"] == "in" for r in test])
            answered += float((p[is_in] >= c.threshold).mean()) / 2
            refused += float((p[~is_in] < c.threshold).mean()) / 2
            n_in = int(is_in.sum())
        out[held] = {"in": n_in, "answered": answered, "refused": refused}
    return out


def fit(rows: list[dict[str, Any]], c: CoverageConfig) -> dict[str, float]:
    """Weights fitted on every corpus and the whole off-topic set."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([features(r, c) for r in rows])
    y = np.array([r["cls"] == "in" for r in rows])
    m = LogisticRegression(class_weight="balanced").fit(x, y)
    w = m.coef_[0]
    return {"sentence_weight": round(float(w[0]), 2), "dense_weight": round(float(w[1]), 2),
            "lexical_weight": round(float(w[2]), 2), "terms_weight": round(float(w[3]), 2),
            "bias": round(float(m.intercept_[0]), 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure, write the table; with --fit, print the weights to ship."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print weights fitted on everything")
    parser.add_argument("--signals", type=Path, help="reuse signals saved by an earlier run")
    args = parser.parse_args(argv)
    c = CoverageConfig()
    started, load0 = now(), loadavg()
    rows = json.loads(args.signals.read_text()) if args.signals else signals()
    if args.fit:
        print(json.dumps(fit(rows, c)))
    ship = rates(rows, lambda r: r["answered"])
    held = loco(rows, c)
    kinds = {}
    for r in rows:
        if r["cls"] == "off" and r["corpus"] == rows[0]["corpus"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    lines = [
        "# Not covered: answered and refused questions per corpus",
        "",
        f"`python -m benchmarks.coverage`, {started}; load average {load0}. In-domain: each "
        "corpus's question sets (no conversations). Off-topic: tests/data/offtopic_questions.jsonl "
        f"({', '.join(f'{n} {k}' for k, n in kinds.items())}). Targets: answered ≥ "
        f"{TARGETS['answered']:.0%}, refused ≥ {TARGETS['refused']:.0%}.",
        "",
        "| corpus | in-domain | answered (shipped) | refused (shipped) | answered (held out) "
        "| refused (held out) | answers holding evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in ship.items():
        h = held[name]
        lines.append(f"| {name} | {s['in']} | {s['answered']:.3f} | {s['refused']:.3f} | "
                     f"{h['answered']:.3f} | {h['refused']:.3f} | "
                     f"{s['evidence']} / {s['in']} |")  # fmt: skip
    lines += ["", "Held out: fitted without the corpus and half the off-topic set, scored on both.",
              "", f"Shipped config: `{asdict(c)}`", ""]  # fmt: skip
    wrong = [r for r in rows if (r["cls"] == "in") != r["answered"]]
    lines += ["## Misjudged by the shipped config", "", "| corpus | kind | question | p |",
              "|---|---|---|---|"]  # fmt: skip
    for r in sorted(wrong, key=lambda r: (r["corpus"], r["cls"])):
        q = r["question"].replace("|", "\\|")
        lines.append(f"| {r['corpus']} | {r['kind']} | {q} | {r['probability']:.2f} |")
    (ROOT / "benchmarks" / "COVERAGE.md").write_text("\n".join(lines) + "\n")
    (ROOT / "benchmarks" / "coverage.json").write_text(json.dumps(
        {"started": started, "load": [load0, loadavg()], "machine": machine(), "shipped": ship,
         "held_out": held, "rows": rows}, indent=1) + "\n")  # fmt: skip
    print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
