"""BM25 over the store's chunks (bm25s through llama-index's BM25Retriever, English stemmer).

Persisted next to the store with the store generation it was built from; a mismatch (another
process ingested, a crash between the Chroma write and the BM25 write) is detected on load and the
index is rebuilt from the store instead of being used stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node
from llama_index.retrievers.bm25 import BM25Retriever

from assistant.store import PaperStore

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG on import, which floods every CLI run.
logging.getLogger("bm25s").setLevel(logging.WARNING)

STAMP = "assistant_stamp.json"
PREFIX = 8
WORD = re.compile(r"(?u)\b\w\w+\b")


class Vocabulary:
    """The corpus vocabulary (BM25's stemmed terms), to tell whether a question's words occur in
    the corpus at all: one signal for abstaining."""

    def __init__(self, retriever: BM25Retriever | None) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stem = Stemmer.Stemmer("english")
        self._stop = set(STOPWORDS_EN)
        self.terms: set[str] = set(retriever.bm25.vocab_dict) if retriever is not None else set()
        # Prefixes let "echocardiography" count as known when the corpus says "echocardiogram".
        self._prefixes = {t[:PREFIX] for t in self.terms if len(t) >= PREFIX}

    def variant_prefixes(self, text: str) -> list[str]:
        """Prefixes of the text's words that the corpus only has with another suffix
        ("echocardiography" when the corpus says "echocardiogram"), for a prefix search."""
        prefixes = []
        for w in WORD.findall(text.lower()):
            if (w not in self._stop and len(w) >= PREFIX + 2 and self._stem.stemWord(w) not in self.terms
                    and w[:PREFIX] in self._prefixes and w[:PREFIX] not in prefixes):
                prefixes.append(w[:PREFIX])
        return prefixes

    def knows(self, word: str) -> bool:
        """Whether the corpus has the (lower-case) word, another form of it, or a longer word's
        stem-resistant variant ("echocardiography" when it says "echocardiogram")."""
        return self._stem.stemWord(word) in self.terms or (
            len(word) >= PREFIX + 2 and word[:PREFIX] in self._prefixes)

    def unknown_share(self, text: str) -> float:
        words = [w for w in WORD.findall(text.lower()) if w not in self._stop]
        if not words:
            return 1.0
        unknown = [w for w in words if not self.knows(w)]
        return len(unknown) / len(words)

    def unknown_name(self, names: list[tuple[str, ...]]) -> tuple[str, ...] | None:
        """The first of `names` (lower-case word tuples) with a word the corpus never uses; stop
        words, digits and single letters ("Parkinson's" gives "s") are not checked."""
        for name in names:
            if any(len(w) > 1 and not w.isdigit() and w not in self._stop and not self.knows(w)
                   for w in name):
                return name
        return None


def _stamp(store: PaperStore) -> dict[str, int | str]:
    # The paper fingerprint catches what generation and chunk count miss: a paper rewritten
    # outside an ingest with as many chunks as before.
    digest = hashlib.sha1()
    for pid, paper_hash in sorted(store.paper_hashes().items()):
        digest.update(f"{pid}:{paper_hash}\n".encode())
    # A local store's index lives inside it: the path it was opened by (relative, absolute, a
    # copy elsewhere) says nothing about freshness, and a mismatch would force a rebuild.
    return {"generation": store.generation, "chunks": store.count_chunks(),
            "papers": digest.hexdigest()[:16], "store": store.settings.chroma_url or "local"}


def build_bm25(store: PaperStore, top_k: int) -> BM25Retriever | None:
    nodes = store.all_chunk_nodes()
    if not nodes:
        return None
    return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(top_k, len(nodes)))


def persist_bm25(retriever: BM25Retriever | None, store: PaperStore, directory: Path) -> None:
    """Write to a temporary folder and swap it in, so readers never see half an index."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bm25-", dir=directory.parent))
    try:
        if retriever is not None:
            retriever.persist(str(tmp), show_progress=False)
        (tmp / STAMP).write_text(json.dumps(_stamp(store)))
        old = directory.with_name(directory.name + ".old")
        # A crash mid-swap can leave `old` behind, and renaming onto a non-empty folder fails.
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_stamp(directory: Path) -> dict:
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def bm25_is_fresh(store: PaperStore, directory: Path) -> bool:
    return _read_stamp(directory) == _stamp(store)


def load_bm25(store: PaperStore, directory: Path, top_k: int) -> BM25Retriever | None:
    """The persisted index if it matches the store, else a fresh one built from the store."""
    stamp = _read_stamp(directory)
    if stamp:
        if stamp == _stamp(store):
            if stamp["chunks"] == 0:
                return None
            try:
                retriever = BM25Retriever.from_persist_dir(str(directory))
                retriever.similarity_top_k = min(top_k, int(stamp["chunks"]))
                return retriever
            except Exception as exc:  # a damaged index is rebuilt, not fatal
                log.warning("BM25 index at %s is unreadable (%s); rebuilding", directory, exc)
        else:
            log.warning("BM25 index at %s is stale (%s, store is at %s); rebuilding from the store",
                        directory, stamp, _stamp(store))
    retriever = build_bm25(store, top_k)
    try:
        persist_bm25(retriever, store, directory)
    except OSError as exc:
        log.warning("could not save the rebuilt BM25 index (%s); using it from memory", exc)
    return retriever


