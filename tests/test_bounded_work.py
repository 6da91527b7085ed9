"""Bounded work per request: chat resolution, answer building and every regex they use grow
linearly with their input, and never raise, on pathological text; so do a /v1 completion and an
/mcp message, whole, with bodies up to the largest the docs suggest allowing.

Growth is measured as CPU time of this thread (``time.thread_time``), not wall time: it does not
count the time other processes hold the cores, so a busy machine does not fail the test (a
request sent through the app is measured in every thread of this process, ``time.process_time``,
as the app answers it in threads of its own). The
bound is generous: 16 times the input may cost at most 48 times the time (linear work costs about
16 times; quadratic 256, cubic 4,096). Each step of 4 is checked on the way, so a cubic pattern
fails within seconds instead of running for hours at the largest size.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.config import Settings
from rag.index import build_index, load_index
from rag.ingest import sentences as sentences_module
from rag.ingest.chunking import Chunk
from rag.search import answer as answer_module
from rag.search import chat as chat_module
from rag.search import subjects as subjects_module
from rag.search.answer import build_answer
from rag.search.chat import listed_items, resolve_query
from rag.search.retriever import Retriever
from rag.search.types import Hit
from rag.serve.app import create_app
from rag.serve.openai_schemas import ChatCompletionRequest
from tests.conftest import FakeEmbedder

# Each test times its function on inputs up to 16 times larger, three tries each: together a
# minute or more of CPU, too much for the unit tier (`make test-fast`); `make test` runs them.
pytestmark = pytest.mark.slow

# Pieces that make regular expressions backtrack: whitespace of several kinds, separators
# the list splitter and the joiners look for, words the references and lead-ins look for,
# digits and their separators, markup, and text outside ASCII.
PIECES = [
    " ", "  ", "\t", "\n", "\u00a0", "\u2003", ",", ", ", " ,", ";", "; ", " and ", " or ",
    "and", ", and ", ":", ": ", ".", ". ", "?", "!", "-", "- ", "•", "*", "#", "# ", "[1]",
    "[", "1", "1.", "1,", "$", "%", "the ", "the first one", "it ", "they ", "this ", "such ",
    "a ", "an ", "are ", "includes ", "such as ", "Meta", "Google ", "A", "B ", "Aa", "é",
    "数据", "’s", "'", "x", "engineer ", "data scientist ", "\u202e", "\u200b",
]  # fmt: skip
motifs = st.lists(st.sampled_from(PIECES), min_size=1, max_size=5).map("".join) | st.text(
    min_size=1, max_size=4
)

BASE_CHARS = 256
STEPS = (1, 4, 16)
STEP_BOUND = 12  # a step of 4 costs about 4 when linear, 16 when quadratic
TOTAL_BOUND = 48
MIN_CPU = 0.001  # repeat a call until the smallest input takes this long, for a stable figure


def repeat_to(motif: str, chars: int) -> str:
    return motif * max(1, chars // len(motif))


def cpu(
    fn: Callable[[str], object], text: str, reps: int, clock: Callable[[], float] = time.thread_time
) -> float:
    """The least CPU time of this thread (or of ``clock``), over three tries, for ``reps`` calls
    of ``fn(text)``."""
    best = float("inf")
    # A full garbage collection costs as much as all live objects, whatever the input: one
    # landing in the large input's try looked like super-linear growth.
    gc.disable()
    try:
        for _ in range(3):
            t0 = clock()
            for _ in range(reps):
                fn(text)
            best = min(best, clock() - t0)
    finally:
        gc.enable()
    return best


def assert_linear(
    fn: Callable[[str], object],
    make: Callable[[int], str],
    base: int = BASE_CHARS,
    clock: Callable[[], float] = time.thread_time,
) -> None:
    """``fn`` over ``make(n)`` costs no more than linearly more as ``n`` grows 16-fold from
    ``base``."""
    small = make(base)
    reps = 1
    while cpu(fn, small, reps, clock) < MIN_CPU and reps < 4096:
        reps *= 2
    times = [cpu(fn, small, reps, clock)]
    for factor in STEPS[1:]:
        times.append(cpu(fn, make(base * factor), reps, clock))
        assert times[-1] <= STEP_BOUND * times[-2] + 0.002, (factor, times)
    assert times[-1] <= TOTAL_BOUND * times[0] + 0.002, times


TITLES = ("Data Engineer", "Lead Data Scientist", "ML Fraud Detection Engineer", "Recruiter")


def chat(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]


# Where a long text can stand in a conversation: the answer an ordinal points into, an earlier
# question, and the question itself (max_chars=None: no cap hides what the rules cost).
SHAPES: dict[str, Callable[[str], list[dict[str, str]]]] = {
    "assistant": lambda text: chat(
        "What are the key skills of a data engineer?",
        "a" + text + "b",
        "tell me more about the first one",
    ),
    "earlier question": lambda text: chat("What " + text + "?", "Sure.", "How much do they earn?"),
    "question": lambda text: chat("What does a data engineer do?", "Pipelines.", "And " + text),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(motif=motifs)
def test_chat_resolution_is_linear_and_never_raises(shape: str, motif: str) -> None:
    conversation = SHAPES[shape]

    def resolve(text: str) -> str:
        return resolve_query(conversation(text), TITLES)

    assert_linear(resolve, lambda n: repeat_to(motif, n))
    assert_linear(listed_items, lambda n: repeat_to(motif, n))


def hits_over(text: str) -> list[Hit]:
    chunk = Chunk("d:0", "d", "Data Engineer", ["Data Engineer"], "d.md", 0, len(text), text)
    return [Hit(rank=1, score=1.0, chunk=chunk)]


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(motif=motifs)
def test_answer_building_is_linear_and_never_raises(motif: str) -> None:
    embedder = FakeEmbedder()

    def answer_passage(text: str) -> object:
        # A quantity question, so the amount pattern runs over every sentence.
        return build_answer("How much do data engineers earn?", hits_over(text), embedder)

    def answer_query(text: str) -> object:
        return build_answer(text, hits_over("Data engineers earn $120,000. They build."), embedder)

    assert_linear(answer_passage, lambda n: "Salary " + repeat_to(motif, n) + " $5k.")
    assert_linear(answer_query, lambda n: "how much " + repeat_to(motif, n))


def module_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Every compiled pattern the request path uses: module-level ones and those in tables."""
    out = []
    for module in (chat_module, subjects_module, answer_module, sentences_module):
        for name, value in vars(module).items():
            values = value if isinstance(value, list | tuple) else [value]
            for i, item in enumerate(values):
                item = item[0] if isinstance(item, tuple) and item else item
                if isinstance(item, re.Pattern):
                    label = name if values is not value else f"{name}[{i}]"
                    out.append((f"{module.__name__.rsplit('.', 1)[-1]}.{label}", item))
    return out


