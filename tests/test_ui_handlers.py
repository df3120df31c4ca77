"""The web UI without a browser: the HTML builders (citations, sources, corpus text made
readable and inert), the question check, saved conversations, the topic map, and the handler
class driven as the page drives it, over a small store of real abstracts (hash embedder)."""

from __future__ import annotations

import html
import re
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from library_files import BIBTEX, RETINA, RIS, SEPSIS, write
from library_files import SEGMAMBA as SEGMAMBA_BIB
from ui_fixtures import NAILFOLD, SEGMAMBA, SLOW_WORDS, SWIN_SMT, QuotingLLM, small_store

from assistant.engine import Engine
from assistant.filters import Filters
from assistant.settings import Settings
from assistant.web.conversations import Conversation, ConversationStore, Exchange
from assistant.web.handlers import Pending, UIHandlers
from assistant.web.holder import EngineHolder
from assistant.web.render import (
    NOT_UNDERSTOOD,
    ExchangeView,
    SourceView,
    answer_body,
    cite_links,
    clean_latex,
    esc,
    highlight,
    link,
    markdown_html,
    merge_passages,
    sources_html,
    tables_first,
    thread_html,
)
from assistant.web.topics import TopicMapCache, cluster_words
from assistant.web.understanding import content_words, corpus_words, known_word, understood


# --- HTML from corpus text --------------------------------------------------------------------
def test_latex_in_abstracts_is_cleaned() -> None:
    assert clean_latex("a resolution of {64times 64times 64}.") == "a resolution of 64×64×64."
    assert clean_latex("around {0.91 pm 0.5} Dice") == "around 0.91 ± 0.5 Dice"
    assert clean_latex(r"the \textbf{Mamba} model is 44\% faster") == "the Mamba model is 44% faster"
    assert clean_latex(r"O(N^2) and mAP_{50}, $64\times 64$") == "O(N²) and mAP₅₀, 64×64"
    assert clean_latex(r"a \mone model; (1)~a scale") == "a mone model; (1) a scale"
    assert clean_latex("plain text, no markup: 5 x 5") == "plain text, no markup: 5 x 5"


def test_overlapping_passages_merge_in_abstract_order() -> None:
    abstract = "One two three. Four five six. Seven eight nine. Ten eleven twelve. Thirteen."
    merged = merge_passages(abstract, ["Seven eight nine. Ten eleven", "Four five six. Seven eight",
                                       "Thirteen.", "A passage from elsewhere."])
    assert merged == ["Four five six. Seven eight nine. Ten eleven twelve. Thirteen.",
                      "A passage from elsewhere."]


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
    rendered = markdown_html('<img src=x onerror="alert(1)"> [x](javascript:alert(1)) **b**')
    assert "<img" not in rendered and 'href="javascript' not in rendered and "<strong>b</strong>" in rendered


def source(n: int, cited: bool = True, **extra: Any) -> SourceView:
    fields: dict[str, Any] = dict(n=n, paper_id=f"p{n}", title=f"Paper {n} <b>bold</b>",
                                  url=f"https://example.org/{n}", abstract=f"Sentence one of {n}. Two.",
                                  passages=[f"Sentence one of {n}."], score=1.0 / n, cited=cited,
                                  support=1.0 if cited else None, sentences=[f"Sentence one of {n}."])
    fields.update(extra)
    return SourceView(**fields)


def test_answer_shows_inline_citations_only_and_links_them() -> None:
    engine_text = ("Sentence one of 1. [1] Both agree [1, 2]; unknown [7] and `[2]` in code.\n\n"
                   "_Offline mode: quoting the papers, no text generated._\n\n**Sources**\n\n"
                   "[1] Paper 1 — [https://example.org/1](https://example.org/1)  \n[2] Paper 2  ")
    body = answer_body(engine_text)
    assert "**Sources**" not in body and "Offline mode" not in body and body.startswith("Sentence")
    exchange = ExchangeView("a1", "q?", engine_text, sources=[source(1), source(2)])
    html = cite_links(markdown_html(body), "a1", {s.n: s for s in exchange.sources})
    anchors = re.findall(r'<a class="pa-cite[^"]*" href="#pa-src-a1-(\d)"', html)
    assert anchors == ["1", "1", "2"]  # "[1, 2]" becomes two links; [7] and code stay text
    assert "[7]" in html and "<code>[2]</code>" in html
    assert 'data-tip="Paper 1 &lt;b&gt;bold&lt;/b&gt;\n“Sentence one of 1.”"' in html


