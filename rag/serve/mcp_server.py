"""The MCP server: search, ask, list_documents and read_document over the index.

One definition for both transports: ``rag mcp`` over stdio (rag.serve.mcp_stdio) and /mcp on
the HTTP API (rag.serve.mcp_http). The tools read the index through a ``Corpus``: the snapshot
the API serves, taken for each call and given back after it, or the index loaded once for
stdio. Domain errors become tool errors (``isError`` with a readable message, the session goes
on); tool descriptions name the documents served, so an agent knows when to call them.
Arguments are typed as strictly as the HTTP API's (no "5" or true for ``k``), and arguments
that fail validation are a tool error naming each field and its problem, without pydantic's
report (its model names, the input, a URL).

Built with the official MCP SDK's ``MCPServer``. This module has no ``from __future__ import
annotations``: the tools' parameter types carry the configured limits (``max_k``, the query
length), built when the server is, and the SDK reads them from the signatures.
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Annotated, Any, Protocol

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import Tool, ToolAnnotations
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

from rag import __version__
from rag.config import Settings
from rag.errors import BadQuery, DocumentNotFound, RagError
from rag.index.store import DocumentInfo
from rag.search.qa import Pipeline
from rag.search.question import Question
from rag.search.types import Filters, Hit
from rag.serve.errors import public_message
from rag.serve.schemas import SearchHit, encodable, whole_number

# The most characters read_document returns in one call; a longer slice is cut and says so.
MAX_READ_CHARS = 20_000
# Titles named in the tool descriptions; the rest are counted.
TITLES_SHOWN = 8


# The HTTP API's types (rag.serve.schemas.Text, WholeNumber), spelt so that the bounds sit in
# the same Field as strict=True: behind a validator of their own they would reach the schema as
# "ge"/"le" and be reported as a list's "items". JSON Schema's integer: 5.0 is 5, and "5", true
# and 5.5 are refused; a string is a string, with no lone surrogate.
def _text(**bounds: int) -> Any:
    return Annotated[str, Field(strict=True, **bounds), AfterValidator(encodable)]


def _whole(**bounds: int) -> Any:
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(whole_number)]


# The longest document id a tool takes, as /documents/{doc_id} (ids are slugs of 80 or so).
MAX_DOC_ID = 512
INSTRUCTIONS = (
    "Retrieval over a fixed set of career documents (role guides, handbooks, job ladders). "
    "Answers are extractive: every sentence is quoted from a document and cited. Use ask for "
    "a question, search for passages, list_documents and read_document to read a source."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class Reader(Protocol):
    """One tool call's view of the index (rag.serve.services.Session is one)."""

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def documents(self) -> tuple[dict[str, Any], ...]: ...

    def document(self, doc_id: str) -> DocumentInfo: ...

    def results(self, hits: Sequence[Hit]) -> list[dict[str, Any]]: ...


class Corpus(Protocol):
    """Where the tools read the index: ``reader()`` for one call (a ToolError while no index
    is loaded), ``served_documents()`` for the descriptions (empty while none is)."""

    def served_documents(self) -> Sequence[Mapping[str, Any]]: ...

    def reader(self) -> AbstractAsyncContextManager[Reader]: ...


# --------------------------------------------------------------------------- results


class SearchOutput(BaseModel):
    """The passages for a query, best first, each with its citation."""

    query: str
    results: list[SearchHit]


class AskOutput(BaseModel):
    """An extractive answer whose [n] markers cite results[n-1]."""

    question: str
    answer: str
    answered: bool = Field(
        description="False when the documents do not answer the question: the answer says so "
        "and the results are only the nearest passages."
    )
    note: str | None = Field(None, description="What qualifies the answer, if anything.")
    results: list[SearchHit]


class DocumentEntry(BaseModel):
    """One indexed document."""

    id: str
    title: str
    source: str
    sections: int
    chunks: int


class DocumentsOutput(BaseModel):
    """Every indexed document."""

    count: int
    documents: list[DocumentEntry]


