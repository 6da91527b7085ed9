"""A build backend on Ray: the driver lists and hashes files and writes the index (the same
writer as a local build, rag.index.build); Ray Data parses and chunks, and a pool of actors,
each loading the model once, embeds.

Parsing runs per file on Ray, but naming documents (unique ids) and dropping repeated bodies
is done once over the whole corpus on the driver (rag.ingest.loader.assemble_corpus), and
chunking runs on Ray after that, per document: each step is the function a local build calls,
so the chunks are exactly a local build's. Only texts the previous index lacks reach Ray.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.index.build import BuildProgress
from rag.ingest.chunking import Chunk, ChunkerSettings, chunk_document
from rag.ingest.loader import ParsedFile, ReadFile, assemble_corpus, parse_read, read_corpus
from rag.ingest.types import Document, SourceFile
from rag.models.embedder import Embedder


@dataclass(frozen=True)
class RaySettings:
    """How the build uses the cluster: embedding actors, their batch and their resources."""

    model: str
    actors: int = 2
    batch_size: int = 256
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    model_batch_size: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> RaySettings:
        """The RAG_RAY_* settings."""
        return cls(
            model=settings.model,
            actors=settings.ray_actors,
            batch_size=settings.ray_batch_size,
            cpus_per_actor=settings.ray_cpus_per_actor,
            gpus_per_actor=settings.ray_gpus_per_actor,
            model_batch_size=settings.batch_size,
        )


class EmbedActor:
    """A Ray Data callable class: loads the model once per actor, then embeds batches."""

    def __init__(self, model: str, batch_size: int) -> None:
        from rag.models.embedder import SentenceTransformerEmbedder
        from rag.runtime import configure_process

        configure_process()  # an actor's process is an entry point of its own

        self.embedder = SentenceTransformerEmbedder(model, batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's rows with their vectors."""
        vectors = self.embedder.embed([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": vectors}


def _parse_rows(batch: dict[str, np.ndarray], text_profile: str) -> dict[str, Any]:
    """Parse each file of a batch (pickled ReadFile in, pickled ParsedFile out)."""
    out = [pickle.dumps(parse_read(pickle.loads(b), text_profile)) for b in batch["blob"]]
    return {"i": batch["i"], "blob": np.array(out, dtype=object)}


def _chunk_rows(batch: dict[str, np.ndarray], chunker: dict[str, Any]) -> dict[str, Any]:
    """Chunk each document of a batch (pickled Document in, pickled chunk list out)."""
    settings = ChunkerSettings(**chunker)
    out = [pickle.dumps(chunk_document(pickle.loads(b), settings)) for b in batch["blob"]]
    return {"i": batch["i"], "blob": np.array(out, dtype=object)}


class RayBackend:
    """rag.index.build's BuildBackend on a Ray cluster (connect first: cluster.ray_session)."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> RayBackend:
        """A backend configured by the RAG_RAY_* settings."""
        return cls(RaySettings.from_settings(settings))

    def load(
        self, corpus_dir: Path, text_profile: str, progress: BuildProgress
    ) -> tuple[list[Document], list[SourceFile]]:
        """Files read and hashed here, parsed on Ray, named and deduplicated here."""
        files: list[ReadFile] = read_corpus(corpus_dir)
        progress.stage("Parsing", len(files))
        blobs = _map_pickled(
            [pickle.dumps(f) for f in files], _parse_rows, {"text_profile": text_profile}
        )
        parsed: list[ParsedFile] = [pickle.loads(b) for b in blobs]
        progress.advance(len(parsed))
        return assemble_corpus(corpus_dir, parsed)

    def chunk(self, docs: Sequence[Document], chunker: ChunkerSettings) -> list[Chunk]:
        """Every document chunked on Ray, concatenated in document order."""
        blobs = _map_pickled(
            [pickle.dumps(d) for d in docs], _chunk_rows, {"chunker": chunker.to_dict()}
        )
        return [c for b in blobs for c in pickle.loads(b)]

    def embed(
        self, embedder: Embedder, texts: Sequence[str], progress: BuildProgress
    ) -> np.ndarray:
        """Vectors from the actor pool, in the order of ``texts``."""
        import ray.data

        s = self.settings
        if not texts:
            return np.empty((0, embedder.dim), np.float32)
        # One block per batch: from_items' default of many small blocks only adds scheduling.
        ds = ray.data.from_items(
            [{"i": i, "text": t} for i, t in enumerate(texts)],
            override_num_blocks=max(1, -(-len(texts) // s.batch_size)),
        )
        out = ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"model": s.model, "batch_size": s.model_batch_size},
            batch_size=s.batch_size,
            batch_format="numpy",
            # A fixed pool (`concurrency=` is deprecated since Ray 2.51).
            compute=ray.data.ActorPoolStrategy(size=s.actors),
            num_cpus=s.cpus_per_actor,
            num_gpus=s.gpus_per_actor or None,
        )
        vectors = np.empty((len(texts), embedder.dim), np.float32)
        # Blocks may come back in any order: each row carries its position.
        for batch in out.iter_batches(batch_format="numpy", batch_size=None):
            vectors[batch["i"]] = np.stack(batch["vector"])
            progress.advance(len(batch["i"]))
        return vectors


def _map_pickled(blobs: list[bytes], fn: Any, kwargs: dict[str, Any]) -> list[bytes]:
    """``fn`` over pickled items as Ray Data tasks; results in the items' order."""
    import ray.data

    if not blobs:
        return []
    items = [{"i": i, "blob": b} for i, b in enumerate(blobs)]
    # Enough blocks that every CPU gets work, not one per item (each block is a task).
    cpus = max(1, int(ray.available_resources().get("CPU", 1)))
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 4 * cpus))
    out: list[bytes | None] = [None] * len(blobs)
    for batch in ds.map_batches(fn, fn_kwargs=kwargs, batch_format="numpy").iter_batches(
        batch_format="numpy", batch_size=None
    ):
        for i, b in zip(batch["i"], batch["blob"], strict=True):
            out[int(i)] = bytes(b)
    assert all(b is not None for b in out)
    return out  # type: ignore[return-value]
