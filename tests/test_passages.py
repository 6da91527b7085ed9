"""Passages that stand on their own, in every format (passages.md converted by pandoc and
Chromium, tests/data/files/make_fixtures.sh): a lead-in stays with its list, a question with its
answer, a one-line section joins its neighbour with its heading inline, and every line of a level
grid, even inside a cell split across passages, names its row and its column."""

from __future__ import annotations

import re

import pytest

from rag.ingest.chunking import chunk_documents
from rag.ingest.loader import parse_file
from rag.ingest.tables import table_blocks
from tests.conftest import ROOT

FILES = ROOT / "tests" / "data" / "files"
FORMATS = ["passages.md", "passages.html", "passages.docx", "passages.pdf"]


def chunks(name: str):
    (doc,) = parse_file((FILES / name).read_bytes(), name)
    return chunk_documents([doc])


@pytest.mark.parametrize("name", FORMATS)
def test_a_lead_in_stays_with_its_list(name: str):
    (chunk,) = [c for c in chunks(name) if "If you are putting them up for promotion:" in c.text]
    assert "Write the case in the promotion template" in chunk.text


@pytest.mark.parametrize("name", FORMATS)
def test_a_question_stays_with_its_answer(name: str):
    question = "Can I work part-time during my parental leave and extend it?"
    answer = "You may work up to three days a week"
    found = [c for c in chunks(name) if question in c.text or question in c.section_path]
    assert found and all(answer in c.text for c in found)
    assert not any(c.text.rstrip().endswith("?") for c in chunks(name))


@pytest.mark.parametrize("name", FORMATS)
def test_a_one_line_section_joins_its_neighbour_with_its_heading_inline(name: str):
    (chunk,) = [c for c in chunks(name) if "See guidance on promotions here." in c.text]
    assert "Guidance\n\nSee guidance on promotions here." in chunk.text
    assert "Calibration meetings compare the ratings" in chunk.text
    assert chunk.section_path == ["Engineering Handbook"]  # the path both sections share


@pytest.mark.parametrize("name", ["passages.md", "passages.html", "passages.docx"])
def test_a_grid_cell_keeps_its_row_and_column_labels(name: str):
    lines = [
        line for c in chunks(name) if c.meta.get("kind") == "row" for line in c.text.split("\n")
    ]
    assert "IC4: Leads projects across a team." in lines  # spans every value column
    assert "Impact, IC4: Raises the bar of the team." in lines  # its level spans two rows
    assert "Scope, IC5: Owns a product area." in lines
    items = {line for line in lines if "Owns service number" in line}  # a set: passages overlap
    assert len(items) == 10 and all(line.startswith("Scope, IC4: ") for line in items)


@pytest.mark.parametrize("name", FORMATS)
def test_a_cell_split_across_passages_repeats_its_labels(name: str):
    rows = [c for c in chunks(name) if c.meta.get("kind") == "row"]
    holding = [c for c in rows if "Owns service number" in c.text]
    assert len(holding) >= 2  # the cell is longer than a passage
    for chunk in holding:
        for line in filter(None, chunk.text.split("\n")):
            assert re.match(r"^[\w ,]+: ", line), line


def test_a_table_keeps_the_caption_above_its_header():
    blocks = table_blocks([["Version 2", "", ""], ["Level", "Options", "Value"],
                           ["IC4", "27,300", "$181,690"]])  # fmt: skip
    assert [b.text for b in blocks] == [
        "Version 2",
        "Options, IC4: 27,300\nValue, IC4: $181,690",
    ]


def test_a_spanning_header_labels_each_column_and_a_spanning_cell_the_whole_row():
    blocks = table_blocks(
        [["Level", "Options", None], ["", "Score 1", "Score 2"],
         ["M3", "Leads a team.", None], ["IC4", "27,300", "6,830"]],
        2,
    )  # fmt: skip
    assert [b.text for b in blocks] == [
        "M3: Leads a team.",
        "Options Score 1, IC4: 27,300\nOptions Score 2, IC4: 6,830",
    ]


def test_content_in_the_first_column_is_filed_under_its_group_label():
    blocks = table_blocks(
        [["Level", "Proficiency"], ["M3", ""], ["Has IC4 knowledge.\nWrites code.", "Operates one area."]],
        1,
    )  # fmt: skip
    assert blocks[0].text.split("\n") == [
        "M3",
        "Level, M3: Has IC4 knowledge.",
        "Level, M3: Writes code.",
        "Proficiency, M3: Operates one area.",
    ]
