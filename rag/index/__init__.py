"""The index: a directory that describes itself (after bm25s and txtai)::

    index/
      manifest.json    format version, model id and dim, chunker, parser and FAISS settings,
                       a sha256 per source file, counts, build time
      vectors.faiss    FAISS inner-product index over unit vectors (row i = chunk row i)
      sentences.faiss  one vector per sentence or list item, each prefixed with its heading
      sentence_rows.npy  path; row j = the chunk row that sentence j belongs to
      bm25/            the bm25s index over the same rows
      meta.sqlite      chunks and documents, read on demand so a million chunks cost no RAM
      model/           the corpus-adapted model, when adaptation is on (rag.models.adaptation)
      onnx/            the query model exported to ONNX, so queries need neither torch nor its
                       start-up time (rag.models.onnx)

``build`` writes it, ``store`` opens it, ``freshness`` says when it must be rebuilt.
"""

from rag.index.build import build_index, sentence_units
from rag.index.freshness import why_rebuild
from rag.index.load import load_index
from rag.index.manifest import FORMAT_VERSION, Manifest, corpus_fingerprint, corpus_hashes
from rag.index.store import DocumentInfo, Index

__all__ = [
    "FORMAT_VERSION",
    "DocumentInfo",
    "Index",
    "Manifest",
    "build_index",
    "corpus_fingerprint",
    "corpus_hashes",
    "load_index",
    "sentence_units",
    "why_rebuild",
]
