"""The store's lexical index on disk (tantivy): BM25 over the chunks, their exact words for the
verbatim sub-queries, and what name resolution looks up (name_index.py).

One index (`Settings.lexical_path`, by default store_dir/lexical) holds one document per chunk:
- `body`: title and text for BM25, tokenised as bm25s did (runs of two or more word characters,
  lower-cased, its English stop words removed, Snowball English stemmer); not stored;
- `text`: the chunk text, stored, and indexed by its word runs with their case kept, and `pairs`, its
  adjacent words: they narrow a verbatim (substring) search to a few candidates, checked against the
  text where the needle is more than one run of word characters;
- `seq`: the chunk's place in the store's order (Chroma returns chunks in the order written), so a
  verbatim search returns the same first chunks as Chroma's `$contains` would;
- on each paper's first chunk only: the paper's names, for name_index.py;
plus one `stamp` document saying which store generation the index matches. It is committed with the
changes it describes, so no reader sees a stamp that does not match the documents.

Opening reads the index's metadata and memory-maps its segments: nothing proportional to the store.
An ingest deletes and adds the documents of the papers it writes and commits (`LexicalUpdate`);
readers in other processes see the commit at their next reload. A stamp that does not match the
store (a crash between the store's writes and the commit, a copied or restored index) makes the next
writer rebuild the index from the store.

The case-kept words of the chunks are also appended to `tokens.txt` (one per line) before each
commit: a word *containing* a string ("Mamba" in "SegMamba") is found by scanning that file (memory-
mapped), which a term dictionary cannot do quickly; the file may hold words no chunk has any more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import tantivy
from bm25s.stopwords import STOPWORDS_EN
from llama_index.core.schema import NodeWithScore, TextNode
from tantivy import Filter, Occur, Order, Query, TextAnalyzerBuilder, Tokenizer

from assistant.corpus import split_collections
from assistant.errors import StoreError
from assistant.filters import fold
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.titles import paper_name_fields

log = logging.getLogger(__name__)

PREFIX = 8
WORD = re.compile(r"(?u)\b\w\w+\b")
TOKEN_RUN = re.compile(r"\w+")
TOKENS_FILE = "tokens.txt"
# Python's \w (what needles are split by) as a tantivy tokenizer pattern.
WORD_CHARS = r"[\p{L}\p{N}_]"
VERBATIM_PAGE = 256  # candidates checked per read in a verbatim search
MAX_WORD_CHOICES = 64  # words a run of a verbatim search may be before its word pairs are not used
PAIR = "\x1f"  # joins the two words of a `pairs` term
NODE_CACHE = 4_096  # chunks kept from recent searches, for the nodes of their hits
STAMP_KIND = "stamp"
PAPER_KIND = "paper"
# What an index directory may hold; anything else means it is not ours, so it is never swapped away.
INDEX_FILES = re.compile(r"^(meta\.json|\.managed\.json|\.tantivy-.*\.lock|tokens\.txt|"
                         r"[0-9a-f]{32}(\.\d+)?\.[a-z]+)$")


def bm25_analyzer(stem: bool = True) -> Any:
    """BM25's tokeniser: bm25s's (runs of two or more word characters, lower case, its English stop
    words out) with tantivy's Snowball English stemmer, which conflates a few words fewer than
    PyStemmer's newer one did ("international" and "internal" stay apart)."""
    builder = TextAnalyzerBuilder(Tokenizer.regex(WORD_CHARS + "{2,}")).filter(Filter.lowercase()) \
        .filter(Filter.custom_stopword(sorted(STOPWORDS_EN)))
    return (builder.filter(Filter.stemmer("english")) if stem else builder).build()


