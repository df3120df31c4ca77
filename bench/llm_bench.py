"""LLM mode against the scripted OpenAI-compatible server (assistant.testing.fake_openai) on 127.0.0.1,
with no scripted delay: what the app adds around the model, the model's own time excluded.

For each question the engine streams an answer (`Engine.stream` in LLM mode); the server records the
request it got, which is then replayed straight to the server with the official `openai` client.
- time to first token: engine (question in -> first text out) vs the raw call (request -> first delta);
  the difference is retrieval + prompt building;
- total: engine (question in -> checked, cited answer) vs the raw call (request -> last delta); the
  difference is retrieval + citation checking + sanitising.
The scripted reply paraphrases the first sentence of three sources with citations (so the citation
checker has to embed and compare them), plus one invented citation number.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.common import log, summary_ms

SOURCE = re.compile(r"<source (\d+)>\nTitle: (.*?)\nText: (.*?)\n</source \1>", re.S)


def scripted_reply(request: dict[str, Any]) -> Any:
    from assistant.testing.fake_openai import Reply, prompt_text

    text = prompt_text(request)
    if "<source" not in text:  # a condense request
        return Reply(text=text.strip().splitlines()[-1][:200])
    parts = []
    for n, _title, body in SOURCE.findall(text)[:3]:
        first = re.split(r"(?<=[.!?])\s+", body.strip())[0]
        parts.append(f"According to this work, {first[:1].lower()}{first[1:]} [{n}]")
    parts.append("A further study reports 97.3% accuracy on a private cohort [9].")
    return Reply(text=" ".join(parts), chunk_chars=12)


def run(settings: Any, questions: list[dict[str, Any]]) -> dict[str, Any]:
    from openai import OpenAI

    from assistant.engine import Answer, Engine
    from assistant.sentences import SentenceVectors
    from assistant.testing.fake_openai import FakeLLMServer

    with FakeLLMServer(scripted_reply) as server:
        llm_settings = settings.model_copy(update={"openai_base_url": server.base_url,
                                                   "answer_mode": "llm", "llm_model": "fake-model"})
        engine = Engine(llm_settings)
        client = OpenAI(api_key="not-needed", base_url=server.base_url, max_retries=0)
        finish_s: list[float] = []
        original_finish = engine._finish

        def timed_finish(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original_finish(*args, **kwargs)
            finally:
                finish_s.append(time.perf_counter() - t)

        engine._finish = timed_finish  # type: ignore[method-assign]
        rows: dict[str, dict[str, list[float]]] = {
            cache: {"engine_first": [], "engine_total": [], "raw_first": [], "raw_total": [],
                    "check": []} for cache in ("cold", "warm")}
        for row in questions:
            # Cold: an empty sentence-vector cache. Warm: the same question again.
            fresh = SentenceVectors(engine.embedder)
            engine.vectors = fresh
            engine.extractive.vectors = fresh
            for cache in ("cold", "warm"):
                r = rows[cache]
                started = time.perf_counter()
                first = None
                answer = None
                for event in engine.stream(row["question"]):
                    if first is None and isinstance(event, str) and event:
                        first = time.perf_counter() - started
                    if isinstance(event, Answer):
                        answer = event
                total = time.perf_counter() - started
                if answer is None or answer.mode != "llm" or answer.abstained:
                    break  # abstentions never reach the model
                r["engine_first"].append(first or total)
                r["engine_total"].append(total)
                r["check"].append(finish_s[-1])
                body = server.requests[-1]
                started = time.perf_counter()
                r_first = None
                stream = client.chat.completions.create(
                    model=body["model"], messages=body["messages"], stream=True,
                    max_tokens=body.get("max_tokens"), temperature=body.get("temperature"))
                for chunk in stream:
                    if r_first is None and chunk.choices and chunk.choices[0].delta.content:
                        r_first = time.perf_counter() - started
                r["raw_total"].append(time.perf_counter() - started)
                r["raw_first"].append(r_first or r["raw_total"][-1])
    result: dict[str, Any] = {"questions": len(questions)}
    for cache, r in rows.items():
        n = len(r["engine_first"])
        first_over = [a - b for a, b in zip(r["engine_first"], r["raw_first"], strict=True)]
        total_over = [a - b for a, b in zip(r["engine_total"], r["raw_total"], strict=True)]
        result[cache] = {
            "answered_by_llm": n,
            "engine_ttft_ms": summary_ms(r["engine_first"]),
            "server_ttft_ms": summary_ms(r["raw_first"]),
            "engine_total_ms": summary_ms(r["engine_total"]),
            "server_total_ms": summary_ms(r["raw_total"]),
            "ttft_overhead_ms": summary_ms(first_over),
            "total_overhead_ms": summary_ms(total_over),
            "citation_check_ms": summary_ms(r["check"]),
        }
    log(f"llm mode: TTFT overhead p50 {result['warm']['ttft_overhead_ms']['p50']} ms (warm), "
        f"total overhead p50 {result['warm']['total_overhead_ms']['p50']} ms")
    return result
