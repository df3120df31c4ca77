"""Hardening from an outside probe (issue 17), over real HTTP on loopback with a small hash-embedder
store: the login page shows no corpus, Gradio's routes need a signed-in session, the UI password
does not open the API when a token is set, failed logins and bad tokens are slowed and locked out,
slow bodies are cut off, the API docs work offline behind the API's credentials, browser headers
and Host checks, the `model` field never echoed, and the contract details (405, 404, 400 for
schema violations, the conversation limit counting every message). Limiter and throttle units
too: a slot is held until the work ends, even when the request is gone."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl
from pydantic import SecretStr

from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.settings import Settings
from assistant.web.api import Busy, Limiter, error_response
from assistant.web.server import AuthThrottle, BackgroundServer, allowed_hosts, create_app

pytestmark = pytest.mark.slow

TOKEN = "sesame-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"ada:lovelace").decode()}
ASK = {"messages": [{"role": "user", "content": "Which papers study cardiac segmentation?"}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Engine, list[str]]:
    root: Path = tmp_path_factory.mktemp("security")
    papers = make_papers(12, seed=3)
    corpus = write_jsonl(root / "papers.jsonl", [{"title": t, "abstract": a} for t, a in papers])
    settings = make_settings(root / "store", embed_backend="hash", corpus_paths=[corpus],
                             auth_failure_delay=0)
    ingest(settings, progress=False)
    return settings, Engine(settings), [t for t, _ in papers]


@contextlib.contextmanager
def serving(store: tuple[Settings, Engine, list[str]], **overrides: Any) -> Iterator[Any]:
    settings, engine, _ = store
    app = create_app(settings.model_copy(update=overrides), engine)
    with BackgroundServer(app) as server:
        server.app = app
        yield server


@pytest.fixture(scope="module")
def locked(store) -> Iterator[Any]:
    """UI password and API token both set."""
    with serving(store, ui_auth="ada:lovelace", api_token=SecretStr(TOKEN),
                 auth_max_failures=1_000) as server:
        yield server


@pytest.fixture(scope="module")
def open_app(store) -> Iterator[Any]:
    with serving(store, max_turns=4) as server:
        yield server


# --- the UI behind its login ---------------------------------------------------------------------
def test_login_page_shows_no_corpus_title(locked, store) -> None:
    titles = store[2]
    page = httpx.get(locked.url)
    assert page.status_code == 200 and "auth_required" in page.text
    assert [t for t in titles if t in page.text] == []
    for path in ["config", "gradio_api/info", "gradio_api/heartbeat/abc", "gradio_api/startup-events",
                 "gradio_api/queue/data?session_hash=abc"]:
        assert httpx.get(locked.url + path).status_code == 401, path
    with httpx.Client() as browser:
        signed = browser.post(locked.url + "login", data={"username": "ada", "password": "lovelace"})
        assert signed.status_code == 200
        assert browser.get(locked.url + "gradio_api/info").status_code == 200
        assert browser.get(locked.url + "config").status_code == 200
        # A signed-in session may read the API docs (the API itself still wants its token).
        assert browser.get(locked.url + "api/openapi.json").status_code == 200
        assert browser.get(locked.url + "v1/models").status_code == 401


def test_ui_password_does_not_open_the_api_when_a_token_is_set(locked) -> None:
    for path in ["v1/models", "health", "v1/search?q=cardiac"]:
        assert httpx.get(locked.url + path, headers=BASIC).status_code == 401, path
        assert httpx.get(locked.url + path, headers=BEARER).status_code == 200, path
    refused = httpx.post(locked.url + "v1/chat/completions", headers=BASIC, json=ASK)
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]["message"]


# --- failed logins and bad tokens ---------------------------------------------------------------
def test_failed_logins_are_slowed_then_locked_out(store) -> None:
    with serving(store, ui_auth="ada:lovelace", api_token=SecretStr(TOKEN),
                 auth_max_failures=3) as server:
        paused: list[int] = []

        async def pause() -> None:  # stands in for the delay's sleep, counting it
            paused.append(1)

        server.app.state.auth_throttle.pause = pause
        wrong = {"username": "ada", "password": "guess"}
        assert [httpx.post(server.url + "login", data=wrong).status_code for _ in range(3)] == [400] * 3
        assert len(paused) == 3  # every failure waited
        right = httpx.post(server.url + "login", data={"username": "ada", "password": "lovelace"})
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
        # The lockout covers the API too, even with the right token.
        api = httpx.get(server.url + "v1/models", headers=BEARER)
        assert api.status_code == 429 and "Retry-After" in api.headers


def test_bad_tokens_are_locked_out(store) -> None:
    with serving(store, api_token=SecretStr(TOKEN), auth_max_failures=3) as server:
        bad = {"Authorization": "Bearer guess"}
        assert [httpx.get(server.url + "health", headers=bad).status_code
                for _ in range(3)] == [401] * 3
        good = httpx.get(server.url + "health", headers=BEARER)
        assert good.status_code == 429 and int(good.headers["Retry-After"]) > 0


def test_throttle_counts_failures_in_a_window_and_attempts_in_flight() -> None:
    now = [1000.0]
    settings = make_settings(Path("/nonexistent"), auth_max_failures=3, auth_failure_window=60,
                             auth_lockout=120)
    throttle = AuthThrottle(settings, clock=lambda: now[0])
    for _ in range(2):
        assert throttle.admit("a") == 0
        throttle.done("a", failed=True)
    now[0] += 61  # the first two have left the window
    for _ in range(2):
        assert throttle.admit("a") == 0
        throttle.done("a", failed=True)
    assert throttle.admit("a") == 0 and throttle.admit("b") == 0  # other clients are separate
    throttle.done("a", failed=True)  # the third within the window: locked out
    assert throttle.admit("a") == pytest.approx(120)
    now[0] += 121
    assert throttle.admit("a") == 0
    throttle.done("a", failed=False)
    # Parallel guesses: attempts in flight count, so a burst cannot outrun the limit.
    assert [throttle.admit("c") for _ in range(4)][-1] > 0
    # A success clears the count.
    for _ in range(2):
        throttle.admit("d")
        throttle.done("d", failed=True)
    throttle.admit("d")
    throttle.done("d", failed=False)
    assert all(throttle.admit("d") == 0 for _ in range(3))


# --- slow bodies ----------------------------------------------------------------------------------
def test_a_slow_body_is_cut_off(store) -> None:
    with serving(store, body_timeout=1.0) as server:
        host, port = "127.0.0.1", server.port
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n{".encode())
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"ASSISTANT_BODY_TIMEOUT" in answer


# --- API docs -------------------------------------------------------------------------------------
def test_api_docs_work_offline_behind_credentials(locked, store) -> None:
    assert httpx.get(locked.url + "api/docs").status_code == 401
    assert httpx.get(locked.url + "api/openapi.json").status_code == 401
    docs = httpx.get(locked.url + "api/docs", headers=BEARER)
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/api/") for a in assets), assets  # nothing from a CDN
    for asset in assets:
        assert httpx.get(locked.url + asset.lstrip("/")).status_code == 200, asset
    schema = httpx.get(locked.url + "api/openapi.json", headers=BEARER).json()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert '"422"' not in str(schema).replace("'", '"')  # errors are 400, as documented
    with serving(store, api_docs=False) as server:
        assert httpx.get(server.url + "api/docs").status_code == 404


# --- browser headers, hosts ---------------------------------------------------------------------
def test_security_headers_and_host_check(open_app) -> None:
    for path in ["", "v1/models"]:
        response = httpx.get(open_app.url + path)
        assert response.status_code == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    rebound = httpx.get(open_app.url + "v1/models", headers={"Host": "evil.example"})
    assert rebound.status_code == 400
    named = httpx.get(open_app.url + "v1/models", headers={"Host": f"localhost:{open_app.port}"})
    assert named.status_code == 200


def test_allowed_hosts_default_to_loopback_and_the_bind_host() -> None:
    def hosts(**overrides: Any) -> list[str]:
        return allowed_hosts(make_settings(Path("/nonexistent"), **{"allowed_hosts": [], **overrides}))

    assert hosts() == ["localhost", "127.0.0.1", "[::1]"]
    assert "10.0.0.5" in hosts(host="10.0.0.5")
    assert "[fe80::1]" in hosts(host="fe80::1")
    assert hosts(host="0.0.0.0") == ["*"]  # a wildcard bind: names unknown, warned at start
    assert "papers.example.org" in hosts(host="0.0.0.0", allowed_hosts=["papers.example.org"])
    assert hosts(allowed_hosts=["*"]) == ["*"]


# --- what the API echoes ----------------------------------------------------------------------------
def test_model_field_is_never_echoed(open_app) -> None:
    body = {**ASK, "model": "<script>alert(1)</script>"}
    plain = httpx.post(open_app.url + "v1/chat/completions", json=body, timeout=60)
    assert plain.status_code == 200 and plain.json()["model"] == "paper-assistant"
    streamed = httpx.post(open_app.url + "v1/chat/completions", json={**body, "stream": True},
                          timeout=60)
    assert "<script>" not in streamed.text and '"model": "paper-assistant"' in streamed.text


# --- contract details -------------------------------------------------------------------------------
def test_methods_paths_and_validation_errors(open_app) -> None:
    url = open_app.url
    for method, path, allow in [("TRACE", "v1/models", "GET"), ("PUT", "v1/chat/completions", "POST"),
                                ("DELETE", "health", "GET"), ("TRACE", "api/openapi.json", "GET")]:
        response = httpx.request(method, url + path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allow
        assert response.json()["error"]["type"] == "method_not_allowed"
    missing = httpx.get(url + "v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    for bad in [b"{not json", b'{"messages": "hi"}', b'{"messages": [], "stream": 1}']:
        response = httpx.post(url + "v1/chat/completions", content=bad,
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400, bad


def test_schema_and_server_agree_on_questions_and_messages(open_app) -> None:
    url = open_app.url
    schema = httpx.get(url + "api/openapi.json").json()
    chat = schema["components"]["schemas"]["ChatRequest"]["properties"]["messages"]
    assert chat["maxItems"] == 4 and chat["contains"]["properties"]["role"]["const"] == "user"
    search = next(p for p in schema["paths"]["/v1/search"]["get"]["parameters"] if p["name"] == "q")
    assert search["schema"]["minLength"] == 1

    assert httpx.get(url + "v1/search", params={"q": ""}).status_code == 400
    only_tools = {"messages": [{"role": "tool", "content": "x"}, {"role": "tool", "content": "y"}]}
    refused = httpx.post(url + "v1/chat/completions", json=only_tools)
    assert refused.status_code == 400 and "no user message" in refused.json()["error"]["message"]

    def post(*roles: str) -> httpx.Response:
        messages = [{"role": r, "content": "Which papers study cardiac segmentation?"}
                    for r in roles]
        return httpx.post(url + "v1/chat/completions", json={"messages": messages}, timeout=60)

    assert post("system", "user", "assistant", "user").status_code == 200  # 4: the limit
    over = post("user", "assistant", "user", "assistant", "user")  # the question makes it 5
    assert over.status_code == 400 and "limit is 4" in over.json()["error"]["message"]
    assert post(*["system"] * 10, "user").status_code == 400  # system messages count too


# --- concurrency ----------------------------------------------------------------------------------
def test_busy_is_a_429_with_retry_after() -> None:
    limiter = Limiter(concurrency=1, queue_size=1, retry_after=7)

    async def scenario() -> None:
        await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        with pytest.raises(Busy) as busy:
            await limiter.acquire()
        response = error_response(busy.value)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        limiter.release()
        await waiting
        limiter.release()

    asyncio.run(scenario())


def test_a_slot_is_held_until_the_work_ends_even_when_the_request_is_gone() -> None:
    limiter = Limiter(concurrency=1, queue_size=4)
    gate = threading.Event()

    async def scenario() -> None:
        request = asyncio.create_task(limiter.run(gate.wait, 30))
        while limiter.active == 0:
            await asyncio.sleep(0.01)
        request.cancel()  # the client went away
        with contextlib.suppress(asyncio.CancelledError):
            await request
        assert limiter.active == 1  # the worker still computes: its slot stays taken
        gate.set()
        while limiter.active:
            await asyncio.sleep(0.01)
        assert await limiter.run(lambda: "next") == "next"

    asyncio.run(scenario())



def test_the_end_of_the_work_is_seen_only_once_its_slot_is_free() -> None:
    """Starlette's TestClient runs each request on an event loop of its own, closed once the
    response is sent: a slot freed by a callback scheduled after the response could end would be
    lost for good (a busy CI machine lost all four, and the suite hung). So the slot is freed in
    the same loop callback that lets the request see its work end."""
    limiter = Limiter(concurrency=1, queue_size=1)
    seen: list[int] = []

    async def scenario() -> None:
        ended = asyncio.Event()

        def done() -> None:
            seen.append(limiter.active)
            ended.set()

        await limiter.start(lambda: time.sleep(0.05), done)
        await ended.wait()

    asyncio.run(scenario())
    assert seen == [0]
