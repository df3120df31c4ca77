"""Before/after of the performance changes of issue 7, each switched off and on in the same process
and measured interleaved question by question (so machine load hits both sides alike):

- query embedding on one torch thread (`embed_single_thread_max_texts`) vs on all of them;
- verbatim sub-queries from the lexical index (`lexical.LexicalIndex.contains`) vs Chroma `$contains`;
- a named paper's chunks fetched by id vs a `where paper_id` filter;
- the chunk count kept per store generation vs `count()` per question;
- name resolution once per question vs twice (engine, then retrieval);
- one embedding call for all the sentences an answer scores vs one call per abstract (cold cache);
- the sentence cache warmed in the background (and saved) vs cold.

The "before" paths are the code they replaced, re-created here by swapping methods on the live
objects. Results go to bench/results/changes.json, rendered into docs/PERFORMANCE.md.

    .venv/bin/python bench/changes.py [--work build/bench] [--questions 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.testing.oracles import old_verbatim
from bench.common import (
    ROOT,
    load_dev_questions,
    log,
    machine,
    make_settings,
    summary_ms,
    write_result,
)

INCLUDE = ["documents", "metadatas", "embeddings"]


@contextmanager
def old_retrieval(engine: Any) -> Iterator[None]:
    """The retrieval paths as they were before issue 7's changes."""
    r = engine.retriever
    saved = (r._verbatim, r._paper_chunks, r.chunk_count, r.resolve_names,
             getattr(engine.embedder, "_single_thread_max", None))
    r._verbatim = old_verbatim(r)
    r._paper_chunks = lambda pid: r.store.chunks.get(where={"paper_id": pid}, include=INCLUDE)
    r.chunk_count = 0  # 0 falls back to counting, as every question did
    r.resolve_names = lambda q, threshold=None: r.titles.resolve(
        q, engine.settings.entity_match_threshold if threshold is None else threshold)
    if saved[4] is not None:
        engine.embedder._single_thread_max = 0
    try:
        yield
    finally:
        r._verbatim, r._paper_chunks, r.chunk_count, r.resolve_names = saved[:4]
        if saved[4] is not None:
            engine.embedder._single_thread_max = saved[4]


def ab(questions: list[dict[str, Any]], old: Any, new: Any) -> tuple[list[float], list[float]]:
    """Time old(q) and new(q) for each question, alternating which runs first."""
    before: list[float] = []
    after: list[float] = []
    for i, row in enumerate(questions):
        q = row["question"]
        pairs = [(old, before), (new, after)]
        for fn, bucket in (pairs if i % 2 == 0 else pairs[::-1]):
            t = time.perf_counter()
            fn(q)
            bucket.append(time.perf_counter() - t)
    return before, after


def row(change: str, measure: str, before: list[float], after: list[float], note: str = ""
        ) -> dict[str, Any]:
    b, a = summary_ms(before), summary_ms(after)
    return {"change": change, "measure": measure,
            "before": f"{b['p50']} / {b['p95']} ms", "after": f"{a['p50']} / {a['p95']} ms",
            "before_ms": b, "after_ms": a, "note": note}


