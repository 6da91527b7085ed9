"""The query pipeline every front-end calls: check → resolve → search → answer → log.

The HTTP routes (/search, /ask, /chat and its stream), the OpenAI-compatible API, MCP and the
CLI only turn their input into a ``Question``, call a ``Pipeline`` and format the ``Reply``.
So a limit, a default or a rule that every front-end must respect is written once, here (the
checks themselves are in rag.search.question).

How the steps run is the caller's choice: the server encodes through its micro-batcher and
runs the rest in worker threads (``encode`` and ``offload``); the CLI runs them in line.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

import numpy as np

from rag.search.answer import Answer
from rag.search.chat import resolve_query
from rag.search.question import Limits, Question, check
from rag.search.retriever import Retriever
from rag.search.types import Hit, SearchResult

T = TypeVar("T")
# Runs a blocking step: in a worker thread (the server), or in line (the CLI).
Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
# Encodes one query: through the server's micro-batcher, or the embedder itself.
Encode = Callable[[str], Awaitable[np.ndarray]]

# A piece of a streamed answer ends after a citation marker and the space after it; the rest is
# one last piece.
_PIECE_RE = re.compile(r".*?\[\d+\]\s*|.+", re.S)


def answer_pieces(text: str) -> list[str]:
    """The answer's text in the pieces a stream sends (they concatenate to it)."""
    return _PIECE_RE.findall(text)


def new_query_id() -> str:
    """A fresh query id."""
    return uuid.uuid4().hex


@dataclass
class Reply:
    """One question's way through the pipeline: what was searched, found and answered."""

    question: Question
    # The query searched: the question stripped, or the conversation resolved.
    query: str
    result: SearchResult
    endpoint: str
    started: float
    query_id: str = field(default_factory=new_query_id)
    answer: Answer | None = None
    logged: bool = False

    @property
    def hits(self) -> list[Hit]:
        return self.result.hits

    @property
    def took_ms(self) -> float:
        """Milliseconds since the pipeline took the question."""
        return round((time.perf_counter() - self.started) * 1000, 3)


# What a stream yields: the reply's sources, the answer's pieces, then the whole answer (or the
# exception that kept it from being built).
Event = tuple[Literal["sources", "piece", "done", "error"], Any]


async def _inline(step: Callable[[], T]) -> T:
    return step()


class Pipeline:
    """Answers questions from one retriever, for every front-end."""

    def __init__(
        self,
        retriever: Retriever,
        limits: Limits | None = None,
        *,
        encode: Encode | None = None,
        offload: Offload | None = None,
        log: Callable[[Reply], None] | None = None,
    ) -> None:
        self.retriever = retriever
        self.limits = limits or Limits()
        self._offload = offload or _inline
        self._encoder = encode
        self._log = log

    async def _encode(self, query: str) -> np.ndarray:
        if self._encoder is not None:
            return await self._encoder(query)
        vectors = await self._offload(partial(self.retriever.encode, [query]))
        return vectors[0]

    def check(self, question: Question) -> Question:
        """The question checked against the limits, its k defaulted; raises BadQuery."""
        return check(question, self.limits)

    def resolve(self, question: Question) -> str:
        """The standalone query: the question's text, or its conversation resolved so that a
        follow-up ("And at Google?") stands alone (rag.search.chat)."""
        if question.text is not None:
            return question.text
        return resolve_query(
            question.turns, self.retriever.titles(), max_chars=self.limits.max_query_chars
        )

    async def retrieve(self, question: Question, endpoint: str) -> Reply:
        """Check, resolve and search; a bad question raises BadQuery before anything is done.

        Resolution is pure Python over every turn of a conversation of up to the body limit:
        it is offloaded with the search, so it never holds the server's event loop.
        """
        started = time.perf_counter()
        question = self.check(question)
        query = await self._offload(partial(self.resolve, question))
        vector = await self._encode(query) if question.mode != "bm25" else None
        assert question.k is not None  # check() defaulted it
        search = partial(
            self.retriever.search_vector, query, vector, question.k,
            mode=question.mode, filters=question.filters,
        )  # fmt: skip
        result = await self._offload(search)
        return Reply(question, query, result, endpoint, started)

    async def answer(self, reply: Reply) -> Answer:
        """The reply's extractive answer (or the refusal), built once."""
        if reply.answer is None:
            reply.answer = await self._offload(partial(self.retriever.answer, reply.result))
        return reply.answer

    def log(self, reply: Reply) -> None:
        """Log the reply once (with its answer, if one was built)."""
        if self._log is not None and not reply.logged:
            reply.logged = True
            self._log(reply)

    async def search(self, question: Question, endpoint: str = "search") -> Reply:
        """Ranked passages, logged."""
        reply = await self.retrieve(question, endpoint)
        self.log(reply)
        return reply

    async def ask(self, question: Question, endpoint: str = "ask") -> Reply:
        """Ranked passages and their answer, logged."""
        reply = await self.retrieve(question, endpoint)
        try:
            await self.answer(reply)
        finally:
            self.log(reply)
        return reply

    async def stream(self, reply: Reply) -> AsyncIterator[Event]:
        """A retrieved reply as it is sent: ("sources", reply) first, ("piece", text) for each
        piece of the answer, then ("done", answer); ("error", exception) instead when the
        answer cannot be built. The reply is logged when the stream ends, however it ends (a
        client gone away included): close it with ``contextlib.aclosing``."""
        try:
            yield "sources", reply
            try:
                answer = await self.answer(reply)
            except Exception as exc:
                yield "error", exc
                return
            for piece in answer_pieces(answer.text):
                yield "piece", piece
            yield "done", answer
        finally:
            self.log(reply)

    # ------------------------------------------------------------------ in line, for the CLI

    def search_now(self, question: Question, endpoint: str = "cli") -> Reply:
        """``search``, run to completion here (steps in line: see ``_complete``)."""
        return self._complete(self.search(question, endpoint))

    def ask_now(self, question: Question, endpoint: str = "cli") -> Reply:
        """``ask``, run to completion here (steps in line: see ``_complete``)."""
        return self._complete(self.ask(question, endpoint))

    def _complete(self, steps: Coroutine[Any, Any, T]) -> T:
        """Drive a pipeline coroutine whose steps all run in line, with no event loop: so the
        library's blocking calls work anywhere, a notebook's running loop included. A
        pipeline given its own ``encode`` or ``offload`` must be awaited instead."""
        if self._encoder is not None or self._offload is not _inline:
            steps.close()
            raise RuntimeError("a pipeline with its own encode or offload must be awaited")
        try:
            steps.send(None)
        except StopIteration as done:
            return done.value
        steps.close()
        raise RuntimeError("a step of the pipeline waited on something: await it instead")
