"""Request and response bodies of the OpenAI-compatible API (/v1, rag.serve.routes.openai_compat).

Requests are read as OpenAI's clients write them, and leniently: fields this server has no use
for (``temperature``, ``max_tokens``, ``tools``, ``n``, ``user``...) are ignored, a message's
content is a string or a list of text parts, and any ``model`` is answered. Responses are
OpenAI's shapes, with this server's structured answer in extra fields OpenAI's clients ignore.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag

from rag.serve.schemas import NOT_BLANK, ChatMessage, SearchHit, Text

# What the answers this API sends end with; taken off an assistant turn sent back to it, so that
# follow-up resolution reads the answer alone (its source lines would look like a list).
SOURCES_HEADING = "Sources:"
NEAREST_HEADING = "Nearest passages (they may not answer it):"
NOTE_PREFIX = "Note: "
_HEADINGS = tuple(f"\n\n{heading}\n" for heading in (SOURCES_HEADING, NEAREST_HEADING))
_NOTE = "\n\n" + NOTE_PREFIX


def strip_appendix(text: str) -> str:
    """An answer of this API without the note and source list it ends with.

    Everything from the first heading on goes, and from a note before it. Two ``str.find``
    scans keep this linear: the lazy regex it replaces (a note, then ``.*?`` up to a heading)
    restarted at every "Note: " and was quadratic in an assistant turn made of them.
    """
    found = [at for at in (text.find(heading) for heading in _HEADINGS) if at >= 0]
    if not found:
        return text
    end = min(found)
    note = text.find(_NOTE, 0, end)
    return text[: note if note >= 0 else end]


class _Lenient(BaseModel):
    # OpenAI's clients send many fields this server does not use: they are ignored.
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    """A part of a message's content; only text parts are answered."""

    type: Literal["text"]
    text: Text


# A user's turn is a question: its content is there and not blank (the text parts joined), at
# most `max_query_chars` characters (the served schema carries the configured limit for a string;
# for parts the server counts them joined, which JSON Schema cannot say). The services enforce it.
_USER_CONTENT: dict[str, Any] = {
    "if": {"properties": {"role": {"const": "user"}}},
    "then": {
        "required": ["content"],
        "properties": {
            "content": {
                "anyOf": [
                    {"type": "string", "pattern": NOT_BLANK},
                    {
                        "type": "array",
                        "contains": {
                            "required": ["text"],
                            "properties": {"text": {"pattern": NOT_BLANK}},
                        },
                    },
                ]
            }
        },
    },
}


def _content_kind(value: object) -> str | None:
    if isinstance(value, str):
        return "string"
    return "parts" if isinstance(value, list) else None


# A string or a list of text parts; told apart by type, so an error names the one meant.
Content = Annotated[
    Annotated[Text, Tag("string")] | Annotated[list[TextPart], Tag("parts")],
    Discriminator(
        _content_kind,
        custom_error_type="content_type",
        custom_error_message="Input should be a string or a list of text parts",
    ),
]


class CompletionMessage(_Lenient):
    """One message; system (and developer) messages are ignored for retrieval."""

    model_config = ConfigDict(json_schema_extra=_USER_CONTENT)

    role: Literal["system", "developer", "user", "assistant"]
    content: Content | None = Field(
        None, description="A string, or a list of text parts (joined by newlines)."
    )

    @property
    def text(self) -> str:
        """The content as one string."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "\n".join(part.text for part in self.content)

    def turn(self) -> ChatMessage:
        """This message as a turn of /chat's conversation.

        A system message becomes an empty turn, which follow-up resolution skips: the turns keep
        the messages' numbers, so a problem names the message as it was sent. An answer of this
        API sent back loses its note and sources.
        """
        if self.role in ("system", "developer"):
            return ChatMessage(role="assistant", content="")
        if self.role == "assistant":
            return ChatMessage(role="assistant", content=strip_appendix(self.text))
        return ChatMessage(role="user", content=self.text)


class StreamOptions(_Lenient):
    """Options of a streamed answer."""

    include_usage: StrictBool | None = Field(
        None, description="Send a last chunk with `usage` (and no choices) before `[DONE]`."
    )


# At least one message is the user's (see rag.serve.schemas.ChatRequest).
_MESSAGES_SCHEMA = {"contains": {"properties": {"role": {"const": "user"}}, "required": ["role"]}}


class ChatCompletionRequest(_Lenient):
    """OpenAI's chat completion request; fields not described here are ignored."""

    model: str | None = Field(
        None,
        description="Any name is answered, with the one model there is (`GET /v1/models`).",
        examples=["career-rag"],
    )
    messages: list[CompletionMessage] = Field(
        min_length=1,
        max_length=100,
        json_schema_extra=_MESSAGES_SCHEMA,
        description="Oldest first, with at least one user message; the latest user message is "
        "answered, earlier turns resolve its follow-ups as /chat does.",
        examples=[
            [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What does a machine learning engineer do?"},
            ]
        ],
    )
    stream: StrictBool | None = Field(
        False, description="Answer as server-sent `chat.completion.chunk` events."
    )
    stream_options: StreamOptions | None = None

    def turns(self) -> list[ChatMessage]:
        """The conversation as /chat's turns, one per message."""
        return [m.turn() for m in self.messages]

    def digest(self) -> tuple[list[ChatMessage], int]:
        """The turns and the usage's prompt word count: work that grows with the body."""
        return self.turns(), sum(len(m.text.split()) for m in self.messages)


def document_limits(components: dict[str, Any], max_query_chars: int) -> None:
    """Put the configured length limit of a question into the served schema."""
    content = components["CompletionMessage"]["then"]["properties"]["content"]
    content["anyOf"][0]["maxLength"] = max_query_chars


# --------------------------------------------------------------------------- responses


class ModelCard(BaseModel):
    """The index, as a model; `created` is when it was built."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The models there are: one, the index."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class AssistantMessage(BaseModel):
    """The answer, with its `[n]` markers and the sources they cite."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one answer."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    """An approximation: whitespace-separated words, not a model's tokens."""

    prompt_tokens: int = Field(description="Words in every message's content.")
    completion_tokens: int = Field(description="Words in the answer's content.")
    total_tokens: int


class ChatCompletion(BaseModel):
    """OpenAI's chat completion; `sources` and the fields after it are this server's own."""

    id: str = Field(description="`chatcmpl-` and the `query_id`.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    sources: list[SearchHit] = Field(description="The passages, as /chat's `results`.")
    answered: bool = Field(description="false when the documents do not answer the question.")
    note: str | None = None
    query: str = Field(description="What the conversation resolved to.")
    query_id: str = Field(description="For `POST /feedback`.")


class OpenAIError(BaseModel):
    """What went wrong: `param` names the offending field, `code` says what kind of problem."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """Every error of the /v1 API, in OpenAI's shape."""

    error: OpenAIError


def _errors(*codes: tuple[int | str, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": OpenAIErrorResponse, "description": text} for code, text in codes}


# What the /v1 operations may answer besides their own result. The native API's 422 is a 400
# here, as OpenAI's clients expect (they raise BadRequestError for it).
OPENAI_ERRORS = _errors(
    (400, "Malformed or invalid request, JSON or body, or a Host not served; `param` names "
     "the offending field"),
    (408, "The request body did not arrive in time"),
    (413, "Request body too large"),
    (415, "The body is not `application/json`"),
    (429, "Too many requests from this client; `Retry-After` says when to try again"),
    (503, "Index not loaded yet"),
    ("4XX", "Any other client error (an unknown path, a method not allowed)"),
)  # fmt: skip
