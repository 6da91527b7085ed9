"""Lexical ranking with bm25s: one tokenisation for indexing, for queries and for the
coverage decision's content words (rag.search.coverage)."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# Words of one character count ("C", the "3" of "zone 3"; bm25s's default pattern needs two),
# except a letter after an apostrophe, which is a clitic ("engineer's", "don't"), not a word.
TOKEN_PATTERN = r"(?u)\b\w\w+\b|(?<!['’])\b\w\b"
# bm25s's English stopwords, and "i", the one-letter word they never needed to list.
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene", "stopwords": "en", "stemmer": "english",
               "token_pattern": TOKEN_PATTERN, "extra_stopwords": ["i"]}  # fmt: skip
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def build_bm25(texts: Sequence[str], params: Mapping[str, Any] = BM25_PARAMS) -> Any:
    """A bm25s index over ``texts`` with ``params`` (English stopwords and stemming)."""
    import Stemmer

    bm25s = import_bm25s()

    stemmer = Stemmer.Stemmer(params["stemmer"])
    tokens = bm25s.tokenize(
        list(texts), stopwords=_stopwords(params), stemmer=stemmer, show_progress=False,
        token_pattern=params.get("token_pattern", _BM25S_DEFAULT),
    )  # fmt: skip
    bm25 = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"])
    bm25.index(tokens, show_progress=False)
    return bm25


_imported: Any = None
# A server loads several collections' indexes in worker threads at once: a second thread must
# neither take the module from sys.modules while the first is still executing it (it has no
# BM25 yet) nor see the hiding below half undone.
_import_lock = threading.Lock()


def import_bm25s() -> Any:
    """bm25s, without letting it import numba and scipy when nothing has loaded them yet.

    bm25s imports both at start-up for backends this project never selects (it indexes and
    scores with numpy): a noticeable share of a cold ``rag search`` (benchmarks/RESULTS.md). They stay
    importable afterwards for any other code that wants them.
    """
    global _imported
    if _imported is not None:
        return _imported
    with _import_lock:
        if _imported is None:
            _imported = _import_bm25s()
    return _imported


def _import_bm25s() -> Any:
    hidden = [name for name in ("numba", "scipy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail fast
    try:
        import bm25s
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return bm25s


_stemmers: dict[str, Any] = {}


def query_tokens(query: str, params: Mapping[str, Any] = BM25_PARAMS) -> list[str]:
    """A query's BM25 terms, stemmed and stopped exactly as the indexed passages were."""
    bm25s = import_bm25s()
    stemmer = _stemmers.get(params["stemmer"])
    if stemmer is None:
        import Stemmer

        stemmer = _stemmers.setdefault(params["stemmer"], Stemmer.Stemmer(params["stemmer"]))
    return bm25s.tokenize(
        query, stopwords=_stopwords(params), stemmer=stemmer, return_ids=False,
        show_progress=False, token_pattern=params.get("token_pattern", _BM25S_DEFAULT),
    )[0]  # fmt: skip


def words(text: str) -> Iterator[str]:
    """The words of ``text`` as written, split exactly where BM25 splits them."""
    for m in _TOKEN_RE.finditer(text):
        yield m.group()


# The pattern of indexes built before TOKEN_PATTERN (their manifests do not name one).
_BM25S_DEFAULT = r"(?u)\b\w\w+\b"
_stopword_lists: dict[tuple[str, tuple[str, ...]], list[str]] = {}


def _stopwords(params: Mapping[str, Any]) -> str | list[str]:
    """bm25s's named list, with ``extra_stopwords`` added when the params have any."""
    extra = tuple(params.get("extra_stopwords") or ())
    if not extra:
        return params["stopwords"]
    key = (params["stopwords"], extra)
    if key not in _stopword_lists:
        from bm25s.stopwords import STOPWORDS_EN

        if params["stopwords"] not in ("en", "english"):
            raise ValueError(f"extra stopwords need the English list, not {params['stopwords']!r}")
        _stopword_lists[key] = sorted({*STOPWORDS_EN, *extra})
    return _stopword_lists[key]
