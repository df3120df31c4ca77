"""Retrieval with its two sides overlapped (the question's embedding and dense search in a worker
thread, the lexical searches on the calling thread: `retrieval_threads`) against one after the
other, on one store, interleaved question by question in alternating order, twice over the
development questions; and whether both give the same papers.

    .venv/bin/python bench/retrieval_overlap.py build/bench/scale

Writes bench/results/retrieval-overlap.json. Run it alone on the machine: it times CPU work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    load_dev_questions,
    log,
    machine,
    make_settings,
    summary_ms,
    warmup_questions,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    from assistant.engine import Engine

    engine = Engine(make_settings(args.store, sentence_cache_max_papers=0))
    retriever = engine.retriever
    workers = retriever._workers
    questions = [q["question"] for q in load_dev_questions()]
    for q in [w["question"] for w in warmup_questions(30)]:
        retriever.retrieve(q)
    times: dict[str, list[float]] = {"overlapped": [], "in_turn": []}
    same = 0
    for rep in range(args.passes):
        for i, q in enumerate(questions):
            got = {}
            for mode in (("overlapped", "in_turn") if (i + rep) % 2 else ("in_turn", "overlapped")):
                retriever._workers = workers if mode == "overlapped" else None
                retriever._names.clear()
                started = time.perf_counter()
                result = retriever.retrieve(q)
                times[mode].append(time.perf_counter() - started)
                got[mode] = [h.paper_id for h in result.papers]
            same += got["overlapped"] == got["in_turn"]
    retriever._workers = workers
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
           "papers": engine.store.count_papers(), "chunks": engine.store.count_chunks(),
           "questions": len(questions), "passes": args.passes,
           "retrieval_ms": {mode: summary_ms(v) for mode, v in times.items()},
           "same_papers": f"{same} of {args.passes * len(questions)}"}
    log(json.dumps(out["retrieval_ms"]))
    path = ROOT / "bench" / "results" / "retrieval-overlap.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
