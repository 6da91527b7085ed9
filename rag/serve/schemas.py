"""Request and response bodies of the HTTP API; the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from rag.config import Settings

MAX_K = Settings.model_fields["max_k"].default


def _encodable(text: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, logged or answered.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from exc
    return text


Text = Annotated[str, Field(strict=True), AfterValidator(_encodable)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Documented, not enforced here: the retriever rejects a blank or too long query with a
# readable message, and the served schema carries the configured limit (see _openapi).
_QUERY_SCHEMA = {"pattern": r"\S"}


class SearchFilters(_Request):
    """Restrict a search."""

    doc_id: Text | None = Field(None, min_length=1, description="Only passages of this document.")


class SearchRequest(_Request):
    """A search: the query, how many passages, and optional filters."""

    query: Text = Field(
        description="The question or keywords; not blank, at most `max_query_chars` characters.",
        examples=["What skills does an ML fraud engineer need?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to return.")
    filters: SearchFilters = Field(default_factory=SearchFilters)


class AskRequest(_Request):
    """A question to answer from the top passages."""

    query: Text = Field(
        description="The question; not blank, at most `max_query_chars` characters.",
        examples=["How much does a lead data scientist earn?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to retrieve.")


class ChatMessage(_Request):
    """One turn of a conversation."""

    role: Literal["user", "assistant"]
    content: Text


class ChatRequest(_Request):
    """A conversation whose last message, from the user, is to be answered."""

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=100,
        description="Oldest first; the last message must be from the user.",
        examples=[
            [
                {"role": "user", "content": "What does a lead data scientist do?"},
                {"role": "assistant", "content": "A Lead Data Scientist is a senior role..."},
                {"role": "user", "content": "How much do they earn?"},
            ]
        ],
    )
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="How many passages to retrieve.")
    stream: StrictBool = Field(
        False, description="Answer as server-sent events (`text/event-stream`)."
    )


class FeedbackRequest(_Request):
    """A rating of one answered query."""

    query_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="The `query_id` of a /search, /ask or /chat."
    )
    rating: Literal["up", "down"]
    comment: Text | None = Field(None, max_length=2000)


class Citation(BaseModel):
    """Where a passage comes from, precisely enough to open it at the cited span."""

    doc_id: str
    title: str
    section: str
    section_path: list[str]
    source: str
    start: int
    end: int
    url: str


class SearchHit(BaseModel):
    """One ranked passage."""

    rank: int
    score: float = Field(
        description="In hybrid mode, how far the passage stands out from this query's other "
        "candidates (a weighted mean of standard scores); in the other modes the ranking's own "
        "score. Compare it between passages of one query, not across queries."
    )
    chunk_id: str
    text: str
    citation: Citation


class SearchResponse(BaseModel):
    """Ranked passages for a query."""

    query: str
    results: list[SearchHit]
    took_ms: float
    query_id: str


class AskResponse(BaseModel):
    """An extractive answer; its `[n]` markers cite `results[n-1]`."""

    query: str
    answer: str
    results: list[SearchHit]
    query_id: str
    took_ms: float


class ChatResponse(BaseModel):
    """The answer to the last message; `query` is what the conversation resolved to."""

    answer: str
    results: list[SearchHit]
    query: str
    query_id: str
    took_ms: float


class SectionOut(BaseModel):
    """A section: heading path and its span in the source file."""

    path: list[str]
    start: int
    end: int


class DocumentSummary(BaseModel):
    """A document without its text."""

    id: str
    title: str
    source: str
    sections: list[SectionOut]
    chunks: int


class DocumentList(BaseModel):
    """Every document in the index."""

    documents: list[DocumentSummary]


class DocumentDetail(BaseModel):
    """A document with its text; `offset` is where the text starts in its source file."""

    id: str
    title: str
    source: str
    offset: int
    text: str
    sections: list[SectionOut]


class HealthResponse(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Readiness: the index, or why it is not loaded (with status 503)."""

    status: Literal["ready", "loading", "error"]
    detail: str | None = None
    model: str | None = None
    built_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    stale: bool | None = None
    stale_sources: list[str] = Field(default_factory=list)


class FeedbackResponse(BaseModel):
    """Feedback was recorded."""

    status: Literal["recorded"] = "recorded"
    query_id: str


class FieldError(BaseModel):
    """One problem with the request."""

    field: str
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every error response."""

    detail: str
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed JSON or a body that is not UTF-8"),
        (413, "Request body too large"),
        (422, "Invalid request; `field` names the offending field"),
        (503, "Index not loaded yet"),
    )
}
