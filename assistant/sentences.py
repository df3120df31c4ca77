"""Sentences of abstracts and claims: splitting (llama-index's bundled punkt tokenizer), the
numbers and content words they carry, and their embeddings, cached."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

from assistant.embedding import Embedder

NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%)?")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-+]{3,}")
STOP = set(STOPWORDS_EN) | {"paper", "papers", "study", "this", "that", "which", "these", "their"}


_split = None
_split_lock = threading.Lock()


def split_sentences(text: str) -> list[str]:
    """Sentences via llama-index's bundled punkt tokenizer (offline)."""
    global _split
    with _split_lock:
        if _split is None:
            _split = split_by_sentence_tokenizer()
    return [s.strip() for s in _split(text) if s.strip()]


def numbers(text: str) -> set[str]:
    return {n.replace(",", "").replace(" ", "") for n in NUMBER.findall(text)}


def content_words(text: str) -> set[str]:
    """Lower-cased 6-character prefixes: a crude stem that lets "accurate" meet "accuracy"."""
    return {w.lower()[:6] for w in WORD.findall(text) if w.lower() not in STOP}


class SentenceVectors:
    """Embeddings of sentences, cached: abstracts are scored again and again across questions."""

    def __init__(self, embedder: Embedder, capacity: int = 50_000) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, sentences: list[str]) -> np.ndarray:
        with self._lock:
            missing = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if missing:
            vectors = self.embedder.embed(missing)
            with self._lock:
                for sentence, vector in zip(missing, vectors, strict=True):
                    self._cache[sentence] = vector
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = [self._cache.get(s) for s in sentences]
        if any(r is None for r in rows):  # evicted meanwhile under heavy load
            return self.embedder.embed(sentences)
        return np.vstack(rows) if rows else np.zeros((0, self.embedder.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._cache)

    def warm(self, texts: Iterable[str], *, batch: int = 16,
             stop: Callable[[], bool] | None = None) -> int:
        """Embed the sentences of `texts` ahead of the questions that will need them, in small
        batches so that a question's own embedding never waits long for the model. Returns how many
        sentences were embedded."""
        wanted = dict.fromkeys(s for text in texts for s in split_sentences(text))
        with self._lock:
            todo = [s for s in wanted if s not in self._cache]
            todo = todo[: max(self.capacity - len(self._cache), 0)]
        for start in range(0, len(todo), batch):
            if stop is not None and stop():
                return start
            self(todo[start : start + batch])
        return len(todo)

    def save(self, path: Path, only: Iterable[str] | None = None) -> None:
        """Write the cache (sentences and vectors, tagged with the model) atomically; with `only`,
        just the sentences of those texts (the abstracts, not the questions' claims)."""
        keep = None if only is None else {s for text in only for s in split_sentences(text)}
        with self._lock:
            sentences = [s for s in self._cache if keep is None or s in keep]
            vectors = (np.vstack([self._cache[s] for s in sentences]) if sentences
                       else np.zeros((0, self.embedder.dim), dtype=np.float32))
        # Sentences never hold \x1e (the corpus loader strips control characters).
        blob = np.frombuffer("\x1e".join(sentences).encode("utf-8"), dtype=np.uint8)
        meta = np.frombuffer(json.dumps({"model": self.embedder.name, "dim": self.embedder.dim,
                                         "n": len(sentences)}).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sentences-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, vectors=vectors.astype(np.float32), sentences=blob, meta=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load(self, path: Path) -> int:
        """Add a saved cache made by the same model; anything unreadable is ignored (it is only a
        cache). Returns how many sentences were added."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                vectors = np.asarray(data["vectors"], dtype=np.float32)
                text = bytes(data["sentences"]).decode("utf-8")
        except (OSError, ValueError, KeyError):
            return 0
        sentences = text.split("\x1e") if meta.get("n") else []
        if (meta.get("model") != self.embedder.name or meta.get("dim") != self.embedder.dim
                or len(sentences) != len(vectors)):
            return 0
        added = 0
        with self._lock:
            for sentence, vector in zip(sentences, vectors, strict=True):
                if len(self._cache) >= self.capacity:
                    break
                if sentence not in self._cache:
                    self._cache[sentence] = vector
                    added += 1
        return added


# Content words for term matching: three characters or more, acronyms and hyphenated names kept.
TERM = re.compile(r"[A-Za-z][A-Za-z0-9\-+]{2,}")
_stemmer_lock = threading.Lock()
_stemmer = None


def stemmed_terms(text: str) -> set[str]:
    """Stemmed content words ("trained", "training" -> "train"); "GPUs" -> "gpu"."""
    global _stemmer
    words = [w[:-1] if re.fullmatch(r"[A-Z0-9]{2,}s", w) else w for w in TERM.findall(text)]
    words = [w.lower() for w in words if w.lower() not in STOP]
    with _stemmer_lock:
        if _stemmer is None:
            import Stemmer

            _stemmer = Stemmer.Stemmer("english")
        return set(_stemmer.stemWords(words))
