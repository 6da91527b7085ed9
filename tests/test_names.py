"""The names a question gives (levels, roles, teams, companies) and the passages under them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag.search.names import Names, name_words

LADDER = [
    "Junior Software Engineer",
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Software Engineer",
    "Senior Staff Software Engineer",
    "Principal Software Engineer",
]
PATHS = [
    *[(n, "Engineering levels", ["Engineering levels", "Career levels", h]) for n, h in enumerate(LADDER)],
    (6, "Interview formats", ["Interview formats", "Airbnb"]),
    (7, "Interview formats", ["Interview formats", "Google"]),
    (8, "Levels", ["Levels", "IC6"]),
    (9, "Levels", ["Levels", "M6"]),
    (10, "Levels", ["Levels", "M4"]),
    *[(n, "Acme handbook", ["Acme handbook", f"Acme {h}"]) for n, h in
      ((11, "benefits"), (12, "offices"), (13, "history"), (14, "values"), (15, "teams"))],
    (16, "Reviews", ["Reviews", "Mid Year Review"]),
    (17, "Support", ["Support", "Immigration support"]),
]  # fmt: skip
NAMES = Names(PATHS)


def named(question: str) -> list[str]:
    return [h.text for h in NAMES.named(question)]


@pytest.mark.parametrize(
    ("question", "headings"),
    [
        # Exact matches first: the staff rung, not the senior staff one, and the reverse.
        ("What does a Staff Software Engineer do?", ["Staff Software Engineer"]),
        ("What does a staff software engineer do?", ["Staff Software Engineer"]),
        ("What does a Senior Staff Software Engineer do?", ["Senior Staff Software Engineer"]),
        ("How many years does a senior staff engineer have?", ["Senior Staff Software Engineer"]),
        # A heading that adds words gives way to the one that is just the name.
        ("What do software engineers do?", ["Software Engineer"]),
        ("How experienced is a mid-level software engineer?", ["Software Engineer"]),
        # Companies, codes, several names at once.
        ("Can I look up documentation during an Airbnb coding interview?", ["Airbnb"]),
        ("What does Google's Singapore office do?", ["Google"]),
        ("Is an IC6 the same level as an M6?", ["IC6", "M6"]),
        ("What is an M4 engineering manager accountable for?", ["M4"]),
        # No name, a lone role word, a "mid-year" that is no rung, a name with a topic beside it.
        ("How long is parental leave?", []),
        ("What do engineers earn?", []),
        ("When do mid-year reviews take place?", []),
        ("What are the benefits at Acme?", []),
        ("Can a support engineer help with immigration?", []),
    ],
)
def test_the_headings_a_question_names(question: str, headings: list[str]) -> None:
    assert sorted(named(question)) == sorted(headings)


def test_staff_software_engineer_never_matches_senior_staff_software_engineer() -> None:
    # Even where the staff rung has no heading of its own, the senior staff one is another rung.
    ladder = Names([(0, "Levels", ["Levels", "Senior Staff Software Engineer"])])
    assert ladder.named("What does a staff software engineer do?") == []
    assert [h.text for h in ladder.named("What does a senior staff engineer do?")] == [
        "Senior Staff Software Engineer"
    ]


def test_question_names_kinds() -> None:
    q = name_words("I'm a mid-level IC3 product designer at Acme. Do I report to a Senior?")
    assert {("ic3",), ("acme",), ("senior",), ("mid",)} <= set(q.strong)  # codes, names, rungs
    assert ("i'm",) not in q.strong and ("do",) not in q.strong  # "I'm", a first word
    # An acronym stands for its words, which a heading must hold together.
    assert name_words("Which ML skills matter?").strong == [("machine", "learning")]
    assert NAMES.named("How do I keep my ML skills up to date?") == []
    assert {"product", "designer"} <= q.role
    assert q.levels == {"mid", "senior"}


def test_rows_are_those_under_the_named_headings() -> None:
    rows = NAMES.rows("Is an IC6 the same level as an M6?")
    assert rows is not None and rows.tolist() == [8, 9]
    assert NAMES.rows("How long is parental leave?") is None


LEVELS_DOC = "# Engineering levels\n\n" + "".join(
    f"## {h}\n\nA {h.lower()} typically has {n + 2} to {n + 5} years of experience and leads "
    "projects of growing scope across teams.\n\n"
    for n, h in enumerate(LADDER)
)


def test_a_search_prefers_the_passages_under_the_exact_name(
    make_corpus: Callable[..., Path],
    make_index: Callable[..., Path],
    make_retriever: Callable[..., object],
) -> None:
    from rag.search.fusion import FusionConfig

    retriever = make_retriever(make_index(make_corpus({"levels.md": LEVELS_DOC})))
    for rung in ("Staff Software Engineer", "Senior Staff Software Engineer"):
        query = f"How many years of experience does a {rung} have?"
        hits = retriever.search(query, k=3).hits
        assert hits[0].chunk.section_path[-1] == rung
        # The bonus is what puts it there, by the configured weight, and only on its passages.
        plain = make_retriever(retriever.index.path, fusion=FusionConfig(name_weight=0.0))
        before = {h.chunk.id: h.score for h in plain.search(query, k=6).hits}
        for h in retriever.search(query, k=6).hits:
            bonus = 1.0 if h.chunk.section_path[-1] == rung else 0.0
            assert h.score == pytest.approx(before[h.chunk.id] + bonus)
    assert isinstance(retriever.named_headings("What is a good salary?"), type(None))
    assert np.array_equal(
        retriever.named_headings("What does a Staff Software Engineer do?"),
        retriever.names.get().rows("What does a Staff Software Engineer do?"),
    )


def test_a_title_on_another_rung_is_not_the_guide_a_question_names() -> None:
    from rag.search.subjects import SubjectFinder

    titles = SubjectFinder(["Senior Staff Software Engineer", "Lead Data Scientist"])
    assert titles.named_titles("What does a staff software engineer do?") == []
    assert titles.named_titles("What does a senior staff engineer do?") == [
        "Senior Staff Software Engineer"
    ]
    # A question that names no rung still finds the guide ("data scientist": Lead Data Scientist).
    assert titles.named_titles("What does a data scientist earn?") == ["Lead Data Scientist"]
    both = SubjectFinder(["Staff Software Engineer", "Senior Staff Software Engineer"])
    assert both.named_titles("What does a Staff Software Engineer do?") == [
        "Staff Software Engineer"
    ]


def test_a_question_of_many_names_compares_a_bounded_number_of_headings() -> None:
    from rag.search import names as names_module

    many = Names([(n, "Levels", ["Levels", f"IC{n}"]) for n in range(names_module.MAX_NAMED * 2)])
    question = " ".join(f"IC{n}" for n in range(names_module.MAX_NAMED * 2))
    assert len(many.named(question)) == names_module.MAX_NAMED
