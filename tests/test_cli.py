"""The `rag` command line: in-process through main(argv), plus real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.cli import main
from rag.evaluation import load_questions
from rag.index import Manifest

# Same paths as conftest's constants; importing conftest depends on whether tests/ is a package.
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
_SHARED_DEV = ROOT.parent / "shared" / "eval" / "dev_questions.jsonl"
DEV_QUESTIONS = (
    _SHARED_DEV if _SHARED_DEV.exists() else ROOT / "tests" / "data" / "dev_questions.jsonl"
)
FRAUD_QUERY = "what skills does an ML fraud engineer need"
CITATION_FIELDS = {
    "doc_id", "title", "section", "section_path", "source", "start", "end", "url", "page",
    "source_start", "source_end", "source_url",
}  # fmt: skip
HEAVY_MODULES = ("torch", "sentence_transformers", "faiss")

pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture
def real_env(monkeypatch: pytest.MonkeyPatch, real_index_dir: Path, real_embedder) -> Path:
    """The CLI pointed at the session's real index (built once by conftest, never rebuilt)."""
    monkeypatch.setenv("RAG_INDEX_DIR", str(real_index_dir))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(CORPUS))
    return real_index_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rag: error: ")
    assert "Traceback" not in err


# --------------------------------------------------------------------------- start-up and usage


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("index", "search", "ask", "eval", "serve", "log", "documents"):
        assert re.search(rf"^\s+{command}\b", out, re.MULTILINE), command


def test_help_imports_no_model_or_vector_library() -> None:
    code = (
        "import sys\n"
        "from rag.cli import main\n"
        "main(['search', '--help'])\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["search"],
        ["search", "x", "-k", "many"],
        ["search", "x", "--mode", "magic"],
        ["eval"],
    ],
    ids=["no-command", "unknown-command", "missing-query", "k-not-int", "bad-mode", "no-file"],
)
def test_usage_errors_are_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_line_error(err)


def test_bad_environment_setting_is_one_line_error_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_K", "lots")
    code, _, err = run(capsys, "search", "data engineer")
    assert code == 2
    assert_one_line_error(err)
    assert "RAG_K" in err


# --------------------------------------------------------------------------- index


def test_index_builds_and_reports_counts(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace
) -> None:
    code, out, err = run(capsys, "index")
    assert code == 0, err
    manifest = Manifest.read(fake_env.index)
    assert manifest.model == "fake-hash-embedder"
    assert manifest.counts["documents"] == 3
    assert f"Indexed 3 documents from 3 source file(s) into {manifest.counts['chunks']}" in out


