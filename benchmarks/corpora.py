"""Score retrieval on every test corpus with the shipped defaults: `make eval`.

Corpora, each with the question sets written for it before any result was seen:

- ``guide``: corpus/, the scraped career-guide page (the shared dev set and our own sets);
- ``handbook``: ../shared/corpora/handbook, the 37signals employee handbook (markdown), plus the
  same files printed to PDF by Chromium and converted to DOCX by pandoc
  (benchmarks/corpora/convert.sh), so every format is held to the markdown's figures;
- ``interview``: benchmarks/corpora/interview_handbook, a Docusaurus docs site (MIT);
- ``sourcegraph``: benchmarks/corpora/sourcegraph, 46 pages of the Sourcegraph handbook
  (Apache-2.0), converted to DOCX by pandoc (benchmarks/corpora/convert_one.sh);
- ``18f``: benchmarks/corpora/18f, 51 pages of the TTS/18F handbook (public domain), converted
  to HTML pages by pandoc.

Each corpus also has a quality set (tests/data/quality: 30 answerable questions and 12
near-misses), scored with the answers and refusals by benchmarks/quality.py. Each index is
built under .cache/eval/ only when missing or stale. The tables go to stdout and
benchmarks/EVAL.md, the per-question quality results to benchmarks/quality.json, the chart to
docs/eval.png; ``--only`` scores some corpora and writes none of them unless asked.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
QUALITY = DATA / "quality"
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "eval"
MODES = ("dense", "sentence", "bm25", "hybrid")


@dataclass(frozen=True)
class Corpus:
    """A corpus folder and the question sets written for it."""

    name: str
    path: Path
    sets: tuple[Path, ...]
    # The name of its sets in tests/data/quality (the handbook's conversions share the handbook's).
    quality: str | None = None

    @property
    def questions(self) -> Path | None:
        """Its quality set of answerable questions."""
        return QUALITY / f"{self.quality}.questions.jsonl" if self.quality else None

    @property
    def nearmiss(self) -> Path | None:
        """Its quality set of near-misses, which it never answers."""
        return QUALITY / f"{self.quality}.nearmiss.jsonl" if self.quality else None


def corpora(with_conversions: bool = True) -> list[Corpus]:
    """Every corpus that is present on this machine."""
    dev = SHARED / "eval" / "dev_questions.jsonl"
    guide_sets = (dev if dev.exists() else DATA / "dev_questions.jsonl",
                  DATA / "questions.jsonl", DATA / "conversations.jsonl",
                  DATA / "holdout_questions.jsonl", DATA / "holdout_conversations.jsonl")  # fmt: skip
    out = [Corpus("guide", ROOT / "corpus", guide_sets, "guide")]
    handbook = SHARED / "corpora" / "handbook"
    hb_sets = (DATA / "handbook_questions.jsonl", DATA / "handbook_conversations.jsonl")
    if handbook.is_dir():
        out.append(Corpus("handbook", handbook, hb_sets, "handbook"))
        if with_conversions:
            converted = convert(handbook)
            if converted is not None:
                out.append(Corpus("handbook-pdf", converted / "pdf", hb_sets, "handbook"))
                out.append(Corpus("handbook-docx", converted / "docx", hb_sets, "handbook"))
    interview = ROOT / "benchmarks" / "corpora" / "interview_handbook" / "contents"
    out.append(Corpus("interview", interview, (DATA / "interview_handbook_questions.jsonl",),
                      "interview"))  # fmt: skip
    for name, form in (("sourcegraph", "docx"), ("18f", "html")):
        folder = convert_one(ROOT / "benchmarks" / "corpora" / name / "source", form)
        if folder is not None:
            out.append(Corpus(name, folder, (), name))
    return out


def convert_one(source: Path, form: str) -> Path | None:
    """A markdown corpus converted to ``form`` (docx or html) by pandoc
    (benchmarks/corpora/convert_one.sh), made once per content of the corpus."""
    if not shutil.which("pandoc"):
        print(f"skipping {source.parent.name}: pandoc is missing", file=sys.stderr)
        return None
    script = ROOT / "benchmarks" / "corpora" / "convert_one.sh"
    h = hashlib.sha256(script.read_bytes() + form.encode())
    for f in sorted(source.rglob("*.md")):
        h.update(str(f.relative_to(source)).encode() + f.read_bytes())
    out = CACHE / f"converted-{source.parent.name}-{h.hexdigest()[:12]}"
    if not out.is_dir():
        tmp = out.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["bash", str(script), form, str(source), str(tmp)], check=True)
        tmp.rename(out)
    return out


def convert(source: Path) -> Path | None:
    """PDF and DOCX versions of a markdown corpus, made once per content of the corpus."""
    if not (shutil.which("pandoc") and Path("/usr/bin/chromium").exists()):
        print("skipping the PDF/DOCX conversions: pandoc or chromium is missing", file=sys.stderr)
        return None
    h = hashlib.sha256((ROOT / "benchmarks" / "corpora" / "convert.sh").read_bytes())
    for f in sorted(source.glob("*.md")):
        h.update(f.name.encode() + f.read_bytes())
    out = CACHE / f"converted-{source.name}-{h.hexdigest()[:12]}"
    if not (out / "docx").is_dir():
        tmp = out.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "corpora" / "convert.sh"), str(source), str(tmp)],
            check=True,
        )
        tmp.rename(out)
    return out


def rag(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the rag command of this checkout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, check=True, text=True,
        capture_output=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Build what is stale, score every corpus, write the tables and the chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-conversions", action="store_true", help="markdown only")
    parser.add_argument("--only", help="comma-separated corpus names (e.g. sourcegraph,18f)")
    parser.add_argument("--plot", type=Path, help="the chart (default docs/eval.png)")
    parser.add_argument("--out", type=Path, help="the tables (default benchmarks/EVAL.md)")
    parser.add_argument("--json", type=Path, help="every quality figure, per question")
    parser.add_argument(
        "--rebuild", action="store_true",
        help="re-index even when the index looks fresh (parser code changed, version not bumped)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    import json

    from benchmarks import quality
    from rag.evaluation import Report, plot_reports

    names = [n.strip() for n in (args.only or "").split(",") if n.strip()]
    # The conversions are made only when they are scored.
    conversions = not args.no_conversions and (not names or any("-" in n for n in names))
    chosen = corpora(conversions)
    if names:
        unknown = sorted(set(names) - {c.name for c in chosen})
        if unknown:
            parser.error(
                f"unknown corpus {', '.join(unknown)}: use {', '.join(c.name for c in chosen)}"
            )
        chosen = [c for c in chosen if c.name in names]
    else:
        args.out = args.out or ROOT / "benchmarks" / "EVAL.md"
        args.plot = args.plot or ROOT / "docs" / "eval.png"
        args.json = args.json or ROOT / "benchmarks" / "quality.json"
    lines = [
        "| corpus | set | n | " + " | ".join(MODES) + " |",
        "|---|---|---|" + "---|" * len(MODES),
    ]
    charts: dict[str, list[Report]] = {}
    scores: dict[str, dict] = {}
    for corpus in chosen:
        index = CACHE / corpus.name
        common = ["--corpus", str(corpus.path), "--index", str(index)]
        rag("index", *([] if args.rebuild else ["--if-stale"]), *common)
        sets = [*corpus.sets, *([corpus.questions] if corpus.questions else [])]
        result = json.loads(rag("eval", *common, *map(str, sets), "--json").stdout)
        for entry in result["sets"]:
            reports = [Report(**r) for r in entry["reports"]]
            name = Path(entry["path"]).stem
            cells = [f"{r.hit_at_1:.2f} / {r.hit_at_5:.2f} / {r.mrr_at_10:.3f}" for r in reports]
            row = f"| {corpus.name} | {name} | {reports[0].n} | " + " | ".join(cells) + " |"
            lines.append(row)
            print(row, flush=True)
            if not corpus.name.startswith("handbook-") and entry["path"] != str(corpus.questions):
                charts[f"{corpus.name}: {name}"] = reports
            if entry["path"] == str(corpus.questions):
                hybrid = next(r for r in reports if r.name == "hybrid")
                scores[corpus.name] = quality.score(corpus, index, hybrid)
                print(quality.row(corpus.name, scores[corpus.name]), flush=True)
    table = quality.table(scores)
    print("\n".join(table))
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    if args.json:
        args.json.write_text(json.dumps({"when": stamp, "corpora": scores}, indent=1) + "\n")
    if args.out:
        args.out.write_text("\n".join([
            "# Retrieval on every corpus", "",
            f"`make eval`, {stamp}, shipped defaults.", "",
            "## Quality sets (tests/data/quality)", "", *quality.LEGEND, "", *table, "",
            "## Every question set", "", "Cells are hit@1 / hit@5 / MRR@10.", "", *lines,
        ]) + "\n")  # fmt: skip
        print(f"tables written to {args.out}")
    if args.plot:
        plot_reports(charts, args.plot)
        print(f"chart written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