def measure_store(store_dir: Path, questions: list[dict[str, Any]], label: str
                  ) -> list[dict[str, Any]]:
    from assistant.engine import Engine
    from assistant.sentences import SentenceVectors

    engine = Engine(make_settings(store_dir, sentence_cache_max_papers=0))
    r = engine.retriever
    embedder = engine.embedder
    n = engine.store.count_papers()
    rows: list[dict[str, Any]] = []
    tag = f"{n:,} papers"

    if hasattr(embedder, "_single_thread_max"):
        def one_thread(q: str) -> None:
            embedder._single_thread_max = 4
            embedder.embed([q])

        def all_threads(q: str) -> None:
            embedder._single_thread_max = 0
            embedder.embed([q])

        b, a = ab(questions, all_threads, one_thread)
        embedder._single_thread_max = 4
        rows.append(row("query embedding on 1 torch thread", f"embed one question ({tag})", b, a,
                        "identical vectors"))

    def verbatim(q: str) -> None:
        v = embedder.embed([q])[0]
        r._literal(q, v)
        r._phrases(q, v)

    def found(q: str) -> list[Any]:
        v = embedder.embed([q])[0]
        return [list(r._literal(q, v)), list(r._phrases(q, v))]

    with old_retrieval(engine):
        old_found = [found(q["question"]) for q in questions]
    new_found = [found(q["question"]) for q in questions]

    def old_verbatim(q: str) -> None:
        with old_retrieval(engine):
            verbatim(q)

    b, a = ab(questions, old_verbatim, verbatim)
    rows.append(row("verbatim sub-queries from an in-memory index",
                    f"names + phrases sub-queries, embedding included ({tag})", b, a,
                    f"same chunks: {old_found == new_found}"))

    named = [q for q in questions if r.resolve_names(q["question"])]
    if named:
        pid = {q["question"]: r.resolve_names(q["question"])[0].paper_id for q in named}
        b, a = ab(named,
                  lambda q: r.store.chunks.get(where={"paper_id": pid[q]}, include=INCLUDE),
                  lambda q: r._paper_chunks(pid[q]))
        rows.append(row("named paper's chunks by id", f"one named paper ({tag})", b, a))

    b, a = ab(questions, lambda q: engine.store.count_chunks(), lambda q: r.chunk_count)
    rows.append(row("chunk count kept per generation", f"per question ({tag})", b, a))

    def resolve_twice(q: str) -> None:
        r.titles.resolve(q, engine.settings.entity_match_threshold)
        r.titles.resolve(q, engine.settings.entity_match_threshold)

    def resolve_cached(q: str) -> None:
        r._names.clear()
        r.resolve_names(q)
        r.resolve_names(q)

    b, a = ab(questions, resolve_twice, resolve_cached)
    rows.append(row("names resolved once per question", f"engine + retrieval ({tag})", b, a))

    def old_search(q: str) -> None:
        with old_retrieval(engine):
            engine.search(q)

    b, a = ab(questions, old_search, lambda q: engine.search(q))
    rows.append(row("all retrieval changes together", f"Engine.search ({tag})", b, a))

    def fresh() -> None:
        vectors = SentenceVectors(embedder)
        engine.vectors = vectors
        engine.extractive.vectors = vectors

    def old_ask(q: str) -> None:
        with old_retrieval(engine):
            engine.ask(q)

    for q in questions:  # warm sentence cache for the warm comparison
        engine.ask(q["question"])
    b, a = ab(questions, old_ask, lambda q: engine.ask(q))
    rows.append(row("all retrieval changes together", f"Engine.ask, warm cache ({tag})", b, a))

    lists = [q for q in questions if q.get("kind") == "list"] or questions
    extractive = engine.extractive
    real_prefetch = extractive._prefetch

    def cold_without_prefetch(q: str) -> None:
        fresh()
        extractive._prefetch = lambda *args, **kwargs: None
        try:
            engine.ask(q)
        finally:
            extractive._prefetch = real_prefetch

    def cold_with_prefetch(q: str) -> None:
        fresh()
        engine.ask(q)

    b, a = ab(lists, cold_without_prefetch, cold_with_prefetch)
    rows.append(row("one embedding call per answer", f"Engine.ask, cold cache, list questions ({tag})",
                    b, a))
    for item in rows:
        item["store"] = label
    return rows


