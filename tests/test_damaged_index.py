"""A damaged index is refused with one line that names the bad file and the fix, never a traceback.

Each case copies a small index (built with the fake embedder, plus a tiny ONNX export of a made-up
model so that queries go through onnxruntime as they do on a real index), damages one file, and
runs the commands that read it. One slow test does the same to the real index's ONNX export.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rag.cli import main
from rag.config import Settings
from rag.errors import IndexDamaged
from rag.index import Manifest, build_index, load_index
from rag.models.query import load_query_embedder
from tests.conftest import CORPUS, FakeEmbedder

QUESTION = "what does a data engineer build"
MODEL_ID = FakeEmbedder.model_id
FIX = "rag index --full"
INTERNALS = ("faiss/", ".cpp", "sqlite3.", "Traceback", "onnxruntime", "Errno")


# --------------------------------------------------------------------------- the index to damage


def _write_tiny_onnx(out: Path, dim: int) -> None:
    """An export in the layout rag.models.onnx writes: a one-op graph (token embeddings, which
    the embedder then mean-pools), weights as external data, a word-level tokenizer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    out.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", *"a an data engineer analyst recruiter build what does".split()]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(out / "tokenizer.json"))
    table = np.random.default_rng(0).standard_normal((len(words), dim)).astype(np.float32)
    batch_seq = ["batch", "sequence"]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"])],
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, batch_seq),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, batch_seq),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*batch_seq, dim])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(
        model,
        str(out / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    config = {
        "export_version": 2, "model_id": MODEL_ID, "dim": dim, "max_seq_length": 32,
        "pooling": "mean", "normalize": True, "inputs": ["input_ids", "attention_mask"],
        "weights": "model.onnx.data", "pad_token": "[PAD]", "pad_id": 0, "opset": 17,
    }  # fmt: skip
    (out / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small index whose queries are encoded by its own ONNX export, never written to."""
    root = tmp_path_factory.mktemp("pristine")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "data-engineer.md").write_text(
        "# Data Engineer\n\nA data engineer builds pipelines.\n\n"
        "## Salary\n\nData engineers earn $120,000 on average in the US.\n"
    )
    (corpus / "recruiter.txt").write_text(
        "Technical Recruiter\n\nOverview\n\nA technical recruiter hires engineers.\n"
    )
    (corpus / "analyst.md").write_text("# Data Analyst\n\nAn analyst studies data and reports.\n")
    index = root / "index"
    build_index(corpus, index, FakeEmbedder())
    manifest = Manifest.read(index)
    _write_tiny_onnx(index / "onnx", manifest.dim)
    manifest.extra["onnx"] = {"path": "onnx", "model_id": MODEL_ID}
    manifest.write(index)
    return SimpleNamespace(corpus=corpus, index=index)


# The CLI tests' plain terminal: no colour codes, no RAG_* settings leaking in from the shell.
pytestmark = pytest.mark.usefixtures("plain_terminal")


@pytest.fixture
def env(
    pristine: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    """A fresh copy of the pristine index, with the CLI pointed at it and every model load
    (only a rebuild loads one) answered by the fake embedder."""
    import rag.models.embedder
    import rag.models.query

    def load_embedder(model: str = "", batch_size: int = 64) -> FakeEmbedder:
        embedder = FakeEmbedder()
        embedder.model_id = model
        return embedder

    monkeypatch.setattr(rag.models.embedder, "load_embedder", load_embedder)
    monkeypatch.setattr(rag.models.query, "load_embedder", load_embedder)
    index = tmp_path / "index"
    shutil.copytree(pristine.index, index)
    monkeypatch.setenv("RAG_MODEL", MODEL_ID)
    monkeypatch.setenv("RAG_CORPUS_DIR", str(pristine.corpus))
    monkeypatch.setenv("RAG_INDEX_DIR", str(index))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    return SimpleNamespace(index=index, monkeypatch=monkeypatch)


# --------------------------------------------------------------------------- ways to damage it
# Each replaces the file rather than writing into it, so a hard-linked copy stays intact.


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _truncate(path: Path, fraction: float = 0.5) -> None:
    _replace(path, path.read_bytes()[: int(path.stat().st_size * fraction)])


def _garbage(path: Path) -> None:
    _replace(path, np.random.default_rng(1).bytes(max(path.stat().st_size, 4096)))


def _manifest(env: SimpleNamespace, change: Callable[[dict], object]) -> None:
    path = env.index / "manifest.json"
    data = json.loads(path.read_text())
    data = change(data) or data
    _replace(path, json.dumps(data).encode())


def _unreadable(env: SimpleNamespace, name: str) -> None:
    """What a file of mode 000 does for a user who is not root (root reads it regardless)."""
    target = env.index / name
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file) == target:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    env.monkeypatch.setattr(builtins, "open", refusing_open)
    env.monkeypatch.setattr(io, "open", refusing_open)  # what pathlib opens files with


def _sqlite(env: SimpleNamespace, sql: str) -> None:
    con = sqlite3.connect(env.index / "meta.sqlite")
    con.executescript(sql)
    con.close()


def _sqlite_pages_garbage(env: SimpleNamespace) -> None:
    """Keep the header and the schema page, overwrite every later page."""
    path = env.index / "meta.sqlite"
    data = path.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    _replace(path, data[:page] + np.random.default_rng(2).bytes(len(data) - page))


def _sentence_rows(env: SimpleNamespace, rows: np.ndarray) -> None:
    (env.index / "sentence_rows.npy").unlink()
    np.save(env.index / "sentence_rows.npy", rows)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path)


def _make_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


# (case id, damage, the file the message must name); `documents` needs no model, so only
# `search` and `ask` refuse an index whose ONNX export is damaged.
Damage = Callable[[SimpleNamespace], object]
INDEX_CASES: list[tuple[str, Damage, str]] = [
    ("meta-missing", lambda e: (e.index / "meta.sqlite").unlink(), "meta.sqlite"),
    ("meta-garbage", lambda e: _garbage(e.index / "meta.sqlite"), "meta.sqlite"),
    ("meta-unreadable", lambda e: _unreadable(e, "meta.sqlite"), "meta.sqlite"),
    ("meta-a-directory", lambda e: _make_dir(e.index / "meta.sqlite"), "meta.sqlite"),
    ("meta-truncated", lambda e: _truncate(e.index / "meta.sqlite"), "meta.sqlite"),
    ("meta-empty", lambda e: _truncate(e.index / "meta.sqlite", 0), "meta.sqlite"),
    ("meta-pages-garbage", _sqlite_pages_garbage, "meta.sqlite"),
    ("meta-no-chunks-table", lambda e: _sqlite(e, "DROP TABLE chunks"), "meta.sqlite"),
    ("meta-no-documents-table", lambda e: _sqlite(e, "DROP TABLE documents"), "meta.sqlite"),
    ("meta-chunk-missing", lambda e: _sqlite(e, "DELETE FROM chunks WHERE row = 0"), "meta.sqlite"),
    ("manifest-not-utf8", lambda e: _replace(e.index / "manifest.json", b'{"dim": "\xff"}'),
     "manifest.json"),
    ("manifest-a-list", lambda e: _manifest(e, lambda m: [m]), "manifest.json"),
    ("manifest-lacks-fields", lambda e: _manifest(e, lambda m: [m.pop("dim"), m.pop("counts")]
                                                  and m), "manifest.json"),
    ("manifest-lacks-chunk-count", lambda e: _manifest(e, lambda m: m["counts"].pop("chunks")
                                                       and m), "manifest.json"),
    ("manifest-lacks-format-version", lambda e: _manifest(e, lambda m: m.pop("format_version")
                                                          and m), "manifest.json"),
    ("manifest-wrong-types", lambda e: _manifest(
        e, lambda m: m.update(dim="x", counts={k: str(v) for k, v in m["counts"].items()})),
     "manifest.json"),
    ("manifest-extra-not-object", lambda e: _manifest(e, lambda m: m.update(extra=[])),
     "manifest.json"),
    ("manifest-invalid-json", lambda e: _truncate(e.index / "manifest.json"), "manifest.json"),
    ("manifest-empty", lambda e: _truncate(e.index / "manifest.json", 0), "manifest.json"),
    ("manifest-unreadable", lambda e: _unreadable(e, "manifest.json"), "manifest.json"),
    ("manifest-more-chunks-than-faiss",
     lambda e: _manifest(e, lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1)),
     "vectors.faiss"),
    ("manifest-other-dim", lambda e: _manifest(e, lambda m: m.update(dim=m["dim"] * 2)),
     "vectors.faiss"),
    ("vectors-missing", lambda e: (e.index / "vectors.faiss").unlink(), "vectors.faiss"),
    ("vectors-truncated", lambda e: _truncate(e.index / "vectors.faiss"), "vectors.faiss"),
    ("vectors-garbage", lambda e: _garbage(e.index / "vectors.faiss"), "vectors.faiss"),
    ("vectors-unreadable", lambda e: _unreadable(e, "vectors.faiss"), "vectors.faiss"),
    ("sentences-missing", lambda e: (e.index / "sentences.faiss").unlink(), "sentences.faiss"),
    ("sentences-truncated", lambda e: _truncate(e.index / "sentences.faiss"), "sentences.faiss"),
    ("sentence-rows-missing", lambda e: (e.index / "sentence_rows.npy").unlink(),
     "sentence_rows.npy"),
    ("sentence-rows-truncated", lambda e: _truncate(e.index / "sentence_rows.npy"),
     "sentence_rows.npy"),
    ("sentence-rows-garbage", lambda e: _garbage(e.index / "sentence_rows.npy"),
     "sentence_rows.npy"),
    ("sentence-rows-too-few", lambda e: _sentence_rows(e, np.zeros(3, dtype=np.int64)),
     "sentence_rows.npy"),
    ("bm25-missing", lambda e: _rmtree(e.index / "bm25"), "bm25/"),
    ("bm25-params-truncated", lambda e: _truncate(e.index / "bm25/params.index.json"),
     "bm25/params.index.json"),
    ("bm25-vocab-truncated", lambda e: _truncate(e.index / "bm25/vocab.index.json"),
     "bm25/vocab.index.json"),
    ("bm25-data-truncated", lambda e: _truncate(e.index / "bm25/data.csc.index.npy"),
     "bm25/data.csc.index.npy"),
    ("bm25-indptr-missing", lambda e: (e.index / "bm25/indptr.csc.index.npy").unlink(),
     "bm25/indptr.csc.index.npy"),
]  # fmt: skip
ONNX_CASES: list[tuple[str, Damage, str]] = [
    ("onnx-model-truncated", lambda e: _truncate(e.index / "onnx/model.onnx"), "onnx/model.onnx"),
    ("onnx-model-garbage", lambda e: _garbage(e.index / "onnx/model.onnx"), "onnx/model.onnx"),
    ("onnx-model-missing", lambda e: (e.index / "onnx/model.onnx").unlink(), "onnx/model.onnx"),
    ("onnx-weights-truncated", lambda e: _truncate(e.index / "onnx/model.onnx.data"),
     "onnx/model.onnx.data"),
    ("onnx-tokenizer-truncated", lambda e: _truncate(e.index / "onnx/tokenizer.json"),
     "onnx/tokenizer.json"),
    ("onnx-config-garbage", lambda e: _garbage(e.index / "onnx/config.json"), "onnx/config.json"),
    ("onnx-missing", lambda e: _rmtree(e.index / "onnx"), "onnx/"),
]  # fmt: skip
ALL_CASES = INDEX_CASES + ONNX_CASES
# A rebuild cannot succeed while the test itself keeps refusing to open the file.
REBUILDABLE = [c for c in ALL_CASES if "unreadable" not in c[0]]


def _ids(cases: list[tuple[str, Damage, str]]) -> list[str]:
    return [c[0] for c in cases]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_names_file_and_fix(code: int, err: str, file: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("rag: error: index at "), line
    assert f"is damaged: {file} " in line, line
    assert line.endswith(f"rebuild it with `{FIX}`"), line
    assert "Traceback" not in err
    return line


def assert_public(exc: IndexDamaged, file: str, index_dir: Path) -> None:
    assert exc.file == file
    assert str(index_dir) in str(exc)
    public = exc.public
    assert FIX in public
    assert str(index_dir) not in public
    assert "/" not in public.replace(file, ""), public
    for internal in INTERNALS:
        assert internal not in public, public
    assert "\n" not in str(exc)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(("case", "damage", "file"), ALL_CASES, ids=_ids(ALL_CASES))
def test_search_and_ask_refuse_a_damaged_index_in_one_line(
    capsys: pytest.CaptureFixture[str], env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    for argv in (["search", QUESTION], ["ask", QUESTION], ["search", QUESTION, "--mode", "bm25"]):
        code, out, err = run(capsys, *argv)
        assert_names_file_and_fix(code, err, file)
        assert out == ""


@pytest.mark.parametrize(("case", "damage", "file"), INDEX_CASES, ids=_ids(INDEX_CASES))
def test_documents_refuses_a_damaged_index_in_one_line(
    capsys: pytest.CaptureFixture[str], env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    code, _, err = run(capsys, "documents")
    assert_names_file_and_fix(code, err, file)


@pytest.mark.parametrize(("case", "damage", "file"), ONNX_CASES, ids=_ids(ONNX_CASES))
def test_documents_needs_no_query_model(
    capsys: pytest.CaptureFixture[str], env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    code, out, err = run(capsys, "documents", "--json")
    assert code == 0, err
    assert len(json.loads(out)["documents"]) == 3


def test_the_undamaged_copy_answers(capsys: pytest.CaptureFixture[str], env: SimpleNamespace):
    """The cases above fail because of the damage alone: the same copy, undamaged, works."""
    for argv in (["search", QUESTION], ["ask", QUESTION], ["documents"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert err == ""
    code, out, err = run(capsys, "search", QUESTION, "--json")
    assert json.loads(out)["results"]


@pytest.mark.parametrize(("case", "damage", "file"), REBUILDABLE, ids=_ids(REBUILDABLE))
def test_index_if_stale_rebuilds_a_damaged_index(
    capsys: pytest.CaptureFixture[str], env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    code, _, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert err.startswith("Rebuilding: index at "), err
    assert f"is damaged: {file} " in err
    code, out, err = run(capsys, "search", QUESTION, "--json")
    assert code == 0, err
    assert json.loads(out)["results"]


def test_index_if_stale_leaves_an_undamaged_index(
    capsys: pytest.CaptureFixture[str], env: SimpleNamespace
) -> None:
    built_at = Manifest.read(env.index).built_at
    code, out, err = run(capsys, "index", "--if-stale")
    assert code == 0, err
    assert "up to date" in out
    assert Manifest.read(env.index).built_at == built_at


# --------------------------------------------------------------------------- the library


@pytest.mark.parametrize(("case", "damage", "file"), INDEX_CASES, ids=_ids(INDEX_CASES))
def test_load_index_raises_index_damaged(
    env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    with pytest.raises(IndexDamaged) as caught:
        load_index(env.index).close()
    assert_public(caught.value, file, env.index)


@pytest.mark.parametrize(("case", "damage", "file"), ONNX_CASES, ids=_ids(ONNX_CASES))
def test_loading_the_query_model_raises_index_damaged(
    env: SimpleNamespace, case: str, damage: Damage, file: str
) -> None:
    damage(env)
    index = load_index(env.index)
    try:
        with pytest.raises(IndexDamaged) as caught:
            load_query_embedder(Settings(query_backend="auto"), index)
    finally:
        index.close()
    assert_public(caught.value, file, env.index)


def test_the_torch_backend_ignores_a_damaged_onnx_export(env: SimpleNamespace) -> None:
    _truncate(env.index / "onnx/model.onnx")
    index = load_index(env.index)
    embedder = load_query_embedder(Settings(model=MODEL_ID, query_backend="torch"), index)
    index.close()
    assert isinstance(embedder, FakeEmbedder)


def test_pages_damaged_after_loading_fail_the_first_query(env: SimpleNamespace) -> None:
    """SQLite reads pages on demand: damage found by a query is IndexDamaged too."""
    index = load_index(env.index)
    try:
        path = env.index / "meta.sqlite"
        # In place, so that the open connection reads it; the header too, or SQLite would
        # answer from the pages it cached while loading.
        with open(path, "r+b") as f:
            f.write(np.random.default_rng(3).bytes(path.stat().st_size))
        with pytest.raises(IndexDamaged) as caught:
            index.documents()
        assert_public(caught.value, "meta.sqlite", env.index)
        assert "malformed" in caught.value.detail or "not a database" in caught.value.detail
    finally:
        index.close()


def test_a_closed_index_is_a_programming_error_not_damage(env: SimpleNamespace) -> None:
    index = load_index(env.index)
    index.close()
    with pytest.raises(sqlite3.ProgrammingError):
        index.documents()


@pytest.mark.parametrize("damaged", [False, True])
def test_a_rebuild_exports_anew_rather_than_link_a_damaged_export(
    pristine: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged: bool
) -> None:
    """A rebuild hard-links the previous index's export when the model is the same: a damaged
    one would come back as it is, so it is exported anew instead."""
    from rag.models import onnx

    weights = tmp_path / "model"
    weights.mkdir()
    embedder = SimpleNamespace(path=weights, model_id=MODEL_ID, model=None)
    previous = tmp_path / "previous"
    shutil.copytree(pristine.index / "onnx", previous)
    config = json.loads((previous / "config.json").read_text())
    config["fingerprint"] = onnx.model_fingerprint(weights, MODEL_ID)
    (previous / "config.json").write_text(json.dumps(config))
    if damaged:
        _truncate(previous / "model.onnx")
    exports: list[Path] = []

    def export_onnx(model: object, out_dir: Path, **kwargs: object) -> dict:
        exports.append(Path(out_dir))
        shutil.copytree(pristine.index / "onnx", out_dir, dirs_exist_ok=True)
        return config

    monkeypatch.setattr(onnx, "export_onnx", export_onnx)
    info = onnx.export_embedder(embedder, tmp_path / "new", reuse_from=previous)
    assert info["reused"] is not damaged
    assert exports == ([tmp_path / "new"] if damaged else [])
    onnx.OnnxEmbedder(tmp_path / "new")  # whole either way


# --------------------------------------------------------------------------- the real index


@pytest.mark.slow
@pytest.mark.parametrize("file", ["onnx/model.onnx", "onnx/model.onnx.data", "meta.sqlite"])
def test_the_real_index_with_a_truncated_file_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    real_index_dir: Path,
    tmp_path: Path,
    file: str,
) -> None:
    copy = tmp_path / "index"
    # Hard links cost nothing; the damaged file is replaced, never written through the link.
    shutil.copytree(real_index_dir, copy, copy_function=os.link)
    _truncate(copy / file)
    monkeypatch.setenv("RAG_INDEX_DIR", str(copy))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(CORPUS))
    code, _, err = run(capsys, "search", "what skills does an ML engineer need")
    assert_names_file_and_fix(code, err, file)


# --------------------------------------------------------------------------- the server


@pytest.mark.parametrize(("case", "damage", "file"), ALL_CASES, ids=_ids(ALL_CASES))
def test_server_answers_503_naming_the_file_without_paths(
    env: SimpleNamespace, case: str, damage: Damage, file: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from rag.serve.app import create_app

    damage(env)
    settings = Settings(allowed_hosts=["testserver"], rate_limit="off", reload=False)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        for _ in range(200):  # the index loads in a worker thread after start-up
            if ready.json()["status"] != "loading":
                break
            ready = client.get("/ready")
        search = client.post("/search", json={"query": QUESTION})
    for resp in (ready, search):
        assert resp.status_code == 503, resp.text
        detail = resp.json()["detail"]
        assert file in detail and FIX in detail, detail
        assert str(env.index) not in detail and "/" not in detail.replace(file, ""), detail
        for internal in INTERNALS:
            assert internal not in detail, detail
    # The whole story is for the log.
    assert any(str(env.index) in r.getMessage() or r.exc_info for r in caplog.records)
