"""Routes: the OpenAI-compatible API, ``GET /v1/models[/{id}]`` and ``POST /v1/chat/completions``.

OpenAI's clients and chat front-ends (Open WebUI and the like) use this server as any
OpenAI-compatible provider at the base URL ``http://HOST:PORT/v1``. The index is listed as the
one model there is (the ``openai_model`` setting), and a request naming any model is answered
with it: there is no other to choose, and a client set up with another name still works.

A completion is /chat's extractive answer for the conversation: its content is the answer with
its ``[n]`` markers, the answer's note if it has one, then the passages it cites::

    First sentence. [1] Second sentence. [2]

    Sources:
    [1] Title > Section: https://host/view/doc?start=10&end=20#passage
    [2] ...

(headed "Nearest passages (they may not answer it):" and listing every passage when the
documents do not answer the question). The structured answer is in extra fields: ``sources``
(/chat's ``results``), ``answered``, ``note``, ``query``, ``query_id``. With ``"stream": true``
the content comes as ``data:`` lines of ``chat.completion.chunk``: the role, the answer's pieces
(as /chat streams them), the rest (note and sources) as one piece, a chunk with
``finish_reason: "stop"`` carrying the extra fields, the usage when ``stream_options`` asks for
it, then ``data: [DONE]``. ``usage`` counts whitespace-separated words, not a model's tokens.
Errors are in OpenAI's shape (rag.serve.errors).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from rag.collections import Collection
from rag.search.answer import Answer
from rag.search.qa import Reply
from rag.search.question import Question
from rag.serve.deps import ModelReady, Server, model_id
from rag.serve.errors import error_response
from rag.serve.openai_schemas import (
    NEAREST_HEADING,
    NOTE_PREFIX,
    OPENAI_ERRORS,
    SOURCES_HEADING,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    OpenAIErrorResponse,
)
from rag.serve.services import Services, Session
from rag.serve.state import ServerState

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", responses=OPENAI_ERRORS, tags=["openai"])

OWNER = "career-rag"

_COMPLETIONS_DESCRIPTION = """OpenAI's chat completions: the latest user message is answered
with the extractive answer /chat gives (follow-ups resolved the same way; system messages and
fields such as `temperature` or `tools` are ignored). The content is the answer with its `[n]`
markers, then a `Sources:` list of the passages cited, with links. `sources`, `answered`,
`note`, `query` and `query_id` are this server's own fields.

With `"stream": true`: `text/event-stream` of `data: {chat.completion.chunk}` lines, the role
first, then the content piece by piece, a chunk with `finish_reason: "stop"` (and the extra
fields), a usage chunk if `stream_options.include_usage`, then `data: [DONE]`."""

_SSE_EXAMPLE = (
    'data: {"id": "chatcmpl-...", "object": "chat.completion.chunk", "choices": [{"index": 0, '
    '"delta": {"role": "assistant"}, "finish_reason": null}], ...}\n\n'
    'data: {..., "choices": [{"index": 0, "delta": {"content": "First sentence. [1] "}, '
    '"finish_reason": null}]}\n\n'
    'data: {..., "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], '
    '"answered": true, ...}\n\n'
    "data: [DONE]\n\n"
)
_SSE_DATA = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "description": "A chunk as JSON, or `[DONE]`."}},
}
# Proxies must pass each chunk on as it comes rather than buffer the stream.
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models", response_model=ModelList)
async def models(request: Request, state: Server) -> dict[str, Any]:
    """The collections the caller may use, each as a model; `created` is when its index was
    built (0 while it is not loaded)."""
    caller = await state.access.caller(request)
    cards = [
        model_card(state, collection, svc)
        for collection, svc in state.collections()
        if caller.may_use(collection)
    ]
    return {"object": "list", "data": cards}


@router.get(
    "/models/{model:path}",
    response_model=ModelCard,
    responses={404: {"model": OpenAIErrorResponse, "description": "No such model"}},
)
async def model(model: str, request: Request, state: Server) -> Any:
    """One model by its id (the ``openai`` client's ``models.retrieve``); an unknown id is 404."""
    catalog = state.catalog
    collection = catalog.collections.get(model) if catalog.configured else None
    if model == state.settings.openai_model and catalog.default is not None:
        collection = catalog.get(None)
    if collection is None:
        detail = f"The model '{model}' does not exist: GET /v1/models lists the models"
        return error_response(404, detail, "model", kind="model_not_found")
    await state.access.authorise(request, collection)
    return model_card(state, collection, state.services[collection.name])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    description=_COMPLETIONS_DESCRIPTION,
    responses={
        200: {
            "description": "The answer, as JSON or (with `stream`) as server-sent events.",
            "content": {"text/event-stream": {"schema": _SSE_DATA, "example": _SSE_EXAMPLE}},
        }
    },
)
async def chat_completions(
    body: ChatCompletionRequest, svc: ModelReady, request: Request, state: Server
) -> Any:
    """Answer the latest user message of a conversation, as OpenAI's chat completions do."""
    # Stripping earlier answers and counting words grow with the body: not on the event loop.
    turns, words = await anyio.to_thread.run_sync(body.digest)
    question = Question.conversation(turns)
    base_url = _base_url(svc, request) + svc.prefix
    name = model_id(state, state.catalog.get(svc.svc.name))
    if body.stream:
        reply = await svc.pipeline.retrieve(question, "openai")
        # The session (and its index) is held until the stream's last chunk has been sent.
        completion = Completion(svc, reply, svc.results(reply.hits, base_url), words, name)
        stream = completion.chunks(bool(body.stream_options and body.stream_options.include_usage))
        return StreamingResponse(stream, media_type="text/event-stream", headers=_STREAM_HEADERS)
    reply = await svc.pipeline.ask(question, "openai")
    return Completion(svc, reply, svc.results(reply.hits, base_url), words, name).whole()


