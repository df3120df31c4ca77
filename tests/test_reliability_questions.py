"""Hostile questions (issue 6) over every edge: the Engine, the CLI, the HTTP API (plain and
streamed) and the web UI (through gradio_client). Each gets a clear message or a sensible answer,
never a traceback or a 500; answers are checked as rendered (no raw HTML, no outside links)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from reliability.common import write_result
from reliability.injection import inspect
from reliability.questions import questions

from assistant.corpus import is_code_link
from assistant.engine import Answer, Engine
from assistant.errors import AssistantError
from assistant.settings import Settings

pytestmark = pytest.mark.slow

QUESTIONS = questions()
# A few go through the real CLI too (a process per question; the ones that pass validation load
# the embedding model): one per kind of outcome.
CLI_CASES = ["empty", "100kB-letters", "nul-bytes", "md-script"]
# The UI (a gradio_client round trip per question): a sample of every category.
UI_CASES = [
    "empty",
    "whitespace-mix",
    "100kB-words",
    "at-limit",
    "nul-bytes",
    "ansi-escapes",
    "random-bytes",
    "rtl-override",
    "md-script",
    "md-image",
    "md-table",
    "md-img-onerror",
    "sql-drop",
    "sql-or",
    "template-strings",
    "plane-2-mixed",
    "plane-14-only",
    "plane-16-mixed",
    "ordinary",
]
RESULTS: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
FAILURES: list[str] = []


def allowed(answer: Answer) -> set[str]:
    return {u for s in answer.sources for u in (s.url, *[x for x in s.links if is_code_link(x)]) if u}


def record(edge: str, qid: str, category: str, outcome: str, problem: str | None = None) -> None:
    RESULTS[edge][category][outcome] += 1
    if problem:
        RESULTS[edge][category]["failures"] += 1
        FAILURES.append(f"{edge} {qid}: {problem}")


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    write_result(
        "questions",
        {
            "questions": len(QUESTIONS),
            "edges": {edge: {cat: dict(c) for cat, c in cats.items()} for edge, cats in RESULTS.items()},
            "failures": FAILURES,
        },
    )


def test_engine(engine: Engine):
    failures_before = len(FAILURES)
    for qid, category, text in QUESTIONS:
        try:
            answer = engine.ask(text)
        except AssistantError as exc:
            problem = None if 0 < len(exc.message) < 300 and exc.status == 400 else f"unclear: {exc!r}"
            record("engine", qid, category, "clear message", problem)
            continue
        except Exception as exc:
            record("engine", qid, category, "exception", f"{type(exc).__name__}: {exc}")
            continue
        found = inspect(answer.answer, allowed(answer), {s.n for s in answer.sources})
        record(
            "engine",
            qid,
            category,
            "abstained" if answer.abstained else "answered",
            f"unsafe answer {found.as_dict()}" if found.any() else None,
        )
    assert len(FAILURES) == failures_before, "\n".join(FAILURES[failures_before:])


def test_http_api(corpus_store: Settings, engine: Engine):
    from fastapi.testclient import TestClient

    from assistant.web.server import create_app

    client = TestClient(create_app(corpus_store, engine), raise_server_exceptions=False)
    failures_before = len(FAILURES)
    cases = [*QUESTIONS, ("300kB-body", "100 kB", "b" * 300_000)]
    for qid, category, text in cases:
        for stream in (False, True):
            edge = "api (stream)" if stream else "api"
            body = {
                "model": "paper-assistant",
                "stream": stream,
                "messages": [{"role": "user", "content": text}],
            }
            # Lone surrogates travel as JSON escapes, as any client would send them.
            data = json.dumps(body).encode()
            response = client.post(
                "/v1/chat/completions", content=data, headers={"Content-Type": "application/json"}
            )
            if response.status_code >= 500 or "Traceback" in response.text:
                record(edge, qid, category, f"HTTP {response.status_code}", response.text[:300])
                continue
            if response.status_code >= 400:
                try:
                    message = response.json()["error"]["message"]
                except (ValueError, KeyError) as exc:
                    record(edge, qid, category, "unclear 4xx", f"{response.status_code}: {exc}")
                    continue
                record(
                    edge,
                    qid,
                    category,
                    f"clear {response.status_code}",
                    None if 0 < len(message) < 400 else f"unclear message {message[:200]!r}",
                )
                continue
            text_out = response.text
            if stream:
                events = [
                    json.loads(line[6:])
                    for line in text_out.splitlines()
                    if line.startswith("data: ") and line != "data: [DONE]"
                ]
                errors = [e for e in events if "error" in e]
                if errors:
                    record(
                        edge,
                        qid,
                        category,
                        "stream error event",
                        None if errors[0]["error"].get("message") else f"empty error {errors[0]}",
                    )
                    continue
                final = events[-1]
                content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
            else:
                final = response.json()
                content = final["choices"][0]["message"]["content"]
            sources = final.get("sources", [])
            urls = {s["url"] for s in sources if s.get("url")}
            found = inspect(content, urls, {s["n"] for s in sources})
            record(
                edge,
                qid,
                category,
                "abstained" if final.get("abstained") else "answered",
                f"unsafe answer {found.as_dict()}" if found.any() else None,
            )
    assert len(FAILURES) == failures_before, "\n".join(FAILURES[failures_before:])


SAFE_TAGS = {"div", "p", "span", "a", "article", "button", "em", "strong", "ul", "ol", "li", "table",
             "thead", "tbody", "tr", "th", "td", "code", "pre", "br", "hr", "q", "h1", "h2", "h3", "h4",
             "h5", "h6", "blockquote", "del", "s"}


def unsafe_html(page: str) -> list[str]:
    """Tags outside SAFE_TAGS, event-handler attributes and script links in the UI's HTML."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Check(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in SAFE_TAGS:
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on") or (name in ("href", "src") and value
                                             and not value.startswith(("https://", "http://", "#"))):
                    found.append(f"{tag} {name}={value!r}")

    Check().feed(page)
    return found


