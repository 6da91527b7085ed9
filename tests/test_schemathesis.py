"""Property-based API tests: schemathesis generates valid and invalid requests from
/openapi.json, and every one of its checks must pass: no server error, and the schema is exactly
what the server accepts (valid data accepted, invalid data refused, responses as documented).
Run with -s for the counts; the slow test runs the CLI, all phases, against a real uvicorn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from rag.config import Settings
from rag.index import build_index, load_index
from rag.search.retriever import Retriever
from rag.serve.app import create_app
from tests.conftest import FakeEmbedder, write_corpus

CASES: Counter[str] = Counter()
FAILED: Counter[str] = Counter()
GUIDES = {
    "data-engineer.md": "# Data Engineer\n\nA data engineer builds pipelines.\n\n## Salary\n\n"
    "Data engineers earn $120,000 on average.\n",
    "recruiter.txt": "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers.\n",
}


def build_app(root: Path) -> FastAPI:
    """The API over a two-guide corpus indexed with the fake embedder."""
    corpus = write_corpus(root / "corpus", GUIDES)
    embedder = FakeEmbedder()
    build_index(corpus, root / "index", embedder)
    retriever = Retriever(load_index(root / "index"), embedder)
    # Every case comes from one client: no rate limit (tests/test_hardening.py tests it). The
    # in-process cases name the host "testserver"; the real server is on 127.0.0.1.
    app_settings = Settings(
        index_dir=root / "index",
        corpus_dir=corpus,
        data_dir=root / "data",
        rate_limit="off",
        allowed_hosts=["testserver", "127.0.0.1"],
    )
    return create_app(app_settings, retriever)


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return build_app(tmp_path_factory.mktemp("api"))


@pytest.fixture
def api_schema(request: pytest.FixtureRequest, api_app: FastAPI) -> schemathesis.BaseSchema:
    """The app's schema, loaded when the test runs: collecting the tests builds nothing."""
    # schemathesis 4's fixture loader names each operation's subtest through the node's
    # _nodeid attribute, which pytest 9 replaced; give the node one to write to.
    request.node._nodeid = request.node.nodeid
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    lines = [f"  {op}: {n} cases, {FAILED[op]} failed" for op, n in sorted(CASES.items())]
    total, failed = sum(CASES.values()), sum(FAILED.values())
    print(f"\nschemathesis: {total} cases, {failed} failed\n" + "\n".join(lines))


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,  # nothing written to .hypothesis/ in the work tree
    suppress_health_check=list(HealthCheck),
)
def test_api_passes_every_schemathesis_check(case: schemathesis.Case) -> None:
    operation = case.operation.label
    CASES[operation] += 1
    try:
        case.call_and_validate(checks=ALL_CHECKS)
    except BaseException:
        FAILED[operation] += 1
        raise


load_all_checks()
# `--checks all`: not_a_server_error, the conformance checks, positive_data_acceptance,
# negative_data_rejection, missing_required_header, unsupported_method and the rest.
ALL_CHECKS = CHECKS.get_all()


@pytest.mark.slow
def test_schemathesis_cli_with_all_checks_finds_no_issue(tmp_path: Path) -> None:
    """The CLI's four phases (examples, coverage, fuzzing, stateful) against a real uvicorn."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    import uvicorn

    from rag.serve.runner import uvicorn_options

    root = tmp_path / "api"
    root.mkdir()
    app = build_app(root)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = uvicorn_options(Settings(rate_limit="off"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        cli = Path(sys.executable).with_name("schemathesis")
        # Every warning but missing_auth: uploading and deleting documents need a key with
        # upload rights by design (their 401 and 403 are documented), and the run sends none.
        from schemathesis.config._warnings import DEFAULT_DISPLAYED_WARNINGS

        shown = ",".join(w.value for w in DEFAULT_DISPLAYED_WARNINGS if w.value != "missing_auth")
        command = [str(cli), "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
                   "--max-examples", "50", "--max-time", "45", "--seed", "16", "--workers", "1",
                   "--request-timeout", "30", "--warnings", shown]  # fmt: skip
        # From tmp_path: the CLI keeps its reports in .schemathesis/ under the working directory.
        run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    print("\n$ schemathesis " + " ".join(command[1:]) + "\n" + summary)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
