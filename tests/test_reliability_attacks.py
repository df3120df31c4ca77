"""Attacks of the outside probe (issue 17) against the real app (UI + API, uvicorn on loopback),
on a small hash-embedder store whose answers are made to take at least WORK_SECONDS each:

- 300 clients at once each ask for a streamed answer, read its first event and reset the
  connection. Before the fix each reset freed a slot while the answer kept computing: 300 resets
  raised the server to 307 threads with no 429. Now the slot belongs to the worker: at most
  `concurrency` answers ever compute at once, and the clients beyond the queue get 429 with
  Retry-After.
- 300 clients at once announce a 50 kB body and send one byte. Before, they held their
  connections (800 of 1,100 still open after 60 s); now each gets 408 and is closed after
  ASSISTANT_BODY_TIMEOUT.

Asserted: the limits hold, every client gets one of the expected answers, the server answers
normally afterwards. Recorded for docs/RELIABILITY.md (not asserted): threads, /health latency
during the attack, how long the cut-offs took."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl
from reliability.attacks import Sampler, dropped_streams, slow_bodies
from reliability.common import percentiles, write_result

from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.settings import Settings
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

CLIENTS = 300
WORK_SECONDS = 0.3  # every answer takes at least this long, so the resets land mid-answer
BODY_TIMEOUT = 2.0
QUESTION = "Which papers study cardiac segmentation?"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Engine]:
    root: Path = tmp_path_factory.mktemp("attacks")
    corpus = write_jsonl(root / "papers.jsonl",
                         [{"title": t, "abstract": a} for t, a in make_papers(40, seed=11)])
    settings = make_settings(root / "store", embed_backend="hash", corpus_paths=[corpus],
                             body_timeout=BODY_TIMEOUT)
    ingest(settings, progress=False)
    return settings, Engine(settings)


class Counted:
    """engine.stream wrapped: how many answers compute at once, at most, and how many ended."""

    def __init__(self, engine: Engine) -> None:
        self.original = engine.stream
        self.lock = threading.Lock()
        self.running = self.peak = self.ended = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(WORK_SECONDS)
            yield from self.original(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1
                self.ended += 1


def _health(sampler: Sampler) -> dict[str, Any]:
    return {"latency_s": percentiles(sampler.health), "probes": len(sampler.health),
            "errors": sampler.health_errors}


def test_dropped_streams_never_run_more_than_the_concurrency(store, monkeypatch) -> None:
    settings, engine = store
    counted = Counted(engine)
    monkeypatch.setattr(engine, "stream", counted)
    app = create_app(settings, engine)
    with BackgroundServer(app) as server, Sampler(server.url) as sampler:
        before = threading.active_count()
        outcomes, wall = dropped_streams(server.port, CLIENTS, QUESTION)
        began = time.perf_counter()
        while counted.running and time.perf_counter() - began < 300:  # the last answers finish
            time.sleep(0.05)
        drained = time.perf_counter() - began
        running, ended = counted.running, counted.ended
        after = httpx.post(server.url + "v1/chat/completions", timeout=60,
                           json={"messages": [{"role": "user", "content": QUESTION}]})
    statuses = Counter(o.status for o in outcomes)
    refused = [o for o in outcomes if o.status == 429]
    accepted = statuses[200]
    result = {
        "clients": CLIENTS, "work_seconds": WORK_SECONDS, "concurrency": settings.concurrency,
        "queue_size": settings.queue_size, "statuses": {str(k): v for k, v in statuses.items()},
        "errors": sorted({o.error for o in outcomes if o.error})[:5],
        "peak_answers": counted.peak, "limiter_peak": app.state.limiter.peak,
        "threads_before": before, "threads_peak": max(sampler.threads, default=before),
        "wall_s": round(wall, 2), "drain_s": round(drained, 2), "health": _health(sampler),
    }
    write_result("attack_dropped_streams", result)
    assert set(statuses) <= {200, 429}, result
    assert accepted >= settings.concurrency and refused, result
    assert all(o.retry_after and o.retry_after.isdigit() for o in refused), result
    assert counted.peak <= settings.concurrency, result
    assert app.state.limiter.peak <= settings.concurrency, result
    assert running == 0 and ended == accepted, result  # every accepted answer ran, none is left
    assert after.status_code == 200


def test_slow_bodies_are_cut_off(store) -> None:
    settings, engine = store
    with BackgroundServer(create_app(settings, engine)) as server, Sampler(server.url) as sampler:
        outcomes, wall = slow_bodies(server.port, CLIENTS)
        after = httpx.get(server.url + "health", timeout=30)
    statuses = Counter(o.status for o in outcomes)
    result = {
        "clients": CLIENTS, "body_timeout": BODY_TIMEOUT,
        "statuses": {str(k): v for k, v in statuses.items()},
        "closed_by_server": sum(o.closed_by_server for o in outcomes),
        "errors": sorted({o.error for o in outcomes if o.error})[:5],
        "cut_off_s": percentiles([o.seconds for o in outcomes]), "wall_s": round(wall, 2),
        "health": _health(sampler),
    }
    write_result("attack_slow_bodies", result)
    assert statuses == {408: CLIENTS}, result
    assert result["closed_by_server"] == CLIENTS, result
    assert after.status_code == 200
