"""Ingestion: corpus files -> chunks -> embeddings -> Chroma (+ the lexical index), idempotent and
resumable.

Protocol (see store.py): the store is marked dirty, each batch of papers is written chunks-first,
paper-record-last (and handed to the lexical index's writer), the store is marked clean, and the
lexical index commits the papers written with the stamp of the store it now matches. A run killed
anywhere leaves papers either complete (record present, hash matching) or incomplete (redone next
run), and an index whose stamp no longer matches the store, which the next ingest rebuilds whole.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from assistant.chunks import chunk_paper, embed_text
from assistant.corpus import Paper, load_papers
from assistant.embedding import Embedder, get_embedder
from assistant.errors import CorpusError
from assistant.lexical import (
    LexicalIndex,
    LexicalUpdate,
    fingerprint,
    fingerprint_update,
    legacy_fingerprint,
    store_stamp,
    writable_in_step,
)
from assistant.lexical import rebuild as rebuild_lexical
from assistant.settings import Settings
from assistant.store import PaperStore, StoredKeys, ingest_lock, wipe_local_store

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    papers_added: int = 0
    papers_updated: int = 0
    papers_unchanged: int = 0
    papers_removed: int = 0
    papers_total: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    duplicates: list[str] = field(default_factory=list)  # merged duplicates, one line each
    skipped: list[str] = field(default_factory=list)  # records without an abstract or title
    warnings: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # file -> the format it was read as

    def line(self) -> str:
        text = (
            f"{self.papers_added} added, {self.papers_updated} updated, "
            f"{self.papers_unchanged} unchanged, {self.papers_removed} removed; "
            f"store holds {self.papers_total} papers in {self.chunks_total} chunks "
            f"({self.seconds:.1f}s)"
        )
        if self.duplicates:
            text += f"; {len(self.duplicates)} duplicate(s) merged"
        if self.skipped:
            text += f"; {len(self.skipped)} record(s) without an abstract or title skipped"
        return text

    def as_json(self) -> dict[str, object]:
        return asdict(self)


ProgressFn = Callable[[int, int], None]


def ingest(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    rebuild: bool = False,
    prune: bool = False,
    progress: bool | None = None,
    on_progress: ProgressFn | None = None,
    embedder: Embedder | None = None,
    fmt: str | None = None,
    collection: str | None = None,
    drop_paper_vectors: bool = False,
    verify: bool = False,
) -> IngestSummary:
    """Bring the store in step with the corpus files. Validates every file before writing.
    `fmt` forces an input format (assistant.formats); `collection` puts every paper of the files
    into that named collection as well; `drop_paper_vectors` first rewrites the paper records of a
    store written before PAPER_VECTOR (store.py) without their vectors; `verify` reads every paper
    record to check the store against the lexical index whatever its size (_stored_keys).

    progress: True shows a progress bar on stderr, False nothing; None (the default) a bar when
    stderr is a terminal, else plain progress lines (a log, or a pipe, sees them as they come)."""
    started = time.perf_counter()
    files = [Path(p) for p in (paths or settings.corpus_paths)]
    report = load_papers(
        files,
        max_title_chars=settings.max_title_chars,
        max_abstract_chars=settings.max_abstract_chars,
        max_bytes=settings.max_corpus_bytes,
        fmt=fmt,
        collection=collection,
    )
    summary = IngestSummary(duplicates=report.duplicates, skipped=report.skipped,
                            formats=report.formats)
    for line in report.duplicates + report.skipped:
        log.warning("%s", line)

    with ingest_lock(settings):
        if rebuild and not settings.chroma_url:
            wipe_local_store(settings.store_dir)
        store = PaperStore(settings)
        if rebuild and settings.chroma_url:
            store.reset()
        store.check_compatible()
        store.tune_index()
        if drop_paper_vectors:
            dropped = store.drop_paper_vectors()
            summary.warnings.append(f"{dropped} paper records rewritten without their vectors"
                                    if dropped else "paper records carry no vectors already")

        keys, papers_fp, legacy_fp = _stored_keys(settings, store, report.papers,
                                                  verify=verify or prune or rebuild)
        stored = {pid: k.paper_hash for pid, k in keys.items()}
        papers, kept = _against_store(report.papers, keys, summary)
        wanted = {p.id: p for p in papers} | dict.fromkeys(kept)
        to_write = [p for p in papers if stored.get(p.id) != p.content_hash]
        summary.papers_added = sum(1 for p in to_write if p.id not in stored)
        summary.papers_updated = len(to_write) - summary.papers_added
        summary.papers_unchanged = len(papers) - len(to_write)
        removed = [pid for pid in stored if pid not in wanted] if prune else []
        summary.papers_removed = len(removed)
        # Chunks without a paper record are leftovers of an interrupted write.
        orphans = (store.chunk_paper_ids() - set(stored)) if store.dirty else set()
        if to_write:
            _say(progress, f"ingest: {len(to_write)} paper(s) to embed, {summary.papers_unchanged} "
                           "unchanged; loading the embedding model")
            # Loaded only now: after the compatibility check (a mismatch is reported without a
            # model load) and before the first write (a model that fails to load changes nothing).
            embedder = embedder or get_embedder(settings)

        # The lexical index takes this ingest's papers only if it matched the store before it;
        # otherwise (a crash, a write behind its back, a restored copy) it is rebuilt after it.
        in_step = writable_in_step(settings, store, papers_fp, legacy_fp, clearing=rebuild)
        # Updated from the papers this ingest changes only (see lexical.fingerprint).
        new_fp = fingerprint_update(
            papers_fp, {pid: stored[pid] for pid in [*removed, *(p.id for p in to_write)]
                        if pid in stored},
            {p.id: p.content_hash for p in to_write})
        if to_write or removed or orphans or store.dirty or not in_step:
            # The index writer first: an index another process writes stops us before any change.
            lexical = LexicalUpdate(settings, clear=rebuild) if in_step else None
            generation = store.generation + 1
            try:
                store.set_manifest(generation=generation, dirty=True)
                if orphans:
                    gone = sorted(orphans - {p.id for p in to_write})
                    store.delete_papers(gone)
                    if lexical:
                        lexical.delete_papers(gone)
                if to_write:
                    assert embedder is not None
                    _write(store, to_write, settings, embedder, progress, on_progress, summary,
                           lexical)
                if removed:
                    store.delete_papers(removed)
                    if lexical:
                        lexical.delete_papers(removed)
                store.set_manifest(generation=generation, dirty=False, papers_fingerprint=new_fp)
                # A crash before the commit leaves the index at its old stamp: stale, so rebuilt.
                if lexical:
                    lexical.commit(store_stamp(store, papers=new_fp))
                else:
                    rebuild_lexical(settings, store)
            finally:
                if lexical:
                    lexical.close()
        elif store.papers_fingerprint != papers_fp or \
                LexicalIndex(settings.lexical_path).stamp().get("papers") != papers_fp:
            # A store or index from before the kept fingerprint, found in step by reading every
            # record: both stamped with it now, so that later ingests need not read them.
            store.set_manifest(generation=store.generation, dirty=False, papers_fingerprint=papers_fp)
            restamp = LexicalUpdate(settings)
            try:
                restamp.commit(store_stamp(store, papers=papers_fp))
            finally:
                restamp.close()

        summary.papers_total = store.count_papers()
        summary.chunks_total = store.count_chunks()
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info("ingest: %s", summary.line())
    return summary


def ingest_files(paths: Sequence[Path], settings: Settings, collection: str | None = None,
                 progress: ProgressFn | None = None, fmt: str | None = None) -> IngestSummary:
    """Ingest files a user brought (an upload): every supported format, chosen by name and content
    unless `fmt` forces one; papers go into the shared store and, when `collection` is given, into
    that named collection too. `progress(done, total)` is called as chunks are embedded. A file that
    cannot be read raises CorpusError (an AssistantError) and changes nothing."""
    if not paths:
        raise CorpusError("no files to ingest")
    return ingest(settings, list(paths), progress=False, on_progress=progress, fmt=fmt,
                  collection=collection)


def _stored_keys(settings: Settings, store: PaperStore, papers: Sequence[Paper], *, verify: bool
                 ) -> tuple[dict[str, StoredKeys], str, str | None]:
    """What the store holds that this ingest needs (StoredKeys by paper id), the papers'
    fingerprint, and their legacy fingerprint where it was computed.

    Reads every paper record when asked to verify, when the store is small enough
    (`ingest_verify_max_papers`) or when the fingerprint the manifest keeps cannot be trusted (none
    kept, a dirty store, an index out of step): what catches a paper rewritten outside an ingest.
    Otherwise reads only the records of the papers it brings, by id, and those sharing one of their
    identifiers (DOIs and arXiv ids found through the lexical index, PMIDs through Chroma), so that
    adding papers to a large store costs what the papers cost."""
    kept = None if verify else store.papers_fingerprint
    if kept is not None and store.count_papers() > settings.ingest_verify_max_papers:
        index = LexicalIndex(settings.lexical_path)
        if index.exists and writable_in_step(settings, store, kept, clearing=False):
            refs = {value for p in papers for kind, value in p.identifiers() if kind != "PMID"}
            ids = {p.id for p in papers} | index.papers_with_refs(refs)
            return store.paper_keys(ids, pmids=[p.pmid for p in papers]), kept, None
    keys = store.paper_keys()
    hashes = {pid: k.paper_hash for pid, k in keys.items()}
    return keys, fingerprint(hashes), legacy_fingerprint(hashes)


def _against_store(papers: list[Paper], keys: dict[str, StoredKeys], summary: IngestSummary
                   ) -> tuple[list[Paper], list[str]]:
    """The papers to bring in step, given what the store holds: a paper stored under another
    title but with the same DOI, arXiv id or PMID is the same paper (skipped and reported, and kept
    by --prune); a stored paper keeps the collections it was in."""
    by_identifier = {ident: pid for pid, k in keys.items() for ident in k.identifiers}
    out: list[Paper] = []
    kept: list[str] = []
    for paper in papers:
        known = keys.get(paper.id)
        if known is None:
            match = next((i for i in paper.identifiers() if i in by_identifier), None)
            if match is not None:
                other = by_identifier[match]
                summary.duplicates.append(
                    f"{paper.location}: already stored as {keys[other].title!r} (same {match[0]} "
                    f"{match[1]}); skipped")
                kept.append(other)
                continue
        elif known.collections:
            merged = tuple(dict.fromkeys([*known.collections, *paper.collections]))
            if merged != paper.collections:
                paper = replace(paper, collections=merged)
        out.append(paper)
    return out, kept


def _say(progress: bool | None, line: str) -> None:
    """A progress line on stderr, only where no progress bar shows (see ingest's `progress`)."""
    if progress is None and not sys.stderr.isatty():
        print(line, file=sys.stderr, flush=True)


def _write(
    store: PaperStore,
    papers: list[Paper],
    settings: Settings,
    embedder: Embedder,
    progress: bool | None,
    on_progress: ProgressFn | None,
    summary: IngestSummary,
    lexical: LexicalUpdate | None,
) -> None:
    if not papers:
        return
    chunked = [(p, chunk_paper(p, settings.chunk_size, settings.chunk_overlap)) for p in papers]
    total = sum(len(nodes) for _, nodes in chunked)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=total, unit="chunk", desc="embedding", disable=not show, file=sys.stderr)
    done = tenths = 0
    step = settings.ingest_batch_papers
    try:
        for start in range(0, len(chunked), step):
            batch = chunked[start : start + step]
            texts = [embed_text(n.metadata["title"], n.text) for _, nodes in batch for n in nodes]
            vectors = embedder.embed(texts)
            items, offset = [], 0
            for paper, nodes in batch:
                items.append((paper, nodes, vectors[offset : offset + len(nodes)]))
                offset += len(nodes)
            store.write_papers(items)
            if lexical:
                lexical.add_nodes([(paper, nodes) for paper, nodes, _ in items])
            done += len(texts)
            bar.update(len(texts))
            if done * 10 // total > tenths or done == total:  # a line per tenth of the work
                tenths = done * 10 // total
                _say(progress, f"embedding: {done}/{total} chunks ({done * 100 // total}%)")
            if on_progress:
                on_progress(done, total)
            log.info("ingest: %d/%d chunks written", done, total)
    finally:
        bar.close()
    too_long = [
        n.id_ for _, nodes in chunked for n in nodes
        if embedder.count_tokens(embed_text(n.metadata["title"], n.text)) > embedder.max_tokens
    ][:5]
    if too_long:
        summary.warnings.append(
            f"{len(too_long)}+ chunks exceed the embedder's {embedder.max_tokens}-token window "
            f"and were truncated by it (e.g. {too_long[0]}); lower ASSISTANT_CHUNK_SIZE"
        )
