"""The Chroma store: a local PersistentClient by default, a Chroma server when `chroma_url` is set.

Two collections per store:
- `<name>_chunks`: one record per chunk, written through llama-index's ChromaVectorStore so that
  llama-index retrievers read it back as nodes. Its collection metadata is the store's manifest
  (embedding model, chunk settings, generation).
- `<name>_papers`: one record per paper (whole abstract, title, links, the mean of its chunk
  vectors). A paper record is written only after all of its chunks, so it doubles as the commit
  marker that makes an interrupted ingest resumable.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from assistant import manifest
from assistant.corpus import Paper, bibliographic_meta, split_collections
from assistant.embedding import embedder_id
from assistant.errors import StoreError
from assistant.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Version 2: chunks and papers carry bibliographic metadata (authors, int year, venue, ids,
# collections) that filters read. Stores written before it open and answer as before; filtering
# one asks for a rebuild. Not part of the compatibility check for that reason.
METADATA_VERSION = 2
# Records per Chroma get() page, and ids per delete or `$in` filter, to bound memory on large
# stores. Larger read pages are not the fix for full reads: every paper's keys at 50k papers took
# 4.9-5.3 s in pages of 2k and 3.6-4.6 s in 10k, which held 100-400 MB more (bench/store_reads.py).
PAGE = 2_000
# The manifest entry holding the papers' fingerprint (lexical.fingerprint) as the last ingest left
# it, so that the next one need not read every paper record to check the lexical index.
FINGERPRINT_KEY = "papers_fingerprint"


@dataclass(frozen=True)
class PaperRecord:
    id: str
    title: str
    abstract: str
    url: str
    links: tuple[str, ...]
    source: str
    authors: str = ""  # names joined by "; "
    year: str = ""
    venue: str = ""
    doi: str = ""
    arxiv_id: str = ""
    pmid: str = ""
    keywords: str = ""  # joined by "; "
    collections: tuple[str, ...] = ()

    @property
    def author_list(self) -> list[str]:
        return [a.strip() for a in self.authors.split(";") if a.strip()]

    @property
    def keyword_list(self) -> list[str]:
        return [k.strip() for k in self.keywords.split(";") if k.strip()]

    def metadata(self) -> dict[str, Any]:
        """The bibliographic fields, for JSON output."""
        return {"authors": self.author_list, "year": int(self.year) if self.year.isdigit() else None,
                "venue": self.venue, "doi": self.doi, "arxiv_id": self.arxiv_id, "pmid": self.pmid,
                "url": self.url, "keywords": self.keyword_list, "collections": list(self.collections)}


@dataclass(frozen=True)
class StoredKeys:
    """What an ingest needs to know of a stored paper: its hash, identifiers and collections."""

    paper_hash: str
    title: str
    identifiers: tuple[tuple[str, str], ...]
    collections: tuple[str, ...]


def expected_manifest(settings: Settings) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "embed_model": embedder_id(settings),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
    }


def store_label(settings: Settings) -> str:
    return settings.chroma_url or str(settings.store_dir)


def _client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError(f"ASSISTANT_CHROMA_URL {settings.chroma_url!r} is not an http(s) URL")
        try:
            return _http_client(settings, lambda: chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            ))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {exc}",
                hint="start it with `chroma run --path DIR`, or unset ASSISTANT_CHROMA_URL to use "
                "the local store",
                status=503,
            ) from exc
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(settings.store_dir), settings=chroma_settings)
    except Exception as exc:
        # Chroma caches the half-started system per path; without this, every later open in this
        # process fails with an unrelated AttributeError instead of the real cause.
        _forget_local_client(settings.store_dir)
        raise StoreError(
            f"the store at {settings.store_dir} cannot be opened ({type(exc).__name__}: {exc})",
            hint="rebuild it with `assistant ingest --rebuild`",
            status=503,
        ) from exc


def _http_client(settings: Settings, make: Any) -> Any:
    """A Chroma HTTP client whose requests time out. Chroma's own has no timeout, so a hung server
    (stopped, or a network black hole) would hang every request, and the client's creation, for
    ever; creation runs on a thread for the same reason."""
    import httpx

    box: dict[str, Any] = {}

    def create() -> None:
        try:
            box["client"] = make()
        except Exception as exc:
            box["error"] = exc

    worker = threading.Thread(target=create, name="chroma-connect", daemon=True)
    worker.start()
    worker.join(settings.chroma_timeout)
    if worker.is_alive():
        raise StoreError(
            f"the Chroma server at {settings.chroma_url} did not answer within "
            f"{settings.chroma_timeout:g}s",
            hint="check that `chroma run` is up and not stuck (setting ASSISTANT_CHROMA_TIMEOUT)",
            status=503,
        )
    if "error" in box:
        raise box["error"]
    client = box["client"]
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(settings.chroma_timeout, connect=min(5.0, settings.chroma_timeout))
    else:  # another chromadb layout: requests keep the client's own (absent) timeout
        log.warning("cannot set a timeout on the Chroma HTTP client (%s)", type(session).__name__)
    return client


def wipe_local_store(store_dir: Path) -> None:
    """Delete a local store directory, refusing anything that does not look like one."""
    if not store_dir.exists():
        return
    entries = [p for p in store_dir.iterdir() if p.name not in (".gitkeep", ".ingest.lock")]
    ours = {"chroma.sqlite3", "bm25", "lexical"}
    if entries and not any(p.name in ours for p in entries):
        raise StoreError(
            f"{store_dir} holds files that are not a store; refusing to delete them",
            hint="point ASSISTANT_STORE_DIR at an empty or store directory",
        )
    _forget_local_client(store_dir)
    for entry in entries:
        if entry.is_dir():
            _remove_tree(entry)
        else:
            entry.unlink()


def _remove_tree(path: Path, attempts: int = 10) -> None:
    """shutil.rmtree, again when a file appeared or vanished meanwhile: a reader of the lexical
    index elsewhere (tantivy reloads on commit, from a thread that watches the index and takes a
    lock file in its directory) may react to the removal itself."""
    for attempt in range(attempts):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            if not path.exists():
                return
            if attempt == attempts - 1:
                raise
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == attempts - 1:
                raise
        time.sleep(0.05)


def _forget_local_client(store_dir: Path) -> None:
    """Drop Chroma's cached client system for this one store, so the next client starts afresh on
    the new files. Not `clear_system_cache()`: that drops every store's system, and a later client
    of another store then runs a second system beside the live one, whose clients stop seeing new
    writes in vector search."""
    from chromadb.api.client import SharedSystemClient

    systems = getattr(SharedSystemClient, "_identifier_to_system", None)
    refcounts = getattr(SharedSystemClient, "_identifier_to_refcount", None)
    if not isinstance(systems, dict):  # another chromadb layout: fall back to the blunt reset
        SharedSystemClient.clear_system_cache()
        return
    systems.pop(str(store_dir), None)
    if isinstance(refcounts, dict):
        refcounts.pop(str(store_dir), None)


# A paper record's vector. Records are looked up by id, never by vector, but Chroma needs one per
# record and loads a collection's whole HNSW index into the reading process on any read: a mean
# chunk vector per paper cost ~1.7 KB of every app's memory per paper (85 MB at 50k papers). Stores
# written before keep their vectors and work as before; `ingest --drop-paper-vectors` drops them.
PAPER_VECTOR = [1.0]


class PaperStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.label = store_label(settings)
        self.client = _client(settings)
        self.open_collections()

    def open_collections(self) -> None:
        self._paper_dim: int | None = None  # a paper record's vector width (_paper_vector)
        try:
            self.chunks = self.client.get_or_create_collection(
                f"{self.settings.collection}_chunks",
                embedding_function=None,
                # ef_search only applies to a new collection here; tune_index() updates an old one.
                configuration={"hnsw": {"space": "cosine",
                                        "ef_search": self.settings.hnsw_ef_search}},
            )
            self.papers = self.client.get_or_create_collection(
                f"{self.settings.collection}_papers",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            raise self.unavailable(exc) from exc
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)

    def unavailable(self, exc: Exception) -> StoreError:
        if self.settings.chroma_url:
            return StoreError(
                f"the Chroma server at {self.settings.chroma_url} is not answering "
                f"({type(exc).__name__})",
                hint="check that `chroma run` is up; the app reconnects once it is back",
                status=503,
            )
        return StoreError(
            f"the store at {self.settings.store_dir} is unreadable ({type(exc).__name__}: {exc})",
            hint="rebuild it with `assistant ingest --rebuild`",
            status=503,
        )

    # --- manifest -------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        # Fetched afresh: the Collection object keeps a snapshot, and other processes ingest too.
        try:
            fresh = self.client.get_collection(self.chunks.name, embedding_function=None)
        except Exception as exc:
            raise self.unavailable(exc) from exc
        return dict(fresh.metadata or {})

    @property
    def generation(self) -> int:
        return int(self.manifest.get("generation", 0))

    @property
    def dirty(self) -> bool:
        return bool(self.manifest.get("dirty", False))

    @property
    def papers_fingerprint(self) -> str | None:
        """The papers' fingerprint (lexical.fingerprint) as the last ingest left it in the
        manifest; None where it cannot be trusted: none kept (a store written before it, or by
        other code), or a write under way or cut short."""
        current = self.manifest
        value = current.get(FINGERPRINT_KEY)
        return None if current.get("dirty") or not isinstance(value, str) else value

    def check_compatible(self) -> None:
        """A store built with another model or chunking cannot be mixed with these settings."""
        current = self.manifest
        if "embed_model" not in current:
            return
        expected = expected_manifest(self.settings)
        diffs = [
            f"{key}: store has {current.get(key)!r}, settings ask for {value!r}"
            for key, value in expected.items()
            if current.get(key) != value
        ]
        if diffs:
            raise StoreError(
                f"the store at {self.label} was built with other settings ({'; '.join(diffs)})",
                hint="rebuild it with `assistant ingest --rebuild`, or set the settings back",
            )

    def tune_index(self) -> None:
        """Bring the chunk index's search breadth (ef_search) to the settings' value; a write, so
        done by ingests only. Processes that already opened the store see it after a restart."""
        current = (self.chunks.configuration or {}).get("hnsw") or {}
        if current.get("ef_search") != self.settings.hnsw_ef_search:
            self.chunks.modify(configuration={"hnsw": {"ef_search": self.settings.hnsw_ef_search}})

    @property
    def metadata_version(self) -> int:
        """METADATA_VERSION for a store written with bibliographic metadata (or still empty),
        1 for one written before."""
        manifest = self.manifest
        if "embed_model" not in manifest:
            return METADATA_VERSION
        return int(manifest.get("metadata_version", 1))

    def set_manifest(self, *, generation: int, dirty: bool,
                     papers_fingerprint: str | None = None) -> None:
        """Write the manifest; `papers_fingerprint` is kept only when given (whoever changes the
        papers without knowing it leaves none, and the next ingest reads every record)."""
        current = self.manifest
        version = current.get("metadata_version")
        if version is None:  # an old store keeps saying it is old; a new one starts current
            empty = self.count_papers() == 0 and self.count_chunks() == 0
            version = METADATA_VERSION if empty else 1
        metadata = {**expected_manifest(self.settings), "generation": generation, "dirty": dirty,
                    "metadata_version": version}
        if papers_fingerprint is not None:
            metadata[FINGERPRINT_KEY] = papers_fingerprint
        self.chunks.modify(metadata=metadata)
        if not self.settings.chroma_url:  # the copy `assistant status` reads (manifest.py)
            manifest.save(self.settings.store_dir, {**metadata, "papers": self.count_papers(),
                                                    "chunks": self.count_chunks()})

    # --- reads ----------------------------------------------------------------------------
    def count_chunks(self) -> int:
        return int(self.chunks.count())

    def count_papers(self) -> int:
        return int(self.papers.count())

    def _pages(self, collection: Any, include: list[str], **where: Any) -> Iterator[dict]:
        offset = 0
        while True:
            page = collection.get(include=include, limit=PAGE, offset=offset, **where)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def paper_hashes(self) -> dict[str, str]:
        return self._paper_field("paper_hash")

    def paper_keys(self, ids: Iterable[str] | None = None, *,
                   pmids: Iterable[str] = ()) -> dict[str, StoredKeys]:
        """Every stored paper's hash, identifiers (DOI, arXiv id, PMID) and collections; or only
        those of the papers with these ids and of those with these PMIDs."""
        keys: dict[str, StoredKeys] = {}
        if ids is None:
            pages: Iterable[dict] = self._pages(self.papers, ["metadatas"])
        else:
            wanted, numbers = sorted(set(ids)), sorted({p for p in pmids if p})
            pages = [self.papers.get(ids=wanted[i : i + PAGE], include=["metadatas"])
                     for i in range(0, len(wanted), PAGE)]
            pages += [self.papers.get(where={"pmid": {"$in": numbers[i : i + PAGE]}},
                                      include=["metadatas"]) for i in range(0, len(numbers), PAGE)]
        for page in pages:
            for pid, meta in zip(page["ids"], page["metadatas"], strict=True):
                meta = meta or {}
                idents = (("DOI", str(meta.get("doi", "")).lower()),
                          ("arXiv id", str(meta.get("arxiv_id", "")).lower()),
                          ("PMID", str(meta.get("pmid", ""))))
                keys[pid] = StoredKeys(str(meta.get("paper_hash", "")), str(meta.get("title", "")),
                                       tuple((k, v) for k, v in idents if v),
                                       split_collections(meta.get("collections", "")))
        return keys

    def chunk_paper_ids(self) -> set[str]:
        ids: set[str] = set()
        for page in self._pages(self.chunks, []):
            ids.update(cid.rsplit("-", 1)[0] for cid in page["ids"])
        return ids

    def paper_titles(self) -> dict[str, str]:
        return self._paper_field("title")

    def _paper_field(self, name: str) -> dict[str, str]:
        """paper id -> one metadata field of its paper record."""
        values: dict[str, str] = {}
        for page in self._pages(self.papers, ["metadatas"]):
            for pid, meta in zip(page["ids"], page["metadatas"], strict=True):
                values[pid] = str((meta or {}).get(name, ""))
        return values

    def get_papers(self, ids: Sequence[str]) -> dict[str, PaperRecord]:
        if not ids:
            return {}
        got = self.papers.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            pid: _record(pid, doc, meta)
            for pid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }

    def all_papers(self, *, abstracts: bool = True) -> list[PaperRecord]:
        """Every paper record; `abstracts=False` leaves the abstracts out (empty), for lists of a
        large store: they are most of a record's memory."""
        records = []
        include = ["documents", "metadatas"] if abstracts else ["metadatas"]
        for page in self._pages(self.papers, include):
            docs = page["documents"] if abstracts else [None] * len(page["ids"])
            for pid, doc, meta in zip(page["ids"], docs, page["metadatas"], strict=True):
                records.append(_record(pid, doc, meta))
        return records

    def paper_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Each paper's mean chunk vector (unit length), in the order of `ids`; from the chunks,
        since paper records carry none (PAPER_VECTOR). A paper without chunks gets zeros."""
        sums: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), PAGE):
            batch = list(ids[start : start + PAGE])
            got = self.chunks.get(where={"paper_id": {"$in": batch}},
                                  include=["embeddings", "metadatas"])
            for vector, meta in zip(got["embeddings"], got["metadatas"], strict=True):
                pid = str((meta or {}).get("paper_id", ""))
                v = np.asarray(vector, dtype=np.float32)
                sums[pid] = sums[pid] + v if pid in sums else v
        dim = next((len(v) for v in sums.values()), 0)
        rows = [np.asarray(_mean_vector(sums[pid][None, :]), dtype=np.float32) if pid in sums
                else np.zeros(dim, dtype=np.float32) for pid in ids]
        return np.vstack(rows) if rows and dim else np.zeros((len(ids), 0), dtype=np.float32)

    def _paper_vector(self, vectors: np.ndarray) -> list[float]:
        """What a new paper record carries: PAPER_VECTOR, or in a store written before it, the
        mean chunk vector its collection was built with (Chroma fixes a collection's width)."""
        return PAPER_VECTOR if self._paper_width() == len(PAPER_VECTOR) else _mean_vector(vectors)

    def _paper_width(self) -> int:
        if self._paper_dim is None:
            got = self.papers.get(limit=1, include=["embeddings"])
            embeddings = got.get("embeddings")
            self._paper_dim = (len(embeddings[0]) if embeddings is not None and len(embeddings)
                               else len(PAPER_VECTOR))
        return self._paper_dim

    def all_chunk_nodes(self) -> list[BaseNode]:
        nodes: list[BaseNode] = []
        for page in self._pages(self.chunks, ["documents", "metadatas"]):
            for doc, meta in zip(page["documents"], page["metadatas"], strict=True):
                node = metadata_dict_to_node(meta, text=doc)
                nodes.append(node)
        return nodes

    # --- writes ---------------------------------------------------------------------------
    def write_papers(self, items: Sequence[tuple[Paper, list[TextNode], np.ndarray]]) -> None:
        """(Re)write papers: old records and chunks go first, the paper record last."""
        ids = [paper.id for paper, _, _ in items]
        self.papers.delete(ids=ids)
        self.chunks.delete(where={"paper_id": {"$in": ids}})
        nodes: list[BaseNode] = []
        for _paper, paper_nodes, vectors in items:
            for node, vector in zip(paper_nodes, vectors, strict=True):
                node.embedding = vector.tolist()
                nodes.append(node)
        if nodes:
            self.vector_store.add(nodes)
        self.papers.upsert(
            ids=ids,
            documents=[paper.abstract for paper, _, _ in items],
            metadatas=[_paper_meta(paper, len(nodes_)) for paper, nodes_, _ in items],
            embeddings=[self._paper_vector(vectors) for _, _, vectors in items],
        )

    def delete_papers(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), PAGE):
            batch = ids[start : start + PAGE]
            self.papers.delete(ids=batch)
            self.chunks.delete(where={"paper_id": {"$in": batch}})

    def drop_paper_vectors(self) -> int:
        """Rewrite the paper records of a store written before PAPER_VECTOR with it instead of
        their mean vectors (what every app then holds shrinks by ~1.7 KB per paper); returns the
        records rewritten, 0 if there was nothing to do. The caller holds the ingest lock. Marked
        dirty meanwhile: cut short, it leaves papers missing, which the next ingest writes again."""
        if not self.count_papers() or self._paper_width() == len(PAPER_VECTOR):
            return 0
        # Held whole (~2 KB a paper): Chroma fixes a collection's width, so the records can only
        # move to a new collection, and the old one must go first to free its name.
        records: list[tuple[str, str, dict]] = []
        for page in self._pages(self.papers, ["documents", "metadatas"]):
            records += zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        generation, fingerprint = self.generation, self.papers_fingerprint
        self.set_manifest(generation=generation, dirty=True)
        self.client.delete_collection(self.papers.name)
        self.open_collections()
        for start in range(0, len(records), PAGE):
            batch = records[start : start + PAGE]
            self.papers.add(ids=[r[0] for r in batch], documents=[r[1] for r in batch],
                            metadatas=[r[2] for r in batch], embeddings=[PAPER_VECTOR] * len(batch))
        # The same papers with the same hashes: the fingerprint still holds.
        self.set_manifest(generation=generation, dirty=False, papers_fingerprint=fingerprint)
        return len(records)

    def reset(self) -> None:
        """Drop both collections. Paper records (the commit markers) go first, with the store
        marked dirty: a reset cut short leaves chunks without papers, which the next ingest redoes
        or removes, never papers without chunks, which it would take for complete."""
        if self.manifest:
            self.chunks.modify(metadata={**self.manifest, "dirty": True})
        for name in (self.papers.name, self.chunks.name):
            self.client.delete_collection(name)
        self.open_collections()


