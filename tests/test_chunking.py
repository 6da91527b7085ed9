"""Chunking: one passage per section where it fits, exact offsets, the length cap."""

from __future__ import annotations

import re

import pytest

from rag.ingest.chunking import HARD_MAX_CHARS, ChunkerSettings, chunk_documents
from rag.ingest.loader import load_corpus, parse_source
from rag.ingest.sentences import list_titles, passage_sentences
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def corpus():
    docs, sources = load_corpus(CORPUS)
    return docs, {s.path: s.text for s in sources}, chunk_documents(docs)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_chunk_is_its_exact_source_span(corpus):
    _, sources, chunks = corpus
    for chunk in chunks:
        raw = (CORPUS / chunk.source).read_text(encoding="utf-8")
        assert squash(raw[chunk.start : chunk.end]) == squash(chunk.text), chunk.id
        assert sources[chunk.source][chunk.start : chunk.end] == chunk.text


def test_no_chunk_is_empty_heading_only_or_over_the_cap(corpus):
    _, _, chunks = corpus
    for chunk in chunks:
        assert len(chunk.text) <= HARD_MAX_CHARS
        assert chunk.text.strip()
        assert squash(chunk.text) != chunk.section_path[-1]
        assert len(chunk.text) >= 40, chunk.text


def test_chunk_ids_are_unique_and_stable(corpus):
    docs, _, chunks = corpus
    ids = [c.id for c in chunks]
    assert len(ids) == len(set(ids))
    assert [c.id for c in chunk_documents(docs)] == ids


def test_chunks_carry_document_and_section_path(corpus):
    _, _, chunks = corpus
    fraud = [c for c in chunks if c.doc_id == "ml-fraud-detection-engineer"]
    assert {c.title for c in fraud} == {"ML Fraud Detection Engineer"}
    assert ["ML Fraud Detection Engineer", "Technical Approaches"] in [
        c.section_path for c in fraud
    ]
    salary = next(c for c in chunks if "Senior-Level (7+ years)" in c.text)
    assert salary.section_path[1:] == [
        "Salary Ranges (US Market, 2024)",
        "Salary by Experience Level",
    ]


def test_small_sections_are_one_chunk_each(corpus):
    _, _, chunks = corpus
    security = [c for c in chunks if c.section_path[-1] == "Security"]
    assert len(security) == 1
    assert security[0].text.startswith("• Utilize secure execution environments")


def test_long_section_splits_at_numbered_items(corpus):
    _, _, chunks = corpus
    core = [c for c in chunks if c.section_path[-1] == "Core Responsibilities"]
    assert len(core) >= 2
    for chunk in core[1:]:
        assert re.match(r"(1\.|•)", chunk.text), chunk.text[:40]


def test_long_paragraph_splits_with_overlap_under_the_cap():
    sentences = [f"Sentence number {i} talks about data pipelines and models." for i in range(60)]
    text = "Guide\n\nPart\n\n" + " ".join(sentences) + "\n"
    (doc,) = parse_source(text, "g.txt")
    chunks = chunk_documents([doc], ChunkerSettings(max_chars=400, overlap_chars=120))
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive pieces of one paragraph should overlap"
    assert chunks[-1].text.endswith("models.")


def test_chunker_settings_refuse_a_cap_over_1500():
    with pytest.raises(ValueError):
        ChunkerSettings(max_chars=2000)


def test_markdown_chunks_have_offsets_into_the_file():
    text = "# Guide\n\nIntro text here for the guide.\n\n## Pay\n\n- Range: $1 to $2\n- Bonus\n"
    (doc,) = parse_source(text, "g.md")
    chunks = chunk_documents([doc])
    assert [c.section_path for c in chunks] == [["Guide"], ["Guide", "Pay"]]
    for c in chunks:
        # Offsets are into the rendered text; the block's own span is into the file.
        assert doc.text[c.start : c.end] == c.text
        assert (
            c.text.split("\n")[0].lstrip("• ")
            in text[c.meta["source_start"] : c.meta["source_end"]]
        )


def test_passage_sentences_keep_the_label_of_nested_items():
    text = "1. Senior-Level (7+ years):\n    • Average: $189,477\n    • Range: Up to $204,000"
    assert passage_sentences(text, min_chars=10) == [
        "Senior-Level (7+ years): Average: $189,477",
        "Senior-Level (7+ years): Range: Up to $204,000",
    ]


def test_sibling_labels_do_not_nest_when_the_passage_starts_at_the_first():
    text = "1. Entry-Level:\n    • Range: $70,000 to $132,000\n  2. Senior-Level:\n    • Average: $189,477"
    assert passage_sentences(text, min_chars=10) == [
        "Entry-Level: Range: $70,000 to $132,000",
        "Senior-Level: Average: $189,477",
    ]


def test_list_titles_are_numbered_lines_over_bullets_with_no_sentence_of_their_own():
    text = (
        "  1. Data Preparation and Analysis\n"
        "  • Collect, preprocess, and transform large datasets\n"
        "  1. **Model Building**\n"
        "  • Train models\n"
        "  2. Deploy models to production environments.\n"  # a sentence, not a title
        "  • Monitor them\n"
        "  3. Entry-Level (0-2 years):\n"  # a label: its items carry it already
        "  • Range: $70,000 to $132,000\n"
        "  4. Evaluation and Metrics\n"  # nothing under it
        "  5. Last numbered line"
    )
    assert list_titles(text) == {"Data Preparation and Analysis", "Model Building"}


def test_passage_sentences_split_inline_lists_and_strip_markdown():
    text = "Benefits: - **Speed**: fast decisions on fraud - Continuous learning on new patterns"
    assert passage_sentences(text) == [
        "Benefits: Speed: fast decisions on fraud",
        "Benefits: Continuous learning on new patterns",
    ]
