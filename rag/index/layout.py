"""The files of an index directory, named once for the builder that writes them and the loader
that reads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
SENTENCES = "sentences.faiss"
SENTENCE_ROWS = "sentence_rows.npy"
META = "meta.sqlite"
BM25_DIR = "bm25"
# What bm25s (0.2 to 0.3) saves and loads, the parameters first.
BM25_FILES = (
    "params.index.json", "vocab.index.json",
    "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
)  # fmt: skip
MODEL_DIR = "model"
ONNX_DIR = "onnx"


@dataclass(frozen=True)
class Layout:
    """Where each file of the index at ``root`` lives."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def vectors(self) -> Path:
        return self.root / VECTORS

    @property
    def sentences(self) -> Path:
        return self.root / SENTENCES

    @property
    def sentence_rows(self) -> Path:
        return self.root / SENTENCE_ROWS

    @property
    def meta(self) -> Path:
        return self.root / META

    @property
    def bm25(self) -> Path:
        return self.root / BM25_DIR

    @property
    def model(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def onnx(self) -> Path:
        return self.root / ONNX_DIR
