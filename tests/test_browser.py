"""The web UI in a real browser: headless Chromium (Debian's `chromium` package) driven by
Playwright, against one app per module over a small store of real abstracts (hash embedder) and
a scripted LLM that quotes its sources (slowly when asked to take its time).

Each point of the UI is seen on screen: a citation leads to its highlighted card, also for an
earlier answer; "New conversation" forgets the chat; a reload reopens it; Stop ends the request
and frees the input; the phone layout neither jumps on load nor overflows sideways; the Compare
picker takes keyboard picks only; papers selected in the corpus or on the map are asked about;
markup in the corpus and the question stays inert.

`UPDATE_SCREENSHOT=1 pytest tests/test_browser.py` also refreshes the screenshots in docs/ (on
the bundled corpus with the real embedder, offline mode).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from library_files import BIBTEX, RETINA, write
from ui_fixtures import NAILFOLD, SEGMAMBA, SLOW_WORDS, SWIN_SMT, QuotingLLM, small_store

from assistant.engine import Engine
from assistant.settings import Settings
from assistant.web.conversations import ConversationStore
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 90_000  # ms; a cold 2-core CI machine is slow
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
FACTUAL = "How accurate is the nailfold capillary pipeline at predicting abnormality?"
HOSTILE_TITLE = 'Inert markup study <img src=x onerror="window.__pwned=4"> of <b>capillaries</b>'
HOSTILE_ABSTRACT = (
    "Capillary imaging with an inert markup pipeline reaches 93% accuracy. "
    "<script>window.__pwned=1</script> The pipeline also measures capillary density "
    '<img src=x onerror="window.__pwned=2"> in nailfold videos. '
    "[click](javascript:window.__pwned=5) Results hold across clinics.")
PAPERS = 41  # the small corpus and the hostile paper

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


class App:
    def __init__(self, url: str, llm: QuotingLLM, settings: Settings) -> None:
        self.url, self.llm, self.settings = url, llm, settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    settings = small_store(tmp_path_factory.mktemp("browser"),
                           extra=[{"title": HOSTILE_TITLE, "abstract": HOSTILE_ABSTRACT}])
    llm = QuotingLLM()
    with BackgroundServer(create_app(settings, Engine(settings, llm=llm))) as server:
        yield App(server.url, llm, settings)


def open_page(browser: Any, url: str, **context: Any) -> Any:
    page = browser.new_context(**(context or {"viewport": DESKTOP})).new_page()
    page.errors = []
    page.requested = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(url)
    page.locator("#pa-header").filter(has_text="paper abstracts").wait_for(timeout=TIMEOUT)
    return page


@pytest.fixture
def page(browser: Any, app: App) -> Iterator[Any]:
    page = open_page(browser, app.url)
    yield page
    page.context.close()


def ask(page: Any, question: str, turns: int) -> Any:
    """Ask, and wait until the conversation shows `turns` answered questions."""
    box = page.locator("#pa-question textarea")
    box.fill(question)
    box.press("Enter")
    page.locator("#pa-thread .pa-turn").nth(turns - 1).wait_for(timeout=TIMEOUT)
    page.locator("#pa-question textarea:not([disabled])").wait_for(timeout=TIMEOUT)
    return page.locator("#pa-thread .pa-turn").nth(turns - 1)


def visible_block(page: Any) -> str:
    return page.locator("#pa-sources .pa-srcblock:not([hidden])").get_attribute("data-answer")


def test_citations_lead_to_their_cards_also_for_earlier_answers(page: Any, app: App) -> None:
    first = ask(page, FACTUAL, 1)
    first_id = first.get_attribute("data-answer")
    text = first.inner_text()
    assert "Sources:" in text and "**Sources**" not in text and "offline mode" not in text.lower()
    cite = first.locator("a.pa-cite").first
    cite.hover()
    tip = page.evaluate("(el) => getComputedStyle(el, '::after').display", cite.element_handle())
    assert tip == "block" and NAILFOLD in cite.get_attribute("data-tip")  # the preview on hover
    cite.click()
    card = page.locator(f"#pa-src-{first_id}-{cite.get_attribute('data-n')}")
    assert "pa-hl" in card.get_attribute("class") and card.is_visible()
    assert NAILFOLD in card.inner_text()

    second = ask(page, "Compare SegMamba and Swin SMT", 2)
    assert visible_block(page) == second.get_attribute("data-answer")
    assert second.locator(".pa-md > *").first.evaluate("(el) => el.tagName") == "TABLE"  # table first
    first.locator("a.pa-cite").first.click()  # the earlier answer's citation: its own sources
    assert visible_block(page) == first_id
    assert page.locator(f"#pa-block-{first_id} .pa-card.pa-hl").count() == 1

    ask(page, "asdf qwer", 3)
    assert "could not understand" in page.locator("#pa-thread .pa-turn").nth(2).inner_text()

    first.locator("button.pa-fb[data-fb=up]").click()
    page.locator("#pa-notice").filter(has_text="eedback").wait_for(timeout=TIMEOUT)
    assert page.locator("#pa-notice").inner_text().count("eedback") == 1
    assert page.errors == []
    outside = [u for u in page.requested if not u.startswith((app.url, "data:", "blob:"))]
    assert outside == []  # the page works offline: nothing fetched from the internet


def test_new_conversation_forgets_and_a_reload_reopens(page: Any, app: App) -> None:
    ask(page, FACTUAL, 1)
    conversation_id = page.evaluate("() => location.hash").removeprefix("#c=")
    page.reload()
    page.locator("#pa-thread .pa-turn").first.wait_for(timeout=TIMEOUT)
    assert FACTUAL in page.locator("#pa-thread").inner_text()
    assert page.locator("#pa-sources .pa-card").count() >= 1
    page.locator("#pa-sidebar").get_by_text(FACTUAL[:40]).first.wait_for(state="attached",
                                                                       timeout=TIMEOUT)

    page.locator("#pa-new").click()
    page.wait_for_function("() => !document.querySelector('#pa-thread .pa-turn') && !location.hash",
                           timeout=TIMEOUT)
    assert page.locator("#pa-sources .pa-card").count() == 0
    ask(page, "What dataset does it use?", 1)
    store = ConversationStore(app.settings.store_dir)
    latest = store.get("", page.evaluate("() => location.hash").removeprefix("#c="))
    assert latest is not None and latest.id != conversation_id
    # Not resolved against the cleared chat (in it, "it" would be the nailfold paper).
    assert latest.exchanges[0].data["standalone"] == "What dataset does it use?"
    assert store.get("", conversation_id) is not None  # the old one is still saved, in the list

    page.locator("#pa-sidebar button").first.click()  # open the sidebar (collapsed by default)
    page.locator("#pa-delete").click()
    page.wait_for_function("() => !document.querySelector('#pa-thread .pa-turn')", timeout=TIMEOUT)
    assert store.get("", latest.id) is None


def test_stop_ends_the_request_and_frees_the_input(page: Any, app: App) -> None:
    box = page.locator("#pa-question textarea")
    question = f"{FACTUAL} Please {SLOW_WORDS}."
    box.fill(question)
    box.press("Enter")
    page.locator("#pa-live .pa-progress").filter(has_text="is writing").wait_for(timeout=TIMEOUT)
    assert box.is_disabled() and page.locator("#pa-stop").is_visible()
    page.locator("#pa-live .pa-elapsed").filter(has_text=" s").wait_for(timeout=TIMEOUT)
    page.locator("#pa-stop").click()
    page.locator("#pa-question textarea:not([disabled])").wait_for(timeout=TIMEOUT)
    assert box.input_value() == question and "Stopped" in page.locator("#pa-notice").inner_text()
    assert page.locator("#pa-live .pa-turn").count() == 0
    assert app.llm.closed_early.wait(60)  # the LLM's stream was closed, not read to its end
    ask(page, "What is SegMamba?", 1)
    assert SEGMAMBA in page.locator("#pa-sources").inner_text()


def test_phone_layout(browser: Any, app: App, tmp_path: Path) -> None:
    page = open_page(browser, app.url, **PHONE)
    page.locator("#pa-question textarea").wait_for(timeout=TIMEOUT)
    page.wait_for_timeout(1000)  # let any late focus or layout change happen
    assert page.evaluate("() => window.scrollY") == 0  # no jump to the input on load
    assert page.evaluate("() => document.activeElement.tagName") != "TEXTAREA"
    ask(page, "Compare SegMamba and Swin SMT", 1)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    cell = page.locator("#pa-thread td").first
    assert cell.evaluate("(el) => getComputedStyle(el).display") == "block"  # rows as cards
    assert cell.evaluate("(el) => getComputedStyle(el).wordBreak") == "normal"  # words kept whole
    nested = page.evaluate("""() => [...document.querySelectorAll('body *')].filter((el) => {
        const style = getComputedStyle(el);
        return ['auto', 'scroll'].includes(style.overflowY) && el.tagName !== 'TEXTAREA'
            && el.clientHeight > 0 && el.scrollHeight > el.clientHeight + 1;
    }).map((el) => el.id || el.className)""")
    assert nested == []  # one scroll: the page's
    cite = page.locator("#pa-thread p a.pa-cite").first
    cite.tap()  # a tap previews the supporting sentence...
    assert "pa-tip-open" in cite.get_attribute("class")
    cite.tap()  # ...a second one opens the source
    page.locator("#pa-sources .pa-card.pa-hl").wait_for(timeout=TIMEOUT)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "phone.png"))
    page.context.close()


def test_compare_picker_corpus_selection_and_map(page: Any, app: App) -> None:
    page.locator("#pa-settings").get_by_text("Compare papers, and settings").click()
    picker = page.locator("#pa-compare input")
    picker.click()
    picker.type("SegMa")
    picker.press("Enter")  # the keyboard picks the matching title...
    picker.type("zzzz no such paper")
    picker.press("Enter")  # ...and typed text matching no title is not added
    chips = [t for t in page.locator("#pa-compare .token").all_inner_texts() if t.strip()]
    assert chips == [SEGMAMBA]
    page.locator("#pa-compare-btn").click()
    page.locator("#pa-compare-msg").filter(has_text="at least two").wait_for(timeout=TIMEOUT)
    assert page.locator(".toast-body").count() == 0  # shown once, inline
    picker.fill("")
    picker.type("Swin SMT")
    picker.press("Enter")
    page.locator("#pa-compare-btn").click()
    ask_turn = page.locator("#pa-thread .pa-turn").first
    ask_turn.wait_for(timeout=TIMEOUT)
    assert page.locator("#pa-compare-msg").inner_text() == ""
    cited = " ".join(page.locator("#pa-sources .pa-srcblock:not([hidden]) .pa-card:not(.pa-uncited) "
                                  ".pa-card-title").all_inner_texts())
    assert SEGMAMBA in cited and SWIN_SMT in cited

    page.get_by_role("tab", name="Corpus").click()
    page.locator("#pa-filter textarea, #pa-filter input").first.fill("mamba segmentation")
    page.locator("#pa-table .pa-pageinfo").filter(has_text=f"of {PAPERS} papers").wait_for(timeout=TIMEOUT)
    assert page.locator("#pa-table a[href^='https://']").count() >= 1  # links are links
    boxes = page.locator("#pa-table input[type=checkbox]")
    boxes.nth(0).check()
    page.locator("#pa-selection").filter(has_text="1 selected").wait_for(timeout=TIMEOUT)
    boxes.nth(1).check()
    page.locator("#pa-selection").filter(has_text="2 selected").wait_for(timeout=TIMEOUT)
    chosen = [li.strip() for li in page.locator("#pa-selection li").all_inner_texts()]
    page.locator("#pa-ask-selected").click()
    page.locator("#pa-scope .pa-scope").wait_for(timeout=TIMEOUT)
    turn = ask(page, "What do they evaluate on?", 2)
    block = page.locator(f"#pa-block-{turn.get_attribute('data-answer')} .pa-card-title a, "
                         f"#pa-block-{turn.get_attribute('data-answer')} .pa-card-title")
    shown = " ".join(block.all_inner_texts())
    assert all(title in shown for title in chosen)
    assert page.locator(f"#pa-block-{turn.get_attribute('data-answer')} .pa-card").count() == 2

    page.get_by_role("tab", name="Map").click()
    page.locator("#pa-map circle.pa-pt").first.wait_for(timeout=TIMEOUT)
    assert page.locator("#pa-map circle.pa-pt").count() == PAPERS
    assert page.locator("#pa-map text.pa-cluster").count() >= 2  # topics named by their words
    assert page.locator("#pa-map circle.pa-pt-cited").count() >= 1  # the latest answer's papers
    dot = page.locator("#pa-map circle.pa-pt-cited").first
    dot.click()
    page.locator("#pa-ask-paper").wait_for(state="visible", timeout=TIMEOUT)
    assert page.locator("#pa-map-paper .pa-card-title").inner_text().strip() in chosen
    page.locator("#pa-ask-paper").click()
    page.locator("#pa-scope .pa-scope").filter(has_text="this paper").wait_for(timeout=TIMEOUT)
    assert page.errors == []


def test_markup_in_the_corpus_and_the_question_stays_inert(page: Any, app: App) -> None:
    turn = ask(page, 'How accurate is the inert markup capillary pipeline? <img src=x '
                     'onerror="window.__pwned=3">', 1)
    assert "How accurate is the inert markup capillary pipeline?" in turn.inner_text()
    card = page.locator("#pa-sources .pa-card").filter(has_text="Inert markup study").first
    card.wait_for(timeout=TIMEOUT)
    shown = card.inner_text()
    assert "<script>window.__pwned=1</script>" in shown  # shown as text
    assert "<b>capillaries</b>" in card.locator(".pa-card-title").inner_text()
    assert page.locator("#pa-sources script, #pa-sources img, #pa-thread script, #pa-thread img").count() == 0
    assert page.locator("#pa-thread a[href^='javascript']").count() == 0

    page.get_by_role("tab", name="Corpus").click()
    page.locator("#pa-filter textarea, #pa-filter input").first.fill("inert markup")
    page.locator("#pa-table .pa-pageinfo").filter(has_text=f"· 1 of {PAPERS} papers").wait_for(
        timeout=TIMEOUT)
    row = page.locator("#pa-table .pa-row").first
    assert "<b>capillaries</b>" in row.inner_text()
    row.locator("summary").click()
    assert "<script>window.__pwned=1</script>" in row.locator(".pa-abstract").inner_text()
    page.wait_for_timeout(500)  # give any injected handler the chance to run
    assert page.evaluate("() => window.__pwned") is None
    assert page.errors == []


def test_upload_with_progress_a_year_filter_and_a_bibtex_export(browser: Any, tmp_path: Path) -> None:
    """Its own app and store: the upload changes the collection the other tests count."""
    settings = small_store(tmp_path)
    library = write(tmp_path, "my library.bib", BIBTEX)
    with BackgroundServer(create_app(settings, Engine(settings))) as server:
        page = open_page(browser, server.url)
        page.get_by_role("tab", name="Corpus").click()
        page.locator("#pa-upload input[type=file]").set_input_files(str(library))
        page.locator("#pa-upload").filter(has_text="my library.bib").wait_for(timeout=TIMEOUT)
        page.locator("#pa-upload-btn").click()
        summary = page.locator("#pa-upload-msg .pa-upload")
        summary.wait_for(timeout=TIMEOUT)
        text = summary.inner_text()
        assert "my library.bib" in text and "added" in text and "Skipped (1)" in text
        assert "abstract missing" in text and str(tmp_path) not in text
        total = re.search(r"now holds (\d+) papers", text).group(1)
        assert int(total) > 40
        page.locator("#pa-header").filter(has_text=f"{total} paper abstracts").wait_for(timeout=TIMEOUT)

        page.get_by_role("tab", name="Ask").click()
        page.locator("#pa-settings").get_by_text("Compare papers, and settings").click()
        page.locator("#pa-years textarea, #pa-years input").first.fill("2022")
        turn = ask(page, "Which model grades diabetic retinopathy?", 1)
        assert "Filters: 2022" in turn.locator(".pa-filters").inner_text()
        assert RETINA in page.locator("#pa-sources").inner_text()

        page.locator("#pa-export-bibtex").click()
        link = page.locator("#pa-export-file a").first
        link.wait_for(timeout=TIMEOUT)
        with page.expect_download(timeout=TIMEOUT) as download:
            link.click()
        assert download.value.suggested_filename == "cited-papers.bib"
        bib = Path(download.value.path()).read_text(encoding="utf-8")
        assert bib.count("@") == 1 and "retinal foundation model" in bib and "2022" in bib
        assert page.errors == []
        page.context.close()


@pytest.mark.skipif(not os.environ.get("UPDATE_SCREENSHOT"), reason="set UPDATE_SCREENSHOT=1")
def test_docs_screenshots(browser: Any, corpus_store: Settings, engine: Engine) -> None:
    """docs/screenshot.png (desktop), docs/phone.png and docs/map.png on the bundled corpus."""
    docs = Path(__file__).resolve().parent.parent / "docs"
    with BackgroundServer(create_app(corpus_store, engine)) as server:
        page = open_page(browser, server.url)
        turn = ask(page, "Compare SegMamba and Swin SMT", 1)
        turn.locator("td a.pa-cite").nth(2).click()
        page.evaluate("() => window.scrollTo(0, 0)")
        turn.locator("td a.pa-cite").nth(2).hover()
        page.screenshot(path=str(docs / "screenshot.png"))
        page.get_by_role("tab", name="Map").click()
        page.locator("#pa-map circle.pa-pt").first.wait_for(timeout=TIMEOUT)
        page.locator("#pa-map circle.pa-pt-cited").first.click()
        page.locator("#pa-ask-paper").wait_for(state="visible", timeout=TIMEOUT)
        page.screenshot(path=str(docs / "map.png"))
        page.context.close()

        phone = open_page(browser, server.url, **PHONE)
        ask(phone, "Compare SegMamba and Swin SMT", 1)
        phone.locator("#pa-thread .pa-turn").first.scroll_into_view_if_needed()
        phone.screenshot(path=str(docs / "phone.png"))
        phone.context.close()


def test_signed_in_ui_and_api_docs_work_under_the_security_headers(browser: Any, tmp_path: Path
                                                                    ) -> None:
    """With UI auth on: the login page (no corpus in it), signing in, an answer, the map and
    /api/docs (Swagger UI from the bundled wheel) all work under the app's
    Content-Security-Policy, with no policy violation and nothing fetched from elsewhere."""
    settings = small_store(tmp_path, ui_auth="ada:lovelace")
    titles = [p.title for p in Engine(settings).store.all_papers()]
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.errors, page.requested, console = [], [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    with BackgroundServer(create_app(settings, Engine(settings, llm=QuotingLLM()))) as server:
        response = page.goto(server.url)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert not any(title in page.content() for title in titles)  # the login page: no corpus
        inputs = page.locator("input")
        inputs.first.wait_for(timeout=TIMEOUT)
        inputs.nth(0).fill("ada")
        inputs.nth(1).fill("lovelace")
        page.get_by_role("button", name="Login").click()
        page.locator("#pa-header").filter(has_text="paper abstracts").wait_for(timeout=TIMEOUT)
        assert "Sources:" in ask(page, FACTUAL, 1).inner_text()
        page.get_by_role("tab", name="Map").click()
        page.locator("#pa-map circle.pa-pt").first.wait_for(timeout=TIMEOUT)
        assert page.evaluate("() => window.__csp") == []

        page.goto(server.url + "api/docs")  # the signed-in session may read the docs
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=TIMEOUT)
        assert page.locator(".swagger-ui .opblock").count() >= 6
        assert page.evaluate("() => window.__csp") == []
        assert [m for m in console if "Content Security Policy" in m] == []
        assert page.errors == []
        outside = [u for u in page.requested if not u.startswith((server.url, "data:", "blob:"))]
        assert outside == []
    page.context.close()
