"""How the hybrid mode combines its rankings: z-score fusion (default) or reciprocal ranks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass
class FusionConfig:
    """How the three rankings are combined in hybrid mode.

    ``zscore`` (the default) adds each ranking's scores after standardising them over the
    candidates (CombSUM of z-scores): unlike reciprocal-rank fusion it keeps how far apart two
    passages are, not only their order. Chosen by cross-validation on our own sets and confirmed
    on a held-out set written without looking at results (benchmarks/ABLATIONS.md); ``rrf`` is
    the reciprocal-rank fusion used before, kept for comparison.
    """

    method: Literal["zscore", "rrf"] = "zscore"
    dense_weight: float = 1.0
    # The best weighting on our own sets, chosen by cross-validation against RRF weightings
    # (benchmarks/ABLATIONS.md has the figures).
    sentence_weight: float = 1.5
    bm25_weight: float = 1.0
    # When a query names exactly one guide's role ("ML fraud engineer"), that guide's passages
    # get a bonus, so sources about another role stop crowding in. In z-score units (a standard
    # deviation of the weighted mean) for ``zscore``; in votes at rank 1 for ``rrf``.
    role_weight: float = 1.0
    # When a query names a level, role, team or company that heads some passages ("an M4
    # engineering manager", "at Airbnb"), those passages get this bonus, in the same units
    # (rag.search.names); a passage under both a named guide and a named heading gets the larger.
    name_weight: float = 1.0
    rrf_k: int = 60
    candidates: int = 50
    # Weights of rankings beyond those three, by the name a ranker lists them under: how a
    # benchmark fuses a fourth ranking (benchmarks/ablations). Serving lists none.
    extra_weights: dict[str, float] = field(default_factory=dict)

    def weights(self) -> dict[str, float]:
        """Each ranking's weight, by the name the ranker lists it under."""
        return {"dense": self.dense_weight, "sentence": self.sentence_weight,
                "bm25": self.bm25_weight, **self.extra_weights}  # fmt: skip


def fuse(
    rankings: dict[str, list[tuple[int, float]]],
    mode: str,
    config: FusionConfig,
    prior: np.ndarray | None = None,
    bm25: np.ndarray | None = None,
    *,
    named: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One ranking of candidate rows, best first, each with its per-ranking ranks and scores.

    ``prior`` rows (the guide the query names) get ``role_weight`` extra, ``named`` rows (under
    the headings it names) ``name_weight``; ``bm25`` holds the BM25 score of every row, for the
    candidates that BM25 did not list itself.
    """
    f = config
    weights = f.weights()
    table: dict[int, dict[str, Any]] = {}
    for name, ranking in rankings.items():
        for rank, (row, score) in enumerate(ranking, start=1):
            entry = table.setdefault(row, {"row": row, "score": 0.0})
            entry[f"{name}_rank"] = rank
            entry[f"{name}_score"] = score
            if mode != "hybrid":
                entry["score"] = score
            elif f.method == "rrf":
                entry["score"] += weights[name] / (f.rrf_k + rank)
    if mode == "hybrid" and table:
        rows = np.fromiter(table, dtype=np.int64, count=len(table))
        fused = np.zeros(len(rows))
        if f.method == "zscore":
            fused = zscore_sum(rows, rankings, weights, bm25)
        bonus = np.zeros(len(rows))
        for given, weight in ((prior, f.role_weight), (named, f.name_weight)):
            if given is not None:
                # Test the few candidates against the given rows, not the other way round.
                unit = weight if f.method == "zscore" else weight / (f.rrf_k + 1)
                bonus = np.maximum(bonus, np.where(np.isin(rows, given), unit, 0.0))
        fused += bonus
        for row, extra in zip(rows.tolist(), fused.tolist(), strict=True):
            table[row]["score"] += extra
    return sorted(table.values(), key=lambda e: (-e["score"], e["row"]))


def zscore_sum(
    rows: np.ndarray,
    rankings: dict[str, list[tuple[int, float]]],
    weights: dict[str, float],
    bm25: np.ndarray | None,
) -> np.ndarray:
    """Weighted mean over the rankings of each candidate's standardised score.

    A candidate missing from a vector ranking gets that ranking's lowest listed score, an
    upper bound on its true one (only the top few were fetched); BM25 scores every chunk
    anyway, so its exact score is used.
    """
    total = np.zeros(len(rows))
    weight_sum = 0.0
    for name, ranking in rankings.items():
        if not ranking:
            continue  # BM25 with no matching term has no opinion
        if name == "bm25" and bm25 is not None:
            col = bm25[rows].astype(np.float64)
        else:
            listed = dict(ranking)
            floor = min(listed.values())
            col = np.fromiter((listed.get(r, floor) for r in rows.tolist()), np.float64)
        std = col.std()
        if std > 0:  # all equal: this ranking cannot tell the candidates apart
            total += weights[name] * (col - col.mean()) / std
        weight_sum += weights[name]
    return total / weight_sum if weight_sum else total
