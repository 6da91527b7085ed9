"""Adapt the embedding model to the corpus at index time, from the corpus alone.

A general-purpose model ranks near neighbours in a career guide almost at random: "Overall
Salary Range" against "Salary by Experience Level", the Best Practices introduction against its
training subsection. Fine-tuning it briefly on pairs cut from the corpus itself teaches it the
guide's vocabulary and structure, with no questions or labels:

- inverse cloze: a sentence or list item against the rest of its passage (Lee et al., 2019,
  "Latent Retrieval for Weakly Supervised Open Domain Question Answering");
- headings: a section's headings below the document title against its passage.

The objective is contrastive with in-batch negatives (the one sentence-transformers calls
MultipleNegativesRankingLoss), in a plain torch loop so no training framework is needed. The
adapted model is saved into the index, which exports it to ONNX and queries with it; questions
never take part, so every evaluation set stays held out (benchmarks/ABLATIONS.md, README).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.ingest.chunking import Chunk
from rag.models.embedder import SentenceTransformerEmbedder
from rag.models.files import link_or_copy

log = logging.getLogger(__name__)

ADAPT_VERSION = 1


@dataclass(frozen=True)
class AdaptSettings:
    """Training parameters; stored in the manifest, so changing one makes the index stale."""

    # Chosen on our own question sets, never on the shared dev set (README, Evaluation).
    epochs: int = 2
    learning_rate: float = 2e-5
    batch_size: int = 32
    # Caps training on a large corpus (its time is in benchmarks/RESULTS.md): pairs beyond this
    # are a random sample, drawn across the whole corpus.
    max_pairs: int = 2048
    # Cosine similarities are multiplied by this before the softmax (sentence-transformers' 20).
    scale: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.max_pairs < 1:
            raise ValueError("epochs and max_pairs must be >= 1 and batch_size >= 2")
        if not 0 < self.learning_rate < 1:
            raise ValueError("learning_rate must be between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return {"version": ADAPT_VERSION, **asdict(self)}


@dataclass(frozen=True)
class Pair:
    """A query-like text and the passage it was cut from."""

    query: str
    passage: str
    row: int  # the chunk, so two pairs from one passage are never each other's negatives


def training_pairs(chunks: Sequence[Chunk], settings: AdaptSettings | None = None) -> list[Pair]:
    """Inverse-cloze and heading pairs from the chunks, sampled down to ``max_pairs``."""
    settings = settings or AdaptSettings()
    pairs: list[Pair] = []
    for row, chunk in enumerate(chunks):
        if len(chunk.section_path) > 1:
            pairs.append(Pair(" ".join(chunk.section_path[1:]), chunk.embedding_text(), row))
        sentences = chunk.sentences
        for sentence in sentences:
            # Remove the sentence when it is verbatim in the passage; a labelled list item is
            # not, and stays, which Lee et al. also do for a share of pairs.
            rest = chunk.text.replace(sentence, " ") if len(sentences) > 1 else chunk.text
            pairs.append(Pair(sentence, f"{chunk.section}\n{rest}", row))
    if len(pairs) > settings.max_pairs:
        pairs = random.Random(settings.seed).sample(pairs, settings.max_pairs)
    return pairs


def adapted_model_id(base: str, pairs: Sequence[Pair], settings: AdaptSettings) -> str:
    """An id naming the base model, the training data and the parameters."""
    h = hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode())
    for p in pairs:
        h.update(f"{p.query}\x00{p.passage}\x01".encode())
    return f"{base}+adapted-{h.hexdigest()[:12]}"


def adapt_model(
    embedder: SentenceTransformerEmbedder,
    chunks: Sequence[Chunk],
    out_dir: Path,
    settings: AdaptSettings | None = None,
    reuse: tuple[Path, dict[str, Any]] | None = None,
) -> tuple[SentenceTransformerEmbedder, dict[str, Any]]:
    """Fine-tune a copy of the embedder's model on the chunks; save it to ``out_dir``.

    Returns the adapted embedder and what the manifest records about the run. The embedder
    passed in is not changed: it may be shared with other indexes. ``reuse`` is a previous
    adapted model's directory and manifest record: when it was trained on the same pairs with
    the same settings (so has the same id), it is linked instead of trained again.
    """
    settings = settings or AdaptSettings()
    t0 = time.perf_counter()
    pairs = training_pairs(chunks, settings)
    model_id = adapted_model_id(embedder.model_id, pairs, settings)
    if reuse is not None and reuse[1].get("model_id") == model_id and reuse[0].is_dir():
        _link_tree(reuse[0], Path(out_dir))
        adapted = SentenceTransformerEmbedder(
            str(out_dir), batch_size=embedder.batch_size, model_id=model_id
        )
        info = {**reuse[1], "path": Path(out_dir).name, "reused": True,
                "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        log.info("reused the model adapted to this corpus (%s)", model_id)
        return adapted, info
    return _train(embedder, pairs, Path(out_dir), settings, model_id, t0)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a directory as hard links where possible (model weights are never modified)."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(path, target)


def _train(
    embedder: SentenceTransformerEmbedder,
    pairs: list[Pair],
    out_dir: Path,
    settings: AdaptSettings,
    model_id: str,
    t0: float,
) -> tuple[SentenceTransformerEmbedder, dict[str, Any]]:
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    model = SentenceTransformer(embedder.path, device="cpu")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)

    def encode(texts: list[str]) -> torch.Tensor:
        features = model.preprocess(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=1)

    losses: list[float] = []
    for _ in range(settings.epochs):
        order = pairs[:]
        rng.shuffle(order)
        for i in range(0, len(order), settings.batch_size):
            batch = order[i : i + settings.batch_size]
            if len(batch) < 2:
                continue  # one pair has no negatives to learn from
            q = encode([p.query for p in batch])
            d = encode([p.passage for p in batch])
            logits = settings.scale * q @ d.T
            rows = torch.tensor([p.row for p in batch])
            # Another pair cut from the same passage is not a negative.
            same = (rows[:, None] == rows[None, :]) & ~torch.eye(len(batch), dtype=torch.bool)
            logits = logits.masked_fill(same, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    model.save(str(out_dir))
    adapted = SentenceTransformerEmbedder(
        str(out_dir), batch_size=embedder.batch_size, model_id=model_id
    )
    info = {
        "path": out_dir.name,
        "model_id": model_id,
        "base": embedder.model_id,
        "settings": settings.to_dict(),
        "pairs": len(pairs),
        "steps": len(losses),
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("adapted %s on %d pairs in %.0f s", embedder.model_id, len(pairs), info["seconds"])
    return adapted, info
