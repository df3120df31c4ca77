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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant.chunks import chunk_paper, embed_text
from assistant.corpus import Paper, load_papers
from assistant.embedding import Embedder, get_embedder
from assistant.lexical import LexicalUpdate, fingerprint, store_stamp, writable_in_step
from assistant.lexical import rebuild as rebuild_lexical
from assistant.settings import Settings
from assistant.store import PaperStore, ingest_lock, wipe_local_store

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
    duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"{self.papers_added} added, {self.papers_updated} updated, "
            f"{self.papers_unchanged} unchanged, {self.papers_removed} removed; "
            f"store holds {self.papers_total} papers in {self.chunks_total} chunks "
            f"({self.seconds:.1f}s)"
        )
        if self.duplicates:
            text += f"; {len(self.duplicates)} duplicate title(s) skipped"
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
) -> IngestSummary:
    """Bring the store in step with the corpus files. Validates every file before writing."""
    started = time.perf_counter()
    files = [Path(p) for p in (paths or settings.corpus_paths)]
    report = load_papers(
        files,
        max_title_chars=settings.max_title_chars,
        max_abstract_chars=settings.max_abstract_chars,
        max_bytes=settings.max_corpus_bytes,
    )
    summary = IngestSummary(duplicates=report.duplicates)
    for line in report.duplicates:
        log.warning("%s", line)

    with ingest_lock(settings):
        if rebuild and not settings.chroma_url:
            wipe_local_store(settings.store_dir)
        store = PaperStore(settings)
        if rebuild and settings.chroma_url:
            store.reset()
        store.check_compatible()
        store.tune_index()

        stored = store.paper_hashes()
        wanted = {p.id: p for p in report.papers}
        to_write = [p for p in report.papers if stored.get(p.id) != p.content_hash]
        summary.papers_added = sum(1 for p in to_write if p.id not in stored)
        summary.papers_updated = len(to_write) - summary.papers_added
        summary.papers_unchanged = len(report.papers) - len(to_write)
        removed = [pid for pid in stored if pid not in wanted] if prune else []
        summary.papers_removed = len(removed)
        # Chunks without a paper record are leftovers of an interrupted write.
        orphans = (store.chunk_paper_ids() - set(stored)) if store.dirty else set()
        if to_write:
            # Loaded only now: after the compatibility check (a mismatch is reported without a
            # model load) and before the first write (a model that fails to load changes nothing).
            embedder = embedder or get_embedder(settings)

        # The lexical index takes this ingest's papers only if it matched the store before it;
        # otherwise (a crash, a write behind its back, a restored copy) it is rebuilt after it.
        in_step = writable_in_step(settings, store, stored, clearing=rebuild)
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
                store.set_manifest(generation=generation, dirty=False)
                # A crash before the commit leaves the index at its old stamp: stale, so rebuilt.
                if lexical:
                    hashes = dict(stored)
                    for pid in removed:
                        hashes.pop(pid, None)
                    hashes.update((p.id, p.content_hash) for p in to_write)
                    lexical.commit(store_stamp(store) | {"papers": fingerprint(hashes)})
                else:
                    rebuild_lexical(settings, store)
            finally:
                if lexical:
                    lexical.close()

        summary.papers_total = store.count_papers()
        summary.chunks_total = store.count_chunks()
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info("ingest: %s", summary.line())
    return summary


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
    done = 0
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
