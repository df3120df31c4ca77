"""Retrieval and answer latency on one store, side by side with the obvious alternatives, in one run:

- ours: `Engine.search` (hybrid dense + BM25 + verbatim terms, grouped by paper, then ordered by
  the relevance decision), query embedding included, exactly what `/v1/search` runs;
- hybrid: the retrieval alone (`HybridRetriever.retrieve`, fusion order, no relevance decision: the
  decision embeds the sentences of papers no question has touched yet, which dominates `ours` on a
  large store with a cold sentence cache);
- numpy: the floor for exact dense search, the query embedded and dotted with every chunk vector
  held in memory (top `dense_candidates` by argpartition);
- llama-index: the library's plain default pipeline over the same Chroma collection,
  `VectorStoreIndex.from_vector_store(...).as_retriever(similarity_top_k=10)`.

The three run interleaved question by question, in a rotating order, so that a machine that gets
busier hurts all three alike. The same pass gives each pipeline's Recall@10 on the development
questions (papers in the first ten results), and the overlap of Chroma's approximate (HNSW)
neighbours with the exact ones.

End to end (`Engine.ask`, offline extractive answer with checked citations) is measured twice per
question: cold, with an empty sentence-vector cache (what a question about papers nobody asked about
yet costs), and warm, the same question again (every sentence it needs already embedded).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.common import log, percentile, summary_ms


def _norm(title: str) -> str:
    from assistant.corpus import normalize_title

    return normalize_title(title)


def _recall(ranked_titles: list[str], gold: list[str], k: int = 10) -> float | None:
    if not gold:
        return None
    wanted = {_norm(t) for t in gold}
    got = {_norm(t) for t in ranked_titles[:k]}
    return len(wanted & got) / len(wanted)


def _distinct_titles(nodes: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for n in nodes:
        seen.setdefault(str(n.metadata.get("title", "")), None)
    return list(seen)


def chunk_matrix(store: Any) -> tuple[list[str], list[str], np.ndarray]:
    """Every chunk's id, title and vector, read once from the store (for the numpy floor)."""
    ids: list[str] = []
    titles: list[str] = []
    rows: list[np.ndarray] = []
    offset = 0
    while True:
        page = store.chunks.get(include=["embeddings", "metadatas"], limit=5000, offset=offset)
        if not page["ids"]:
            break
        ids.extend(page["ids"])
        titles.extend(str((m or {}).get("title", "")) for m in page["metadatas"])
        rows.append(np.asarray(page["embeddings"], dtype=np.float32))
        offset += len(page["ids"])
    return ids, titles, np.vstack(rows)


