"""Load (issue 6): the real app (UI + API, uvicorn on 127.0.0.1, the bundled corpus, offline
mode) under 60 chat requests released at once, plain and streamed, and again with the LLM endpoint
down. Bounded: a fixed number of requests, each with a timeout. Zero errors and every request
answered are asserted; throughput and latency percentiles are recorded for docs/RELIABILITY.md
(not asserted: timings belong to the report, not to pass/fail)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability.common import write_result
from reliability.load import fire, summary

from assistant.engine import Engine
from assistant.settings import Settings
from assistant.testing.fake_openai import closed_port
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

CONCURRENT = 60
QUESTIONS_FILE = Path(__file__).parent / "data" / "dev_questions.jsonl"
FALLBACK = [
    "What is SegMamba?",
    "Which papers use Mamba for segmentation?",
    "How accurate is the nailfold capillary pipeline at predicting abnormality?",
]


def bodies(n: int, *, stream: bool) -> list[dict]:
    try:
        pool = [
            json.loads(line)["question"] for line in QUESTIONS_FILE.read_text().splitlines() if line.strip()
        ]
    except (OSError, ValueError, KeyError):
        pool = FALLBACK
    return [
        {
            "model": "paper-assistant",
            "stream": stream,
            "messages": [{"role": "user", "content": pool[i % len(pool)]}],
        }
        for i in range(n)
    ]


def test_sixty_concurrent_chat_requests_all_answered(corpus_store: Settings, engine: Engine):
    # The default limits: 4 answered at once, 64 waiting; 60 at once must all get through.
    assert corpus_store.concurrency + corpus_store.queue_size >= CONCURRENT
    phases = {}
    with BackgroundServer(create_app(corpus_store, engine)) as server:
        fire(server.url, bodies(4, stream=False))  # warm-up: caches, connections
        for name, stream in (("offline, plain", False), ("offline, streamed", True)):
            results, wall = fire(server.url, bodies(CONCURRENT, stream=stream))
            phases[name] = summary(results, wall)
            assert phases[name]["errors"] == 0, phases[name]
            assert phases[name]["ok"] == CONCURRENT
            assert phases[name]["modes"] == {"extractive": CONCURRENT}

    # The same load with an LLM configured but down: every answer is the marked offline one.
    down = corpus_store.model_copy(
        update={"openai_base_url": f"http://127.0.0.1:{closed_port()}/v1", "llm_timeout": 5.0}
    )
    llm_engine = Engine(down)
    assert llm_engine.mode == "llm"
    with BackgroundServer(create_app(down, llm_engine)) as server:
        results, wall = fire(server.url, bodies(CONCURRENT, stream=False))
        phases["LLM endpoint down, plain"] = summary(results, wall)
    assert phases["LLM endpoint down, plain"]["errors"] == 0, phases
    assert phases["LLM endpoint down, plain"]["modes"] == {"extractive": CONCURRENT}
    write_result(
        "load",
        {
            "concurrent": CONCURRENT,
            "concurrency": corpus_store.concurrency,
            "queue_size": corpus_store.queue_size,
            "phases": phases,
        },
    )