def test_tables_come_first() -> None:
    text = "Intro line.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nClosing line."
    assert tables_first(text).startswith("| a | b |") and tables_first(text).endswith("Closing line.")


def test_each_answer_keeps_its_own_source_block() -> None:
    first = ExchangeView("a1", "first?", "x [1]", sources=[source(1), source(2, cited=False)])
    second = ExchangeView("a2", "second?", "y [1]", sources=[source(1, title="Other paper")])
    html = sources_html([first, second], 0.5)
    blocks = re.findall(r'<section class="pa-srcblock" id="pa-block-(a\d)" data-answer="a\d"( hidden)?>',
                        html)
    assert blocks == [("a1", " hidden"), ("a2", "")]  # the latest shown, the earlier one kept
    assert 'id="pa-src-a1-1"' in html and 'id="pa-src-a2-1"' in html
    assert "Also retrieved, not cited (1)" in html
    assert "relevance 0." not in html and "best match" in html and "quoted" in html
    assert esc("Paper 1 <b>bold</b>") in html and "<b>bold</b>" not in html
    threads = thread_html([first, second])
    assert threads.count('class="pa-turn"') == 2 and 'href="#pa-block-a1"' in threads


# --- the question check -----------------------------------------------------------------------
def test_gibberish_and_empty_questions_are_not_understood() -> None:
    known = known_word(corpus_words(["SegMamba models long-range dependencies"]))
    assert not understood("asdf qwer", known, in_conversation=False)
    assert not understood("asdf qwer", known, in_conversation=True)
    assert not understood("What is it?", known, in_conversation=False)
    assert understood("What is it?", known, in_conversation=True)  # a follow-up
    assert understood("What is the capital of France?", known, in_conversation=False)
    assert understood("SegMamba?", known, in_conversation=False)  # a corpus word
    assert understood("Results on BraTS2023", known, in_conversation=False)
    assert content_words("What is the model of the paper?") == ["model"]


# --- saved conversations ----------------------------------------------------------------------
def test_conversations_are_saved_listed_reopened_and_private(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "store")
    assert store.list("ada") == [] and not (tmp_path / "store").exists()  # reading creates nothing
    talk = Conversation(exchanges=[Exchange("a1", "What is SegMamba?", "It is [1].", {"mode": "x"})])
    store.save("ada", talk)
    assert talk.id and talk.title == "What is SegMamba?"
    talk.exchanges.append(Exchange("a2", "And Swin SMT?", "Another [1].", {}))
    store.save("ada", talk)

    reopened = ConversationStore(tmp_path / "store")  # as after a restart
    assert [s.title for s in reopened.list("ada")] == ["What is SegMamba?"]
    assert reopened.list("ada")[0].exchanges == 2
    again = reopened.get("ada", talk.id)
    assert again is not None and [e.question for e in again.exchanges] == ["What is SegMamba?",
                                                                            "And Swin SMT?"]
    assert again.exchanges[0].data == {"mode": "x"}
    # Another user neither sees, reads, overwrites nor deletes it.
    assert reopened.list("bob") == [] and reopened.get("bob", talk.id) is None
    intruder = Conversation(id=talk.id, exchanges=[Exchange("b1", "mine", "x", {})])
    reopened.save("bob", intruder)
    assert intruder.id != talk.id and len(reopened.get("ada", talk.id).exchanges) == 2
    assert not reopened.delete("bob", talk.id)
    assert reopened.delete("ada", talk.id) and reopened.list("ada") == []