def _mean_vector(vectors: np.ndarray) -> list[float]:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean)) or 1.0
    return (mean / norm).tolist()


def _paper_meta(paper: Paper, n_chunks: int) -> dict[str, Any]:
    return {
        "title": paper.title,
        "paper_hash": paper.content_hash,
        "n_chunks": n_chunks,
        "url": paper.link,
        "links": " ".join(paper.links),
        "source": paper.source,
        "keywords": paper.keywords,
        **bibliographic_meta(paper),
    }


def head_record(head: Mapping[str, Any]) -> PaperRecord:
    """A paper record without its abstract, from the lexical index's head of it
    (LexicalIndex.paper_heads)."""
    return _record(str(head["id"]), None, dict(head))


def _record(pid: str, doc: str | None, meta: dict | None) -> PaperRecord:
    meta = meta or {}
    return PaperRecord(
        id=pid,
        title=str(meta.get("title", "")),
        abstract=doc or "",
        url=str(meta.get("url", "")),
        links=tuple(str(meta.get("links", "")).split()),
        source=str(meta.get("source", "")),
        authors=str(meta.get("authors", "")),
        year=str(meta.get("year", "")),
        venue=str(meta.get("venue", "")),
        doi=str(meta.get("doi", "")),
        arxiv_id=str(meta.get("arxiv_id", "")),
        pmid=str(meta.get("pmid", "")),
        keywords=str(meta.get("keywords", "")),
        collections=split_collections(meta.get("collections", "")),
    )


@contextmanager
def ingest_lock(settings: Settings, timeout: float | None = None) -> Iterator[None]:
    """One writer per store (and its lexical index). A local file lock: it covers every process on
    this machine, which is where ingests of a local store run (for a shared Chroma server, run
    ingests from one host). `timeout` overrides `ingest_lock_timeout` (0: do not wait)."""
    from filelock import FileLock, Timeout

    settings.store_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.store_dir / ".ingest.lock"))
    try:
        lock.acquire(timeout=settings.ingest_lock_timeout if timeout is None else timeout)
    except Timeout:
        raise StoreError(
            f"another ingest is writing to {store_label(settings)}; waited "
            f"{settings.ingest_lock_timeout:g}s",
            hint="wait for it to finish, or raise ASSISTANT_INGEST_LOCK_TIMEOUT",
            status=409,
        ) from None
    try:
        yield
    finally:
        lock.release()

