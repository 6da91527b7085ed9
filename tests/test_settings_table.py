"""The README's settings table is the one generated from Settings: a new or changed setting
without its row (or a row edited by hand) fails here, so CI catches the drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings
from rag.settings_table import BEGIN, END, main, replace_table, settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_settings_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert replace_table(text, settings_table()) == text, (
        "README.md's settings table differs from Settings: run "
        "`python -m rag.settings_table --write README.md`"
    )


def test_every_setting_has_a_row_with_its_variable_and_a_one_line_description() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description and "\n" not in field.description, name
        assert f"| `RAG_{name.upper()}` |" in table


def test_check_fails_on_a_stale_table_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\n| `RAG_OLD` | `1` | gone |\n{END}\n\nafter\n")
    assert main(["--check", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["--write", str(readme)]) == 0
    assert main(["--check", str(readme)]) == 0
    text = readme.read_text()
    assert "RAG_OLD" not in text and "| `RAG_K` | `5` |" in text and text.endswith("after\n")