def _analyzers() -> dict[str, Any]:
    return {
        "assistant_bm25": bm25_analyzer(),
        "assistant_words": TextAnalyzerBuilder(Tokenizer.regex(WORD_CHARS + "+")).build(),
        "assistant_spaces": TextAnalyzerBuilder(Tokenizer.whitespace()).build(),
    }


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("chunk_id", stored=True, tokenizer_name="raw", index_option="basic")
    b.add_text_field("paper_id", stored=True, tokenizer_name="raw", index_option="basic")
    b.add_text_field("kind", tokenizer_name="raw", index_option="basic")
    b.add_bytes_field("meta", stored=True, indexed=False)  # title, url, chunk index; the stamp
    b.add_bytes_field("filter_meta", stored=True, indexed=False)  # first chunk: filter_meta()
    b.add_text_field("body", tokenizer_name="assistant_bm25", index_option="freq")
    b.add_text_field("text", stored=True, tokenizer_name="assistant_words", index_option="basic")
    # Adjacent words ("medical\x1fimage"): a two-word verbatim search is a term lookup, not a
    # phrase match over two long posting lists.
    b.add_text_field("pairs", tokenizer_name="assistant_spaces", index_option="basic")
    b.add_unsigned_field("seq", fast=True)
    # The paper's year on every chunk (0: unknown), so that BM25 ranks within a year range.
    b.add_integer_field("year", indexed=True, fast=True)
    # The paper's names (titles.paper_name_fields), on its first chunk.
    b.add_text_field("alias", tokenizer_name="raw", index_option="basic")
    b.add_text_field("gram", tokenizer_name="raw", index_option="basic")
    b.add_text_field("ntitle", tokenizer_name="raw", index_option="basic")
    b.add_text_field("mention", tokenizer_name="assistant_spaces", index_option="basic")
    b.add_text_field("introduced", tokenizer_name="raw", index_option="basic")
    b.add_text_field("spelled", tokenizer_name="raw", index_option="basic")
    # What filters match, on its first chunk (filter_index.py): folded words of the authors and
    # of the venue, collection names, and the references a paper is chosen by (DOI, arXiv id,
    # folded title).
    b.add_text_field("author", tokenizer_name="raw", index_option="basic")
    b.add_text_field("venue", tokenizer_name="raw", index_option="basic")
    b.add_text_field("collection", tokenizer_name="raw", index_option="basic")
    b.add_text_field("ref", tokenizer_name="raw", index_option="basic")
    b.add_unsigned_field("atoms", fast=True)
    b.add_unsigned_field("title_words", fast=True)
    return b.build()


SCHEMA = _schema()
SCHEMA_VERSION = 3  # raise with any change to the analyzers (other fields are told by the schema)


def store_stamp(store: PaperStore, hashes: Mapping[str, str] | None = None, *,
                papers: str | None = None) -> dict[str, Any]:
    """What an index must have been stamped with to match the store. `hashes` (paper id -> content
    hash, read from every paper record) adds the papers' fingerprint: it catches a paper rewritten
    outside an ingest with as many chunks as before; `papers` gives that fingerprint as kept
    (PaperStore.papers_fingerprint). Opening a store compares the rest only, so that it reads
    nothing proportional to the store."""
    # The store is named by its chunk collection's id, not by the path or URL it was reached by:
    # a copied store keeps its index, replicas reaching one server by other addresses share theirs,
    # and a store rebuilt elsewhere (new collections) is told apart.
    stamp: dict[str, Any] = {"generation": store.generation, "chunks": store.count_chunks(),
                             "store": str(store.chunks.id), "schema": SCHEMA_VERSION}
    if hashes is not None:
        stamp["papers"] = fingerprint(hashes)
    elif papers is not None:
        stamp["papers"] = papers
    return stamp


# The papers' fingerprint is a sum of one number per (paper, content hash), modulo 2**64: it does
# not depend on order, so an ingest updates it from the papers it writes and removes alone, without
# reading every record (hashing the sorted list, as before, needed them all).
FINGERPRINT_MOD = 1 << 64