# --- topic map --------------------------------------------------------------------------------
def test_topic_map_finds_and_names_clusters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    topics = [("retinal fundus glaucoma", 0), ("cardiac echocardiography ventricle", 1),
              ("pathology histology slides", 2)]
    vectors, texts, ids = [], [], []
    for words, k in topics:
        centre = np.zeros(32)
        centre[k * 10] = 1.0
        for i in range(12):
            vectors.append(centre + 0.05 * rng.standard_normal(32))
            texts.append(f"{words} study number {i}")
            ids.append(f"{k}-{i}")
    calls: list[int] = []

    def load() -> tuple[list[str], np.ndarray, list[str], int]:
        calls.append(1)
        return ids, np.array(vectors), texts, len(ids)

    cache = TopicMapCache(tmp_path)
    topic_map = cache.get(3, load)
    assert len(set(topic_map.cluster)) == 3
    for words, k in topics:
        members = {topic_map.cluster[i] for i in range(len(ids)) if ids[i].startswith(f"{k}-")}
        assert len(members) == 1  # each topic is one cluster
        assert set(topic_map.labels[members.pop()]) <= set(words.split())

    assert cache.get(3, load) is topic_map and len(calls) == 1  # once per generation
    assert TopicMapCache(tmp_path).get(3, load).ids == ids and len(calls) == 1  # from disk
    TopicMapCache(tmp_path).get(4, load)
    assert len(calls) == 2  # a new generation is computed again
    assert cluster_words(["a b"], np.zeros(1, dtype=int)) == [[]]


# --- the handler class over a real (small) store ----------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_store(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def offline(store: Settings) -> UIHandlers:
    return UIHandlers(EngineHolder(store, Engine(store)), store)


def ask(h: UIHandlers, question: str, conversation: Conversation | None = None, owner: str = "",
        scope: list[str] | None = None, compare: list[str] | None = None,
        mode: str = "extractive") -> dict[str, Any]:
    started = (h.begin_compare(compare, conversation, scope or []) if compare
               else h.begin(question, conversation, scope or []))
    outputs = list(h.answer(started["pending"], conversation, 0, mode, owner))
    return {**started, **{k: v for out in outputs for k, v in out.items()}}


def test_an_answer_links_its_citations_to_its_own_cards(offline: UIHandlers) -> None:
    out = ask(offline, "How accurate is the nailfold capillary pipeline at predicting abnormality?")
    exchange = out["conversation"].exchanges[-1]
    thread, sources = out["thread"], out["sources"]
    targets = set(re.findall(r'class="pa-cite[^"]*" href="#pa-src-([\w-]+)"', thread))
    assert targets and all(f'id="pa-src-{t}"' in sources for t in targets)
    assert "**Sources**" not in thread and "<em>Offline mode" not in thread and "offline · quoted" in thread
    assert esc(NAILFOLD) in sources and "<mark>" in sources
    assert exchange.answer.endswith(exchange.answer.split("**Sources**")[-1])  # memory keeps the list
    assert "**Sources**" in exchange.answer

    follow = ask(offline, "What dataset does it use?", out["conversation"])
    blocks = re.findall(r'id="pa-block-(\w+)"', follow["sources"])
    assert len(blocks) == 2 and blocks[0] == exchange.id  # the earlier answer stays traceable
    assert "about:" in follow["conversation"].exchanges[-1].data["standalone"]


def test_new_conversation_forgets_the_old_one(offline: UIHandlers) -> None:
    first = ask(offline, "How accurate is the nailfold capillary pipeline at predicting abnormality?")
    fresh = offline.new_conversation("")
    assert fresh["conversation"].exchanges == [] and fresh["conv_id"] == "" and fresh["scope"] == []
    assert "pa-turn" not in fresh["thread"] and "pa-srcblock" not in fresh["sources"]
    follow = ask(offline, "What dataset does it use?", fresh["conversation"])
    assert follow["conversation"].exchanges[-1].data["standalone"] == "What dataset does it use?"
    assert follow["conversation"].id != first["conversation"].id


def test_conversations_reopen_for_their_owner_only(offline: UIHandlers) -> None:
    out = ask(offline, "What is SegMamba?", owner="ada")
    conversation_id = out["conv_id"]
    assert conversation_id and out["history"].value == conversation_id
    assert ("What is SegMamba?", conversation_id) in out["history"].choices
    reopened = offline.open_conversation(conversation_id, "ada")
    assert reopened["conversation"].exchanges[0].question == "What is SegMamba?"
    assert reopened["thread"] == out["thread"] and reopened["sources"] == out["sources"]
    assert offline.open_conversation(conversation_id, "bob")["conversation"].exchanges == []
    gone = offline.delete_conversation(reopened["conversation"], "ada")
    assert gone["conversation"].exchanges == []
    assert offline.open_conversation(conversation_id, "ada")["conversation"].exchanges == []


