"""The `hash` embedder: deterministic bag-of-stems vectors (feature hashing), so similar wording
gives similar vectors, with no model to load. Registered as a backend by `assistant.testing`."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    def __init__(self, dim: int = 256) -> None:
        self.name = f"hash-{dim}"
        self.dim = dim
        self.max_tokens = 100_000

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                digest = hashlib.md5(token[:6].encode()).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))
