"""The web UI: the app on a free port driven by `gradio_client` (ask, get a cited answer; compare;
limits as clear messages), UI authentication, the first-run background index build, and the HTML
the UI builds from corpus text (escaped, supporting sentences highlighted, http(s) links only)."""

from __future__ import annotations

import base64
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
from assistant.web.server import BackgroundServer, create_app
from assistant.web.ui import (
    CorpusCache,
    answer_ids,
    corpus_map,
    corpus_table,
    esc,
    highlight,
    link,
    sources_html,
    supporting_sentences,
)

pytestmark = pytest.mark.slow

SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
NAILFOLD = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"


@pytest.fixture(scope="module")
def ui_url(corpus_store: Settings, engine: Engine) -> Iterator[str]:
    settings = corpus_store.model_copy(update={"max_turns": 4})
    with BackgroundServer(create_app(settings, engine)) as server:
        yield server.url


def last_reply(chat: list[dict]) -> str:
    content = chat[-1]["content"]
    if isinstance(content, list):  # gradio_client's message format: [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") for part in content)
    return str(content)


def test_gradio_client_gets_a_cited_answer(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    assert {"/ask", "/compare"} <= set(client.view_api(return_format="dict", print_info=False)
                                       ["named_endpoints"])
    _, chat, sources = client.predict(
        "How accurate is the nailfold capillary pipeline at predicting abnormality?", 0,
        "extractive", api_name="/ask")
    reply = last_reply(chat)
    assert chat[-1]["role"] == "assistant"
    assert "[1]" in reply and "90%" in reply and NAILFOLD in reply
    assert '<span class="pa-n">1</span>' in sources and esc(NAILFOLD) in sources
    assert "<mark>" in sources  # the quoted sentence is highlighted in its passage

    # The session keeps the conversation: a follow-up resolves against the previous answer.
    _, chat, _ = client.predict("What dataset does it use?", 0, "extractive", api_name="/ask")
    assert len(chat) == 4 and chat[0]["role"] == "user"
    assert NAILFOLD in last_reply(chat)


def test_compare_these_papers(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    _, chat, sources = client.predict([SEGMAMBA, SWIN_SMT], 0, "extractive", api_name="/compare")
    reply = last_reply(chat)
    assert "|---|" in reply and "[1]" in reply and "[2]" in reply
    assert esc(SEGMAMBA) in sources and esc(SWIN_SMT) in sources
    with pytest.raises(AppError, match="at least two"):
        client.predict([SEGMAMBA], 0, "extractive", api_name="/compare")
    with pytest.raises(AppError, match="Not in the collection"):
        client.predict([SEGMAMBA, "No Such Paper"], 0, "extractive", api_name="/compare")


def test_limits_are_clear_messages(ui_url: str) -> None:
    client = Client(ui_url, verbose=False)
    with pytest.raises(AppError, match="the limit is 2,000"):
        client.predict("why " * 600, 0, "extractive", api_name="/ask")
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", 0, "extractive", api_name="/ask")
    client.predict("What is SegMamba?", 0, "extractive", api_name="/ask")
    client.predict("And Swin SMT?", 0, "extractive", api_name="/ask")
    with pytest.raises(AppError, match="New conversation"):  # max_turns=4 in this app
        client.predict("And HiFormer?", 0, "extractive", api_name="/ask")


def test_ui_auth_closes_the_ui_and_the_api(corpus_store: Settings, engine: Engine) -> None:
    settings = corpus_store.model_copy(update={"ui_auth": "ada:lovelace"})
    with BackgroundServer(create_app(settings, engine)) as server:
        assert httpx.get(server.url + "config").status_code == 401
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a bare ValueError
            Client(server.url, verbose=False)
        client = Client(server.url, auth=("ada", "lovelace"), verbose=False)
        _, chat, _ = client.predict("What is SegMamba?", 0, "extractive", api_name="/ask")
        assert SEGMAMBA in last_reply(chat)
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


# --- HTML built from corpus text ----------------------------------------------------------------
def test_escaping_and_highlighting_keep_corpus_text_inert() -> None:
    text = 'We test <script>alert(1)</script> here. The model reaches 91% Dice. ${x} {{y}}'
    out = highlight(text, ["The model reaches 91% Dice."])
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<mark>The model reaches 91% Dice.</mark>" in out
    assert "${" not in out and "{{" not in out
    assert link("javascript:alert(1)", "x") == "x"
    assert link('https://ok.org/a"onmouseover="x', "x") == "x"
    assert link("https://github.com/ge-xing/SegMamba", "x").startswith(
        '<a href="https://github.com/ge-xing/SegMamba" target="_blank" rel="noopener')


def test_sources_panel_and_map_for_a_real_answer(engine: Engine) -> None:
    answer = engine.ask("Compare SegMamba and Swin SMT")
    support = supporting_sentences(engine, answer)
    assert support[1] and support[2]
    assert all(s in next(x.abstract for x in answer.sources if x.n == n)
               for n, sentences in support.items() for s in sentences)
    html = sources_html(answer, support)
    cards = re.findall(r'class="pa-card[^"]*" data-n="(\d+)"', html)
    assert cards[:2] == ["1", "2"] and len(cards) == len(answer.sources)
    assert "Also retrieved, not cited" in html
    assert html.count("<details>") == len(answer.sources)  # whole abstracts on demand
    assert "relevance" in html and "support 1.00" in html

    cache = CorpusCache()
    figure = corpus_map(engine, cache, answer_ids(answer))
    by_name = {trace.name: trace for trace in figure.data}
    cited = by_name["Cited in the latest answer"]
    assert list(cited.text) == ["[1]", "[2]"] or sorted(cited.text) == ["[1]", "[2]"]
    assert sum(len(t.x) for t in figure.data) == 215
    assert any(SEGMAMBA[:40] in h for h in cited.customdata)
    plain = corpus_map(engine, cache)
    assert [t.name for t in plain.data] == ["Papers"]


def test_corpus_table_filters_titles(engine: Engine) -> None:
    papers = CorpusCache().papers(engine)
    table, count = corpus_table(papers, "")
    assert len(table) == 215 and "215" in count
    table, count = corpus_table(papers, "segment anything")
    assert 0 < len(table) < 20
    assert all("segment anything" in t.lower() for t in table["Title"])
    assert count.startswith(f"**{len(table)}** of 215")