# The motifs the old patterns stalled on (whitespace runs, "1,1,1", separators) and a few more.
HARD_MOTIFS = [" ", "\u00a0", ", ", " and ", "1,", "1.", "the ", "it ", "A ", "- ", "[1]", "# "]


@pytest.mark.parametrize(("name", "pattern"), module_patterns(), ids=lambda v: str(v)[:40])
def test_every_pattern_scans_linearly(name: str, pattern: re.Pattern[str]) -> None:
    # finditer tries a match at every position, as search, sub and split do at worst.
    for motif in HARD_MOTIFS:
        assert_linear(
            lambda text: list(pattern.finditer(text)),
            lambda n, motif=motif: "a" + repeat_to(motif, n) + "b",
        )


def test_the_redos_conversation_resolves_at_once() -> None:
    # The body that froze the server for 12.6 s: "a" + 1,500 spaces + "b", then an ordinal.
    t0 = time.thread_time()
    query = resolve_query(SHAPES["assistant"](" " * 1500), max_chars=1000)
    assert time.thread_time() - t0 < 0.5
    # One item is no list: the ordinal points at nothing, and the question keeps its subject.
    assert query == "data engineer first one"
    listed = chat("What skills do data engineers need?", "Python," + " " * 1500 + "SQL and Spark.",
                  "tell me more about the first one")  # fmt: skip
    assert resolve_query(listed) == "tell me more about the Python (data engineer)"


def test_resolution_is_linear_in_the_number_of_turns() -> None:
    # Each follow-up merges with the previous question; cut at the limit, a chain of them
    # does not re-read every earlier turn.
    turn = chat("What do ML engineers earn at Meta?", "A lot.")

    def resolve(text: str) -> str:
        n = len(text) // 16
        messages = turn + chat("And at Google in London with Python?", "More.") * n
        return resolve_query([*messages, {"role": "user", "content": "And at Amazon?"}], TITLES,
                             max_chars=1000)  # fmt: skip

    assert_linear(resolve, lambda n: "x" * n)


# --------------------------------------------------------------------------- /v1 and /mcp

# The largest RAG_MAX_BODY_BYTES the docs suggest (docs/openai.md: the longest conversation, 100
# messages, each answer with its sources 1-2 KB): the bodies below grow 16-fold up to it.
LARGEST_BODY = 256 * 1024
BODY_BASE = LARGEST_BODY // 16
# What the answers of /v1 end with, and pieces of it: the appendix stripping scans for these.
APPENDIX_MOTIFS = ["\n\nNote: ", "\n\nSources:", "\n\nSources:\n[1] a: b", "\n\n",
                   "Note: \n\n", "\n\nNearest passages (they may not answer it):", " "]  # fmt: skip


