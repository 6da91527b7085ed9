"""Approximate nearest neighbours with FAISS: which index type for how many vectors, filtered
search parameters, and reading an index memory-mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Below this many vectors exact search is fast enough and has perfect recall.
EXACT_SEARCH_MAX = 200_000


# Above it: "hnsw" (IndexHNSWFlat) or "ivf" (IndexIVFFlat); benchmarks/RESULTS.md compares them.
APPROXIMATE_KIND = "hnsw"


# IVF above EXACT_SEARCH_MAX: nprobe = nlist / this (benchmarks/RESULTS.md has the sweep).
IVF_NPROBE_DIVISOR = 32


IVF_KMEANS_ITERATIONS = 10


def make_faiss_index(vectors: np.ndarray, kind: str = "auto") -> tuple[Any, dict[str, Any]]:
    """A FAISS index for unit vectors, chosen by size; returns it with its parameters."""
    import faiss

    n, dim = vectors.shape
    if kind == "auto":
        kind = "flat" if n <= EXACT_SEARCH_MAX else APPROXIMATE_KIND
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        params: dict[str, Any] = {"type": "IndexFlatIP"}
    elif kind == "hnsw":
        m, ef_construction, ef_search = 32, 80, 128
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        params = {"type": "IndexHNSWFlat", "M": m, "efConstruction": ef_construction,
                  "efSearch": ef_search}  # fmt: skip
    elif kind == "ivf":
        index, params = _train_ivf(vectors)
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}")
    index.add(vectors)
    if kind == "hnsw":
        index.hnsw.efSearch = params["efSearch"]
    params["metric"] = "inner_product"
    params["ntotal"] = int(index.ntotal)
    return index, params


def _train_ivf(vectors: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """An untrained-then-trained IndexIVFFlat sized for ``vectors`` (about sqrt(n) lists)."""
    import faiss

    n, dim = vectors.shape
    # sqrt(n) lists keeps both costs in check: assigning n vectors to the lists at build time
    # (n * nlist dot products) and scanning nprobe/nlist of them per query.
    nlist = int(min(65_536, max(16, 2 ** round(np.log2(max(np.sqrt(n), 1))))))
    nprobe = max(1, min(nlist, nlist // IVF_NPROBE_DIVISOR))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # k-means on a seeded sample: 64 points per list is plenty for the centroids and keeps
    # training to seconds on 2 cores (faiss would otherwise take up to 256 per list).
    sample = min(n, 64 * nlist)
    rng = np.random.default_rng(0)
    train = vectors if sample == n else vectors[np.sort(rng.choice(n, sample, replace=False))]
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.cp.seed = 0
    index.train(train)
    index.nprobe = nprobe
    params = {"type": "IndexIVFFlat", "nlist": nlist, "nprobe": nprobe, "train_points": sample,
              "kmeans_iterations": IVF_KMEANS_ITERATIONS}  # fmt: skip
    return index, params


def filtered_search_params(index: Any, ids: np.ndarray, k: int = 0) -> Any:
    """FAISS search parameters that keep only ``ids``, of the type ``index`` requires.

    IVF indexes reject the generic SearchParameters, and a filtered IVF search must probe every
    list (the wanted rows may sit in any; only members are scored, so this stays cheap). HNSW
    takes the generic type but then searches with efSearch 16, too few once most nodes are
    filtered out.
    """
    import faiss

    selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=int(inner.nlist))
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector)
        params.efSearch = max(int(inner.hnsw.efSearch), 2 * k)
        return params
    return faiss.SearchParameters(sel=selector)


def read_faiss(path: Path, mmap: bool) -> Any:
    """Read a FAISS index memory-mapped where its type allows, so workers share the pages."""
    import faiss

    if mmap:
        # IO_FLAG_MMAP alone maps only IVF inverted lists: a flat or HNSW index read with it is
        # copied into private memory (measured with faiss 1.15, see benchmarks/RESULTS.md).
        # IO_FLAG_MMAP_IFC maps flat codes, the HNSW graph and IVF lists alike.
        flags = [getattr(faiss, "IO_FLAG_MMAP_IFC", None), faiss.IO_FLAG_MMAP]
        for flag in (f for f in flags if f is not None):
            try:
                return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                pass  # this index type (or faiss build) cannot be memory-mapped this way
    return faiss.read_index(str(path))