def _entry(pid: str, paper_hash: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{pid}:{paper_hash}".encode()).digest()[:8], "big")


def fingerprint(hashes: Mapping[str, str]) -> str:
    return f"{sum(_entry(p, h) for p, h in hashes.items()) % FINGERPRINT_MOD:016x}"


def fingerprint_update(current: str, removed: Mapping[str, str], added: Mapping[str, str]) -> str:
    """The fingerprint after the (paper, hash) entries of `removed` leave and those of `added` come
    in; a rewritten paper is in both, with its old hash and its new one."""
    total = int(current, 16) - sum(_entry(p, h) for p, h in removed.items()) \
        + sum(_entry(p, h) for p, h in added.items())
    return f"{total % FINGERPRINT_MOD:016x}"


def legacy_fingerprint(hashes: Mapping[str, str]) -> str:
    """The fingerprint indexes were stamped with before fingerprint() (a hash of the sorted list):
    an ingest that reads every record accepts it once, and restamps, so upgrading rebuilds nothing."""
    digest = hashlib.sha1()
    for pid, paper_hash in sorted(hashes.items()):
        digest.update(f"{pid}:{paper_hash}\n".encode())
    return digest.hexdigest()[:16]


def stamp_matches(stamp: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return bool(stamp) and all(stamp.get(k) == v for k, v in expected.items())


class LexicalIndex:
    """A reader of the index: BM25, verbatim search, vocabulary and name lookups. An index that
    does not exist yet reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema = SCHEMA
        self.index: tantivy.Index | None = None
        try:
            if path.is_dir() and tantivy.Index.exists(str(path)):
                index = _open(path)
                if index.schema != SCHEMA:  # an index of another version: read as missing
                    raise ValueError("it was written with other fields (an earlier version)")
                index.config_reader(reload_policy="OnCommit")
                index.searcher().num_docs  # noqa: B018 - a damaged index fails here, not mid-question
                self.index = index
        except (ValueError, OSError) as exc:  # read as missing: a writer rebuilds it
            log.warning("lexical index at %s is unreadable (%s)", path, exc)
        self._bm25 = bm25_analyzer()
        self._nodes: OrderedDict[str, tantivy.Document] = OrderedDict()
        self._nodes_lock = threading.Lock()
        self._tokens = _TokenFile(path / TOKENS_FILE)

    def reload(self) -> None:
        if self.index is not None:
            self.index.reload()

    def searcher(self) -> tantivy.Searcher:
        if self.index is None:
            raise StoreError(f"no lexical index at {self.path}", status=503)
        return self.index.searcher()

    @property
    def exists(self) -> bool:
        return self.index is not None

    # --- bookkeeping --------------------------------------------------------------------------
    def stamp(self) -> dict[str, Any]:
        if self.index is None:
            return {}
        searcher = self.searcher()
        hits = searcher.search(_term("kind", STAMP_KIND), limit=1).hits
        if not hits:
            return {}
        return json.loads(searcher.doc(hits[0][1]).get_first("meta"))

    def count_chunks(self) -> int:
        if self.index is None:
            return 0
        searcher = self.searcher()
        return searcher.num_docs - searcher.search(_term("kind", STAMP_KIND), limit=1).count

    def count_papers(self) -> int:
        return self.count(_term("kind", PAPER_KIND))

    def papers_with_refs(self, refs: Iterable[str]) -> set[str]:
        """Ids of the papers found by any of these references (lower-case DOIs or arXiv ids, as
        filter_terms() indexes them): how an ingest finds a stored copy of a paper by identifier
        without reading every record."""
        refs = sorted({r for r in refs if r})
        if self.index is None or not refs:
            return set()
        query = Query.boolean_query([(Occur.Must, _term("kind", PAPER_KIND)),
                                     (Occur.Must, Query.term_set_query(SCHEMA, "ref", refs))])
        searcher = self.searcher()
        n = searcher.search(query, limit=1).count
        return {str(searcher.doc(addr).get_first("paper_id"))
                for _, addr in searcher.search(query, limit=max(n, 1), count=False).hits}

    def count(self, query: Query) -> int:
        if self.index is None:
            return 0
        return int(self.searcher().search(query, limit=1).count)

    # --- BM25 ---------------------------------------------------------------------------------
    def bm25(self, text: str, k: int, within: Query | None = None) -> list[NodeWithScore]:
        """The `k` best chunks for the text by BM25, with their scores (only chunks sharing a term);
        `within` (a filter: filter_index.py) restricts them without changing their scores."""
        tokens = self._bm25.analyze(text)
        if self.index is None or not tokens:
            return []
        # A repeated query word counts again, as it did in bm25s.
        query = Query.boolean_query([(Occur.Should, _term("body", t, "freq")) for t in tokens])
        if within is not None:
            # A filter clause that does not score: the chunks' BM25 scores stay those of the corpus.
            query = Query.boolean_query([(Occur.Must, query),
                                         (Occur.Must, Query.const_score_query(within, 0.0))])
        searcher = self.searcher()
        return [NodeWithScore(node=self._node_of(searcher.doc(addr)), score=float(score))
                for score, addr in searcher.search(query, limit=k, count=False).hits]

    def paper_heads(self) -> list[dict[str, Any]] | None:
        """Every paper's id, title, url and filter metadata (year, authors, venue, ...), read from
        the papers' first chunks; None without an index. For lists of a large store: paging a
        store's paper records through Chroma cost 11 s and ~180 MB of native memory at 50k."""
        if self.index is None:
            return None
        searcher = self.searcher()
        query = _term("kind", PAPER_KIND)
        n = searcher.search(query, limit=1).count
        heads = []
        for _, addr in searcher.search(query, limit=max(n, 1), count=False).hits:
            doc = searcher.doc(addr)
            meta = json.loads(doc.get_first("meta") or b"{}")
            raw = doc.get_first("filter_meta")
            heads.append({"id": str(doc.get_first("paper_id")), "title": meta.get("title", ""),
                          "url": meta.get("url", ""), **(json.loads(raw) if raw else {})})
        return heads

    def papers_with_words(self, text: str, limit: int) -> list[str] | None:
        """Ids of the papers with a chunk that holds every word of the text (as BM25 indexes
        words: stemmed, stop words dropped), best match first, from at most `limit` chunks; None
        when the text has no indexed word. The corpus browser's search, without abstracts in
        memory."""
        tokens = list(dict.fromkeys(self._bm25.analyze(text)))
        if self.index is None or not tokens:
            return None
        query = Query.boolean_query([(Occur.Must, _term("body", t, "freq")) for t in tokens])
        searcher = self.searcher()
        ids: dict[str, None] = {}
        for _, addr in searcher.search(query, limit=limit, count=False).hits:
            ids.setdefault(str(searcher.doc(addr).get_first("paper_id")), None)
        return list(ids)

    def stem(self, word: str) -> str:
        """A word as BM25 indexes it (the word itself where it is not one BM25 term)."""
        tokens = self._bm25.analyze(word)
        return tokens[0] if len(tokens) == 1 else word.lower()

    def has_term(self, stem: str) -> bool:
        """Whether some chunk has this (stemmed, lower-case) BM25 term."""
        return self.index is not None and bool(
            self.searcher().search(_term("body", stem, "freq"), limit=1, count=False).hits)

    def has_prefix(self, prefix: str) -> bool:
        """Whether some chunk has a BM25 term starting with `prefix`."""
        return self.index is not None and bool(self.searcher().terms_with_prefix(
            "body", prefix, filter_query=Query.all_query(), limit=1))

    # --- verbatim -----------------------------------------------------------------------------
    def contains(self, needle: str, limit: int) -> list[str]:
        """Ids of the first `limit` chunks (in store order) whose text contains `needle`, case
        sensitively: what Chroma's `get(where_document={"$contains": needle}, limit=limit)` returns,
        without scanning the collection."""
        if self.index is None or limit < 1:
            return []
        searcher = self.searcher()
        query, exact = self._candidates(needle)
        if query is None:
            return []
        out: list[str] = []
        offset = 0
        while len(out) < limit:
            hits = searcher.search(query, limit=limit if exact else VERBATIM_PAGE, count=False,
                                   offset=offset, order_by_field="seq", order=Order.Asc).hits
            for _, addr in hits:
                doc = searcher.doc(addr)
                text = doc.get_first("text")
                if text is not None and (exact or needle in text):
                    out.append(self._remember(doc.get_first("chunk_id"), doc))
                    if len(out) >= limit:
                        break
            if exact or len(hits) < VERBATIM_PAGE:
                break
            offset += VERBATIM_PAGE
        return out

    def _candidates(self, needle: str) -> tuple[Query | None, bool]:
        """The chunks that may contain the needle (None: none can), and whether all of them do.

        Each word run of the needle is part of a word of the chunk: a run inside the needle is a
        whole word, one at its start ends a word, one at its end begins one, one alone can sit
        anywhere in a word; consecutive runs are adjacent words, looked up as word pairs. A needle
        of word characters only is in exactly the chunks with a word containing it; any other
        candidate is checked against the stored text."""
        runs = list(TOKEN_RUN.finditer(needle))
        if not runs:  # no word characters at all: every chunk is a candidate
            return Query.all_query(), False
        choices = [self._run_choices(m, needle) for m in runs]
        if any(c is None for c in choices):
            return None, False
        exact = len(runs) == 1 and runs[0].group(0) == needle
        searcher = self.searcher()
        pairs = [q for left, right in pairwise(choices)
                 if (q := _pair_query(left, right, searcher)) is not None]
        if pairs:
            return Query.boolean_query([(Occur.Must, q) for q in pairs]), exact
        # One run, or runs with too many words to pair: the chunks with every run's words (short
        # runs, "2" of "SAM 2", narrow little and cost much: the longer ones suffice).
        kept = [c for m, c in zip(runs, choices, strict=True) if len(m.group(0)) >= 3] or choices
        return Query.boolean_query([(Occur.Must, c.query()) for c in kept if c]), exact

    def _run_choices(self, match: re.Match[str], needle: str) -> _Choices | None:
        """The chunk words a run of the needle can be part of (None: no word of the index)."""
        run = match.group(0)
        starts_word, ends_word = match.start() > 0, match.end() < len(needle)
        if starts_word:
            return _Choices(run, None, prefix=not ends_word)
        words = self._tokens.containing(run, at_end=ends_word)
        return _Choices(run, words) if words else None

    def node(self, chunk_id: str) -> TextNode | None:
        """The chunk as a llama-index node: from the recent searches, else from the index."""
        with self._nodes_lock:
            doc = self._nodes.get(chunk_id)
        if doc is None and self.index is not None:
            searcher = self.searcher()
            hits = searcher.search(_term("chunk_id", chunk_id, "basic"), limit=1, count=False).hits
            if hits:
                doc = searcher.doc(hits[0][1])
                self._remember(chunk_id, doc)
        return self._node_of(doc) if doc is not None else None

    def _remember(self, chunk_id: str, doc: tantivy.Document) -> str:
        """Keep a stored chunk of a recent search (its node is made only if asked for)."""
        with self._nodes_lock:
            self._nodes[chunk_id] = doc
            if len(self._nodes) > NODE_CACHE:
                self._nodes.popitem(last=False)
        return chunk_id

    @staticmethod
    def _node_of(doc: tantivy.Document) -> TextNode:
        meta = json.loads(doc.get_first("meta"))
        return TextNode(
            id_=doc.get_first("chunk_id"), text=doc.get_first("text") or "",
            metadata={"paper_id": doc.get_first("paper_id"), "title": meta.get("title", ""),
                      "url": meta.get("url", ""), "chunk_index": meta.get("chunk_index", 0)},
        )

    def __len__(self) -> int:
        return self.count_chunks()


@dataclass(frozen=True)
class _Choices:
    """The words one run of a verbatim search may be part of: listed (from the token file), or
    the run itself as a whole word or a word's beginning."""

    run: str
    words: set[str] | None  # None: `run` itself (whole, or a prefix)
    prefix: bool = False

    def query(self) -> Query:
        if self.words is not None:
            return Query.term_set_query(SCHEMA, "text", sorted(self.words))
        if self.prefix:
            return Query.regex_query(SCHEMA, "text", re.escape(self.run) + ".*")
        return _term("text", self.run)


def _pair_query(left: _Choices | None, right: _Choices | None, searcher: tantivy.Searcher
                ) -> Query | None:
    """The chunks where a word of `left` is followed by a word of `right` (None: too many words
    to pair, or nothing to pair). Only the needle's last run can be a prefix, and only its first a
    listed set of words."""
    if left is None or right is None or left.prefix:
        return None
    lefts = sorted(left.words) if left.words is not None else [left.run]
    if right.words is not None or len(lefts) > MAX_WORD_CHOICES:
        return None
    if not right.prefix:
        return Query.term_set_query(SCHEMA, "pairs", [f"{w}{PAIR}{right.run}" for w in lefts])
    # The pairs' terms listed from the term dictionary: cheaper than compiling an expression.
    terms = [t for w in lefts for t, _ in searcher.terms_with_prefix("pairs", f"{w}{PAIR}{right.run}")]
    return Query.term_set_query(SCHEMA, "pairs", terms) if terms else Query.empty_query()


def _term(field_name: str, value: str, option: str = "basic") -> Query:
    return Query.term_query(SCHEMA, field_name, value, index_option=option)


def _open(path: Path) -> tantivy.Index:
    index = tantivy.Index.open(str(path))
    for name, analyzer in _analyzers().items():
        index.register_tokenizer(name, analyzer)
    return index


class _TokenFile:
    """The case-kept words of the chunks, one per line, memory-mapped and re-mapped when the file
    grows or is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._map: mmap.mmap | bytes = b""
        self._lock = threading.Lock()

    def _current(self) -> mmap.mmap | bytes:
        try:
            st = os.stat(self.path)
        except OSError:
            return b""
        key = (st.st_ino, st.st_size)
        with self._lock:
            if key != self._key:
                if st.st_size == 0:
                    self._map = b""
                else:
                    with open(self.path, "rb") as handle:
                        self._map = mmap.mmap(handle.fileno(), st.st_size, access=mmap.ACCESS_READ)
                self._key = key
            return self._map

    def containing(self, run: str, *, at_end: bool) -> set[str]:
        """The words that contain `run` (that end with it, if `at_end`)."""
        blob = self._current()
        found: set[str] = set()
        for match in re.finditer(re.escape(run.encode("utf-8")), blob):
            end = blob.find(b"\n", match.end())
            end = len(blob) if end < 0 else end
            if at_end and end != match.end():
                continue
            start = blob.rfind(b"\n", 0, match.start()) + 1
            found.add(bytes(blob[start:end]).decode("utf-8"))
        return found


# --- writing -------------------------------------------------------------------------------------

@dataclass
class ChunkRecord:
    chunk_id: str
    text: str
    chunk_index: int
    seq: int | None = None  # the chunk's place in the store's order; None: after every other


@dataclass
class PaperRecord:
    paper_id: str
    title: str
    url: str
    chunks: list[ChunkRecord] = field(default_factory=list)
    # Bibliographic metadata as the chunks carry it (corpus.bibliographic_meta): what filters read.
    meta: Mapping[str, Any] = field(default_factory=dict)


class LexicalUpdate:
    """The one writer of an index (under the store's ingest lock): papers deleted and added, then
    committed with the stamp of the store they now match."""

    def __init__(self, settings: Settings, *, clear: bool = False) -> None:
        self.settings = settings
        self.path = settings.lexical_path
        self.path.mkdir(parents=True, exist_ok=True)
        if not tantivy.Index.exists(str(self.path)):
            tantivy.Index(SCHEMA, path=str(self.path))
        self.index = _open(self.path)
        if self.index.schema != SCHEMA:
            raise ValueError(f"the lexical index at {self.path} has other fields (an earlier version)")
        try:
            self.writer = self.index.writer(heap_size=settings.lexical_writer_heap_mb * 1_000_000,
                                            num_threads=settings.lexical_writer_threads)
        except ValueError as exc:
            raise StoreError(f"another process is writing the lexical index at {self.path} ({exc})",
                             hint="run one ingest at a time per index (ASSISTANT_LEXICAL_DIR)",
                             status=409) from exc
        self._words = _analyzers()["assistant_words"]
        self._new_words: set[str] = set()
        self._cleared = clear
        if clear:
            self.writer.delete_all_documents()
            self._next_seq = 0
        else:
            self._next_seq = self._last_seq() + 1

    def _last_seq(self) -> int:
        self.index.reload()
        searcher = self.index.searcher()
        chunks = Query.boolean_query([(Occur.Must, Query.all_query()),
                                      (Occur.MustNot, _term("kind", STAMP_KIND))])
        hits = searcher.search(chunks, limit=1, count=False, order_by_field="seq",
                               order=Order.Desc).hits
        return int(hits[0][0]) if hits and hits[0][0] is not None else -1

    def delete_papers(self, ids: Iterable[str]) -> None:
        for pid in ids:
            self.writer.delete_documents_by_term("paper_id", pid)

    def add_papers(self, papers: Iterable[PaperRecord]) -> None:
        """(Re)write papers: their old documents go, the new ones come."""
        for paper in papers:
            self.writer.delete_documents_by_term("paper_id", paper.paper_id)
            names = paper_name_fields(paper.title, [c.text for c in paper.chunks])
            year = _year(paper.meta.get("year"))
            for i, chunk in enumerate(paper.chunks):
                seq = chunk.seq if chunk.seq is not None else self._next_seq
                self._next_seq = max(self._next_seq, seq + 1)
                words = self._words.analyze(chunk.text)
                doc = tantivy.Document(chunk_id=chunk.chunk_id, paper_id=paper.paper_id,
                                       body=f"{paper.title}\n\n{chunk.text}", text=chunk.text,
                                       pairs=" ".join({f"{a}{PAIR}{b}" for a, b in pairwise(words)}))
                doc.add_bytes("meta", json.dumps({"title": paper.title, "url": paper.url,
                                                  "chunk_index": chunk.chunk_index}).encode())
                doc.add_unsigned("seq", seq)
                doc.add_integer("year", year)
                if i == 0:
                    doc.add_text("kind", PAPER_KIND)
                    for name, values in (("alias", names.aliases), ("gram", names.grams),
                                         ("introduced", names.introduced),
                                         ("spelled", sorted(names.spelled)),
                                         *filter_terms(paper.title, paper.meta).items()):
                        for value in values:
                            doc.add_text(name, value)
                    doc.add_bytes("filter_meta", json.dumps(filter_meta(paper.meta)).encode())
                    if names.ntitle:
                        doc.add_text("ntitle", names.ntitle)
                    doc.add_text("mention", " ".join(sorted(names.mentions)))
                    doc.add_unsigned("atoms", names.atoms)
                    doc.add_unsigned("title_words", names.title_words)
                self.writer.add_document(doc)
                self._new_words.update(words)

    def add_nodes(self, items: Sequence[tuple[Any, Sequence[TextNode]]]) -> None:
        """Papers as the store writes them: (paper, its chunk nodes)."""
        self.add_papers(_paper_record(paper.id, paper.title, paper.link, nodes) for paper, nodes in items)

    def commit(self, stamp: Mapping[str, Any]) -> None:
        """Publish every change with the stamp, then wait for the merges it started."""
        self._save_words()
        self.writer.delete_documents_by_term("kind", STAMP_KIND)
        doc = tantivy.Document(kind=STAMP_KIND)
        doc.add_bytes("meta", json.dumps(dict(stamp)).encode())
        self.writer.add_document(doc)
        self.writer.commit()
        self.close()

    def close(self) -> None:
        """Drop the writer; changes not committed are lost, as a crash would lose them."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.wait_merging_threads()

    def _save_words(self) -> None:
        """Words go to the token file before the documents that have them are committed, so the
        file always holds every word of the index (and, after a crash, maybe a few more)."""
        path = self.path / TOKENS_FILE
        if self._cleared:
            # A full rebuild: the file written anew, in one swap.
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("".join(f"{w}\n" for w in sorted(self._new_words)))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        else:
            self.index.reload()
            searcher = self.index.searcher()
            new = sorted(w for w in self._new_words if not searcher.doc_freq("text", w))
            if new:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write("".join(f"{w}\n" for w in new))
                    handle.flush()
                    os.fsync(handle.fileno())
        self._new_words.clear()


def _paper_record(pid: str, title: str, url: str, nodes: Sequence[TextNode]) -> PaperRecord:
    return PaperRecord(pid, title, url, [
        ChunkRecord(n.node_id, n.get_content(), int(n.metadata.get("chunk_index", i)))
        for i, n in enumerate(nodes)], dict(nodes[0].metadata) if nodes else {})


FILTER_KEYS = ("year", "authors", "venue", "doi", "arxiv_id", "collections")


def filter_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata filters check a candidate paper against (stored on its first chunk)."""
    return {k: meta[k] for k in FILTER_KEYS if meta.get(k) not in (None, "")}


def filter_terms(title: str, meta: Mapping[str, Any]) -> dict[str, list[str]]:
    """The terms a paper is found by for filters (filter_index.py narrows with them, then checks
    the stored metadata exactly)."""
    authors = {w for name in str(meta.get("authors", "")).split(";") for w in fold(name).split()}
    refs = {fold(title), str(meta.get("doi", "")).lower(), str(meta.get("arxiv_id", "")).lower()}
    return {"author": sorted(authors), "venue": sorted(set(fold(str(meta.get("venue", ""))).split())),
            "collection": list(split_collections(meta.get("collections", ""))),
            "ref": sorted(r for r in refs if r)}


def _year(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def rebuild(settings: Settings, store: PaperStore) -> None:
    """The index made anew from the store (under the ingest lock): chunks read page by page in the
    store's order, each paper written once all of its chunks are read. Readers see the old index
    until the new one is committed whole. An index that cannot take the new documents (damaged, or
    of another schema version) is built beside and swapped in instead."""
    if LexicalIndex(settings.lexical_path).exists:  # readable, and of this version's fields
        update = None
        try:
            update = LexicalUpdate(settings, clear=True)
            _fill(update, store)
            update.commit(store_stamp(store, store.paper_hashes()))
            return
        except StoreError:
            raise
        except (ValueError, OSError) as exc:
            log.warning("lexical index at %s cannot be rewritten in place (%s); building it anew",
                        settings.lexical_path, exc)
        finally:
            if update is not None:
                update.close()
    _rebuild_beside(settings, store)


def _fill(update: LexicalUpdate, store: PaperStore) -> None:
    pending: dict[str, PaperRecord] = {}
    wanted: dict[str, int] = {}
    seq = 0
    for page in store._pages(store.chunks, ["documents", "metadatas"]):
        ready = []
        for cid, doc, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            meta = meta or {}
            pid = str(meta.get("paper_id", cid.rsplit("-", 1)[0]))
            paper = pending.get(pid)
            if paper is None:
                paper = pending[pid] = PaperRecord(pid, str(meta.get("title", "")), str(meta.get("url", "")),
                                                   meta=meta)
                wanted[pid] = int(meta.get("n_chunks", 0) or 0)
            paper.chunks.append(ChunkRecord(cid, doc or "", int(meta.get("chunk_index", 0)), seq))
            seq += 1
            if len(paper.chunks) == wanted[pid]:
                ready.append(pending.pop(pid))
        update.add_papers(ready)
    update.add_papers(pending.values())  # papers whose chunk count does not match their record


def _rebuild_beside(settings: Settings, store: PaperStore) -> None:
    path = settings.lexical_path
    foreign = [p.name for p in path.iterdir() if not INDEX_FILES.match(p.name)] if path.exists() else []
    if foreign:
        raise StoreError(f"{path} holds files that are not a lexical index ({', '.join(foreign[:3])}); "
                         "refusing to replace it",
                         hint="point ASSISTANT_LEXICAL_DIR at an empty or index directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    old = path.with_name(path.name + ".old")
    try:
        update = LexicalUpdate(settings.model_copy(update={"lexical_dir": tmp}), clear=True)
        try:
            _fill(update, store)
            update.commit(store_stamp(store, store.paper_hashes()))
        finally:
            update.close()
        shutil.rmtree(old, ignore_errors=True)  # a crash mid-swap can leave it behind
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_index(settings: Settings, store: PaperStore) -> tuple[LexicalIndex, bool]:
    """The index for reading, and whether it matches the store. A stale, damaged or missing index
    is rebuilt here when this process may write it (not `lexical_read_only`) and no ingest is
    running (that ingest brings it in step); otherwise it is used as it is."""
    index = LexicalIndex(settings.lexical_path)
    expected = store_stamp(store)
    if _matches(index, expected):
        return index, True
    if settings.lexical_read_only:
        log.warning("lexical index at %s does not match the store (index: %s, store: %s); using it "
                    "as it is until the writer's next ingest", settings.lexical_path, index.stamp()
                    if index.exists else "none", expected)
        return index, False
    from assistant.store import ingest_lock

    try:
        with ingest_lock(settings, timeout=0):
            log.warning("lexical index at %s does not match the store (index: %s, store: %s); "
                        "rebuilding it from the store", settings.lexical_path,
                        index.stamp() if index.exists else "none", expected)
            rebuild(settings, store)
    except StoreError as exc:
        if exc.status != 409:
            raise
        log.info("an ingest is writing the store; it brings the lexical index in step")
        return index, False
    index = LexicalIndex(settings.lexical_path)
    return index, _matches(index, store_stamp(store))


def writable_in_step(settings: Settings, store: PaperStore, papers: str,
                     legacy: str | None = None, *, clearing: bool) -> bool:
    """Whether an ingest can write its papers into the index as it goes (else it rebuilds the
    index from the store after its writes): the index matches the store (`papers`: the papers'
    fingerprint; `legacy`: the same papers' legacy_fingerprint, where every record was read), or
    it is being cleared, or there is none yet and the store is empty."""
    index = LexicalIndex(settings.lexical_path)
    if index.exists:
        if clearing:
            return True
        stamp = index.stamp()
        return stamp_matches(stamp, store_stamp(store, papers=papers)) or (
            legacy is not None and stamp_matches(stamp, store_stamp(store, papers=legacy)))
    # None readable: a new one can start only where no other (damaged, earlier version) lies.
    on_disk = settings.lexical_path.is_dir() and tantivy.Index.exists(str(settings.lexical_path))
    return not on_disk and (clearing or (store.count_papers() == 0 and store.count_chunks() == 0))


def index_is_fresh(settings: Settings, store: PaperStore) -> bool:
    """Whether the index on disk matches the store, every paper's content hash included (reads
    every paper record: what an ingest checks, not what opening a store checks)."""
    return _matches(LexicalIndex(settings.lexical_path), store_stamp(store, store.paper_hashes()))


def _matches(index: LexicalIndex, expected: Mapping[str, Any]) -> bool:
    return index.exists and stamp_matches(index.stamp(), expected) and \
        index.count_chunks() == expected["chunks"]


class Vocabulary:
    """The corpus vocabulary (BM25's stemmed terms), to tell whether a question's words occur in
    the corpus at all: one signal for abstaining. Looked up in the index per word, stemmed as the
    index stems."""

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index
        self._stop = set(STOPWORDS_EN)

    def variant_prefixes(self, text: str) -> list[str]:
        """Prefixes of the text's words that the corpus only has with another suffix
        ("echocardiography" when the corpus says "echocardiogram"), for a prefix search."""
        prefixes = []
        for w in WORD.findall(text.lower()):
            if (w not in self._stop and len(w) >= PREFIX + 2 and w[:PREFIX] not in prefixes
                    and not self.index.has_term(self.index.stem(w))
                    and self.index.has_prefix(w[:PREFIX])):
                prefixes.append(w[:PREFIX])
        return prefixes

    def knows(self, word: str) -> bool:
        """Whether the corpus has the (lower-case) word, another form of it, or a longer word's
        stem-resistant variant ("echocardiography" when it says "echocardiogram")."""
        # Prefixes let "echocardiography" count as known when the corpus says "echocardiogram".
        return self.index.has_term(self.index.stem(word)) or (
            len(word) >= PREFIX + 2 and self.index.has_prefix(word[:PREFIX]))

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