class DocumentText(BaseModel):
    """A document's text from ``start`` to ``end``, offsets as citations give them."""

    doc_id: str
    title: str
    source: str
    offset: int = Field(
        description="Where the document's text starts: its text runs from offset to offset + "
        "length, in the offsets citations use (a source file may hold several documents)."
    )
    length: int = Field(description="The whole text's length in characters.")
    start: int
    end: int
    text: str
    truncated: bool = Field(
        description=f"True when the slice asked for was longer than {MAX_READ_CHARS} "
        "characters: text stops at end, and next_start is where to read on."
    )
    next_start: int | None = None


# --------------------------------------------------------------------------- descriptions


def describe_corpus(documents: Sequence[Mapping[str, Any]]) -> str:
    """A phrase naming the documents: their number and first titles."""
    if not documents:
        return "the career documents this server indexes (none is loaded yet)"
    titles = list(dict.fromkeys(str(d.get("title") or d["id"]) for d in documents))
    shown = "; ".join(_clip(t, 60) for t in titles[:TITLES_SHOWN])
    more = f"; and {len(titles) - TITLES_SHOWN} more" if len(titles) > TITLES_SHOWN else ""
    noun = "document" if len(documents) == 1 else "documents"
    return f"{len(documents)} career {noun} ({shown}{more})"


