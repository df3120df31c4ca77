"""The HTTP API over real HTTP: the official `openai` client against /v1/chat/completions (streaming
and not), /v1/models, /health, /v1/search, bearer-token auth, limits (question length, conversation
length, body size) as clear OpenAI-style errors, and how LLM drafts are streamed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from pydantic import SecretStr

from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.testing.llm import ScriptedLLM
from assistant.web.api import CHECKED_RULE, DeltaTracker, Limiter
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

TOKEN = "test-token-123"
SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
NAILFOLD = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"


@pytest.fixture(scope="module")
def api(corpus_store: Settings, engine: Engine) -> Iterator[str]:
    settings = corpus_store.model_copy(update={"api_token": SecretStr(TOKEN), "max_turns": 6})
    with BackgroundServer(create_app(settings, engine)) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(api: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=api + "v1", api_key=TOKEN, max_retries=0, timeout=120)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_models_and_health(api: str, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["paper-assistant"]
    health = httpx.get(api + "health", headers=auth()).json()
    assert health["status"] == "ok"
    assert health["papers"] == 215 and health["chunks"] > 215
    assert health["mode"] == "extractive"


def test_non_streaming_answer_has_citations_and_sources(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="paper-assistant",
        messages=[{"role": "user", "content": "Compare SegMamba and Swin SMT"}])
    text = response.choices[0].message.content or ""
    assert response.choices[0].finish_reason == "stop"
    assert "[1]" in text and "[2]" in text
    assert "|---|" in text  # a comparison table
    assert SEGMAMBA in text and SWIN_SMT in text  # the source list, exact titles
    extra = response.model_extra or {}
    cited = {c["title"] for c in extra["citations"]}
    assert {SEGMAMBA, SWIN_SMT} <= cited
    sources = extra["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert all(s["passages"] and s["score"] > 0 for s in sources)
    assert extra["mode"] == "extractive" and extra["abstained"] is False


def test_streaming_deltas_add_up_to_the_checked_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="paper-assistant", stream=True,
        messages=[{"role": "user", "content": "How accurate is the nailfold capillary pipeline at "
                                              "predicting abnormality?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    extra = final.model_extra or {}
    assert text == extra["answer"]
    assert "90%" in text and "[1]" in text and NAILFOLD in text
    assert extra["sources"][0]["title"] == NAILFOLD
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_multi_turn_follow_up_uses_the_history(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="paper-assistant", messages=[{"role": "user", "content": "Compare SegMamba and Swin SMT"}])
    follow = client.chat.completions.create(model="paper-assistant", messages=[
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "Compare SegMamba and Swin SMT"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "What dataset did the second one use?"}]},
    ])
    text = follow.choices[0].message.content or ""
    assert "TotalSegmentator" in text
    assert (follow.model_extra or {})["citations"][0]["title"] == SWIN_SMT


def test_off_topic_question_abstains(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="paper-assistant",
        messages=[{"role": "user", "content": "What is the best pizza recipe in Naples?"}])
    assert (response.model_extra or {})["abstained"] is True
    assert "does not seem to cover" in (response.choices[0].message.content or "")


def test_search_endpoint_ranks_papers_with_passages(api: str) -> None:
    got = httpx.get(api + "v1/search", params={"q": "Segment Anything Model for medical images",
                                               "k": 4}, headers=auth())
    assert got.status_code == 200
    data = got.json()
    assert data["covered"] is True and len(data["papers"]) == 4
    assert [p["rank"] for p in data["papers"]] == [1, 2, 3, 4]
    assert any("SAM" in p["title"] for p in data["papers"][:2])
    assert all(p["passages"] and p["passages"][0]["text"] for p in data["papers"])
    scores = [p["score"] for p in data["papers"]]
    assert scores == sorted(scores, reverse=True)
    posted = httpx.post(api + "v1/search", json={"query": "best pizza recipe in Naples"},
                        headers=auth()).json()
    assert posted["covered"] is False


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "v1/chat/completions"), ("GET", "v1/models"), ("GET", "health"),
    ("GET", "v1/search?q=segmentation"),
])
def test_token_is_required(api: str, method: str, path: str) -> None:
    body = {"messages": [{"role": "user", "content": "Compare SegMamba and Swin SMT"}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.request(method, api + path, json=body if method == "POST" else None,
                                 headers=headers)
        assert response.status_code == 401
        assert set(response.json()) == {"error"}  # no data
        assert "Bearer" in response.json()["error"]["message"]
        assert "Segmentation" not in response.text


def test_openai_client_with_a_wrong_key_gets_401(api: str) -> None:
    bad = openai.OpenAI(base_url=api + "v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="paper-assistant",
                                    messages=[{"role": "user", "content": "SegMamba?"}])


def test_limits_answer_clear_errors(api: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="paper-assistant",
                                       messages=[{"role": "user", "content": "why " * 600}])
    assert "the limit is 2,000" in too_long.value.message

    turns = [{"role": r, "content": "SegMamba?"} for r in ["user", "assistant"] * 4]
    response = httpx.post(api + "v1/chat/completions", headers=auth(),
                          json={"messages": [*turns, {"role": "user", "content": "and then?"}]})
    assert response.status_code == 400
    assert "limit is 6" in response.json()["error"]["message"]

    huge = {"messages": [{"role": "user", "content": "a" * 300_000}]}
    response = httpx.post(api + "v1/chat/completions", headers=auth(), json=huge)
    assert response.status_code == 413
    assert "ASSISTANT_MAX_BODY_BYTES" in response.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(huge).encode()

    response = httpx.post(api + "v1/chat/completions", content=chunked(),
                          headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 413

    for body, needle in [
        (b"{not json", "not valid JSON"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "assistant", "content": "hi"}]}', "no user message"),
        (b'{"messages": [{"role": "user", "content": "   "}]}', "empty"),
        # An offline server: its schema has no `llm` mode.
        (b'{"messages": [{"role": "user", "content": "SegMamba?"}], "mode": "llm"}', "mode"),
    ]:
        response = httpx.post(api + "v1/chat/completions", content=body,
                              headers={**auth(), "Content-Type": "application/json"})
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert needle in error["message"] and error["type"] == "invalid_request_error"


def test_streaming_errors_come_before_the_stream(api: str) -> None:
    response = httpx.post(api + "v1/chat/completions", headers=auth(), json={
        "stream": True, "messages": [{"role": "user", "content": "x" * 2_500}]})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")


# --- streaming LLM drafts -----------------------------------------------------------------------
def test_draft_tracker_only_appends() -> None:
    tracker = DeltaTracker(drafts=True)
    assert tracker.draft("SegMamba mod") == "SegMamba"  # the half-written word waits
    assert tracker.draft("SegMamba models volumes [1") == " models volumes"
    assert tracker.draft("SegMamba models volumes [1]. ") == " [1]."
    assert tracker.final("SegMamba models volumes [1].\n\n**Sources**") == "\n\n**Sources**"
    diverged = DeltaTracker(drafts=True)
    diverged.draft("It reaches 91% [7] on ")
    assert diverged.draft("It reaches 91% on BraTS ") == ""  # no longer an extension: held
    assert diverged.final("It reaches 91% on BraTS.") == CHECKED_RULE + "It reaches 91% on BraTS."
    quiet = DeltaTracker(drafts=False)
    assert quiet.draft("Some draft text ") == ""
    assert quiet.final("Checked.") == "Checked."


def test_llm_mode_streams_drafts_then_the_checked_answer(corpus_store: Settings) -> None:
    def reply(messages: list[dict[str, str]]) -> str:
        return ("SegMamba models whole 3D volumes with a state space model [1]. "
                "It was evaluated on the BraTS2023 dataset [9].")  # [9] does not exist

    llm = ScriptedLLM(reply, name="scripted-llm")
    engine = Engine(corpus_store, llm=llm)
    with BackgroundServer(create_app(corpus_store, engine)) as server:
        client = openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="paper-assistant", stream=True,
            messages=[{"role": "user", "content": "What does SegMamba do?"}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = (chunks[-1].model_extra or {})["answer"]
        assert "[9]" not in final and "[1]" in final and SEGMAMBA in final
        # Several draft deltas arrived before the end, and nothing shown hides the correction.
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
        assert text.endswith(final)
        assert (chunks[-1].model_extra or {})["mode"] == "llm"

        quiet = list(client.chat.completions.create(
            model="paper-assistant", stream=True, extra_body={"drafts": False},
            messages=[{"role": "user", "content": "What does SegMamba do?"}]))
        text = "".join(c.choices[0].delta.content or "" for c in quiet if c.choices)
        assert text == (quiet[-1].model_extra or {})["answer"]

        offline = client.chat.completions.create(
            model="paper-assistant", extra_body={"mode": "extractive"},
            messages=[{"role": "user", "content": "What does SegMamba do?"}])
        assert (offline.model_extra or {})["mode"] == "extractive"
        assert llm.calls and len(llm.calls) == 2  # the offline request never reached the LLM


# --- concurrency --------------------------------------------------------------------------------
def test_limiter_refuses_beyond_the_queue() -> None:
    limiter = Limiter(concurrency=1, queue_size=1)

    async def scenario() -> None:
        await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        assert limiter.waiting == 1
        with pytest.raises(AssistantError) as busy:
            limiter.check()
        assert busy.value.status == 429
        limiter.release()
        await waiting
        limiter.release()
        limiter.check()  # free again

    asyncio.run(scenario())


def test_a_call_made_while_the_engine_loads_waits_for_it(make_store, monkeypatch) -> None:
    """The page is served before the models load (background_load); an API call made meanwhile
    waits up to start_wait for the engine instead of answering 503."""
    import time

    from assistant.web import holder as holder_module

    class SlowEngine(Engine):
        def __init__(self, *args: object, **kwargs: object) -> None:
            time.sleep(1.5)  # a model load, slowed so that the call surely comes first
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(holder_module, "Engine", SlowEngine)
    settings = make_store([(SEGMAMBA, "SegMamba models long-range dependencies in 3D volumes."),
                           (SWIN_SMT, "Swin SMT segments whole-body CT with a soft mixture.")],
                          name="loading", start_wait=60.0)
    app = create_app(settings)  # no engine given: it loads in the background
    with BackgroundServer(app) as server:
        assert not app.state.holder.ready
        found = httpx.get(server.url + "v1/search", params={"q": "SegMamba"}, timeout=90)
        assert found.status_code == 200, found.text
        assert found.json()["papers"][0]["title"] == SEGMAMBA
    app = create_app(settings.model_copy(update={"start_wait": 0.0}))
    with BackgroundServer(app) as server:
        assert not app.state.holder.ready
        busy = httpx.get(server.url + "v1/search", params={"q": "SegMamba"}, timeout=90)
        assert busy.status_code == 503 and "starting" in busy.text


def test_the_served_app_caps_malloc_arenas():
    """`assistant serve` caps glibc's malloc arenas (setting malloc_arena_max) before its threads
    start; 0 leaves glibc's default. Run in a child: the cap is process-wide."""
    import subprocess
    import sys

    code = ("from assistant.web.server import limit_malloc_arenas as cap; "
            "print(cap(2), cap(0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == (["True", "False"] if sys.platform.startswith("linux")
                                  else ["False", "False"])
