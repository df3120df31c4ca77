"""Ingestion: corpus files -> chunks -> embeddings -> Chroma (+ BM25), idempotent and resumable.

Protocol (see store.py): the store is marked dirty, each batch of papers is written chunks-first,
paper-record-last, the BM25 index is rebuilt, and the store is marked clean. A run killed anywhere
leaves papers either complete (record present, hash matching) or incomplete (redone next run).
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
from assistant.lexical import bm25_is_fresh, build_bm25, persist_bm25
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
    """Bring the store in step with the corpus files. Validates every file before writing.

    progress: True shows a progress bar on stderr, False nothing; None (the default) a bar when
    stderr is a terminal, else plain progress lines (a log, or a pipe, sees them as they come)."""
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
            _say(progress, f"ingest: {len(to_write)} paper(s) to embed, {summary.papers_unchanged} "
                           "unchanged; loading the embedding model")
            # Loaded only now: after the compatibility check (a mismatch is reported without a
            # model load) and before the first write (a model that fails to load changes nothing).
            embedder = embedder or get_embedder(settings)

        if to_write or removed or orphans or store.dirty or not bm25_is_fresh(store, settings.bm25_dir):
            generation = store.generation + 1
            store.set_manifest(generation=generation, dirty=True)
            if orphans:
                store.delete_papers(sorted(orphans - {p.id for p in to_write}))
            if to_write:
                assert embedder is not None
                _write(store, to_write, settings, embedder, progress, on_progress, summary)
            if removed:
                store.delete_papers(removed)
            store.set_manifest(generation=generation, dirty=False)
            # A crash before this line leaves a stale stamp, which readers detect and rebuild.
            persist_bm25(build_bm25(store, settings.bm25_candidates), store, settings.bm25_dir)

        summary.papers_total = store.count_papers()
        summary.chunks_total = store.count_chunks()
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info("ingest: %s", summary.line())
    return summary


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
