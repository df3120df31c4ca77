"""The `onnx` embedder backend: a sentence-transformers model run by onnxruntime, so a serving
process never loads torch.

Torch and sentence-transformers hold ~300 MB of an app's memory (libraries and heap) and take seconds
to import, for what is, at question time, one small forward pass. onnxruntime (already installed:
chromadb depends on it) runs the same graph from a 0.4 s start in a fraction of that memory, and its
vectors equal sentence-transformers' to float rounding (2e-7 on the bundled corpus, checked by
tests/test_embedding.py), so a store built by either backend serves the other.

No ONNX file ships with the model: it is exported once from the model's own weights, by torch, in a
subprocess (`python -m assistant.onnx_embedder SRC OUT`) so that the exporting process's torch never
enters the app, and kept in `embed_onnx_dir` under a key of the weights' path, size and mtime.
Tokenising (the model's tokenizer.json, by the `tokenizers` library) and pooling (the model's
sentence-transformers config: mean or CLS) are done here; they are the few lines sentence-transformers
itself runs around the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError

# Bumped when the export below changes, so older exports are not reused.
EXPORT_VERSION = 1
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class OnnxEmbedder:
    def __init__(self, model_dir: Path, name: str, cache_dir: Path, batch_size: int = 16,
                 threads: int = 0, export_timeout_s: float = 600.0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.batch_size = batch_size
        config = _sentence_config(model_dir)
        self.max_tokens = int(config["max_seq_length"])
        self._pooling = config["pooling"]
        tokenizer_file = model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise AssistantError(f"embedding model {name!r} has no tokenizer.json",
                                 hint="use ASSISTANT_EMBED_BACKEND=sentence-transformers for it")
        # Two tokenizers: the model's input is truncated to its window, but counting tokens must not
        # be (ingest refuses chunks longer than the window instead of silently cutting them).
        self._counter = Tokenizer.from_file(str(tokenizer_file))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(self.max_tokens)
        pad = config.get("pad_token") or "[PAD]"
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id(pad) or 0, pad_token=pad)

        path = exported_model(model_dir, cache_dir, export_timeout_s)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Spinning threads wait at barriers burning a core that a 2-core machine does not have.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The arena keeps the largest batch's activations for the process's lifetime.
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise AssistantError(f"cannot load the ONNX export of {name!r}: {exc}",
                                 hint=f"delete {path} to export it again") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first, like sentence-transformers: batches of similar length pad least.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            encoded = self._tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(ids)}
            with self._lock:  # one batch at a time keeps 2-core machines from thrashing
                hidden = self._session.run(None, {k: v for k, v in feed.items()
                                                  if k in self._inputs})[0]
            if self._pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text).ids)


def _sentence_config(model_dir: Path) -> dict[str, object]:
    """Window, pooling and pad token from a sentence-transformers model directory."""
    def read(name: str) -> dict[str, object]:
        path = model_dir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    pooling = "mean"
    for module in read("modules.json") or []:  # type: ignore[union-attr]
        if str(module.get("type", "")).endswith("Pooling"):
            pool = read(f"{module.get('path', '1_Pooling')}/config.json")
            if pool.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif not pool.get("pooling_mode_mean_tokens", True):
                raise AssistantError(
                    f"the ONNX embedder supports mean and CLS pooling, not {pool}",
                    hint="use ASSISTANT_EMBED_BACKEND=sentence-transformers for this model")
    window = read("sentence_bert_config.json").get("max_seq_length") or read("config.json").get(
        "max_position_embeddings", 512)
    pad = read("special_tokens_map.json").get("pad_token")
    if isinstance(pad, dict):
        pad = pad.get("content")
    return {"max_seq_length": window, "pooling": pooling,
            "pad_token": pad if isinstance(pad, str) else None}


def export_key(model_dir: Path) -> str:
    weights = [model_dir / f for f in WEIGHT_FILES if (model_dir / f).is_file()]
    if not weights:
        raise AssistantError(f"no model weights ({' or '.join(WEIGHT_FILES)}) in {model_dir}",
                             hint="point ASSISTANT_EMBED_MODEL at a sentence-transformers model "
                             "directory, or use ASSISTANT_EMBED_BACKEND=sentence-transformers")
    stat = weights[0].stat()
    raw = f"{EXPORT_VERSION}|{weights[0].resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def exported_model(model_dir: Path, cache_dir: Path, timeout_s: float) -> Path:
    """The ONNX export of `model_dir`, made on first use."""
    path = cache_dir / f"{model_dir.name}-{export_key(model_dir)}.onnx"
    if path.is_file():
        return path
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssistantError(f"cannot create {cache_dir} for the embedding model's ONNX export: "
                             f"{exc.strerror}", hint="set ASSISTANT_EMBED_ONNX_DIR to a writable "
                             "directory") from exc
    # A unique temporary name, then an atomic rename: processes exporting at once never see half a
    # file, and the last rename wins with an identical file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run([sys.executable, "-m", "assistant.onnx_embedder", str(model_dir),
                               str(partial)], capture_output=True, text=True, timeout=timeout_s,
                              env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        partial.unlink(missing_ok=True)
        raise AssistantError(f"exporting the embedding model to ONNX took over {timeout_s:.0f} s",
                             hint="raise ASSISTANT_EMBED_EXPORT_TIMEOUT_S, or use "
                             "ASSISTANT_EMBED_BACKEND=sentence-transformers") from exc
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise AssistantError(f"could not export the embedding model to ONNX: {last}",
                             hint="it needs torch and onnx installed (`pip install onnx`); or use "
                             "ASSISTANT_EMBED_BACKEND=sentence-transformers")
    os.replace(partial, path)
    return path


def _export(model_dir: Path, out: Path) -> None:
    """Trace the transformer (without pooling) into ONNX with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModel

    # Eager attention exports to plain MatMul/Softmax nodes that onnxruntime fuses; the default
    # (SDPA) exports to a slower graph (200 abstracts: 23 s against 32 s on this machine).
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad():
        # The TorchScript exporter: the default (dynamo) one needs onnxscript as well.
        torch.onnx.export(Encoder(), (sample, sample, torch.zeros_like(sample)), str(out),
                          dynamo=False, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")  # the exporter's advice about opsets is not for users
    _export(Path(sys.argv[1]), Path(sys.argv[2]))
