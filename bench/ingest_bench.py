"""Ingestion speed (issue 2): the bundled corpus into a fresh store, against the floor, raw embedding
of the very same chunk texts with the same (already loaded) model, measured in the same run.

Order: raw, ingest, raw. The floor is the mean of the two raw runs, so a machine that gets busier or
quieter during the run moves both sides. The embedder is wrapped to time the embedding done inside
the ingest as well, which splits the ingest into embedding and everything else (chunking, Chroma
writes, BM25, bookkeeping) without relying on the two runs having seen the same machine load.

    .venv/bin/python bench/ingest_bench.py [--papers N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import du, log, machine, make_settings, mb, ratio, write_result


class TimedEmbedder:
    """The real embedder, counting the seconds spent in embed()."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.seconds = 0.0
        self.texts = 0

    def embed(self, texts: list[str]) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def corpus_subset(n_papers: int | None, directory: Path) -> tuple[Path, list[Any]]:
    """The bundled corpus, or its first n papers written as JSONL; and the papers themselves."""
    from assistant.corpus import load_papers
    from assistant.resources import bundled_corpus

    papers = load_papers([bundled_corpus()]).papers
    if n_papers is None or n_papers >= len(papers):
        return bundled_corpus(), papers
    papers = papers[:n_papers]
    path = directory / f"corpus-{n_papers}.jsonl"
    path.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n"
                            for p in papers), encoding="utf-8")
    return path, papers


def run(work: Path, n_papers: int | None = None, embed_backend: str = "sentence-transformers"
        ) -> dict[str, Any]:
    from assistant.chunks import chunk_paper, embed_text
    from assistant.embedding import get_embedder
    from assistant.ingest import ingest

    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / "ingest-store"
    shutil.rmtree(store_dir, ignore_errors=True)
    settings = make_settings(store_dir, embed_backend=embed_backend)
    corpus, papers = corpus_subset(n_papers, work)

    started = time.perf_counter()
    embedder = get_embedder(settings)
    embedder.embed(["warm-up"])  # first call pays one-off allocations, on neither side
    model_load_s = time.perf_counter() - started

    texts = [embed_text(n.metadata["title"], n.text)
             for p in papers for n in chunk_paper(p, settings.chunk_size, settings.chunk_overlap)]
    log(f"ingest bench: {len(papers)} papers, {len(texts)} chunks")

    def raw() -> float:
        t = time.perf_counter()
        embedder.embed(texts)
        return time.perf_counter() - t

    raw_1 = raw()
    timed = TimedEmbedder(embedder)
    t = time.perf_counter()
    summary = ingest(settings, [corpus], progress=False, embedder=timed)
    ingest_s = time.perf_counter() - t
    raw_2 = raw()
    raw_s = (raw_1 + raw_2) / 2
    assert summary.chunks_total == len(texts), (summary.chunks_total, len(texts))

    result = {
        "papers": len(papers),
        "chunks": len(texts),
        "embed_backend": embed_backend,
        "model_load_s": round(model_load_s, 3),
        "ingest_s": round(ingest_s, 3),
        "ingest_embed_s": round(timed.seconds, 3),
        "ingest_other_s": round(ingest_s - timed.seconds, 3),
        "raw_embed_s": [round(raw_1, 3), round(raw_2, 3)],
        "raw_embed_mean_s": round(raw_s, 3),
        "ingest_papers_per_s": round(len(papers) / ingest_s, 2),
        "ingest_chunks_per_s": round(len(texts) / ingest_s, 2),
        "raw_papers_per_s": round(len(papers) / raw_s, 2),
        "raw_chunks_per_s": round(len(texts) / raw_s, 2),
        # The figure: ingest time over raw embedding time of the same texts.
        "ratio_vs_raw": ratio(ingest_s, raw_s),
        # The same without the embedding-speed noise: non-embedding work over embedding work.
        "ratio_in_run": ratio(ingest_s, timed.seconds),
        "target_ratio": 1.25,
        "store_mb": mb(du(store_dir)),
        "store_bytes_per_paper": round(du(store_dir) / max(len(papers), 1)),
    }
    result["meets_target"] = bool(result["ratio_vs_raw"] is not None and result["ratio_vs_raw"] <= 1.25)
    return result


def format_lines(r: dict[str, Any]) -> list[str]:
    return [
        f"ingest: {r['papers']} papers / {r['chunks']} chunks in {r['ingest_s']:.1f}s = "
        f"{r['ingest_papers_per_s']:.2f} papers/s, {r['ingest_chunks_per_s']:.2f} chunks/s",
        f"raw embedding of the same texts: {r['raw_embed_mean_s']:.1f}s = "
        f"{r['raw_papers_per_s']:.2f} papers/s, {r['raw_chunks_per_s']:.2f} chunks/s",
        f"ratio ingest/raw = {r['ratio_vs_raw']}x (target <= 1.25x); inside the ingest, embedding "
        f"took {r['ingest_embed_s']:.1f}s and everything else {r['ingest_other_s']:.1f}s "
        f"(ingest/embedding = {r['ratio_in_run']}x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=None, help="only the first N papers")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    result = run(work, args.papers)
    result["machine"] = machine()
    for line in format_lines(result):
        print(line)
    if not args.no_save:
        write_result("ingest", result)
    print(json.dumps({k: result[k] for k in ("papers", "chunks", "ingest_papers_per_s",
                                             "ingest_chunks_per_s", "ratio_vs_raw")}))


if __name__ == "__main__":
    main()
