"""The web UI: the app on a free port driven by `gradio_client` (ask, get a cited answer; compare;
limits as clear messages), UI authentication and the first-run background index build. The page's
HTML and handlers are tested without a browser in test_ui_handlers.py, in a browser in
test_browser.py."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl
from gradio_client import Client
from gradio_client.exceptions import AppError

from assistant.engine import Engine
from assistant.settings import Settings
from assistant.web.render import esc
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
NAILFOLD = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"


@pytest.fixture(scope="module")
def ui_url(corpus_store: Settings, engine: Engine) -> Iterator[str]:
    settings = corpus_store.model_copy(update={"max_turns": 4})
    with BackgroundServer(create_app(settings, engine)) as server:
        yield server.url


def reply_text(thread: str) -> str:
    """The last answer of the conversation HTML, as text."""
    last = thread.rsplit('<article class="pa-turn"', 1)[-1]
    return html.unescape(re.sub(r"<[^>]+>", " ", last))


def test_gradio_client_gets_a_cited_answer(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    assert {"/ask", "/compare"} <= set(client.view_api(return_format="dict", print_info=False)
                                       ["named_endpoints"])
    _, thread, sources = client.predict(
        "How accurate is the nailfold capillary pipeline at predicting abnormality?", 0,
        "extractive", api_name="/ask")
    reply = reply_text(thread)
    assert "[1]" in reply and "90%" in reply and NAILFOLD in reply
    assert 'class="pa-cite' in thread and "**Sources**" not in thread
    assert '<span class="pa-n">1</span>' in sources and esc(NAILFOLD) in sources
    assert "<mark>" in sources  # the quoted sentence is highlighted in its passage

    # The session keeps the conversation: a follow-up resolves against the previous answer.
    _, thread, _ = client.predict("What dataset does it use?", 0, "extractive", api_name="/ask")
    assert thread.count('<article class="pa-turn"') == 2
    assert NAILFOLD in reply_text(thread)


def test_compare_these_papers(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    _, thread, sources = client.predict([SEGMAMBA, SWIN_SMT], 0, "extractive", api_name="/compare")
    assert "<table>" in thread and "[1]" in reply_text(thread) and "[2]" in reply_text(thread)
    assert esc(SEGMAMBA) in sources and esc(SWIN_SMT) in sources
    with pytest.raises(AppError, match="at least two"):
        client.predict([SEGMAMBA], 0, "extractive", api_name="/compare")


def test_limits_are_clear_messages(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    with pytest.raises(AppError, match="the limit is 2,000"):
        client.predict("why " * 600, 0, "extractive", api_name="/ask")
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", 0, "extractive", api_name="/ask")
    client.predict("What is SegMamba?", 0, "extractive", api_name="/ask")
    client.predict("And Swin SMT?", 0, "extractive", api_name="/ask")
    with pytest.raises(AppError, match="the limit"):  # max_turns=4 in this app
        client.predict("And HiFormer?", 0, "extractive", api_name="/ask")


def test_ui_auth_closes_the_ui_and_the_api(corpus_store: Settings, engine: Engine) -> None:
    settings = corpus_store.model_copy(update={"ui_auth": "ada:lovelace"})
    with BackgroundServer(create_app(settings, engine)) as server:
        assert httpx.get(server.url + "config").status_code == 401
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a bare ValueError
            Client(server.url, verbose=False)
        client = Client(server.url, auth=("ada", "lovelace"), verbose=False)
        _, thread, _ = client.predict("What is SegMamba?", 0, "extractive", api_name="/ask")
        assert SEGMAMBA in reply_text(thread)
        # The API is closed too (no token configured: the UI's credentials, as HTTP Basic).
        assert httpx.get(server.url + "v1/models").status_code == 401
        basic = base64.b64encode(b"ada:lovelace").decode()
        assert httpx.get(server.url + "v1/models",
                         headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_first_start_builds_the_index_in_the_background(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "papers.jsonl", [
        {"title": title, "abstract": abstract} for title, abstract in make_papers(12)])
    settings = make_settings(tmp_path / "store", embed_backend="hash", corpus_paths=[corpus])
    app = create_app(settings)
    holder = app.state.holder
    with BackgroundServer(app) as server:
        health = httpx.get(server.url + "health").json()
        assert health["status"] in ("starting", "ok")
        assert holder.wait(120) and holder.error is None
        health = httpx.get(server.url + "health").json()
        assert health["status"] == "ok" and health["papers"] == 12


def test_empty_store_without_auto_ingest_is_a_clear_error(tmp_path: Path) -> None:
    from assistant.errors import AssistantError

    settings = make_settings(tmp_path / "store", embed_backend="hash", auto_ingest=False)
    with pytest.raises(AssistantError, match="empty"):
        create_app(settings)