def measure(engine: Any, questions: list[dict[str, Any]], *, label: str,
            e2e: bool = True, warmup: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`warmup`: other questions run through every pipeline first, unmeasured, so that all of them
    are measured in the steady state of a running app (Chroma loads its index blocks lazily: the
    first queries after opening a store pay for it, whichever pipeline sends them)."""
    from llama_index.core import VectorStoreIndex
    from threadpoolctl import threadpool_limits

    from assistant.embedding import LlamaIndexEmbedding
    from assistant.sentences import SentenceVectors

    settings = engine.settings
    embedder = engine.embedder
    t = time.perf_counter()
    ids, titles, matrix = chunk_matrix(engine.store)
    matrix_load_s = time.perf_counter() - t
    top = min(settings.dense_candidates, len(ids))
    position = {cid: i for i, cid in enumerate(ids)}
    plain = VectorStoreIndex.from_vector_store(
        engine.store.vector_store, embed_model=LlamaIndexEmbedding(embedder)
    ).as_retriever(similarity_top_k=10)
    dense_ann = VectorStoreIndex.from_vector_store(
        engine.store.vector_store, embed_model=LlamaIndexEmbedding(embedder)
    ).as_retriever(similarity_top_k=top)

    def ours(q: str) -> list[str]:
        return [h.title for h in engine.search(q, k=10).papers]

    def hybrid(q: str) -> list[str]:
        engine.retriever._names.clear()  # names resolved afresh, as for a new question
        return [h.title for h in engine.retriever.retrieve(q, 10).papers]

    def numpy_floor(q: str) -> list[str]:
        v = embedder.embed([q])[0]
        # One BLAS thread, like the query path: idle OpenBLAS threads spin after a call and would
        # slow down whichever pipeline runs next.
        with threadpool_limits(limits=1, user_api="blas"):
            sims = matrix @ v
        best = np.argpartition(-sims, top - 1)[:top] if top < len(sims) else np.arange(len(sims))
        best = best[np.argsort(-sims[best])]
        seen: dict[str, None] = {}
        for i in best:
            seen.setdefault(titles[i], None)
        return list(seen)

    def llama_default(q: str) -> list[str]:
        return _distinct_titles([h.node for h in plain.retrieve(q)])

    pipelines = {"ours": ours, "hybrid": hybrid, "numpy_exact": numpy_floor,
                 "llama_index_default": llama_default}
    for row in warmup or []:
        for fn in pipelines.values():
            fn(row["question"])
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    recalls: dict[str, list[float]] = {name: [] for name in pipelines}
    embed_times: list[float] = []
    ann_overlap: list[float] = []
    for i, row in enumerate(questions):
        q = row["question"]
        names = list(pipelines)
        names = names[i % len(names):] + names[: i % len(names)]
        for name in names:
            started = time.perf_counter()
            ranked = pipelines[name](q)
            times[name].append(time.perf_counter() - started)
            r = _recall(ranked, row.get("gold_titles", []))
            if r is not None:
                recalls[name].append(r)
        started = time.perf_counter()
        v = embedder.embed([q])[0]
        embed_times.append(time.perf_counter() - started)
        # How many of the exact nearest chunks Chroma's HNSW index returns.
        with threadpool_limits(limits=1, user_api="blas"):
            exact = set(np.argsort(-(matrix @ v))[:top].tolist())
        approx = {position[h.node.node_id] for h in dense_ann.retrieve(q)}
        ann_overlap.append(len(exact & approx) / max(len(exact), 1))
    result: dict[str, Any] = {
        "label": label,
        "papers": engine.store.count_papers(),
        "chunks": len(ids),
        "questions": len(questions),
        "warmup_questions": len(warmup or []),
        "query_embedding_ms": summary_ms(embed_times),
        "retrieval_ms": {name: summary_ms(v) for name, v in times.items()},
        "recall@10": {name: round(float(np.mean(v)), 4) if v else None for name, v in recalls.items()},
        "hnsw_overlap@60": round(float(np.mean(ann_overlap)), 4) if ann_overlap else None,
        "matrix_load_s": round(matrix_load_s, 2),
    }
    result["retrieval_ms_minus_embedding"] = {
        name: round(result["retrieval_ms"][name]["p50"] - result["query_embedding_ms"]["p50"], 2)
        for name in pipelines
    }
    result["breakdown_ms"] = breakdown(engine, questions)
    if e2e:
        result["e2e"] = answer_latency(engine, questions, SentenceVectors)
    log(f"{label}: ours p50/p95 {result['retrieval_ms']['ours']['p50']}/"
        f"{result['retrieval_ms']['ours']['p95']} ms, recall@10 {result['recall@10']['ours']}")
    return result


def answer_latency(engine: Any, questions: list[dict[str, Any]], vectors_cls: Any
                   ) -> dict[str, Any]:
    """Question in, cited answer out (offline mode): cold sentence cache, then warm."""
    from assistant.engine import Answer

    saved = engine.vectors
    cold: list[float] = []
    cold_first: list[float] = []
    warm: list[float] = []
    warm_first: list[float] = []
    try:
        for row in questions:
            q = row["question"]
            fresh = vectors_cls(engine.embedder)
            engine.vectors = fresh
            engine.extractive.vectors = fresh
            for bucket, first_bucket in ((cold, cold_first), (warm, warm_first)):
                started = time.perf_counter()
                first = None
                for event in engine.stream(q):
                    if first is None:
                        first = time.perf_counter() - started
                    if isinstance(event, Answer):
                        break
                bucket.append(time.perf_counter() - started)
                first_bucket.append(first or 0.0)
    finally:
        engine.vectors = saved
        engine.extractive.vectors = saved
    return {
        "cold_ms": summary_ms(cold),
        "warm_ms": summary_ms(warm),
        "cold_first_text_ms": summary_ms(cold_first),
        "warm_first_text_ms": summary_ms(warm_first),
    }


def breakdown(engine: Any, questions: list[dict[str, Any]]) -> dict[str, float]:
    """Where the time of one retrieval goes: its steps timed one by one (p50 over the questions)."""
    from llama_index.core.schema import QueryBundle

    r = engine.retriever
    steps: dict[str, list[float]] = {}

    def clock(name: str, fn: Any) -> Any:
        started = time.perf_counter()
        value = fn()
        steps.setdefault(name, []).append(time.perf_counter() - started)
        return value

    for row in questions:
        q = row["question"]
        v = clock("embed_query", lambda q=q: engine.embedder.embed([q])[0])
        bundle = QueryBundle(query_str=q, embedding=v.tolist())
        clock("title_index", lambda q=q: r.titles.resolve(q, engine.settings.entity_match_threshold))
        clock("dense_chroma", lambda b=bundle: r.dense.retrieve(b))
        clock("bm25", lambda b=bundle: r._bm25(b))
        clock("literal_terms", lambda q=q, v=v: r._literal(q, v))
        if hasattr(r, "_phrases"):
            clock("phrases", lambda q=q, v=v: r._phrases(q, v))
        clock("count_chunks", lambda: engine.store.count_chunks())
        r._names.clear()  # names resolved afresh, as for a new question
        result = clock("retrieve_total", lambda q=q: r.retrieve(q))
        clock("fetch_papers", lambda res=result: engine.store.get_papers([h.paper_id for h in res.papers]))
        records = engine.store.get_papers([h.paper_id for h in result.papers])
        clock("relevance", lambda q=q, res=result, rec=records: engine.judge.judge(
            q, res, {pid: p.abstract for pid, p in rec.items()}))
    return {name: round(percentile(v, 0.5) * 1e3, 2) for name, v in steps.items()} | {
        f"{name}_p95": round(percentile(v, 0.95) * 1e3, 2) for name, v in steps.items()}