def test_web_ui(corpus_store: Settings, engine: Engine):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from assistant.web.server import BackgroundServer, create_app

    failures_before = len(FAILURES)
    with BackgroundServer(create_app(corpus_store, engine)) as server:
        client = Client(server.url, verbose=False)
        for qid, category, text in [q for q in QUESTIONS if q[0] in UI_CASES]:
            try:
                notice, thread, _sources = client.predict(text, 0, "extractive", api_name="/ask")
            except AppError as exc:
                message = str(exc)
                bad = "Traceback" in message or "internal error" in message or not message.strip()
                record("ui", qid, category, "clear message", f"unclear: {message[:200]!r}" if bad else None)
                continue
            except Exception as exc:
                record("ui", qid, category, "client error", f"{type(exc).__name__}: {exc}")
                continue
            reply = notice or thread.rsplit('<article class="pa-turn"', 1)[-1]
            if "internal error" in reply.lower() or "Traceback" in reply:
                record("ui", qid, category, "internal error", reply[:200])
                continue
            # What the page shows is HTML the UI built: no element or attribute that runs code.
            unsafe = unsafe_html(notice + thread)
            record(
                "ui",
                qid,
                category,
                "message in the chat" if notice else "answered",
                f"unsafe chat {unsafe}" if unsafe else None,
            )
    assert len(FAILURES) == failures_before, "\n".join(FAILURES[failures_before:])


def test_command_line(corpus_store: Settings):
    exe = Path(sys.executable).with_name("assistant")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))},
        "HF_HUB_OFFLINE": "1",
    }
    failures_before = len(FAILURES)
    for qid, category, text in [q for q in QUESTIONS if q[0] in CLI_CASES]:
        # argv cannot carry NUL bytes: the shell would cut the argument there, as it does here.
        arg = text.replace("\x00", "")
        done = subprocess.run(
            [str(exe), "ask", arg, "--store", str(corpus_store.store_dir), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if "Traceback" in done.stderr or "internal error" in done.stderr:
            record("cli", qid, category, "traceback", done.stderr[-300:])
        elif done.returncode == 2 and done.stderr.startswith("error: "):
            record("cli", qid, category, "clear message (exit 2)")
        elif done.returncode == 0:
            answer = json.loads(done.stdout)
            record("cli", qid, category, "abstained" if answer["abstained"] else "answered")
        else:
            record("cli", qid, category, f"exit {done.returncode}", done.stderr[-300:])
    assert len(FAILURES) == failures_before, "\n".join(FAILURES[failures_before:])
