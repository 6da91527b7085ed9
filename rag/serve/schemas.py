"""Request and response bodies of the HTTP API; the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
)

from rag.search.question import Question
from rag.search.types import Filters


def encodable(text: str) -> str:
    """The text, if UTF-8 can encode it."""
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, logged or answered.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from exc
    return text


Text = Annotated[str, Field(strict=True), AfterValidator(encodable)]


def whole_number(value: object) -> object:
    """5.0 as 5; anything else as it is, for a strict integer to accept or refuse."""
    # JSON Schema's "integer" is a number with no fractional part, so 5.0 is one: take it as 5.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it: 5 or 5.0, never 5.5, "5" or true.
WholeNumber = Annotated[StrictInt, BeforeValidator(whole_number)]


# The served schema carries the configured default and maximum (see rag.serve.app); the query
# pipeline applies them.
K_DESCRIPTION = "How many passages; the server's default (`RAG_K`) when left out."


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# "Has a character that is not whitespace", whitespace as Python's str.strip() sees it, spelt
# out: "\S" means other characters in JSON Schema's (ECMA-262) regexes than in Python's ("\x1d"
# is whitespace to one only, "\ufeff" to the other), and the server strips with Python.
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
# Documented, not enforced here: the query pipeline (rag.search.question) rejects a blank or
# too long query with a readable message, and the served schema carries the configured limits
# (see rag.serve.app); the length is counted as sent, as maxLength counts it.
_QUERY_SCHEMA = {"pattern": NOT_BLANK}


class SearchFilters(_Request):
    """Restrict a search."""

    doc_id: Text | None = Field(
        None,
        min_length=1,
        description="Only passages of this document: the `id` of one of `GET /documents` "
        "(the served schema lists them once the index is loaded); another id is a 422.",
    )
    tags: list[Annotated[Text, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list,
        max_length=20,
        description="Only passages of documents tagged with one of these (front matter `tags` "
        "or `keywords`, matched without case); no match is an empty result.",
    )
    source: Text | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Only passages whose source file's path starts with this; no match is an "
        "empty result.",
    )

    def to_filters(self) -> Filters:
        """The library's form of these filters."""
        doc_ids = (self.doc_id,) if self.doc_id is not None else ()
        return Filters(doc_ids, tuple(self.tags), self.source)


class SearchRequest(_Request):
    """A search: the query, how many passages, and optional filters."""

    query: Text = Field(
        description="The question or keywords; not blank, at most `max_query_chars` characters.",
        examples=["What skills does an ML fraud engineer need?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: WholeNumber = Field(None, description=K_DESCRIPTION)  # type: ignore[assignment]
    filters: SearchFilters = Field(default_factory=SearchFilters)

    def question(self) -> Question:
        """The request as the query pipeline takes it."""
        return Question(self.query, k=self.k, filters=self.filters.to_filters())


class AskRequest(_Request):
    """A question to answer from the top passages."""

    query: Text = Field(
        description="The question; not blank, at most `max_query_chars` characters.",
        examples=["How much does a lead data scientist earn?"],
        json_schema_extra=_QUERY_SCHEMA,
    )
    k: WholeNumber = Field(None, description=K_DESCRIPTION)  # type: ignore[assignment]
    filters: SearchFilters = Field(default_factory=SearchFilters)

    def question(self) -> Question:
        """The request as the query pipeline takes it."""
        return Question(self.query, k=self.k, filters=self.filters.to_filters())


class ChatMessage(_Request):
    """One turn of a conversation; a user's turn is a question, so it is not blank and at
    most `max_query_chars` characters long."""

    model_config = ConfigDict(
        # The rule for a user's turn, as JSON Schema says it (the served schema carries the
        # configured limit); the services enforce it.
        json_schema_extra={
            "if": {"properties": {"role": {"const": "user"}}},
            "then": {"properties": {"content": {"pattern": NOT_BLANK}}},
        }
    )

    role: Literal["user", "assistant"]
    content: Text


# At least one message is the user's; JSON Schema cannot single out the last item of an array,
# so the latest user turn is answered and any assistant turns after it are left out.
_MESSAGES_SCHEMA = {"contains": {"properties": {"role": {"const": "user"}}, "required": ["role"]}}


class ChatRequest(_Request):
    """A conversation whose latest user message is to be answered."""

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=100,
        json_schema_extra=_MESSAGES_SCHEMA,
        description="Oldest first, with at least one user message; the latest user message "
        "is answered (assistant turns after it, such as the answer being redone, are left out).",
        examples=[
            [
                {"role": "user", "content": "What does a lead data scientist do?"},
                {"role": "assistant", "content": "A Lead Data Scientist is a senior role..."},
                {"role": "user", "content": "How much do they earn?"},
            ]
        ],
    )
    k: WholeNumber = Field(None, description=K_DESCRIPTION)  # type: ignore[assignment]
    filters: SearchFilters = Field(default_factory=SearchFilters)
    stream: StrictBool = Field(
        False, description="Answer as server-sent events (`text/event-stream`)."
    )

    def question(self) -> Question:
        """The request as the query pipeline takes it."""
        return Question.conversation(self.messages, k=self.k, filters=self.filters.to_filters())


class FeedbackRequest(_Request):
    """A rating of one answered query."""

    query_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="The `query_id` of a /search, /ask or /chat."
    )
    rating: Literal["up", "down"]
    comment: Text | None = Field(
        None, description="At most `max_comment_chars` characters (2000 unless configured)."
    )


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
    page: int | None = Field(None, description="The PDF page the passage starts on.")
    source_start: int | None = Field(
        None, description="Where the passage starts in the source file itself (markdown)."
    )
    source_end: int | None = Field(None, description="Where it ends in the source file.")
    source_url: str | None = Field(
        None,
        description="The web page the passage comes from (a document mirrored by a web source), "
        "with a text fragment that scrolls to the passage, or #page=N for a PDF; null otherwise.",
    )


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