def model_card(state: ServerState, collection: Collection, svc: Services) -> dict[str, Any]:
    """A collection as an OpenAI model."""
    current = svc.current
    created = _unix_time(current.manifest.built_at) if current is not None else 0
    return {"id": model_id(state, collection), "object": "model", "created": created,
            "owned_by": OWNER}  # fmt: skip


def _unix_time(iso: str) -> int:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return 0
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _base_url(svc: Session, request: Request) -> str:
    # Links in a chat front-end open in a browser elsewhere: absolute, from the public URL or
    # else the address this request came to (its Host is one HostGuard allows).
    return svc.svc.base_url or str(request.base_url).rstrip("/")


@dataclass
class Completion:
    """One reply of the pipeline in OpenAI's shapes."""

    svc: Session
    reply: Reply
    results: list[dict[str, Any]]
    prompt_words: int
    # The model id answered with: the one asked for, or the server's own when none was.
    model: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.reply.query_id}"

    def whole(self) -> dict[str, Any]:
        """The answered reply as a ``chat.completion``."""
        answer = self.reply.answer
        assert answer is not None
        content = answer.text + appendix(answer, self.results)
        message = {"role": "assistant", "content": content}
        return {**self._head("chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                             "logprobs": None}],
                "usage": self._usage(content), **self._extra(answer)}  # fmt: skip

    async def chunks(self, include_usage: bool) -> AsyncIterator[str]:
        """The answer as ``chat.completion.chunk`` lines, then ``[DONE]``."""
        usage: dict[str, Any] = {"usage": None} if include_usage else {}
        # Closed however the stream ends, so the reply is logged even when the client left.
        async with aclosing(self.svc.pipeline.stream(self.reply)) as events:
            async for kind, data in events:
                if kind == "sources":
                    yield self._chunk({"role": "assistant"}, **usage)
                elif kind == "piece":
                    yield self._chunk({"content": data}, **usage)
                elif kind == "done":
                    async for line in self._ending(data, usage, include_usage):
                        yield line
                else:
                    log.error("completion stream %s: could not build the answer",
                              self.reply.query_id, exc_info=data)  # fmt: skip
                    error = {"message": "could not build the answer", "type": "server_error",
                             "param": None, "code": None}  # fmt: skip
                    yield _data({"error": error})

    async def _ending(
        self, answer: Answer, usage: dict[str, Any], include_usage: bool
    ) -> AsyncIterator[str]:
        """The note and sources as one piece, the stop chunk, the usage, ``[DONE]``."""
        rest = appendix(answer, self.results)
        if rest:
            yield self._chunk({"content": rest}, **usage)
        yield self._chunk({}, "stop", **usage, **self._extra(answer))
        if include_usage:
            content = answer.text + rest
            yield _data({**self._head("chat.completion.chunk"), "choices": [],
                         "usage": self._usage(content)})  # fmt: skip
        yield "data: [DONE]\n\n"

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created,
                "model": self.model}  # fmt: skip

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _data({**self._head("chat.completion.chunk"), "choices": [choice], **extra})

    def _extra(self, answer: Answer) -> dict[str, Any]:
        return {"sources": self.results, "answered": answer.answered, "note": answer.note,
                "query": self.reply.query, "query_id": self.reply.query_id}  # fmt: skip

    def _usage(self, content: str) -> dict[str, int]:
        # Whitespace-separated words stand in for tokens: there is no generating model to count.
        completion = len(content.split())
        return {"prompt_tokens": self.prompt_words, "completion_tokens": completion,
                "total_tokens": self.prompt_words + completion}  # fmt: skip


def appendix(answer: Answer, results: Sequence[dict[str, Any]]) -> str:
    """What follows the answer's text: its note, then the passages it cites (every passage,
    headed as only the nearest, when the documents do not answer)."""
    cited = sorted({s.ref for s in answer.sentences if 1 <= s.ref <= len(results)})
    numbers = cited if answer.answered and cited else range(1, len(results) + 1)
    heading = SOURCES_HEADING if answer.answered else NEAREST_HEADING
    lines = [f"[{n}] {source_line(results[n - 1]['citation'])}" for n in numbers]
    parts = [NOTE_PREFIX + answer.note] if answer.note else []
    if lines:
        parts.append("\n".join([heading, *lines]))
    return "".join("\n\n" + part for part in parts)


def source_line(citation: dict[str, Any]) -> str:
    """``Title > Section: URL``."""
    path = list(citation["section_path"])
    if not path or path[0] != citation["title"]:
        path.insert(0, citation["title"])
    return f"{' > '.join(path)}: {citation['url']}"


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
