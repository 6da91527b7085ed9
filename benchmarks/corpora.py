"""Score retrieval on every test corpus with the shipped defaults: `make eval`.

Corpora, each with the question sets written for it before any result was seen:

- ``guide``: corpus/, the scraped career-guide page (the shared dev set and our own sets);
- ``handbook``: ../shared/corpora/handbook, the 37signals employee handbook (markdown), plus the
  same files printed to PDF by Chromium and converted to DOCX by pandoc
  (benchmarks/corpora/convert.sh), so every format is held to the markdown's figures;
- ``interview``: benchmarks/corpora/interview_handbook, a Docusaurus docs site (MIT).

Each index is built under .cache/eval/ only when missing or stale. The table goes to stdout
and benchmarks/EVAL.md, the chart to docs/eval.png.
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
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "eval"
MODES = ("dense", "sentence", "bm25", "hybrid")


@dataclass(frozen=True)
class Corpus:
    """A corpus folder and the question sets written for it."""

    name: str
    path: Path
    sets: tuple[Path, ...]


def corpora(with_conversions: bool = True) -> list[Corpus]:
    """Every corpus that is present on this machine."""
    dev = SHARED / "eval" / "dev_questions.jsonl"
    guide_sets = (dev if dev.exists() else DATA / "dev_questions.jsonl",
                  DATA / "questions.jsonl", DATA / "conversations.jsonl",
                  DATA / "holdout_questions.jsonl", DATA / "holdout_conversations.jsonl")  # fmt: skip
    out = [Corpus("guide", ROOT / "corpus", guide_sets)]
    handbook = SHARED / "corpora" / "handbook"
    hb_sets = (DATA / "handbook_questions.jsonl", DATA / "handbook_conversations.jsonl")
    if handbook.is_dir():
        out.append(Corpus("handbook", handbook, hb_sets))
        if with_conversions:
            converted = convert(handbook)
            if converted is not None:
                out.append(Corpus("handbook-pdf", converted / "pdf", hb_sets))
                out.append(Corpus("handbook-docx", converted / "docx", hb_sets))
    interview = ROOT / "benchmarks" / "corpora" / "interview_handbook" / "contents"
    out.append(Corpus("interview", interview, (DATA / "interview_handbook_questions.jsonl",)))
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
    """Build what is stale, score every corpus, write the table and the chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-conversions", action="store_true", help="markdown only")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "eval.png")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "EVAL.md")
    args = parser.parse_args(argv)
    import json

    from rag.evaluation import Report, plot_reports

    lines = [
        "# Retrieval on every corpus",
        "",
        f"`make eval`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, shipped defaults. Cells are "
        "hit@1 / hit@5 / MRR@10.",
        "",
        "| corpus | set | n | " + " | ".join(MODES) + " |",
        "|---|---|---|" + "---|" * len(MODES),
    ]
    charts: dict[str, list[Report]] = {}
    for corpus in corpora(not args.no_conversions):
        index = CACHE / corpus.name
        common = ["--corpus", str(corpus.path), "--index", str(index)]
        rag("index", "--if-stale", *common)
        result = json.loads(rag("eval", *common, *map(str, corpus.sets), "--json").stdout)
        for entry in result["sets"]:
            reports = [Report(**r) for r in entry["reports"]]
            name = Path(entry["path"]).stem
            cells = [f"{r.hit_at_1:.2f} / {r.hit_at_5:.2f} / {r.mrr_at_10:.3f}" for r in reports]
            row = f"| {corpus.name} | {name} | {reports[0].n} | " + " | ".join(cells) + " |"
            lines.append(row)
            print(row, flush=True)
            if not corpus.name.startswith("handbook-"):
                charts[f"{corpus.name}: {name}"] = reports
    args.out.write_text("\n".join(lines) + "\n")
    plot_reports(charts, args.plot)
    print(f"table written to {args.out}, chart to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
