"""The README's table of settings, generated from ``Settings`` so the two cannot drift apart.

python -m rag.settings_table                  # print the table
python -m rag.settings_table --write README.md  # replace the table between its markers
python -m rag.settings_table --check README.md  # exit 1 when the README's table is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rag.config import Settings

BEGIN = "<!-- settings table: generated from rag/config.py by `python -m rag.settings_table --write README.md` -->"
END = "<!-- end of settings table -->"


def settings_table() -> str:
    """The Markdown table: environment variable, default and meaning of every setting."""
    rows = ["| environment variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} has no description= for the README's table")
        default = field.get_default(call_default_factory=True)
        meaning = field.description.replace("|", "\\|")
        rows.append(f"| `RAG_{name.upper()}` | {_shown(default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def replace_table(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def _shown(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value).replace("|", "\\|")
    return f"`{text}`" if text else "empty"


def main(argv: list[str] | None = None) -> int:
    """Print the table, write it into a file, or check that the file has it."""
    parser = argparse.ArgumentParser(prog="python -m rag.settings_table")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE")
    group.add_argument("--check", type=Path, metavar="FILE", help="fail if FILE's table is stale")
    args = parser.parse_args(argv)
    table = settings_table()
    path = args.write or args.check
    if path is None:
        print(table, end="")
        return 0
    text = path.read_text(encoding="utf-8")
    updated = replace_table(text, table)
    if args.check:
        if updated != text:
            print(f"{path}: the settings table is stale; run python -m rag.settings_table "
                  f"--write {path}", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
