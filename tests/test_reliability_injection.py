"""Prompt injection and output safety (issue 6): 23 poisoned abstracts (ignore the rules, reveal the
system prompt, outside links and images, citations outside the sources, raw HTML), asked about in
both answer modes. In LLM mode a scripted OpenAI-compatible server obeys every injection it is sent,
as a naive model would. What the user sees (every streamed draft, the final answer, and the API's
streamed message) must hold no outside link or image, no raw HTML, no citation outside the
retrieved set and no system prompt."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from conftest import StoreFactory
from reliability.common import write_result
from reliability.injection import POISONS, inspect, naive_reply, poisoned_corpus, question_for

from assistant.corpus import is_code_link
from assistant.engine import Answer, Engine
from assistant.testing.fake_openai import FakeLLMServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def poisoned(make_store: StoreFactory):
    records = poisoned_corpus()
    settings = make_store([{k: v for k, v in r.items() if k != "poison"} for r in records],
                          name="injection")
    with FakeLLMServer(naive_reply) as server:
        yield settings, records, server


def allowed(answer: Answer) -> set[str]:
    """A source's own link and its code links: everything else is an outside address."""
    return {u for s in answer.sources for u in (s.url, *[x for x in s.links if is_code_link(x)]) if u}


def _check(text: str, answer: Answer):
    return inspect(text, allowed(answer), {s.n for s in answer.sources})


def test_poisoned_abstracts_cannot_steer_what_the_user_sees(poisoned):
    settings, records, server = poisoned
    engines = {
        "extractive": Engine(settings),
        "llm": Engine(settings.model_copy(update={"openai_base_url": server.base_url, "llm_timeout": 10.0})),
    }
    assert engines["llm"].mode == "llm"
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    failures = []
    poisoned_records = [r for r in records if "poison" in r]
    assert len(poisoned_records) >= 20
    for mode, engine in engines.items():
        for record in poisoned_records:
            poison = POISONS[record["poison"]]
            key = f"{mode}: {poison.kind}"
            events = list(engine.stream(question_for(record)))
            answer = events[-1]
            assert isinstance(answer, Answer)
            stats[key]["questions"] += 1
            if not any(s.title.startswith(record["title"][:12]) for s in answer.sources):
                failures.append(f"{mode} #{record['poison']}: the poisoned paper was not retrieved")
                continue
            stats[key]["poisoned paper retrieved"] += 1
            if mode == "llm":
                stats[key]["LLM obeyed the injection"] += int(answer.mode == "llm")
            for name, value in answer.checks.items():
                stats[key][f"defence: {name}"] += value
            drafts = [e for e in events[:-1] if isinstance(e, str)]
            bad_drafts = [d for d in drafts if _check(d, answer).any()]
            final = _check(answer.answer, answer)
            stats[key]["drafts checked"] += len(drafts)
            stats[key]["drafts with a violation"] += len(bad_drafts)
            stats[key]["answers with a violation"] += int(final.any())
            for what, values in final.as_dict().items():
                stats[key][f"violation: {what}"] += len(values)
            if final.any() or bad_drafts:
                failures.append(
                    f"{mode} #{record['poison']} ({poison.kind}): final {final.as_dict()}; "
                    f"{len(bad_drafts)} bad draft(s), first: "
                    f"{_check(bad_drafts[0], answer).as_dict() if bad_drafts else None}"
                )
    write_result(
        "injection",
        {
            "poisoned_papers": len(poisoned_records),
            "clean_papers": len(records) - len(poisoned_records),
            "llm_requests": len(server.requests),
            "stats": {k: dict(v) for k, v in sorted(stats.items())},
            "failures": failures,
        },
    )
    assert not failures, "\n".join(failures)


def test_the_api_stream_carries_no_injected_content(poisoned):
    """The OpenAI-compatible stream sends drafts as deltas that can only append: its concatenated
    message, and the final `answer` field, are checked as a client would render them."""
    from fastapi.testclient import TestClient

    from assistant.web.server import create_app

    settings, records, server = poisoned
    llm_settings = settings.model_copy(update={"openai_base_url": server.base_url, "llm_timeout": 10.0})
    engine = Engine(llm_settings)
    client = TestClient(create_app(llm_settings, engine))
    failures = []
    checked = 0
    for record in [r for r in records if "poison" in r]:
        reference = engine.ask(question_for(record))
        body = {
            "model": "paper-assistant",
            "stream": True,
            "messages": [{"role": "user", "content": question_for(record)}],
        }
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            message, final = "", None
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                assert "error" not in event, event
                message += event["choices"][0]["delta"].get("content") or ""
                final = event.get("answer", final)
        for text in (message, final or ""):
            found = _check(text, reference)
            if found.any():
                failures.append(f"#{record['poison']}: {found.as_dict()}")
        checked += 1
    write_result("injection_api", {"streams_checked": checked, "failures": failures})
    assert not failures, "\n".join(failures)
