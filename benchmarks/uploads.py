"""Uploads against `rag serve` with the real model (issue 24's acceptance): each good file's time
to its 201 (the re-index included) and whether a search finds it straight after; each bad file's
status and message, with the uploads folder's files and the served build compared before and
after (nothing written, nothing indexed).

    python -m benchmarks.uploads

Writes benchmarks/uploads.json and prints markdown tables for SOURCES.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ROOT, loadavg, machine, now
from rag.keys import KeyStore
from tests.servers import child_env, rag_serve
from tests.test_uploads import docx_bomb, plain_zip

FILES = ROOT / "tests" / "data" / "files"
OUT = ROOT / "benchmarks" / "uploads.json"
GOOD = [
    ("guide.pdf", "data engineer career guide"),
    ("ladder.mdx", "engineering ladder levels"),
    ("Relocation Policy", "relocation allowance movers"),
]
BAD = [
    ("photo.pdf", (ROOT / "docs" / "eval.png").read_bytes()),
    ("notes.docx", plain_zip()),
    ("encrypted.pdf", (FILES / "encrypted.pdf").read_bytes()),
    ("truncated.pdf", (FILES / "truncated.pdf").read_bytes()),
    ("bomb.docx", docx_bomb()),
    ("empty.md", (FILES / "empty.md").read_bytes()),
    ("../../x.md", b"# X\n\nA guide trying to land outside.\n"),
    ("huge.md", b"# Huge\n\n" + b"words " * 4_000_000),
]


def main() -> None:
    """Serve a one-guide corpus, upload the good files, then each bad one."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-uploads-") as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        corpus.mkdir()
        (corpus / "welcome.md").write_text("# Welcome\n\nNew joiners meet a buddy on day one.\n")
        env = child_env(root / "index", corpus, root / "data")
        subprocess.run([sys.executable, "-m", "rag", "index"], env=env, cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        key = KeyStore(root / "data").create("bench", admin=True)[1]
        auth = {"Authorization": f"Bearer {key}"}
        uploads = corpus / "uploads"

        def snapshot() -> tuple[list[str], str]:
            files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                           if p.is_file() and "index" not in p.parts and "data" not in p.parts)  # fmt: skip
            return files, httpx.get(f"{url}/ready").json()["build_id"]

        good, bad = [], []
        with rag_serve(env, root / "serve.log") as (url, _):
            for name, query in GOOD:
                data = (FILES / name).read_bytes() if (FILES / name).exists() else (
                    b"Relocation Policy\n\nThe relocation allowance covers movers and two weeks of "
                    b"housing for new joiners who move city.\n")  # fmt: skip
                load = loadavg()
                started = time.perf_counter()
                r = httpx.post(f"{url}/documents", files=[("files", (name, data))],
                               headers=auth, timeout=600)  # fmt: skip
                took = time.perf_counter() - started
                body = r.json()
                hit = httpx.post(f"{url}/search", json={"query": query, "k": 1}).json()
                top = hit["results"][0]["citation"]["doc_id"]
                good.append({"name": name, "status": r.status_code, "seconds": round(took, 2),
                             "type": body["files"][0]["type"], "ids": body["ids"],
                             "top_hit_is_it": top in body["ids"], "load_before": load})  # fmt: skip
            for name, data in BAD:
                before = snapshot()
                r = httpx.post(f"{url}/documents", files=[("files", (name, data))],
                               headers=auth, timeout=600)  # fmt: skip
                after = snapshot()
                bad.append({"name": name, "bytes": len(data), "status": r.status_code,
                            "detail": r.json()["detail"], "files_unchanged": before[0] == after[0],
                            "build_unchanged": before[1] == after[1],
                            "outside": (root / "x.md").exists() or (root.parent / "x.md").exists()})  # fmt: skip
        kept = sorted(p.name for p in uploads.iterdir() if not p.name.startswith("."))
    result = {"date": now(), "machine": machine(), "good": good, "bad": bad, "kept": kept}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def table(result: dict[str, Any]) -> str:
    """Both tables as markdown."""
    lines = [
        f"{result['date']}",
        "",
        "| file | status | type | seconds to 201 (re-index included) | found by a search at once "
        "| 1-min load before |",
        "|---|---|---|---|---|---|",
    ]
    for g in result["good"]:
        lines.append(f"| {g['name']} | {g['status']} | {g['type']} | {g['seconds']:.2f} | "
                     f"{g['top_hit_is_it']} | {g['load_before'][0]:.2f} |")  # fmt: skip
    lines += ["", "| file | bytes | status | detail | files unchanged | build unchanged |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for b in result["bad"]:
        lines.append(f"| `{b['name']}` | {b['bytes']} | {b['status']} | {b['detail']} | "
                     f"{b['files_unchanged']} | {b['build_unchanged']} |")  # fmt: skip
    lines += ["", f"Files in uploads/ at the end: {', '.join(result['kept'])}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
