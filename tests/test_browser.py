"""End to end in a real browser: headless Chromium (Debian's `chromium` package) driven by
Playwright opens the UI, asks a comparison question and sees the answer with its table, citations
and sources panel; a corpus whose abstract and title carry <script>/<img onerror> renders them as
text, never running them.

`UPDATE_SCREENSHOT=1 pytest tests/test_browser.py` also refreshes docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl

from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.settings import PROJECT_ROOT, Settings
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
TIMEOUT = 90_000  # ms; a cold 2-core CI machine is slow

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (`make browser` installs Debian's package)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.requested = requests
    yield page
    context.close()


def ask(page: Any, question: str) -> None:
    box = page.locator("#pa-question textarea")
    box.wait_for(timeout=TIMEOUT)
    box.fill(question)
    box.press("Enter")


def test_comparison_question_in_the_browser(page: Any, corpus_store: Settings, engine: Engine,
                                            tmp_path: Path) -> None:
    with BackgroundServer(create_app(corpus_store, engine)) as server:
        page.goto(server.url)
        page.locator("#pa-mode").filter(has_text="offline: quoting the papers").wait_for(
            timeout=TIMEOUT)
        ask(page, "Compare SegMamba and Swin SMT")

        chat = page.locator("#pa-chat")
        chat.locator("table").first.wait_for(timeout=TIMEOUT)
        page.wait_for_function(
            "() => document.querySelector('#pa-chat').innerText.includes('Sources')",
            timeout=TIMEOUT)
        text = chat.inner_text()
        assert "Compare SegMamba and Swin SMT" in text  # the user's turn
        assert "[1]" in text and "[2]" in text and "SegMamba" in text
        assert chat.locator("table th").count() >= 3
        assert chat.locator("table td").count() >= 8

        sources = page.locator("#pa-sources")
        sources.locator(".pa-card").first.wait_for(timeout=TIMEOUT)
        titles = sources.locator(".pa-card-title").all_inner_texts()
        assert any(SEGMAMBA in t for t in titles[:2]) and any(SWIN_SMT in t for t in titles[:2])
        assert sources.locator("mark").count() >= 2  # supporting sentences highlighted
        link = sources.locator(".pa-card-title a").first
        assert link.get_attribute("href", timeout=TIMEOUT).startswith("https://")
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"
        chat.locator("table").first.scroll_into_view_if_needed()
        page.evaluate("() => { const s = document.querySelector('#pa-chat [role=log]') || "
                      "document.querySelector('#pa-chat .bubble-wrap'); if (s) s.scrollTop = 0; }")
        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot))
        if os.environ.get("UPDATE_SCREENSHOT"):
            shutil.copy(shot, PROJECT_ROOT / "docs" / "screenshot.png")

        # Expanding a source shows its whole abstract.
        first = sources.locator(".pa-card").first
        first.locator("summary").click()
        assert "BraTS2023" in first.locator(".pa-abstract").inner_text()

        # The map highlights the cited papers.
        page.get_by_role("tab", name="Map").click()
        page.wait_for_function(
            "() => { const p = document.querySelector('#pa-map .js-plotly-plot');"
            " return p && p.data && p.data.some(t => t.name === 'Cited in the latest answer'); }",
            timeout=TIMEOUT)
        assert page.errors == []
        outside = [u for u in page.requested if not u.startswith((server.url, "data:", "blob:"))]
        assert outside == []  # the page works offline: nothing fetched from the internet


def test_markup_in_the_corpus_and_the_question_stays_inert(page: Any, tmp_path: Path) -> None:
    hostile_title = 'Inert markup study <img src=x onerror="window.__pwned=4"> of <b>capillaries</b>'
    hostile_abstract = (
        "Capillary imaging with an inert markup pipeline reaches 93% accuracy. "
        "<script>window.__pwned=1</script> The pipeline also measures capillary density "
        '<img src=x onerror="window.__pwned=2"> in nailfold videos. '
        "[click](javascript:window.__pwned=5) Results hold across clinics.")
    records = [{"title": t, "abstract": a} for t, a in make_papers(8)]
    records.append({"title": hostile_title, "abstract": hostile_abstract})
    corpus = write_jsonl(tmp_path / "hostile.jsonl", records)
    settings = make_settings(tmp_path / "store", embed_backend="hash", corpus_paths=[corpus])
    ingest(settings, progress=False)

    with BackgroundServer(create_app(settings)) as server:
        page.goto(server.url)
        ask(page, 'How accurate is the inert markup capillary pipeline? <img src=x '
                  'onerror="window.__pwned=3">')
        sources = page.locator("#pa-sources")
        card = sources.locator(".pa-card").filter(has_text="Inert markup study").first
        card.wait_for(timeout=TIMEOUT)
        card.locator("summary").click()
        abstract = card.locator(".pa-abstract").inner_text()
        assert "<script>window.__pwned=1</script>" in abstract  # shown as text
        assert '<img src=x onerror="window.__pwned=2">' in abstract
        assert "<b>capillaries</b>" in card.locator(".pa-card-title").inner_text()
        assert page.locator("#pa-sources script, #pa-sources img, #pa-chat script").count() == 0
        chat = page.locator("#pa-chat").inner_text()
        assert "How accurate is the inert markup capillary pipeline?" in chat
        assert page.locator("#pa-chat a[href^='javascript']").count() == 0

        page.get_by_role("tab", name="Corpus").click()
        page.locator("#pa-filter textarea, #pa-filter input").first.fill("inert markup")
        page.wait_for_function(
            "() => document.querySelector('#pa-count').innerText.startsWith('1 of')",
            timeout=TIMEOUT)
        cell = page.locator("#pa-table [role=gridcell]", has_text="Inert markup study").first
        assert "<b>capillaries</b>" in cell.inner_text()  # the title, as text
        cell.click()
        page.wait_for_function(
            "() => document.querySelector('#pa-paper').innerText.includes('window.__pwned=1')",
            timeout=TIMEOUT)
        detail = page.locator("#pa-paper").inner_text()
        assert "<script>window.__pwned=1</script>" in detail and "<b>capillaries</b>" in detail

        page.wait_for_timeout(500)  # give any injected handler the chance to run
        assert page.evaluate("() => window.__pwned") is None
        assert page.errors == []


def test_signed_in_ui_and_api_docs_work_under_the_security_headers(page: Any, tmp_path: Path) -> None:
    """With UI auth on: the login page, signing in, an answer, the map and /api/docs (Swagger UI
    from the bundled wheel) all work under the app's Content-Security-Policy, with no policy
    violation and nothing fetched from elsewhere."""
    records = [{"title": t, "abstract": a} for t, a in make_papers(12)]
    corpus = write_jsonl(tmp_path / "papers.jsonl", records)
    settings = make_settings(tmp_path / "store", embed_backend="hash", corpus_paths=[corpus],
                             ui_auth="ada:lovelace")
    ingest(settings, progress=False)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    with BackgroundServer(create_app(settings)) as server:
        response = page.goto(server.url)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert not any(r["title"] in page.content() for r in records)  # the login page: no corpus
        inputs = page.locator("input")
        inputs.first.wait_for(timeout=TIMEOUT)
        inputs.nth(0).fill("ada")
        inputs.nth(1).fill("lovelace")
        page.get_by_role("button", name="Login").click()
        ask(page, "Which study is about cardiac segmentation?")
        page.wait_for_function(
            "() => /Sources|does not seem to cover/.test(document.querySelector('#pa-chat').innerText)",
            timeout=TIMEOUT)
        page.get_by_role("tab", name="Map").click()
        page.wait_for_function(
            "() => { const p = document.querySelector('#pa-map .js-plotly-plot'); return p && p.data; }",
            timeout=TIMEOUT)
        assert page.evaluate("() => window.__csp") == []

        page.goto(server.url + "api/docs")  # the signed-in session may read the docs
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=TIMEOUT)
        assert page.locator(".swagger-ui .opblock").count() >= 6
        assert page.evaluate("() => window.__csp") == []
        assert [m for m in console if "Content Security Policy" in m] == []
        assert page.errors == []
        outside = [u for u in page.requested if not u.startswith((server.url, "data:", "blob:"))]
        assert outside == []
