"""One parser per format, each checked on real files made by real tools.

tests/data/files/ holds a guide written in markdown and converted with pandoc (HTML, DOCX) and
Chromium's --print-to-pdf (PDF), an MDX page as docs sites write them, and one broken file per
format (make_fixtures.sh there regenerates them). The same guide must come out of every format
with the same sections and passages.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from rag.cli import main
from rag.index import build_index, load_index
from rag.ingest.chunking import chunk_documents, chunk_sentences
from rag.ingest.loader import load_corpus, parse_file
from rag.search import Filters, Retriever
from tests.conftest import CORPUS, ROOT

FILES = ROOT / "tests" / "data" / "files"
GUIDE_SECTIONS = [
    ("Data Engineer Career Guide",),
    ("Data Engineer Career Guide", "Responsibilities"),
    ("Data Engineer Career Guide", "Levels", "Scope"),
    ("Data Engineer Career Guide", "Levels", "Impact"),
    ("Data Engineer Career Guide", "Salary"),
    ("Data Engineer Career Guide", "Salary", "By city"),
]
SHARED_HANDBOOK = ROOT.parent / "shared" / "corpora" / "handbook"
INTERVIEW = ROOT / "benchmarks" / "corpora" / "interview_handbook" / "contents"
SOURCEGRAPH = ROOT / "benchmarks" / "corpora" / "sourcegraph" / "source"
# What must never reach a passage: front matter fences, MDX statements, HTML or JSX tags, link
# syntax, table pipes and code fences (page text may mention "<role>" as a placeholder).
MARKUP = {
    "front matter": re.compile(r"^(?:---|\+\+\+)\s*$", re.M),
    "mdx statement": re.compile(r"^(?:import|export)\s+\S+.*(?:from\s+['\"]|=)", re.M),
    "html tag": re.compile(
        r"</?(?:div|span|p|a|img|br|figure|table|tr|td|th|ul|ol|li|head|script|style|iframe|b|i"
        r"|em|strong|code|pre|details|summary|h[1-6])\b[^>]*>",
        re.I,
    ),
    "jsx component": re.compile(r"</?[A-Z][a-z]+[A-Za-z]*(?:\s[^>]*)?/?>"),
    "link syntax": re.compile(r"\]\((?:https?:|/|\.|#)[^)]*\)"),
    "table pipes": re.compile(r"^\s*\|.*\|\s*$", re.M),
    "code fence": re.compile(r"^\s*(?:```|~~~)", re.M),
    "admonition": re.compile(r"^\s*:::", re.M),
    "heading anchor": re.compile(r"\{#[\w-]+\}"),
}


def parse(name: str):
    (doc,) = parse_file((FILES / name).read_bytes(), name)
    return doc


def text_sections(doc) -> list[tuple[str, ...]]:
    return [s.path for s in doc.sections if s.kind != "code"]


@pytest.mark.parametrize("name", ["guide.md", "guide.html", "guide.pdf", "guide.docx"])
def test_every_format_gives_the_guides_title_and_sections(name: str):
    doc = parse(name)
    assert doc.title == "Data Engineer Career Guide"
    assert text_sections(doc) == GUIDE_SECTIONS
    assert "Data engineers in the United States earn about $120,000 a year" in doc.text


@pytest.mark.parametrize("name", ["guide.md", "guide.html", "guide.pdf", "guide.docx"])
def test_every_format_keeps_code_as_code_and_its_comment_is_no_heading(name: str):
    doc = parse(name)
    code = [doc.text[s:e] for sec in doc.sections if sec.kind == "code" for s, e in sec.spans]
    assert code and "# a comment, not a heading" in code[0]
    assert not any("a comment" in part for path in text_sections(doc) for part in path)
    chunks = chunk_documents([doc])
    (code_chunk,) = [c for c in chunks if c.meta.get("kind") == "code"]
    assert chunk_sentences(code_chunk) == []  # retrievable, never quoted


@pytest.mark.parametrize("name", ["guide.md", "guide.html", "guide.pdf", "guide.docx"])
def test_every_format_turns_a_table_row_into_labelled_cells(name: str):
    chunks = chunk_documents([parse(name)])
    (scope,) = [c for c in chunks if c.section_path[-1] == "Scope"]
    assert scope.meta["kind"] == "row"
    assert scope.text.splitlines() == [
        "Junior Engineer (L1), Scope: Works on well-defined tasks with guidance.",
        "Senior Engineer (L3), Scope: Owns whole pipelines from design to operation.",
    ]
    assert "Senior Engineer (L3), Scope: Owns whole pipelines from design to operation." in (
        chunk_sentences(scope)
    )


def test_markdown_passages_point_back_at_their_lines_in_the_file():
    raw = (FILES / "guide.md").read_text(encoding="utf-8")
    for chunk in chunk_documents([parse("guide.md")]):
        assert chunk.meta["source_start"] < chunk.meta["source_end"] <= len(raw)
        cited = raw[chunk.meta["source_start"] : chunk.meta["source_end"]]
        first_words = re.sub(r"^\W+", "", chunk.text.split("\n")[0])[:12]
        if chunk.meta.get("kind") == "row":
            first_words = chunk.section_path[-1]
        assert first_words in cited, (chunk.text[:40], cited[:80])


def test_pdf_passages_carry_their_page():
    chunks = chunk_documents([parse("guide.pdf")])
    assert chunks and all(c.meta.get("page") == 1 for c in chunks)


def test_mdx_front_matter_is_metadata_and_never_a_passage():
    doc = parse("ladder.mdx")
    assert doc.title == "Engineering Ladder"
    assert doc.meta["description"] == "How engineers grow from L1 to L5 here."
    assert doc.meta["tags"] == ["career", "levels"]
    assert doc.meta["keywords"] == ["promotion", "ladder"]
    assert "How engineers grow" not in doc.text and "tags" not in doc.text


def test_mdx_syntax_is_dropped_and_the_prose_around_it_kept():
    doc = parse("ladder.mdx")
    text = doc.text
    for gone in ("import", "export const", "Reviewed by the people team", "<Tabs", "TabItem",
                 "className", "{#levels}", ":::"):  # fmt: skip
        assert gone not in text, gone
    assert "Promotions are discussed at every quarterly check-in." in text  # admonition
    assert "See the promotion guide for timing." in text  # link text
    assert "A diagram of our deploy pipeline" in text  # image alt text
    assert "Individual contributors grow in scope and judgment" in text  # inside JSX tags
    assert "Owns a product area from design to launch. Mentors others." in text  # <br/> cell
    assert [s.path for s in doc.sections if s.kind == "text"][1] == ("Engineering Ladder", "Levels")


def test_html_reads_the_main_content_only(tmp_path: Path):
    page = (
        "<html><head><title>Recruiter</title><style>p{}</style></head><body>"
        "<nav>Home Jobs Blog</nav><header>Acme Careers</header><main><h1>Recruiter</h1>"
        "<p>A recruiter finds and hires people.</p><aside>Related: Sourcer</aside></main>"
        "<footer>Copyright Acme</footer><script>track()</script></body></html>"
    )
    (doc,) = parse_file(page.encode(), "recruiter.html")
    assert doc.text == "A recruiter finds and hires people."


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("encrypted.pdf", "encrypted"),
        ("truncated.pdf", "cannot read this PDF"),
        ("truncated.docx", "cannot read this Word file"),
        ("empty.html", "no text"),
        ("empty.md", "no text"),
    ],
)
def test_a_broken_file_is_skipped_by_name_and_the_rest_is_indexed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, reason: str
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(FILES / "guide.md", corpus / "guide.md")
    shutil.copy(FILES / name, corpus / name)
    with caplog.at_level(logging.WARNING):
        docs, sources = load_corpus(corpus)
    assert [d.source for d in docs] == ["guide.md"]
    (skipped,) = [s for s in sources if s.error]
    assert skipped.path == name and reason in skipped.error
    assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_rag_index_json_names_the_files_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    fake_embedder,
):  # fmt: skip
    import rag.models.embedder

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("guide.docx", "encrypted.pdf", "truncated.docx"):
        shutil.copy(FILES / name, corpus / name)
    monkeypatch.setattr(rag.models.embedder, "load_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setenv("RAG_MODEL", fake_embedder.model_id)
    code = main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "ix"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert {s["path"] for s in report["skipped"]} == {"encrypted.pdf", "truncated.docx"}
    assert "skipped encrypted.pdf: cannot read this PDF (it is encrypted)" in err


def test_filters_by_tag_and_source_prefix(tmp_path: Path, fake_embedder):
    corpus = tmp_path / "corpus"
    (corpus / "ladders").mkdir(parents=True)
    shutil.copy(FILES / "ladder.mdx", corpus / "ladders" / "ladder.mdx")
    shutil.copy(FILES / "guide.md", corpus / "guide.md")
    build_index(corpus, tmp_path / "ix", fake_embedder)
    retriever = Retriever(load_index(tmp_path / "ix"), fake_embedder)
    for filters in (Filters(tags=("Levels",)), Filters(source_prefix="ladders/")):
        hits = retriever.search("scope of an engineer", 10, filters=filters).hits
        assert hits and {h.chunk.source for h in hits} == {"ladders/ladder.mdx"}
    hits = retriever.search("scope of an engineer", 10, filters=Filters(source_prefix="guide")).hits
    assert {h.chunk.source for h in hits} == {"guide.md"}
    from rag.errors import BadQuery

    assert retriever.search("scope", 5, filters=Filters(tags=("sourdough",))).hits == []
    with pytest.raises(BadQuery, match="unknown document"):
        retriever.search("scope", 5, filters=Filters(doc_ids=("nope",)))


def _corpora() -> list[Path]:
    found = [CORPUS, INTERVIEW, SOURCEGRAPH, FILES]
    # The shared handbook sits beside the clone (as in CI); a lone clone has the other four.
    return found + ([SHARED_HANDBOOK] if SHARED_HANDBOOK.is_dir() else [])


@pytest.mark.parametrize(
    "corpus",
    _corpora(),
    ids=lambda p: p.parent.name if p.name in ("contents", "source") else p.name,
)
def test_no_passage_of_any_corpus_holds_markup(corpus: Path):
    docs, _ = load_corpus(corpus)
    chunks = chunk_documents(docs)
    assert chunks
    found = {
        kind: [c.text[:80] for c in chunks if pattern.search(c.text)]
        for kind, pattern in MARKUP.items()
    }
    assert {kind: hits for kind, hits in found.items() if hits} == {}


# Every word a page shows, in each format (words.md converted by pandoc and Chromium):
# a line break, a table whose <th> cells head its rows, a one-column table, a one-row table,
# a list numbered from 3 and a list item of two paragraphs.
WORDS = [
    "Paid leave starts on your first day. It is counted in working days.",
    "Annual leave: 25 days a year, more after five years.",
    "Questions we ask in the review",
    "How would you rate your manager this year?",
    "What should your manager start doing?",
    "Offices close on 24 December.",
    "3. Tell your manager a month ahead.",
    "4. Book it in the HR system.",
    "Carry-over is capped at five days.",
    "Days above the cap are paid out in January.",
]


@pytest.mark.parametrize("name", ["words.md", "words.html", "words.docx", "words.pdf"])
def test_every_format_keeps_every_word_of_raw_html_tables_and_lists(name: str):
    doc = parse(name)
    text = " ".join(doc.text.split())
    missing = [w for w in WORDS if w not in text]
    assert missing == []
    assert "day.It" not in text  # a line break is a space between two sentences


def test_mdx_keeps_the_text_of_html_blocks_and_of_jsx_children_and_props():
    doc = parse("components.mdx")
    assert doc.title == "Promotions"
    text = doc.text
    assert "Reviews are collected by People Operations every March." in text  # a string prop
    assert "Individual contributors\n" in text  # a tab's label
    assert "Individual contributors are reviewed by their manager." in text  # JSX children
    assert "Promotions take effect on the first of the month." in text  # an HTML block
    assert "What if I miss the deadline?" in text  # <summary>
    assert "Ask early" in text and ":::" not in text  # an admonition's title
    for gone in ("Tabs", "TabItem", "InDocAd", "In Doc Ad", "track", "callout", "Example Handbook"):
        assert gone not in text, gone  # tags, configuring props, <head>, a component on its own


def test_a_component_inside_a_sentence_leaves_its_name_not_a_hole():
    text = parse("components.mdx").text
    assert "speak to your manager or the People Team to discuss it." in text


def test_docx_reads_every_run_word_shows_and_numbers_its_lists():
    # LibreOffice wrote it from expenses.fodt: python-docx's paragraph.text drops the tracked
    # insertion and the text box, and its core_properties.title makes up "Word Document".
    doc = parse("expenses.docx")
    assert doc.title == "Expenses"
    text = doc.text
    assert "Claims are reimbursed within twenty working days, as the expense policy explains." in (
        text
    )
    assert " ten " not in text  # a tracked deletion is not shown
    assert text.count("Receipts are needed for every claim over 25 dollars.") == 1  # a text box
    assert "a. Keep the receipt.\nb. Submit it in the expense tool." in text
    assert "1. Your manager approves the claim.\n2. Finance checks the receipt." in text
