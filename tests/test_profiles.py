"""Text profiles: the core rules for plain text, and the scraped-guide profile's own rules.

Each scraped-guide rule is shown on a small synthetic text of the shape it is for, read once
with the profile and once with the core rules, so a rule that leaks into the core fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.config import Settings
from rag.index import build_index, load_index, why_rebuild
from rag.ingest.chunking import ChunkerSettings, chunk_documents, chunk_sentences
from rag.ingest.loader import load_corpus, parse_source
from rag.ingest.plaintext import parse_text
from rag.ingest.profiles import (
    CORE,
    DEFAULT_TEXT_PROFILE,
    ScrapedGuide,
    TextProfile,
    get_profile,
    profile_for,
)
from rag.ingest.sentences import passage_sentences

SCRAPED = ScrapedGuide()


def paths(text: str, profile: TextProfile) -> list[list[tuple[str, ...]]]:
    return [[s.path for s in d.sections] for d in parse_text(text, "page.txt", profile)]


def section_texts(text: str, profile: TextProfile) -> list[str]:
    return [
        text[s:e] for d in parse_text(text, "page.txt", profile) for sec in d.sections
        for s, e in sec.spans
    ]  # fmt: skip


def test_profile_for_picks_the_text_profile_for_plain_text_only():
    assert DEFAULT_TEXT_PROFILE == "scraped-guide"
    assert isinstance(profile_for("guides/page.txt"), ScrapedGuide)
    assert type(profile_for("guides/page.txt", "plain")) is TextProfile
    for source in ("handbook.md", "ladder.markdown", "page.html"):
        assert profile_for(source) is CORE


def test_unknown_profile_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="plain, scraped-guide"):
        get_profile("wiki")
    with pytest.raises(ValidationError, match="text_profile"):
        Settings(text_profile="wiki")


def test_core_reads_short_standalone_lines_as_headings():
    text = "Data Engineer\n\nOverview\n\nA data engineer builds pipelines.\n\nSkills\n\n- SQL\n- Spark\n"
    assert paths(text, CORE) == [[("Data Engineer", "Overview"), ("Data Engineer", "Skills")]]


def test_scraped_guide_drops_page_chrome_and_the_core_keeps_it():
    text = (
        "logoAcmeCareers\n\nData Engineer\n\nOverview\n\nA data engineer builds pipelines.\n\n"
        "first image\n\nSkills\n\nSQL and Spark are the daily tools of the job.\n"
    )
    scraped = " ".join(section_texts(text, SCRAPED))
    assert "logoAcmeCareers" not in scraped and "first image" not in scraped
    assert "SQL and Spark" in scraped
    assert "first image" in " ".join(section_texts(text, CORE))


def test_scraped_guide_opens_a_guide_at_a_title_printed_twice():
    text = (
        "Data Engineer\n\nData Engineer\n\nOverview\n\nA data engineer builds pipelines.\n\n"
        "Data Analyst\n\nData Analyst\n\nOverview\n\nAn analyst turns data into reports.\n"
    )
    docs = parse_text(text, "page.txt", SCRAPED)
    assert [d.title for d in docs] == ["Data Engineer", "Data Analyst"]
    assert [s.path for s in docs[1].sections] == [("Data Analyst", "Overview")]
    assert len(parse_text(text, "page.txt", CORE)) == 1


def test_scraped_guide_nests_subheadings_under_an_announcing_paragraph():
    text = (
        "Data Engineer\n\nOverview\n\nA data engineer builds pipelines.\n\n"
        "Best Practices\n\nFollow these practices to keep pipelines healthy:\n\n"
        "Testing\n\nTest every transformation before it ships.\n\n"
        "Monitoring\n\nAlert on late or missing data.\n"
    )
    (scraped,) = paths(text, SCRAPED)
    assert ("Data Engineer", "Best Practices", "Testing") in scraped
    assert ("Data Engineer", "Best Practices", "Monitoring") in scraped
    (core,) = paths(text, CORE)
    assert ("Data Engineer", "Testing") in core and ("Data Engineer", "Monitoring") in core


def test_scraped_guide_names_a_part_whose_heading_was_lost_from_its_intro():
    text = (
        "Data Engineer\n\nOverview\n\nA data engineer builds pipelines.\n\n"
        "The role keeps growing with the data.\n\n"
        "Here are the key skills employers look for:\n\n"
        "Programming\n\nPython and SQL every day.\n"
    )
    (scraped,) = paths(text, SCRAPED)
    assert ("Data Engineer", "Skills employers look for", "Programming") in scraped
    (core,) = paths(text, CORE)
    assert ("Data Engineer", "Programming") in core


def test_scraped_guide_splits_headings_flattened_inline():
    text = (
        "Data Engineer\n\nOverview\n\nA data engineer builds pipelines. "
        "### Career Outlook The demand for data engineers keeps growing.\n"
    )
    (scraped,) = paths(text, SCRAPED)
    assert scraped == [
        ("Data Engineer", "Overview"),
        ("Data Engineer", "Overview", "Career Outlook"),
    ]
    assert paths(text, CORE) == [[("Data Engineer", "Overview")]]


def test_scraped_guide_unglues_a_label_and_a_closing_summary_from_the_last_item():
    text = (
        "Benefits:\n  • Real-time detection of fraudulent transactions and prevention Challenges:\n"
        "  • High false positive rates on new customers\n"
        "  • Adapting to evolving fraud tactics This overview shows what the role involves.\n"
    )
    scraped = passage_sentences(text, profile=SCRAPED)
    assert scraped == [
        "Benefits: Real-time detection of fraudulent transactions and prevention",
        "Challenges: High false positive rates on new customers",
        "Challenges: Adapting to evolving fraud tactics",
        "This overview shows what the role involves.",
    ]
    assert passage_sentences(text) == [
        "Benefits: High false positive rates on new customers",
        "Benefits: Adapting to evolving fraud tactics This overview shows what the role involves.",
    ]


def test_markdown_is_read_with_the_core_rules_whatever_the_text_profile():
    text = "# Guide\n\n## Pay\n\nGood pay. ### Not a heading inside a paragraph\n"
    (doc,) = parse_source(text, "guide.md", "scraped-guide")
    assert [s.path for s in doc.sections] == [("Guide", "Pay")]


def test_chunk_sentences_follow_the_profile_of_the_chunks_source(tmp_path: Path):
    item = "• Adapting to evolving fraud tactics This overview shows what the role involves."
    (tmp_path / "page.txt").write_text(f"Fraud Engineer\n\nChallenges\n\n{item}\n")
    (tmp_path / "notes.md").write_text(f"# Fraud Notes\n\n## Challenges\n\n{item}\n")
    docs, _ = load_corpus(tmp_path)
    chunks = {c.source: c for c in chunk_documents(docs, ChunkerSettings())}
    assert len(chunk_sentences(chunks["page.txt"])) == 2
    assert len(chunk_sentences(chunks["notes.md"])) == 1
    assert len(chunk_sentences(chunks["page.txt"], "plain")) == 1


def test_index_records_its_profile_and_is_stale_under_another(
    small_corpus: Path, tmp_path: Path, fake_embedder
):
    index_dir = tmp_path / "index"
    manifest = build_index(small_corpus, index_dir, fake_embedder, text_profile="plain")
    assert manifest.text_profile == "plain"
    assert load_index(index_dir).manifest.text_profile == "plain"
    settings = Settings(
        corpus_dir=small_corpus, index_dir=index_dir, model=fake_embedder.model_id, adapt=False
    )
    chunker = ChunkerSettings()
    assert "profile" in (why_rebuild(settings, chunker) or "")
    same = settings.model_copy(update={"text_profile": "plain"})
    assert why_rebuild(same, chunker) is None