TOKEN_RUN = re.compile(r"\w+")


class VerbatimIndex:
    """Chroma's `get(where_document={"$contains": needle}, limit=n)` over the chunks, answered from
    memory: the same chunk ids in the same (store) order, case-sensitive substring semantics.

    Chroma's local `$contains` scans the collection (about 2 ms per 1,000 chunks per needle, and a
    question searches several needles); this looks the needle's word runs up in a token index of
    the chunks, intersects, and checks each candidate verbatim. Tokens keep their case, as the
    match does: "Medical Image" is looked up among the chunks that write "Medical" and "Image", not
    among every chunk about medical images. Built from the BM25 corpus already in memory (same
    chunks, same order), so it is as fresh as BM25 is."""

    def __init__(self, ids: list[str], texts: list[str], entries: list[dict] | None = None) -> None:
        self.ids = ids
        self.position = {cid: i for i, cid in enumerate(ids)}
        # BM25's node records (the same chunks): nodes for the hits without reading Chroma.
        self.entries = entries
        self._texts = [t.encode("utf-8") for t in texts]
        vocab: dict[str, int] = {}
        per_chunk = []
        for text in texts:
            tokens = {vocab.setdefault(w, len(vocab)) for w in TOKEN_RUN.findall(text)}
            per_chunk.append(np.fromiter(tokens, dtype=np.int32, count=len(tokens)))
        token = np.concatenate(per_chunk) if per_chunk else np.zeros(0, dtype=np.int32)
        chunk = np.repeat(np.arange(len(texts), dtype=np.int32), [len(t) for t in per_chunk])
        order = np.argsort(token, kind="stable")  # stable: chunk indexes stay ascending per token
        self._postings = chunk[order]
        self._indptr = np.searchsorted(token[order], np.arange(len(vocab) + 1))
        words = list(vocab)
        # Every token on one line of one string: a substring search over the vocabulary is one
        # C-level regex scan, whatever the vocabulary's size.
        self._blob = "\n".join(words)
        self._starts = np.cumsum([0, *[len(w) + 1 for w in words[:-1]]]) if words else np.zeros(0)

    @classmethod
    def from_bm25(cls, retriever: BM25Retriever | None) -> VerbatimIndex:
        if retriever is None:
            return cls([], [])
        ids, texts = [], []
        for entry in retriever.corpus:
            try:
                text = json.loads(entry["_node_content"])["text"]
            except (KeyError, TypeError, ValueError):
                text = metadata_dict_to_node(entry).get_content()
            ids.append(str(entry["node_id"]))
            texts.append(str(text))
        return cls(ids, texts, retriever.corpus)

    def node(self, chunk_id: str) -> TextNode | None:
        """The chunk as a llama-index node, from memory; None where the index has no record."""
        i = self.position.get(chunk_id)
        if i is None or self.entries is None:
            return None
        node = metadata_dict_to_node(self.entries[i], text=self._texts[i].decode("utf-8"))
        return node if isinstance(node, TextNode) else None

    def papers(self) -> tuple[dict[str, str], dict[str, str]]:
        """Paper id -> title, and paper id -> title and chunk texts, from the chunks' metadata:
        what the title index needs, without reading every paper record from the store."""
        titles: dict[str, str] = {}
        parts: dict[str, list[str]] = {}
        for i, entry in enumerate(self.entries or ()):
            pid = str(entry.get("paper_id", ""))
            if pid not in titles:
                titles[pid] = str(entry.get("title", ""))
                parts[pid] = [titles[pid]]
            parts[pid].append(self._texts[i].decode("utf-8"))
        return titles, {pid: "\n".join(p) for pid, p in parts.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def contains(self, needle: str, limit: int) -> list[str]:
        """Ids of the first `limit` chunks (in store order) whose text contains `needle`."""
        runs = set(TOKEN_RUN.findall(needle))
        # Short runs ("2" of "SAM 2") narrow little and cost much; the longer ones suffice.
        runs = {r for r in runs if len(r) >= 3} or runs
        if runs:
            # A mask per run, not sorted id lists: "medical" alone is in most chunks of a large
            # corpus, and sorting its postings on every question would cost more than the scan.
            mask = np.ones(len(self._texts), dtype=bool)
            for run in runs:
                mask &= self._chunks_with(run)
                if not mask.any():
                    return []
            order: Any = np.flatnonzero(mask)  # ascending: store order
        else:  # no word characters at all: check every chunk
            order = range(len(self._texts))
        target = needle.encode("utf-8")
        out: list[str] = []
        for i in order:
            if target in self._texts[i]:
                out.append(self.ids[i])
                if len(out) >= limit:
                    break
        return out

    def _chunks_with(self, run: str) -> np.ndarray:
        """A mask of the chunks with a token containing `run`."""
        mask = np.zeros(len(self._texts), dtype=bool)
        hits = [m.start() for m in re.finditer(re.escape(run), self._blob)]
        if hits:
            tokens = np.unique(np.searchsorted(self._starts, hits, side="right") - 1)
            mask[np.concatenate([self._postings[self._indptr[t]:self._indptr[t + 1]]
                                 for t in tokens])] = True
        return mask
