"""Query embeddings without torch: an ONNX export of the sentence-transformers model.

``export_onnx`` (which needs torch, so it runs at index time) writes a directory::

    onnx/
      model.onnx       the transformer: input_ids, attention_mask, token_type_ids ->
                       last_hidden_state, with dynamic batch and sequence axes
      model.onnx.data  its weights, as ONNX external data (memory-mapped by onnxruntime)
      tokenizer.json   the model's fast tokenizer
      config.json      model_id, dim, max_seq_length, pooling = mean, normalize = true

``OnnxEmbedder`` reads it with onnxruntime and the ``tokenizers`` package only, so a process that
just answers queries never pays torch's start-up or memory (benchmarks/RESULTS.md has a cold
`rag search` both ways).
Mean pooling over the attention mask and L2 normalisation are done here in numpy, exactly as the
sentence-transformers Pooling and Normalize modules do them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.damage import CORRUPT, detail, open_for_reading, read_problem
from rag.models.embedder import resolve_model
from rag.models.files import link_or_copy

CONFIG = "config.json"
MODEL = "model.onnx"
# Weights beside the graph rather than inside it: onnxruntime memory-maps an external data file
# instead of parsing it out of the protobuf, which makes session start-up faster (part of every
# cold `rag search`) and leaves the weights as shared page cache for every
# server worker (benchmarks/README.md).
WEIGHTS = "model.onnx.data"
TOKENIZER = "tokenizer.json"
EXPORT_VERSION = 2
# Has every op BERT needs (LayerNormalization among them); onnxruntime runs it since 1.12.
OPSET = 17


def export_onnx(
    model: Any,
    out_dir: Path | str,
    *,
    model_id: str | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Export a sentence-transformers model (path, name or loaded model) to ``out_dir``."""
    import torch
    from sentence_transformers import SentenceTransformer

    if isinstance(model, SentenceTransformer):
        st = model  # already loaded (at index time): do not pay for a second copy
    else:
        resolved_id, path = resolve_model(str(model))
        model_id = model_id or resolved_id
        st = SentenceTransformer(path, device="cpu")
    transformer, pooling, normalize = _check_architecture(st)
    hf_model = transformer.auto_model
    tokenizer = st.tokenizer
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise ValueError("ONNX export needs a model with a fast (tokenizers) tokenizer")
    max_seq_length = int(st.max_seq_length)
    input_names = ["input_ids", "attention_mask"]
    sample = tokenizer(["an example query", "a second, longer example passage"], padding=True)
    if "token_type_ids" in sample and _accepts(hf_model, "token_type_ids"):
        input_names.append("token_type_ids")

    class _Encoder(torch.nn.Module):
        """The transformer alone, with positional inputs so the exporter can name them."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(input_names, inputs, strict=True))).last_hidden_state

    args = tuple(torch.tensor(sample[name], dtype=torch.int64) for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = _Encoder(hf_model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and traced control flow;
        # the equivalence test (tests/test_onnx.py) is what vouches for the result.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            args,
            str(out_dir / "single-file.onnx"),
            dynamo=False,  # the dynamo exporter needs onnxscript, which is not a dependency
            input_names=input_names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    _move_weights_out(out_dir / "single-file.onnx", out_dir / MODEL)
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER))
    config = {
        "export_version": EXPORT_VERSION,
        "model_id": model_id or "",
        "dim": int(hf_model.config.hidden_size),
        "max_seq_length": max_seq_length,
        "pooling": "mean",
        "normalize": True,
        "had_normalize_module": normalize,
        "inputs": input_names,
        "weights": WEIGHTS,
        "pad_token": tokenizer.pad_token,
        "pad_id": int(tokenizer.pad_token_id),
        "opset": OPSET,
        "fingerprint": fingerprint or "",
    }
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return config


def _move_weights_out(single: Path, target: Path) -> None:
    """Rewrite ``single`` as ``target`` plus one external weights file (WEIGHTS), beside it."""
    import onnx

    model = onnx.load(str(single))
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=WEIGHTS,
        size_threshold=1024,
    )
    single.unlink()
    (target.parent / WEIGHTS).chmod(0o644)  # onnx creates it owner-only; servers may differ


def _check_architecture(st: Any) -> tuple[Any, Any, bool]:
    """Transformer -> mean Pooling [-> Normalize], the only shape this embedder reproduces."""
    modules = list(st)
    names = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or names[:2] != ["Transformer", "Pooling"]:
        raise ValueError(f"cannot export {names}: expected Transformer, Pooling[, Normalize]")
    if len(modules) == 3 and names[2] != "Normalize":
        raise ValueError(f"cannot export {names}: the third module must be Normalize")
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:  # sentence-transformers 5 keeps one flag per mode
        mode = "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "other"
    if mode != "mean":
        raise ValueError(f"cannot export pooling {mode!r}: only mean pooling is reproduced")
    return modules[0], pooling, len(modules) == 3


def _accepts(module: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(module.forward).parameters


def export_embedder(
    embedder: Any, out_dir: Path | str, *, reuse_from: Path | str | None = None
) -> dict[str, Any]:
    """Export a SentenceTransformerEmbedder's model to ``out_dir``, for the index manifest.

    An export in ``reuse_from`` (the index being replaced) made from the same weights by the same
    library versions is hard-linked instead: exporting costs seconds, linking nothing.
    """
    t0 = time.perf_counter()
    fingerprint = model_fingerprint(embedder.path, embedder.model_id)
    reused = False
    if reuse_from is not None and has_onnx(reuse_from):
        try:
            old = json.loads((Path(reuse_from) / CONFIG).read_text())
            if (
                old.get("fingerprint") == fingerprint
                and old.get("export_version") == EXPORT_VERSION
            ):
                # A damaged export would be linked into the new index as it is: load it first.
                OnnxEmbedder(reuse_from)
                copy_export(reuse_from, out_dir)
                config, reused = old, True
        except (OSError, ValueError):  # damaged (ExportDamaged) or gone mid-copy: export anew
            shutil.rmtree(out_dir, ignore_errors=True)
    if not reused:
        config = export_onnx(
            embedder.model, out_dir, model_id=embedder.model_id, fingerprint=fingerprint
        )
    return {
        "path": Path(out_dir).name,
        "model_id": config["model_id"],
        "max_seq_length": config["max_seq_length"],
        "opset": config["opset"],
        "fingerprint": fingerprint,
        "reused": reused,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def model_fingerprint(model_path: str | Path, model_id: str) -> str:
    """Identifies weights + exporter versions cheaply (file sizes and times, not contents)."""
    from importlib.metadata import PackageNotFoundError, version

    parts: list[Any] = [EXPORT_VERSION, OPSET, model_id]
    for package in ("torch", "transformers", "sentence-transformers", "tokenizers"):
        try:
            parts.append(version(package))
        except PackageNotFoundError:
            parts.append(None)
    root = Path(model_path)
    if root.is_dir():
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt"):
                st = f.stat()
                parts.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def has_onnx(directory: Path | str) -> bool:
    """Whether ``directory`` holds a complete export."""
    d = Path(directory)
    if not all((d / f).is_file() for f in (MODEL, TOKENIZER, CONFIG)):
        return False
    try:
        weights = json.loads((d / CONFIG).read_text()).get("weights")
    except (OSError, ValueError):
        return False
    return weights is None or (d / weights).is_file()  # version 1 kept weights inside


def copy_export(src: Path | str, dst: Path | str) -> None:
    """Copy an export (hard links where possible: the weights are 90 MB and never modified)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (MODEL, WEIGHTS, TOKENIZER, CONFIG):
        if not (src / name).exists():
            continue
        link_or_copy(src / name, dst / name)


