"""What a front-end asks: a question or a conversation, how many passages, which filters; and
the one place its limits are defaulted and checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rag.errors import BadQuery
from rag.search.types import Filters, Mode


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: "user" or "assistant" (an empty assistant turn stands
    for a message that has no say in retrieval, so later turns keep their numbers)."""

    role: str
    content: str


@dataclass(frozen=True)
class Limits:
    """How many passages by default and at most, and how long a question may be."""

    k: int = 5
    max_k: int = 50
    max_query_chars: int = 1000

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits a ``Settings`` configures (RAG_K, RAG_MAX_K, RAG_MAX_QUERY_CHARS)."""
        return cls(settings.k, settings.max_k, settings.max_query_chars)


@dataclass(frozen=True)
class Question:
    """One request: ``text``, or ``turns`` whose latest user turn is answered in their context.

    ``k`` None means the configured default. ``field`` is what the front-end calls the
    question, so that an error names it as the caller sent it ("query", "question").
    """

    text: str | None = None
    turns: tuple[Turn, ...] = ()
    k: int | None = None
    filters: Filters = field(default_factory=Filters)
    mode: Mode = "hybrid"
    field: str = "query"

    @classmethod
    def conversation(cls, turns: Sequence[Any], **options: Any) -> Question:
        """A question from a conversation's messages: objects or mappings with a ``role`` and
        a ``content``."""
        return cls(turns=tuple(_turn(t) for t in turns), **options)


def _turn(message: Any) -> Turn:
    if isinstance(message, Mapping):
        return Turn(str(message.get("role", "")), str(message.get("content", "")))
    return Turn(message.role, message.content)


def check_text(text: object, limits: Limits, field: str = "query") -> str:
    """The question stripped; BadQuery unless it is a string, not blank, and at most
    ``max_query_chars`` characters as sent (as the API's schema counts them)."""
    if not isinstance(text, str):
        raise BadQuery(f"{field} must be a string", field=field)
    if len(text) > limits.max_query_chars:
        raise BadQuery(f"{field} is longer than {limits.max_query_chars} characters", field=field)
    stripped = text.strip()
    if not stripped:
        raise BadQuery(f"{field} must not be empty", field=field)
    return stripped


def check_k(k: object, limits: Limits) -> int:
    """``k``, the configured default when None; BadQuery unless a whole number in range."""
    if k is None:
        return limits.k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
        raise BadQuery(f"k must be an integer from 1 to {limits.max_k}", field="k")
    return k


def check_turns(turns: Sequence[Turn], limits: Limits) -> None:
    """Every user turn is a question: not blank, not over the query limit; one is there."""
    users = [n for n, t in enumerate(turns) if t.role == "user"]
    if not users:
        raise BadQuery("the conversation has no user message", field="messages")
    for n in users:
        where = f"messages.{n}.content"
        if len(turns[n].content) > limits.max_query_chars:
            raise BadQuery(
                f"a user message is longer than {limits.max_query_chars} characters", field=where
            )
        if not turns[n].content.strip():
            raise BadQuery("a user message must not be blank", field=where)


def check(question: Question, limits: Limits) -> Question:
    """The question with its text stripped, its k defaulted and its turns up to the latest
    user turn; raises BadQuery naming the first problem."""
    if question.turns or question.text is None:
        check_turns(question.turns, limits)
        # The latest user turn is the question; assistant turns after it are left out.
        last = max(n for n, t in enumerate(question.turns) if t.role == "user")
        return replace(question, turns=question.turns[: last + 1], k=check_k(question.k, limits))
    text = check_text(question.text, limits, question.field)
    return replace(question, text=text, k=check_k(question.k, limits))