ANSWERED = (
    "false when the documents do not answer the question: `answer` then says so, names the "
    "words they lack and lists what they cover; `results` are the nearest passages, which may "
    "not answer it"
)
NOTE = (
    "a caveat on the answer, e.g. that the guide the question names does not mention what it "
    "asks about, so the answer quotes the closest passages"
)


class AskResponse(BaseModel):
    """An extractive answer; its `[n]` markers cite `results[n-1]`."""

    query: str
    answer: str
    answered: bool = Field(description=ANSWERED)
    note: str | None = Field(None, description=NOTE)
    results: list[SearchHit]
    query_id: str
    took_ms: float


class ChatResponse(BaseModel):
    """The answer to the last message; `query` is what the conversation resolved to."""

    answer: str
    answered: bool = Field(description=ANSWERED)
    note: str | None = Field(None, description=NOTE)
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
    build_id: str | None = Field(
        None,
        description="Which build of the index is served: its manifest's build id (its build "
        "time for an index built before build ids). A rebuild swapped in changes it.",
    )
    loaded_at: str | None = Field(
        None, description="When this server loaded the index (ISO 8601, UTC)."
    )
    reload_error: str | None = Field(
        None,
        description="Why a newer index in the index folder could not be loaded; the index "
        "described here is still served meanwhile.",
    )
    counts: dict[str, int] = Field(default_factory=dict)
    stale: bool | None = None
    stale_sources: list[str] = Field(default_factory=list)


class CollectionOut(BaseModel):
    """A collection the caller may use."""

    name: str
    public: bool
    default: bool = Field(description="Whether the unprefixed routes (/search...) serve it.")
    prefix: str = Field(description="Its routes' prefix: `/c/NAME/search`, `/c/NAME/ask`...")
    ready: bool = Field(description="Whether its index is loaded.")
    documents: int | None = Field(None, description="Its documents, once its index is loaded.")


class CollectionList(BaseModel):
    """The collections the caller may use: the public ones, and those its key reaches."""

    collections: list[CollectionOut]


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


def _errors(*codes: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": text} for code, text in codes}


# What every operation may answer besides its own result.
ERRORS = _errors(
    (400, "Malformed request or JSON, a body that is not UTF-8, or a Host not served"),
    (408, "The request body did not arrive in time"),
    (413, "Request body too large"),
    (422, "Invalid request; `field` names the offending field"),
    (503, "Index not loaded yet"),
)
# And the query and feedback operations: a body that is not JSON, and the rate limit.
QUERY_ERRORS = _errors(
    (415, "The body is not `application/json`"),
    (429, "Too many requests from this client; `Retry-After` says when to try again"),
)