def completion(motif: str, size: int) -> str:
    """A /v1/chat/completions body of about ``size`` bytes: an earlier answer made of ``motif``."""
    each = len(json.dumps(motif)) - 2
    answer = motif * max(1, size // each)
    messages = chat("What does a data engineer do?", answer, "And what do they earn?")
    return json.dumps({"model": "career-rag", "messages": messages})


@pytest.mark.parametrize("motif", APPENDIX_MOTIFS, ids=repr)
def test_a_completions_text_work_is_linear_up_to_the_largest_body(motif: str) -> None:
    def digest(body: str) -> object:
        # What the request costs before the search: parsing, then stripping and counting words.
        return ChatCompletionRequest.model_validate_json(body).digest()

    assert_linear(digest, lambda n: completion(motif, n), base=BODY_BASE)


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(motif=motifs)
def test_a_completions_text_work_is_linear_on_any_text(motif: str) -> None:
    assert_linear(lambda body: ChatCompletionRequest.model_validate_json(body).digest(),
                  lambda n: completion(motif, n), base=BODY_BASE)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app over a small index, taking bodies up to LARGEST_BODY, with no rate limit."""
    root = tmp_path_factory.mktemp("bounded")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "data-engineer.md").write_text(
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n## Salary\n\nData engineers "
        "earn $120,000.\n",
        encoding="utf-8",
    )
    embedder = FakeEmbedder()
    build_index(corpus, root / "index", embedder)
    settings = Settings(index_dir=root / "index", data_dir=root / "data", rate_limit="off",
                        allowed_hosts=["testserver"], max_body_bytes=LARGEST_BODY + 4096,
                        log_max_rows_per_client_hour=0)  # fmt: skip
    with TestClient(create_app(settings, Retriever(load_index(root / "index"), embedder))) as c:
        yield c


def post_json(client: TestClient, path: str, body: str, headers: dict[str, str]) -> Any:
    response = client.post(path, content=body, headers={"content-type": "application/json",
                                                        **headers})  # fmt: skip
    return response


@pytest.mark.parametrize("motif", ["\n\nNote: ", "\n\nSources:\n[1] a: b", " "], ids=repr)
def test_a_completion_costs_linear_cpu_up_to_the_largest_body(
    served: TestClient, motif: str
) -> None:
    # The whole request through the app, in every thread of this process: the old appendix
    # pattern alone took seconds of event-loop time at 64 KB.
    def ask(body: str) -> None:
        response = post_json(served, "/v1/chat/completions", body, {})
        assert response.status_code == 200, response.text[:300]

    assert_linear(ask, lambda n: completion(motif, n), base=BODY_BASE, clock=time.process_time)


def test_a_completions_text_work_runs_off_the_event_loop(
    served: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loops: list[bool] = []
    digest = ChatCompletionRequest.digest

    def spy(self: ChatCompletionRequest) -> tuple[Any, int]:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:  # no loop runs in this thread: a worker thread
            loops.append(False)
        return digest(self)

    monkeypatch.setattr(ChatCompletionRequest, "digest", spy)
    body = completion("\n\nNote: ", 1024)
    assert post_json(served, "/v1/chat/completions", body, {}).status_code == 200
    assert loops == [False]


MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def tool_call(tool: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})  # fmt: skip


# Where a long text can stand in an MCP message: an argument the tool ignores, ones it refuses
# as too long (query, doc_id), a list sent as a JSON string (the SDK parses it first), and an
# envelope that is no JSON-RPC message.
MCP_CASES: dict[str, tuple[Callable[[str], str], int]] = {
    "ignored argument": (lambda t: tool_call("search", {"query": "pipelines", "x": t}), 200),
    "long query": (lambda t: tool_call("search", {"query": t}), 200),
    "long doc_id": (lambda t: tool_call("read_document", {"doc_id": t}), 200),
    # A quarter of the text: each word gains quotes, escaped, and a comma.
    "tags as a JSON string": (
        lambda t: tool_call(
            "search", {"query": "pipelines", "tags": json.dumps(t[: len(t) // 4].split())}
        ),
        200,
    ),
    "not JSON-RPC": (lambda t: json.dumps({"jsonrpc": "1.0", "id": 1, "method": t}), 400),
}


@pytest.mark.parametrize("case", sorted(MCP_CASES))
def test_an_mcp_message_costs_linear_cpu_up_to_the_largest_body(
    served: TestClient, case: str
) -> None:
    make_body, status = MCP_CASES[case]

    def send(body: str) -> None:
        response = post_json(served, "/mcp", body, MCP_HEADERS)
        assert response.status_code == status, response.text[:300]
        assert len(response.content) < 4096  # nothing of the long text is echoed back

    assert_linear(send, lambda n: make_body(repeat_to("a ", n - 120)), base=BODY_BASE,
                  clock=time.process_time)  # fmt: skip