def test_index_flags_override_environment(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    code, _, err = run(capsys, "index", "--index", str(other), "--model", "fake-b")
    assert code == 0, err
    assert Manifest.read(other).model == "fake-b"
    assert not fake_env.index.exists()


def test_index_if_stale_builds_missing_index(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace
) -> None:
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert "no index" in err
    assert Manifest.read(fake_env.index).counts["documents"] == 3


def test_index_if_stale_skips_fresh_index(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    before = Manifest.read(fake_index.index).built_at
    mtime = (fake_index.index / "manifest.json").stat().st_mtime_ns
    code, out, _ = run(capsys, "index", "--if-stale")
    assert code == 0
    assert "up to date" in out
    assert fake_index.loads == []  # not even the model was loaded
    assert Manifest.read(fake_index.index).built_at == before
    assert (fake_index.index / "manifest.json").stat().st_mtime_ns == mtime


def test_index_rebuilds_after_corpus_change(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    old_sources = Manifest.read(fake_index.index).sources
    guide = fake_index.corpus / "data-engineer.md"
    guide.write_text(
        guide.read_text() + "\n## Certifications\n\nThe Zanzibar certification helps a lot.\n"
    )
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert "data-engineer.md" in err  # says why it rebuilds
    assert fake_index.loads == ["fake-hash-embedder"]
    assert Manifest.read(fake_index.index).sources != old_sources
    code, out, _ = run(capsys, "search", "Zanzibar certification", "--mode", "bm25", "--json")
    assert code == 0
    assert "Zanzibar" in json.loads(out)["results"][0]["text"]


def test_index_if_stale_opens_the_index_it_replaces_once(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.index.freshness
    import rag.index.reuse

    opened: list[Path] = []
    for module in (rag.index.reuse, rag.index.freshness):
        real = module.load_index

        def counting(index_dir, *args, _real=real, **kwargs):
            opened.append(Path(index_dir))
            return _real(index_dir, *args, **kwargs)

        monkeypatch.setattr(module, "load_index", counting)
    guide = fake_index.corpus / "data-engineer.md"
    guide.write_text(guide.read_text() + "\n## Travel\n\nSome travel is expected.\n")
    code, _, err = run(capsys, "index", "--if-stale", "--json")
    assert code == 0, err
    assert len(opened) == 1, opened  # judged fresh or not, then reused by the build
    assert Manifest.read(fake_index.index).extra["changes"]["incremental"] is True


def test_index_if_stale_rebuilds_index_of_other_model(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_MODEL", "fake-b")
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert "fake-hash-embedder" in err  # the library's reason names the old model
    assert Manifest.read(fake_index.index).model == "fake-b"


def test_index_if_stale_rebuilds_when_chunking_changes(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, _, err = run(capsys, "index", "--if-stale", "--max-chars", "300")
    assert code == 0, err
    assert "chunker" in err
    assert Manifest.read(fake_index.index).chunker["max_chars"] == 300


@pytest.mark.parametrize("value", ["5", "99999"])
def test_index_rejects_max_chars_out_of_range(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace, value: str
) -> None:
    code, _, err = run(capsys, "index", "--max-chars", value)
    assert code == 2
    assert_one_line_error(err)
    assert "--max-chars" in err
    assert not fake_env.index.exists()


def test_index_of_missing_corpus_is_one_line_error(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "index", "--corpus", str(tmp_path / "nowhere"))
    assert code == 2
    assert_one_line_error(err)
    assert "does not exist" in err


def test_index_json_reports_whether_it_built(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, out, _ = run(capsys, "index", "--if-stale", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["built"] is False
    assert data["counts"]["documents"] == 3


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("query", ["", "   \n"])
def test_search_rejects_empty_query_with_exit_2(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, query: str
) -> None:
    code, out, err = run(capsys, "search", query)
    assert code == 2
    assert out == ""
    assert_one_line_error(err)
    assert "empty" in err


@pytest.mark.parametrize("k", ["0", "-3", "51"])
def test_search_rejects_k_out_of_range_with_exit_2(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, k: str
) -> None:
    code, out, err = run(capsys, "search", "data pipelines", "-k", k)
    assert code == 2
    assert out == ""
    assert_one_line_error(err)
    assert "from 1 to 50" in err


def test_search_rejects_overlong_query(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, _, err = run(capsys, "search", "data " * 300)
    assert code == 2
    assert "longer than 1000" in err


def test_search_without_index_says_how_to_build_one(
    capsys: pytest.CaptureFixture[str], fake_env: SimpleNamespace
) -> None:
    code, out, err = run(capsys, "search", "data pipelines")
    assert code == 2
    assert out == ""
    assert_one_line_error(err)
    assert f"no index at {fake_env.index}" in err
    assert "rag index" in err


def test_search_refuses_index_of_other_model(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_MODEL", "fake-b")
    code, _, err = run(capsys, "search", "data pipelines")
    assert code == 2
    assert_one_line_error(err)
    assert "'fake-hash-embedder'" in err and "'fake-b'" in err


def test_search_json_has_exactly_query_results_took_ms(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, out, err = run(capsys, "search", "  ETL pipelines with Spark ", "-k", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"query", "results", "took_ms"}
    assert data["query"] == "ETL pipelines with Spark"
    assert 1 <= len(data["results"]) <= 2
    assert [r["rank"] for r in data["results"]] == list(range(1, len(data["results"]) + 1))
    assert data["results"][0]["citation"]["doc_id"] == "data-engineer"
    assert err == ""  # fresh index: no warning


def test_search_doc_filter_keeps_one_document(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, out, _ = run(capsys, "search", "skills", "--doc", "technical-recruiter", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    assert results
    assert {r["citation"]["doc_id"] for r in results} == {"technical-recruiter"}


def test_search_unknown_document_is_exit_2(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, _, err = run(capsys, "search", "skills", "--doc", "astronaut")
    assert code == 2
    assert_one_line_error(err)
    assert "astronaut" in err


def test_search_human_output_shows_citation_and_passage(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, out, _ = run(capsys, "search", "data engineers earn salary", "--mode", "bm25")
    assert code == 0
    first = next(line for line in out.splitlines() if line.startswith("[1] "))
    assert re.match(r"\[1\] Data Engineer > Salary \(data-engineer\.md:\d+-\d+\)", first), first
    assert "$120,000" in out
    assert "{" not in out  # not JSON


def test_search_warns_on_stderr_when_index_is_stale(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    (fake_index.corpus / "recruiter.txt").unlink()
    code, out, err = run(capsys, "search", "data pipelines", "--json")
    assert code == 0
    assert json.loads(out)["results"]  # stdout stays clean JSON
    assert "rag: warning: the index is stale" in err
    assert "recruiter.txt" in err


# --------------------------------------------------------------------------- documents, eval


def test_documents_lists_sections_and_chunks(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, out, _ = run(capsys, "documents", "--json")
    assert code == 0
    docs = {d["id"]: d for d in json.loads(out)["documents"]}
    assert set(docs) == {"data-engineer", "data-analyst", "technical-recruiter"}
    assert docs["data-engineer"]["source"] == "data-engineer.md"
    assert docs["data-engineer"]["sections"] >= 2
    manifest = Manifest.read(fake_index.index)
    assert sum(d["chunks"] for d in docs.values()) == manifest.counts["chunks"]
    code, out, _ = run(capsys, "documents")
    assert code == 0
    assert "technical-recruiter" in out and "3 documents" in out


def test_eval_scores_modes_and_lists_misses(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, tmp_path: Path
) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "etl", "question": "ETL pipelines Spark", "evidence": ["ETL pipelines with Spark"]}\n'
        '{"id": "moon", "question": "lunar mining", "evidence": ["no such sentence anywhere"]}\n'
    )
    code, out, _ = run(capsys, "eval", str(questions), "--modes", "bm25", "-k", "3", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["k"] == 3
    [report] = data["reports"]
    assert report["name"] == "bm25"
    assert report["ranks"] == {"etl": 1, "moon": None}
    assert report["hit_at_1"] == 0.5
    code, out, _ = run(capsys, "eval", str(questions), "--modes", "bm25", "-k", "3")
    assert code == 0
    assert "MRR@3" in out
    assert re.search(r"moon\s+│\s+>3\s+│\s+lunar mining", out), out


def test_eval_rejects_unknown_mode(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace
) -> None:
    code, _, err = run(capsys, "eval", str(DEV_QUESTIONS), "--modes", "dense,magic")
    assert code == 2
    assert_one_line_error(err)
    assert "magic" in err


def test_eval_names_the_bad_line_of_a_question_file(
    capsys: pytest.CaptureFixture[str], fake_index: SimpleNamespace, tmp_path: Path
) -> None:
    questions = tmp_path / "bad.jsonl"
    questions.write_text('{"id": "a", "question": "q", "evidence": ["e"]}\nnot json\n')
    code, _, err = run(capsys, "eval", str(questions))
    assert code == 2
    assert_one_line_error(err)
    assert "bad.jsonl:2" in err


# --------------------------------------------------------------------------- serve, log


def test_serve_passes_settings_host_port_and_workers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    api = types.ModuleType("rag.serve.runner")
    api.run_server = lambda settings, host, port, workers: calls.append(  # type: ignore[attr-defined]
        (settings, host, port, workers)
    )
    monkeypatch.setitem(sys.modules, "rag.serve.runner", api)
    monkeypatch.setenv("RAG_PORT", "8123")
    monkeypatch.setenv("RAG_INDEX_DIR", "/srv/index")

    assert main(["serve"]) == 0
    settings, host, port, workers = calls[-1]
    assert (host, port, workers) == ("127.0.0.1", 8123, 1)
    assert str(settings.index_dir) == "/srv/index"

    assert main(["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "2"]) == 0
    settings, host, port, workers = calls[-1]
    assert (host, port, workers) == ("0.0.0.0", 9000, 2)
    assert settings.port == 9000


def test_serve_rejects_invalid_port_and_workers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = types.ModuleType("rag.serve.runner")
    api.run_server = lambda *a: pytest.fail("must not start")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.serve.runner", api)
    for argv in (["serve", "--port", "70000"], ["serve", "--workers", "0"]):
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert_one_line_error(err)


def test_log_prints_querylog_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    querylog = types.ModuleType("rag.analytics.querylog")
    querylog.summary = lambda data_dir, low_score: {"queries": 3, "data_dir": str(data_dir)}  # type: ignore[attr-defined]
    querylog.format_summary = lambda d: f"{d['queries']} queries logged"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.analytics.querylog", querylog)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "env-data"))

    code, out, _ = run(capsys, "log", "--json")
    assert code == 0
    assert json.loads(out) == {"queries": 3, "data_dir": str(tmp_path / "env-data")}
    code, out, _ = run(capsys, "log", "--data", str(tmp_path / "flag-data"))
    assert code == 0
    assert out.strip() == "3 queries logged"


def test_log_low_score_sets_the_threshold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rag.analytics.querylog import QueryLog, QueryRecord

    qlog = QueryLog(tmp_path)
    for i, top in enumerate((1.0, 3.0, 5.0)):
        qlog.record(
            QueryRecord(
                query_id=f"q{i}",
                endpoint="search",
                query=f"query {i}",
                chunk_ids=["c"],
                scores=[top],
                latency_ms=1.0,
            )
        )
    qlog.close()

    code, out, err = run(capsys, "log", "--data", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out)["low_score"]["threshold"] == 2.5
    assert json.loads(out)["low_score"]["count"] == 1
    code, out, err = run(capsys, "log", "--data", str(tmp_path), "--json", "--low-score", "4")
    assert code == 0, err
    low = json.loads(out)["low_score"]
    assert (low["threshold"], low["count"]) == (4.0, 2)
    assert [x["query"] for x in low["examples"]] == ["query 0", "query 1"]
    code, out, err = run(capsys, "log", "--data", str(tmp_path), "--low-score", "0")
    assert code == 0, err
    assert "low-score queries (top score < 0.0): 0" in out


@pytest.mark.parametrize("value", ["-0.5", "abc", "nan", "inf", ""])
def test_log_low_score_must_be_a_number_at_least_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
) -> None:
    code, out, err = run(capsys, "log", "--data", str(tmp_path), f"--low-score={value}")
    assert code == 2 and out == ""
    assert_one_line_error(err)
    assert "--low-score" in err and "number >= 0" in err


def test_cli_low_score_default_matches_the_library() -> None:
    from rag import cli
    from rag.analytics import querylog

    assert cli.LOW_SCORE == querylog.LOW_SCORE


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_search_json_returns_fraud_guide_first(
    capsys: pytest.CaptureFixture[str], real_env: Path
) -> None:
    code, out, err = run(capsys, "search", FRAUD_QUERY, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["results"]) == 5  # RAG_K's default
    assert data["results"][0]["citation"]["doc_id"] == "ml-fraud-detection-engineer"
    assert err == ""


@pytest.mark.slow
def test_search_subprocess_cites_fraud_guide_with_every_field(real_env: Path) -> None:
    env = {**os.environ, "RAG_INDEX_DIR": str(real_env), "RAG_CORPUS_DIR": str(CORPUS)}
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "search", FRAUD_QUERY, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results[0]["citation"]["doc_id"] == "ml-fraud-detection-engineer"
    source = (CORPUS / results[0]["citation"]["source"]).read_text(encoding="utf-8")
    for r in results:
        c = r["citation"]
        assert set(c) == CITATION_FIELDS
        # page and the source-file span exist only for PDFs and files with markup.
        # source_url only for pages mirrored from the web (rag.sources).
        optional = {"section_path", "page", "source_start", "source_end", "source_url"}
        assert all(c[f] not in (None, "") for f in CITATION_FIELDS - optional)
        assert c["section_path"][0] == c["title"]
        # Citations point at the exact characters of the source file.
        assert source[c["start"] : c["end"]] == r["text"]


def test_console_script_is_installed_next_to_python() -> None:
    script = Path(sys.executable).parent / "rag"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"rag \d+\.\d+\.\d+\n", proc.stdout)


@pytest.mark.slow
def test_ask_json_answers_with_citations_into_results(
    capsys: pytest.CaptureFixture[str], real_env: Path
) -> None:
    code, out, err = run(capsys, "ask", "What is the salary for a senior ML engineer?", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"query", "answer", "answered", "note", "results", "took_ms"}
    assert data["answered"] is True
    refs = [int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])]
    assert refs, data["answer"]
    assert set(refs) <= {r["rank"] for r in data["results"]}
    assert "$" in data["answer"]


@pytest.mark.slow
def test_ask_human_output_shows_answer_and_its_sources(
    capsys: pytest.CaptureFixture[str], real_env: Path
) -> None:
    code, out, _ = run(capsys, "ask", FRAUD_QUERY, "-k", "3")
    assert code == 0
    assert "Answer" in out and "Sources" in out
    assert re.search(r"^\[\d\] ML Fraud Detection Engineer.*\(.+\.txt:\d+-\d+\)", out, re.MULTILINE)


@pytest.mark.slow
def test_ask_says_plainly_when_the_guides_do_not_cover_a_question(
    capsys: pytest.CaptureFixture[str], real_env: Path
) -> None:
    code, out, err = run(capsys, "ask", "What skills does a plumber need?", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["answered"] is False
    assert data["answer"].startswith("The documents don't answer this question.")
    assert "“plumber”" in data["answer"] and "They cover: " in data["answer"]
    assert "[1]" not in data["answer"] and data["results"]
    code, out, _ = run(capsys, "ask", "How do I make a sourdough starter?")
    assert code == 0
    assert "Not covered" in out and "Nearest passages (they may not answer it)" in out


@pytest.mark.slow
def test_eval_reports_all_modes(capsys: pytest.CaptureFixture[str], real_env: Path) -> None:
    code, out, err = run(capsys, "eval", str(DEV_QUESTIONS), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["k"] == 10
    reports = {r["name"]: r for r in data["reports"]}
    assert list(reports) == ["dense", "sentence", "bm25", "hybrid"]
    ids = {q.id for q in load_questions(DEV_QUESTIONS)}
    for r in reports.values():
        assert r["n"] == len(ids)
        assert set(r["ranks"]) == ids
        assert 0.0 <= r["hit_at_1"] <= r["hit_at_3"] <= r["hit_at_5"] <= 1.0
    # Far above chance: a broken mode wiring (say, every mode running BM25) would not get here.
    assert reports["hybrid"]["hit_at_5"] >= 0.8
    assert len({round(r["mrr_at_10"], 6) for r in reports.values()}) == 4
    code, out, _ = run(capsys, "eval", str(DEV_QUESTIONS))
    assert code == 0
    for label in ("hit@1", "hit@3", "hit@5", "MRR@10", "nDCG@10", "dense", "bm25", "hybrid"):
        assert label in out


@pytest.mark.slow
def test_eval_scores_several_sets_and_plots_a_chart(
    capsys: pytest.CaptureFixture[str], real_env: Path, tmp_path: Path
) -> None:
    conversations = ROOT / "tests" / "data" / "conversations.jsonl"
    chart = tmp_path / "eval.png"
    argv = ["eval", str(DEV_QUESTIONS), str(conversations), "--modes", "hybrid", "--json"]
    code, out, err = run(capsys, *argv, "--plot", str(chart))
    assert code == 0, err
    data = json.loads(out)
    assert [s["path"] for s in data["sets"]] == [str(DEV_QUESTIONS), str(conversations)]
    assert data["sets"][1]["reports"][0]["n"] == len(load_questions(conversations))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_modes_match_the_library() -> None:
    from rag import cli
    from rag.search import types

    assert set(cli.MODES) == set(types.MODES) == set(cli.MODES_FOR_EVAL)


def test_eval_plot_must_be_png(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "eval", str(DEV_QUESTIONS), "--plot", "chart.svg")
    assert code == 2 and "png" in err


@pytest.mark.slow
def test_index_if_stale_adds_the_onnx_export_to_an_older_index(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_corpus: Path,
    real_embedder,
) -> None:
    from rag.index import build_index

    index = tmp_path / "index"
    build_index(small_corpus, index, real_embedder, onnx=False)
    monkeypatch.setenv("RAG_INDEX_DIR", str(index))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(small_corpus))
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert "onnx" in Manifest.read(index).extra
    monkeypatch.setenv("RAG_QUERY_BACKEND", "torch")
    build_index(small_corpus, index, real_embedder, onnx=False)
    code, out, _ = run(capsys, "index", "--if-stale")
    assert code == 0 and "up to date" in out


@pytest.mark.slow
def test_index_if_stale_follows_the_adaptation_setting(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_corpus: Path,
    real_embedder,
) -> None:
    from rag.index import build_index

    index = tmp_path / "index"
    build_index(small_corpus, index, real_embedder, adapt=False)
    monkeypatch.setenv("RAG_INDEX_DIR", str(index))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(small_corpus))
    # The default does not adapt: an unadapted index is up to date.
    code, out, _ = run(capsys, "index", "--if-stale")
    assert code == 0 and "up to date" in out
    # Asking for adaptation rebuilds it, adapted.
    monkeypatch.setenv("RAG_ADAPT", "true")
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0 and "without adapting the model" in err
    adapted = Manifest.read(index).extra["adapted"]
    assert not adapted.get("reused")
    # A full rebuild of the same corpus reuses the adapted model instead of training again.
    code, _, err = run(capsys, "index")
    assert code == 0, err
    again = Manifest.read(index).extra["adapted"]
    assert again["reused"] is True and again["model_id"] == adapted["model_id"]
    # Turning it off again rebuilds without it.
    monkeypatch.setenv("RAG_ADAPT", "false")
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0 and "RAG_ADAPT is false" in err
    assert "adapted" not in Manifest.read(index).extra