def test_bad_input_is_refused_inline_and_kept(offline: UIHandlers, store: Settings) -> None:
    for question, reason in (("   ", "empty"), ("why " * 600, "the limit is 2,000")):
        out = offline.begin(question, None, [])
        assert out["pending"] is None and reason in out["notice"] and "question" not in out
    full = Conversation(exchanges=[Exchange(f"a{i}", "q", "a", {}) for i in range(store.max_turns // 2)])
    assert "New conversation" in offline.begin("And then?", full, [])["notice"]
    assert "at least two" in offline.begin_compare([SEGMAMBA], None, [])["compare_msg"]
    assert "Not in the collection" in offline.begin_compare([SEGMAMBA, "No such paper"], None,
                                                            [])["compare_msg"]
    compared = ask(offline, "", compare=[SEGMAMBA, SWIN_SMT])
    assert compared["thread"].count("<table>") == 1 and compared["pending"].compare == [SEGMAMBA, SWIN_SMT]


def test_gibberish_gets_not_understood(offline: UIHandlers) -> None:
    out = ask(offline, "asdf qwer")
    exchange = out["conversation"].exchanges[-1]
    assert exchange.answer == NOT_UNDERSTOOD and "could not understand" in out["thread"]
    assert not exchange.data.get("sources") and "pa-fb" not in out["thread"]


def test_ask_about_selected_papers_answers_from_those_only(offline: UIHandlers) -> None:
    view = offline.corpus_view("mamba segmentation", 0, [])
    assert "of 40 papers" in view["corpus"]
    ids = re.findall(r'type="checkbox" value="([^"]+)"', view["corpus"])
    picked = offline.corpus_toggle({"id": ids[0], "on": True}, [])
    picked = offline.corpus_toggle({"id": ids[1], "on": True}, picked["selection"])
    assert picked["selection"] == ids[:2] and picked["ask_selected"]["interactive"]
    scoped = offline.ask_about(picked["selection"])
    assert len(scoped["scope"]) == 2 and scoped["tabs"].selected == "ask"
    out = ask(offline, "What do they use for evaluation?", scope=scoped["scope"])
    titles = {s["title"] for s in out["conversation"].exchanges[-1].data["sources"]}
    assert titles == set(scoped["scope"])


def test_corpus_search_reads_abstracts_from_the_index_not_from_memory(offline: UIHandlers) -> None:
    engine = offline.holder.get()
    corpus = offline.corpus.refresh(engine)
    assert corpus.papers and not any(p.abstract for p in corpus.papers)  # titles and metadata only
    segmamba = next(p for p in engine.papers() if p.title == SEGMAMBA)
    # A word of its abstract that is in no title: found through the lexical index...
    titles = " ".join(p.title.lower() for p in corpus.papers)
    word = next(w for w in re.findall(r"[a-z]{7,}", segmamba.abstract.lower()) if w not in titles)
    view = offline.corpus_view(word, 0, [])
    assert segmamba.id in view["corpus"]
    # ...and the page shows the abstracts of its rows, fetched for that page.
    assert segmamba.abstract[:40] in html.unescape(view["corpus"])
    assert offline.corpus_view("zzzqxv", 0, [])["corpus"].count('type="checkbox"') == 0


def test_status_and_map(offline: UIHandlers, store: Settings) -> None:
    refreshed = offline.refresh(None)
    assert str(store.store_dir) not in refreshed["status"] and "Papers" in refreshed["status"]
    assert len(refreshed["picks"].choices) == 40
    out = ask(offline, "Compare SegMamba and Swin SMT")
    drawn = offline.map_view(out["conversation"])
    assert drawn["map"].count("<circle") == 40 and drawn["map"].count("pa-pt-cited") == 2
    assert drawn["legend"].count("<li>") >= 3
    pid = re.search(r'class="pa-pt pa-pt-cited" data-id="([^"]+)"', drawn["map"]).group(1)
    opened = offline.map_click({"id": pid})
    assert opened["map_pick"] == pid and ("SegMamba" in opened["map_paper"] or "Swin" in opened["map_paper"])
    assert offline.ask_about_paper(pid)["scope"] in ([SEGMAMBA], [SWIN_SMT])


def test_feedback_goes_to_the_feedback_store_when_there_is_one(offline: UIHandlers,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = ask(offline, "What is SegMamba?")
    exchange = out["conversation"].exchanges[-1]
    click = {"fb": "wrong_citation", "answer": exchange.id}
    monkeypatch.setitem(sys.modules, "assistant.feedback", None)  # not installed
    assert "not available" in offline.thread_event(click, out["conversation"])["notice"]
    added: list[tuple] = []

    class FeedbackStore:
        def __init__(self, settings: Settings) -> None:
            pass

        def add(self, **fields: Any) -> None:
            added.append(fields)

    monkeypatch.setitem(sys.modules, "assistant.feedback", types.SimpleNamespace(FeedbackStore=FeedbackStore))
    assert "recorded" in offline.thread_event(click, out["conversation"])["notice"]
    fields = added[0]
    assert (fields["rating"], fields["question"], fields["flags"]) == (
        "down", "What is SegMamba?", ["wrong_citation"])
    assert fields["answer"] == exchange.answer and fields["mode"] == "extractive"
    assert fields["citations"] and all(c["title"] for c in fields["citations"])
    assert {"n", "title", "paper_id", "url", "score", "passages"} <= set(fields["sources"][0])


# --- stop -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def with_llm(store: Settings) -> Iterator[tuple[UIHandlers, QuotingLLM]]:
    llm = QuotingLLM()
    yield UIHandlers(EngineHolder(store, Engine(store, llm=llm)), store), llm


def test_stop_ends_the_answer_and_its_llm_request(with_llm: tuple[UIHandlers, QuotingLLM]) -> None:
    h, llm = with_llm
    question = ("How accurate is the nailfold capillary pipeline at predicting abnormality? "
                f"Please {SLOW_WORDS}.")
    started = h.begin(question, None, [])
    assert started["question"]["interactive"] is False and started["stop"]["visible"] is True
    pending: Pending = started["pending"]
    steps = h.answer(pending, None, 0, "llm", "")
    drafts = []
    for out in steps:
        drafts.append(out)
        if "is writing" in out.get("live", ""):
            break
    stopping = h.stop(pending)
    # The input stays locked until the answer has ended (`finish` unlocks it).
    assert "question" not in stopping and "Stopping" in stopping["notice"]
    rest = list(steps)  # the generator ends within a poll, without an answer
    assert all("conversation" not in out for out in rest)
    assert rest[-1]["question"] == {"__type__": "update", "value": question}
    assert rest[-1]["live"] == "" and "Stopped" in rest[-1]["notice"]
    assert llm.closed_early.wait(10)  # the worker closed the LLM's stream at its next word
    assert not h.stopped(pending.token)  # nothing left behind
    # The next question is answered as usual (by the LLM, quoting its sources).
    done = ask(h, "How accurate is the nailfold capillary pipeline at predicting abnormality?", mode="llm")
    assert done["conversation"].exchanges[-1].data["mode"] == "llm" and "pa-cite" in done["thread"]


def test_a_stop_as_the_answer_ends_changes_nothing(with_llm: tuple[UIHandlers, QuotingLLM]) -> None:
    h, _llm = with_llm
    question = "How accurate is the nailfold capillary pipeline at predicting abnormality?"
    pending: Pending = h.begin(question, None, [])["pending"]
    outs = []
    for out in h.answer(pending, None, 0, "llm", ""):
        outs.append(out)
        if "conversation" in out:  # the answer is shown and saved: Stop comes too late
            h.stop(pending)
    assert outs[-1]["conversation"].exchanges[-1].question == question
    assert not any("Stopped" in str(out.get("notice", "")) for out in outs)


class HeldLLM(QuotingLLM):
    """Sends nothing until released (a local model still reading a long prompt)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Event()

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        if "<source " in messages[-1]["content"]:
            self.waiting.set()
            self.release.wait(30)
        yield from super().stream(messages)


def test_stop_does_not_wait_for_the_llms_first_token(store: Settings) -> None:
    llm = HeldLLM()
    h = UIHandlers(EngineHolder(store, Engine(store, llm=llm)), store)
    question = "How accurate is the nailfold capillary pipeline at predicting abnormality?"
    pending: Pending = h.begin(question, None, [])["pending"]
    outs: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: outs.extend(h.answer(pending, None, 0, "llm", "")))
    worker.start()
    assert llm.waiting.wait(30)
    h.stop(pending)
    worker.join(5)
    try:
        assert not worker.is_alive()  # the answer ended while the LLM still sent nothing
        assert "Stopped" in outs[-1]["notice"] and all("conversation" not in o for o in outs)
    finally:
        llm.release.set()
    assert llm.closed_early.wait(10)  # its stream was closed at its first word


def test_a_stop_before_the_answer_starts_is_kept_for_it(with_llm: tuple[UIHandlers, QuotingLLM]) -> None:
    h, llm = with_llm
    question = "How accurate is the nailfold capillary pipeline at predicting abnormality?"
    pending: Pending = h.begin(question, None, [])["pending"]
    asked = len(llm.requests)
    assert h.stop(pending) == {"stop": {"__type__": "update", "visible": False},
                               "notice": {"__type__": "update"}}  # queued: nothing to say yet
    outs = list(h.answer(pending, None, 0, "llm", ""))
    assert len(llm.requests) == asked  # never asked the LLM
    assert outs[-1]["question"] == {"__type__": "update", "value": question}
    assert "Stopped" in outs[-1]["notice"] and all("conversation" not in o for o in outs)
    assert not h.stopped(pending.token)


# --- upload, filters, export (issue 15) -------------------------------------------------------
BOMB = """<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>
<ArticleTitle>&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;</ArticleTitle></Article></MedlineCitation>
</PubmedArticle></PubmedArticleSet>"""  # entities expanding a millionfold ("billion laughs")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> UIHandlers:
    """Its own store: uploads change it."""
    settings = small_store(tmp_path_factory.mktemp("library"))
    return UIHandlers(EngineHolder(settings, Engine(settings)), settings)


def ask_filtered(h: UIHandlers, question: str, years: str = "", collection: str = "",
                 conversation: Conversation | None = None) -> dict[str, Any]:
    started = h.begin_filtered(question, conversation, [], years, "", "", collection)
    outputs = list(h.answer(started["pending"], conversation, 0, "extractive", ""))
    return {**started, **{k: v for out in outputs for k, v in out.items()}}


def test_upload_adds_papers_with_progress_and_a_summary(library: UIHandlers, tmp_path: Path) -> None:
    engine = library.holder.get()
    before = engine.store.count_papers()
    path = write(tmp_path, "my library.bib", BIBTEX)
    steps: list[tuple[float, str]] = []
    out = library.upload([str(path)], " mine ", lambda share, desc="": steps.append((share, desc)))
    summary = out["upload_msg"]
    assert "pa-inline-info" in summary and "my library.bib" in summary and "“mine”" in summary
    assert "abstract missing for &#x27;A paper whose export has no abstract&#x27;" in summary
    assert str(tmp_path) not in summary  # the server's folders are not shown, the file's name is
    added = engine.store.count_papers() - before
    assert added >= 1 and f"{before + added:,} papers" in summary and out["upload_files"] is None
    assert steps[0] == (0.0, "Reading the files") and steps[-1][0] == 1.0 and "Embedding" in steps[-1][1]
    assert f"{before + added:,} paper abstracts" in out["header"]
    assert RETINA in [label for label, _ in out["picks"].choices]
    # The next question sees the new papers, limited to the named collection when asked.
    answered = ask_filtered(library, "Which model grades diabetic retinopathy?", collection="mine")
    titles = {s["title"] for s in answered["conversation"].exchanges[-1].data["sources"]}
    assert RETINA in titles and titles <= {RETINA, SEGMAMBA_BIB, SEGMAMBA}
    assert "Filters: collection mine" in answered["thread"]


def test_a_wrong_file_or_an_upload_over_the_limits_changes_nothing(library: UIHandlers,
                                                                   tmp_path: Path) -> None:
    store = library.holder.get().store
    papers, generation = store.count_papers(), store.generation
    cases = [
        ([write(tmp_path, "notes.exe", "MZ binary")], "not a supported file type: notes.exe"),
        ([write(tmp_path, "feed.xml", "<html><body>not a feed</body></html>")],
         "neither a PubMed export"),
        ([write(tmp_path, "bomb.xml", BOMB)], "bomb.xml"),
        ([write(tmp_path, "long.ris", "TY  - JOUR\nTI  - A title\nAB  - " + "word " * 5000 + "\nER  - \n")],
         "long.ris"),
        ([write(tmp_path, f"f{i}.bib", BIBTEX) for i in range(library.settings.max_upload_files + 1)],
         "the limit is"),
        ([], "choose one or more files"),
    ]
    for paths, reason in cases:
        out = library.upload([str(p) for p in paths], "")
        assert "pa-inline-error" in out["upload_msg"], out["upload_msg"]
        assert reason.lower() in out["upload_msg"].lower(), out["upload_msg"]
        assert str(tmp_path) not in out["upload_msg"] and "header" not in out
    big = UIHandlers(library.holder, library.settings.model_copy(update={"max_upload_bytes": 1024}))
    out = big.upload([str(write(tmp_path, "big.bib", BIBTEX))], "")
    assert "the limit is 1,024" in out["upload_msg"] and "MAX_UPLOAD_BYTES" in out["upload_msg"]
    assert (store.count_papers(), store.generation) == (papers, generation)


def test_filters_are_applied_shown_and_removable(library: UIHandlers, tmp_path: Path) -> None:
    library.upload([str(write(tmp_path, "lib.ris", RIS))], "")
    refused = library.begin_filtered("Which papers predict sepsis?", None, [], "2025-2020", "", "", "")
    assert refused["pending"] is None and "pa-inline-error" in refused["notice"]
    explicit = ask_filtered(library, "Which papers predict sepsis?", years="2023")
    exchange = explicit["conversation"].exchanges[-1]
    assert exchange.data["filters"]["year_from"] == 2023 and "Filters: 2023<" in explicit["thread"]
    assert {s["title"] for s in exchange.data["sources"]} == {SEPSIS}
    assert explicit["unfilter"]["visible"] is True
    # Filters read from the question's words are shown with those words, and can be dropped.
    phrased = ask_filtered(library, "Which papers since 2023 predict sepsis?")
    assert "Filters: 2023 or later (read from “since 2023”)" in phrased["thread"]
    again = library.begin_unfiltered(phrased["conversation"], [])
    assert again["pending"].filters == Filters() and again["pending"].question == (
        "Which papers since 2023 predict sepsis?")
    outputs = list(library.answer(again["pending"], phrased["conversation"], 0, "extractive", ""))
    final = {k: v for out in outputs for k, v in out.items()}
    assert final["conversation"].exchanges[-1].data["filters"] is None
    assert final["unfilter"]["visible"] is False and "Filters:" not in final["thread"].split("pa-turn")[-1]


def test_exports_of_the_latest_answer(library: UIHandlers, tmp_path: Path) -> None:
    assert "no answer with sources" in library.export("bibtex", None)["export_msg"]
    library.upload([str(write(tmp_path, "seg.bib", BIBTEX))], "")
    out = ask_filtered(library, "Which model grades diabetic retinopathy?", years="2022")
    assert out["export_row"]["visible"] is True
    files = {}
    for fmt in ("bibtex", "ris", "markdown", "csv"):
        exported = library.export(fmt, out["conversation"])
        assert exported["export_msg"] == "" and exported["export_file"]["visible"] is True
        files[fmt] = Path(exported["export_file"]["value"])
    assert files["bibtex"].name == "cited-papers.bib" and files["markdown"].name == "answer.md"
    bib = files["bibtex"].read_text()
    assert bib.count("@") == 1 and "retinal foundation model" in bib and "year = {2022}" in bib
    assert "TY  - " in files["ris"].read_text() and "PY  - 2022" in files["ris"].read_text()
    markdown = files["markdown"].read_text()
    assert markdown.startswith("# Which model grades diabetic retinopathy?") and "## References" in markdown
    assert "_Filters: 2022_" in markdown
    assert files["csv"].read_text().splitlines()[0].startswith("n,title,authors,year")


def test_a_large_collection_lists_some_titles_and_takes_typed_ones(store: Settings) -> None:
    small = store.model_copy(update={"ui_picker_max_papers": 5})
    handlers = UIHandlers(EngineHolder(small, Engine(small)), small)
    picks = handlers.refresh(None)["picks"]
    assert len(picks.choices) == 5 and picks.allow_custom_value
    started = handlers.begin_compare([SEGMAMBA, SWIN_SMT], None, [])  # typed exact titles
    assert started.get("pending") is not None and not started.get("compare_msg")
    refused = handlers.begin_compare([SEGMAMBA, "A paper nobody wrote"], None, [])
    assert "Not in the collection: A paper nobody wrote" in refused["compare_msg"]