class ExportDamaged(ValueError):
    """A file of an ONNX export is missing, unreadable, truncated or corrupt.

    ``file`` is its name inside the export's directory and ``problem`` says what is wrong in plain
    words (rag.models.query turns both into the index's IndexDamaged); ``detail`` is the
    underlying error, for the log.
    """

    def __init__(self, file: str, problem: str, detail: str = "") -> None:
        super().__init__(f"{file} {problem}")
        self.file = file
        self.problem = problem
        self.detail = detail


def check_export_files(directory: Path | str) -> None:
    """Raise ExportDamaged for the first file of a complete export that is absent or unreadable
    (the directory itself as "", when it is missing)."""
    d = Path(directory)
    if not d.is_dir():
        raise ExportDamaged("", "is missing" if not d.exists() else "is a file, not a directory")
    for name in (CONFIG, MODEL, TOKENIZER):
        _readable(d, name)
    weights = _read_config(d).get("weights")
    if weights is not None:
        _readable(d, str(weights))


def _readable(directory: Path, name: str) -> Path:
    path = directory / name
    try:
        open_for_reading(path)
    except OSError as exc:
        raise ExportDamaged(name, read_problem(exc), detail(exc)) from exc
    return path


def _read_config(directory: Path) -> dict[str, Any]:
    path = _readable(directory, CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON
        raise ExportDamaged(CONFIG, CORRUPT, detail(exc)) from exc
    if not isinstance(config, dict):
        raise ExportDamaged(CONFIG, "is not a JSON object", type(config).__name__)
    return config


def _session_damage(directory: Path, weights: str | None, exc: Exception) -> ExportDamaged:
    """Which file made onnxruntime refuse the export: the graph, or the weights beside it.

    The graph is parsed without its weights (onnx, a few ms), then every external weight's
    extent is compared with the size of the file that should hold it.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        model = onnx.load(str(directory / MODEL), load_external_data=False)
    except Exception as bad:  # protobuf's DecodeError, onnx's own errors
        return ExportDamaged(MODEL, CORRUPT, detail(bad))
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", weights or WEIGHTS)
        try:
            size = (directory / location).stat().st_size
        except OSError as bad:
            return ExportDamaged(location, read_problem(bad), detail(bad))
        if int(info.get("offset", 0)) + int(info.get("length", 0)) > size:
            return ExportDamaged(location, CORRUPT, detail(exc))
    return ExportDamaged(MODEL, CORRUPT, detail(exc))


class OnnxEmbedder:
    """The Embedder protocol on onnxruntime + tokenizers; never imports torch.

    A missing, unreadable or corrupt file of the export raises ExportDamaged naming it.
    """

    def __init__(
        self, directory: Path | str, *, batch_size: int = 32, threads: int | None = None
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        config = _read_config(self.directory)
        if (
            config.get("export_version") not in (1, EXPORT_VERSION)
            or config.get("pooling") != "mean"
        ):
            raise ExportDamaged(CONFIG, "describes an export this version cannot read")
        self.config = config
        try:
            self.model_id: str = str(config["model_id"])
            self.dim: int = int(config["dim"])
            self.max_seq_length = int(config["max_seq_length"])
            self._inputs: list[str] = [str(name) for name in config["inputs"]]
            pad_id, pad_token = int(config["pad_id"]), str(config["pad_token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportDamaged(
                CONFIG, "lacks a setting or has one of the wrong type", detail(exc)
            ) from exc
        self.normalize = bool(config.get("normalize", True))
        self.batch_size = batch_size

        path = _readable(self.directory, TOKENIZER)
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception for a file it cannot parse
            raise ExportDamaged(TOKENIZER, CORRUPT, detail(exc)) from exc
        # The saved tokenizer may carry the training-time truncation and fixed padding (128);
        # sentence-transformers truncates at max_seq_length and pads to the longest in a batch.
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # Spinning threads burn a core between requests; on a shared 2-core box that costs the
        # neighbours more than the wake-up latency costs us.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        model = _readable(self.directory, MODEL)
        weights = config.get("weights")
        if weights is not None:
            _readable(self.directory, str(weights))
        try:
            self._session = ort.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except (
            Exception
        ) as exc:  # onnxruntime's errors (InvalidProtobuf, Fail...) subclass only this
            raise _session_damage(self.directory, weights, exc) from exc
        # onnxruntime sessions are thread-safe, but two concurrent runs on a 2-core machine only
        # fight for the cores; one at a time keeps each run's latency predictable.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts as (n, dim) float32 unit vectors."""
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # Sorting by length keeps padding (wasted work) low inside each batch, as
        # sentence-transformers does.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        bar = _progress(n) if progress else None
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._embed_batch([str(texts[i]).strip() for i in idx])
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        with self._lock:
            hidden = self._session.run(None, feeds)[0]
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="text", desc="Embedding")
