"""Parsing the corpus into documents and sections."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rag.errors import CorpusEmpty
from rag.ingest.loader import load_corpus, parse_source
from rag.ingest.profiles import ScrapedGuide
from tests.conftest import CORPUS

MORE_CAREERS = {
    "lead-ml-infrastructure-manager": "Lead ML Infrastructure Manager",
    "lead-machine-learning-architect": "Lead Machine Learning Architect",
    "lead-data-scientist": "Lead Data Scientist",
    "ml-fraud-detection-engineer": "ML Fraud Detection Engineer",
}


@pytest.fixture(scope="module")
def real_docs():
    docs, _ = load_corpus(CORPUS)
    return {d.id: d for d in docs}


def paths(doc) -> list[tuple[str, ...]]:
    return [s.path for s in doc.sections]


def test_real_corpus_splits_more_careers_into_four_documents(real_docs):
    assert set(real_docs) == {"machine-learning-systems-engineer", *MORE_CAREERS}
    for doc_id, title in MORE_CAREERS.items():
        assert real_docs[doc_id].title == title


def test_more_careers_label_is_not_a_section(real_docs):
    all_paths = [p for d in real_docs.values() for p in paths(d)]
    assert not any("More Careers" in p for p in all_paths)


def test_main_guide_nests_subheadings_under_their_part(real_docs):
    guide = real_docs["machine-learning-systems-engineer"]
    title = "Machine Learning Systems Engineer"
    got = paths(guide)
    assert (title, "Overview") in got
    assert (title, "Salary Ranges (US Market, 2024)", "Salary by Experience Level") in got
    assert (title, "Best Practices", "Model Development and Training") in got
    assert (title, "Common Challenges", "Integration with Existing Systems") in got


def test_part_without_heading_gets_its_own_section(real_docs):
    guide = real_docs["machine-learning-systems-engineer"]
    trends = [p for p in paths(guide) if "In-Demand Skills" in p]
    assert trends, "In-Demand Skills section missing"
    # The trends text is not filed under the salary part that precedes it.
    assert "Salary Ranges (US Market, 2024)" not in trends[0]
    assert trends[0][1] == "Industry trends and insights"


def test_page_chrome_is_not_content(real_docs):
    # The corpus page has such lines (a logo, image placeholders); none reaches a section.
    profile = ScrapedGuide()
    raw = (CORPUS / "machine-learning-systems-engineer.txt").read_text(encoding="utf-8")
    assert sum(profile.is_chrome(line) for line in raw.splitlines()) >= 3
    for doc in real_docs.values():
        for section in doc.sections:
            for s, e in section.spans:
                assert not any(profile.is_chrome(line) for line in doc.text[s:e].splitlines())


def test_inline_markdown_headings_become_sections(real_docs):
    assert paths(real_docs["lead-data-scientist"])[1:] == [
        ("Lead Data Scientist", "Key Responsibilities"),
        ("Lead Data Scientist", "Skills and Qualifications"),
        ("Lead Data Scientist", "Career Outlook"),
        ("Lead Data Scientist", "Salary"),
    ]
    assert ("Lead Machine Learning Architect", "Educational Background") in paths(
        real_docs["lead-machine-learning-architect"]
    )
    assert ("ML Fraud Detection Engineer", "Benefits and Challenges") in paths(
        real_docs["ml-fraud-detection-engineer"]
    )


def test_markdown_headings_give_levels():
    text = "# Guide\n\nIntro.\n\n## Pay\n\nGood.\n\n### By city\n\nBetter in SF.\n\n## Skills\n\n- SQL\n"
    (doc,) = parse_source(text, "guide.md")
    assert doc.title == "Guide"
    assert paths(doc) == [
        ("Guide",),
        ("Guide", "Pay"),
        ("Guide", "Pay", "By city"),
        ("Guide", "Skills"),
    ]


def test_markdown_ignores_hashes_inside_code_fences():
    text = "# Guide\n\n```\n# not a heading\n```\n\n## Real\n\nBody.\n"
    (doc,) = parse_source(text, "g.md")
    assert paths(doc) == [("Guide",), ("Guide", "Real")]


def test_html_headings_and_lists_survive_and_scripts_do_not():
    page = (
        "<html><head><script>var x=1</script></head><body>"
        "<h1>Analyst</h1><p>Reads &amp; writes.</p><h2>Skills</h2><ul><li>SQL</li></ul>"
        "<footer>copyright</footer></body></html>"
    )
    (doc,) = parse_source(page, "a.html")
    assert "var x" not in doc.text and "copyright" not in doc.text
    assert doc.title == "Analyst"
    assert paths(doc) == [("Analyst",), ("Analyst", "Skills")]
    assert "Reads & writes." in doc.text


def test_loader_reads_folders_recursively_in_all_formats(small_corpus: Path):
    docs, sources = load_corpus(small_corpus)
    assert sorted(d.title for d in docs) == ["Data Analyst", "Data Engineer", "Technical Recruiter"]
    assert "sub/analyst.html" in {s.path for s in sources}


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"   \n", "empty"),
        ("binary.md", b"\x89PNG\x00\x00data", "binary"),
        ("latin1.txt", "Caf\xe9 guide\n\nText".encode("latin-1"), "not UTF-8"),
    ],
)
def test_loader_skips_bad_files_with_a_warning(
    small_corpus: Path, caplog, name: str, content: bytes, reason: str
):
    (small_corpus / name).write_bytes(content)
    with caplog.at_level(logging.WARNING):
        docs, _ = load_corpus(small_corpus)
    assert len(docs) == 3
    assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_loader_refuses_a_folder_with_no_documents(tmp_path: Path):
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(CorpusEmpty):
        load_corpus(tmp_path)


def test_repeated_guides_are_indexed_once(tmp_path: Path):
    guide = "Data Engineer\n\nOverview\n\nBuilds pipelines.\n"
    (tmp_path / "a.txt").write_text(guide)
    (tmp_path / "b.txt").write_text(guide)
    docs, _ = load_corpus(tmp_path)
    assert len(docs) == 1