def tool_descriptions(documents: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each tool's description, naming the documents it reads."""
    corpus = describe_corpus(documents)
    return {
        "search": (
            f"Search {corpus} for the passages that best match a query. Each result has the "
            "passage text and its citation: document id, title, section, source file, start "
            "and end (character offsets, which read_document takes) and a viewer URL. Filter "
            "by doc_id (an id from list_documents), tags or a source path prefix."
        ),
        "ask": (
            f"Answer a question from {corpus}. The answer is extractive: sentences quoted from "
            "the documents, each marked [n] citing results[n-1]. answered is false when the "
            "documents do not cover the question; then say so rather than guess."
        ),
        "list_documents": (
            f"List {corpus}: id, title, source file, number of sections and of indexed "
            "passages. The ids work with search's doc_id and with read_document."
        ),
        "read_document": (
            f"Read one of {corpus}: its text, or the slice from start to end (character offsets "
            f"as search and ask cite them), at most {MAX_READ_CHARS} characters per call "
            "(truncated and next_start say when more follows)."
        ),
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class CorpusServer(MCPServer):
    """MCPServer whose tool descriptions name the documents served when tools are listed:
    the API loads its index after start-up and follows rebuilds."""

    def __init__(self, corpus: Corpus, **options: Any) -> None:
        super().__init__(**options)
        self.corpus = corpus

    async def list_tools(self) -> list[Tool]:
        """The tools, described from the documents served now."""
        texts = tool_descriptions(self.corpus.served_documents())
        return [
            t.model_copy(update={"description": texts.get(t.name, t.description)})
            for t in await super().list_tools()
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """The SDK's call; arguments that fail validation are told as ``field: problem``."""
        # The SDK's message is pydantic's report: its model names, the input, a URL.
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            raise ToolError(invalid_arguments(name, cause)) from cause


def invalid_arguments(tool: str, exc: ValidationError) -> str:
    """``Error executing tool search: k: Input should be a valid integer`` (every problem)."""
    problems = [
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    ]
    # The SDK's prefix, as every other tool error has it.
    return f"Error executing tool {tool}: " + "; ".join(problems)


# --------------------------------------------------------------------------- the server


def build_server(corpus: Corpus, settings: Settings) -> CorpusServer:
    """The MCP server over ``corpus``, its limits from ``settings``."""
    # Parameter types carrying the configured limits, read by the SDK for the input schemas.
    Query = Annotated[
        _text(min_length=1, max_length=settings.max_query_chars),
        Field(description="The question or keywords, in plain words."),
    ]
    K = Annotated[_whole(ge=1, le=settings.max_k), Field(description="How many passages.")]
    DocId = Annotated[
        _text(min_length=1, max_length=MAX_DOC_ID) | None,
        Field(description="Only passages of this document (an id from list_documents)."),
    ]
    Tags = Annotated[
        list[_text(min_length=1, max_length=100)] | None,
        Field(max_length=20, description="Only documents tagged with one of these."),
    ]
    Prefix = Annotated[
        _text(max_length=500) | None,
        Field(description="Only documents whose source path starts with this."),
    ]
    Offset = Annotated[
        _whole(ge=0) | None,
        Field(description="A character offset, as citations give them."),
    ]

    server = _quietly(
        lambda: CorpusServer(
            corpus,
            name="career-rag",
            version=__version__,
            instructions=INSTRUCTIONS,
            log_level="WARNING",
        )
    )
    texts = tool_descriptions(corpus.served_documents())

    @server.tool(description=texts["search"], annotations=READ_ONLY)
    async def search(
        query: Query,
        k: K = settings.k,
        doc_id: DocId = None,
        tags: Tags = None,
        source: Prefix = None,
    ) -> SearchOutput:
        """Ranked passages with citations."""
        filters = Filters((doc_id,) if doc_id else (), tuple(tags or ()), source or None)
        async with corpus.reader() as reader:
            with _tool_errors():
                reply = await reader.pipeline.search(Question(query, k=k, filters=filters), "mcp")
            return SearchOutput(query=reply.query, results=reader.results(reply.hits))

    @server.tool(description=texts["ask"], annotations=READ_ONLY)
    async def ask(question: Query) -> AskOutput:
        """An extractive answer with its citations."""
        async with corpus.reader() as reader:
            with _tool_errors():
                reply = await reader.pipeline.ask(Question(question, field="question"), "mcp")
            answer = reply.answer
            assert answer is not None
            return AskOutput(
                question=reply.query,
                answer=answer.text,
                answered=answer.answered,
                note=answer.note,
                results=reader.results(reply.hits),
            )

    @server.tool(description=texts["list_documents"], annotations=READ_ONLY)
    async def list_documents() -> DocumentsOutput:
        """Every indexed document."""
        async with corpus.reader() as reader:
            docs = [
                DocumentEntry(
                    id=d["id"],
                    title=d["title"],
                    source=d["source"],
                    sections=len(d["sections"]),
                    chunks=d["chunks"],
                )
                for d in reader.documents
            ]
        return DocumentsOutput(count=len(docs), documents=docs)

    @server.tool(description=texts["read_document"], annotations=READ_ONLY)
    async def read_document(
        doc_id: Annotated[
            _text(min_length=1, max_length=MAX_DOC_ID),
            Field(description="An id from list_documents."),
        ],
        start: Offset = None,
        end: Offset = None,
    ) -> DocumentText:
        """A document's text, or a slice of it."""
        async with corpus.reader() as reader:
            with _tool_errors():
                doc = await anyio.to_thread.run_sync(reader.document, doc_id)
        return read_slice(doc, start, end)

    return server


def read_slice(doc: DocumentInfo, start: int | None, end: int | None) -> DocumentText:
    """The document's text from ``start`` to ``end`` (offsets as citations give them, so its
    text runs from ``doc.offset``), bounds checked, at most MAX_READ_CHARS of it."""
    first, last = doc.offset, doc.offset + len(doc.text)
    lo = first if start is None else start
    hi = last if end is None else end
    for name, value in (("start", lo), ("end", hi)):
        if not first <= value <= last:
            raise ToolError(
                f"{name} ({value}) is outside document {doc.id!r}, whose text runs from "
                f"{first} to {last}"
            )
    if lo > hi:
        raise ToolError(f"start ({lo}) is after end ({hi})")
    truncated = hi - lo > MAX_READ_CHARS
    stop = lo + MAX_READ_CHARS if truncated else hi
    return DocumentText(
        doc_id=doc.id,
        title=doc.title,
        source=doc.source,
        offset=first,
        length=len(doc.text),
        start=lo,
        end=stop,
        text=doc.text[lo - first : stop - first],
        truncated=truncated,
        next_start=stop if truncated else None,
    )


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Domain errors as tool errors: the agent reads the message, the session goes on."""
    try:
        yield
    except BadQuery as exc:
        message = str(exc)
        if exc.field == "doc_id":
            message += " (list_documents gives the ids)"
        raise ToolError(message) from exc
    except DocumentNotFound as exc:
        raise ToolError(f"{exc} (list_documents gives the ids)") from exc
    except RagError as exc:
        raise ToolError(public_message(exc)) from exc


def _quietly(make: Any) -> Any:
    """Call ``make`` without letting the SDK configure the root logger.

    MCPServer() calls ``logging.basicConfig`` with its own handler, which would change how
    the whole process logs; with a handler in place, basicConfig leaves the root logger be.
    """
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        return make()
    finally:
        root.removeHandler(placeholder)