def warmup(store_dir: Path, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cold first questions vs the same after the background warm-up (and after a restart that
    loads the saved cache)."""
    from assistant.engine import SENTENCE_CACHE, Engine
    from assistant.sentences import SentenceVectors

    (store_dir / SENTENCE_CACHE).unlink(missing_ok=True)
    cold_engine = Engine(make_settings(store_dir, sentence_cache_max_papers=0))
    cold = []
    for row_ in questions:
        empty = SentenceVectors(cold_engine.embedder)
        cold_engine.vectors = empty
        cold_engine.extractive.vectors = empty
        t = time.perf_counter()
        cold_engine.ask(row_["question"])
        cold.append(time.perf_counter() - t)
    t = time.perf_counter()
    engine = Engine(make_settings(store_dir))
    engine.warmup_done(timeout=1800)
    warm_s = time.perf_counter() - t
    warm = []
    for row_ in questions:
        t = time.perf_counter()
        engine.ask(row_["question"])
        warm.append(time.perf_counter() - t)
    t = time.perf_counter()
    restarted = Engine(make_settings(store_dir))
    restarted.warmup_done(timeout=600)
    load_s = time.perf_counter() - t
    out = row("sentence cache warmed in the background", f"Engine.ask, first time each question "
              f"({engine.store.count_papers()} papers)", cold, warm,
              f"warm-up took {warm_s:.1f} s for {len(engine.vectors)} sentences; a restart loads "
              f"them in {load_s:.2f} s (engine included)")
    return [out]


def hnsw_probe(store_dir: Path, n_questions: int | None) -> dict[str, Any]:
    """In this process: dense search as Chroma's HNSW index answers it with the store's current
    ef_search, against exact search (overlap of the 60 nearest chunks), its latency, and the
    dense-only Recall@10 of the llama-index default pipeline."""
    from llama_index.core import VectorStoreIndex

    from assistant.embedding import LlamaIndexEmbedding, get_embedder
    from assistant.store import PaperStore
    from bench.latency import _distinct_titles, _recall, chunk_matrix

    settings = make_settings(store_dir)
    store = PaperStore(settings)
    ef = store.chunks.configuration["hnsw"]["ef_search"]
    embedder = get_embedder(settings)
    ids, _titles, matrix = chunk_matrix(store)
    plain = VectorStoreIndex.from_vector_store(
        store.vector_store, embed_model=LlamaIndexEmbedding(embedder)).as_retriever(similarity_top_k=10)
    overlap, times, recalls = [], [], []
    for row in load_dev_questions(n_questions):
        v = embedder.embed([row["question"]])[0]
        exact = {ids[i] for i in np.argsort(-(matrix @ v))[:60]}
        t = time.perf_counter()
        got = store.chunks.query(query_embeddings=[v.tolist()], n_results=60,
                                 include=["metadatas", "documents", "distances"])
        times.append(time.perf_counter() - t)
        overlap.append(len(exact & set(got["ids"][0])) / 60)
        r = _recall(_distinct_titles([h.node for h in plain.retrieve(row["question"])]),
                    row.get("gold_titles", []))
        if r is not None:
            recalls.append(r)
    return {"ef_search": ef, "chunks": len(ids), "overlap@60": round(float(np.mean(overlap)), 3),
            "query_ms": summary_ms(times), "dense_recall@10": round(float(np.mean(recalls)), 4)}


def hnsw_rows(store_dir: Path, n_questions: int | None) -> list[dict[str, Any]]:
    """ef_search before (Chroma's default, 100) and after (the setting), each in a fresh process:
    a process that has the index loaded keeps its old search breadth."""
    import subprocess

    from assistant.store import PaperStore

    wanted = make_settings(store_dir).hnsw_ef_search
    probes = {}
    for ef in (100, wanted):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
                "from bench.changes import make_settings; from assistant.store import PaperStore; "
                "s = PaperStore(make_settings(Path(sys.argv[2]))); "
                "s.chunks.modify(configuration={'hnsw': {'ef_search': int(sys.argv[3])}})")
        subprocess.run([sys.executable, "-c", code, str(ROOT), str(store_dir), str(ef)], check=True)
        out = subprocess.run([sys.executable, __file__, "--hnsw-probe", str(store_dir),
                              "--questions", str(n_questions or 0)],
                             check=True, capture_output=True, text=True)
        probes[ef] = json.loads(out.stdout.strip().splitlines()[-1])
    PaperStore(make_settings(store_dir)).tune_index()  # leave the store as the settings want it
    b, a = probes[100], probes[wanted]
    return [{
        "change": f"HNSW ef_search {b['ef_search']} -> {a['ef_search']}",
        "measure": f"dense top-60 query ({a['chunks']:,} chunks)",
        "before": f"{b['query_ms']['p50']} / {b['query_ms']['p95']} ms",
        "after": f"{a['query_ms']['p50']} / {a['query_ms']['p95']} ms",
        "before_ms": b["query_ms"], "after_ms": a["query_ms"],
        "note": f"exact neighbours found {b['overlap@60']} -> {a['overlap@60']}; dense-only "
                f"Recall@10 {b['dense_recall@10']} -> {a['dense_recall@10']}",
        "probes": probes,
    }]


def run(work: Path, n_questions: int | None) -> dict[str, Any]:
    info = machine()  # first: the run itself changes torch's thread count
    questions = load_dev_questions(n_questions)
    base = work / "base-215"
    scale = work / "scale"
    rows: list[dict[str, Any]] = []
    if (base / "chroma.sqlite3").exists():
        log("changes: 215-paper store")
        rows += measure_store(base, questions, "base")
        rows += warmup(base, questions)
    if (scale / "chroma.sqlite3").exists():
        log("changes: scaled store")
        rows += measure_store(scale, questions, "scale")
        rows += hnsw_rows(scale, None)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": info,
            "questions": len(questions), "changes": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--hnsw-probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hnsw_probe:
        print(json.dumps(hnsw_probe(args.hnsw_probe, args.questions or None)))
        return
    result = run(args.work, args.questions)
    write_result("changes", result)
    for item in result["changes"]:
        print(f"{item['change']:45s} {item['measure']:60s} {item['before']:>24s} -> "
              f"{item['after']:>24s} {item['note']}")
    from bench import report

    report.write_docs()


if __name__ == "__main__":
    main()
