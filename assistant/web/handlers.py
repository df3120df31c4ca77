"""What the web UI does, apart from its layout: one class whose methods take the page's values
and return the values to show, as a dict keyed by output name (ui.py maps the names to
components). Nothing here needs a browser: tests call the methods directly.

An answer runs in three steps: `begin` (instant: checks the input, locks the input box, shows the
question), `answer` (queued: streams, then saves the conversation) and `finish` (unlocks).
`stop` marks the answer stopped: `answer` notices within `STOP_POLL_SECONDS` (the engine's stream
is read in a worker thread, so even an LLM that has not sent its first token does not hold it),
puts the question back and returns, and its worker closes the stream (and with it the LLM
request) at its next event. Gradio's own `cancels` is not used: the page re-enables the input
before the cancelled event has cleared, and a question asked in that moment was dropped without a
word (the page skips an event that it still believes pending).
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.citations import Citation, SourceDoc
from assistant.conversation import Turn
from assistant.engine import Answer, Engine, clean_question
from assistant.errors import AssistantError, CorpusError
from assistant.export import EXTENSIONS, export_answer
from assistant.filters import Filters
from assistant.formats import FORMATS
from assistant.ingest import ingest_files
from assistant.retrieval import COMPARE
from assistant.settings import Settings
from assistant.store import PaperRecord
from assistant.web.conversations import Conversation, ConversationStore, Exchange
from assistant.web.holder import EngineHolder
from assistant.web.render import (
    NOT_UNDERSTOOD,
    ExchangeView,
    PaperRow,
    SourceView,
    corpus_page_html,
    header_html,
    live_html,
    notice_html,
    paper_html,
    scope_html,
    selection_html,
    sources_html,
    status_html,
    thread_html,
    upload_summary_html,
)
from assistant.web.support import supporting_sentences
from assistant.web.topics import TopicMapCache, legend_html, sample, svg
from assistant.web.understanding import corpus_words, known_word, understood

log = logging.getLogger(__name__)

OFFLINE_LABEL = "offline: quoting the papers"
STOP_POLL_SECONDS = 0.2  # how soon a running answer notices Stop
STOP_MEMORY_SECONDS = 3600.0  # a Stop for an answer that never started is forgotten after this
STOPPED_NOTICE = "Stopped. The question is back in the box."
MAX_COMPARE = 4
MAX_SELECTED = 8  # papers one "ask about these" question can be limited to
CORPUS_PAGE = 25
FEEDBACK_FLAGS = {"up": ("up", []), "down": ("down", []),
                  "wrong_citation": ("down", ["wrong_citation"]),
                  "missing_paper": ("down", ["missing_paper"])}
Out = dict[str, Any]
# Every extension a supported format is chosen by, and .xml (PubMed, sniffed by content).
UPLOAD_EXTENSIONS = sorted({e for f in FORMATS.values() for e in f.extensions} | {".xml"})
EXPORTS = {"bibtex": "BibTeX", "ris": "RIS", "markdown": "Markdown", "csv": "CSV"}


@dataclass
class Pending:
    """A question accepted by `begin`, waiting for (or being answered by) `answer`."""

    question: str
    compare: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)
    # Explicit filters (the session's controls, or none at all to undo filters read from the
    # question); None lets the engine read filter phrases from the question's words.
    filters: Filters | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    exchange_id: str = field(default_factory=lambda: "a" + uuid.uuid4().hex[:10])


class CorpusCache:
    """The store's papers (without their abstracts: at 50k papers they would hold a quarter of a
    GB in every app) and what the UI derives from them, rebuilt when the store changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self.papers: list[PaperRecord] = []
        self.by_id: dict[str, PaperRecord] = {}
        self.by_title: dict[str, PaperRecord] = {}
        self.known: Any = None

    def refresh(self, engine: Engine) -> CorpusCache:
        key = (engine.store.generation, engine.store.count_papers())
        with self._lock:
            if key != self._key:
                papers = sorted(engine.papers(abstracts=False), key=lambda p: p.title.lower())
                self.papers = papers
                self.by_id = {p.id: p for p in papers}
                self.by_title = {p.title: p for p in papers}
                vocabulary = engine.retriever.vocabulary
                self.known = known_word(corpus_words(p.title for p in papers),
                                        lambda w: vocabulary.knows(w))
                self._key = key
        return self


def row(paper: PaperRecord) -> PaperRow:
    return PaperRow(paper.id, paper.title, paper.url, paper.abstract, paper.year, paper.authors)


def owner_of(username: str | None) -> str:
    return username or ""


class UIHandlers:
    def __init__(self, holder: EngineHolder, settings: Settings,
                 conversations: ConversationStore | None = None) -> None:
        self.holder = holder
        self.settings = settings
        self.conversations = conversations or ConversationStore(settings.store_dir)
        self.corpus = CorpusCache()
        self.maps = TopicMapCache(settings.store_dir)
        self.llm_expected = settings.llm_configured and settings.answer_mode != "extractive"
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._stopped: dict[str, float] = {}  # token -> when Stop was pressed
        self._exports: Path | None = None

    # --- header, mode, startup ------------------------------------------------------------------
    def mode_label(self, engine: Engine | None, mode: str | None) -> str:
        if engine is not None and engine.llm is not None and mode != "extractive":
            return engine.mode_label
        if engine is None and self.llm_expected and mode != "extractive":
            return f"LLM: {self.settings.llm_model}"
        return OFFLINE_LABEL

    def header(self, mode: str | None) -> str:
        engine = self.holder.get() if self.holder.ready else None
        label = self.mode_label(engine, mode)
        papers = engine.store.count_papers() if engine else None
        return header_html(label, papers, self.holder.describe(), offline=label == OFFLINE_LABEL)

    def refresh(self, mode: str | None) -> Out:
        """Header, status, the Compare picker's choices and the mode control: filled once the
        engine is ready; until then the header shows the startup progress and the timer polls."""
        if not self.holder.ready:
            return {"header": self.header(mode), "status": notice_html(self.holder.describe(), "info"),
                    "timer": gr.Timer(active=self.holder.error is None)}
        engine = self.holder.get()
        corpus = self.corpus.refresh(engine)
        if engine.llm is not None:
            # "extractive" is kept only when the reader could have chosen it (the control was live).
            chosen = "extractive" if mode == "extractive" and self.llm_expected else "llm"
            radio = gr.Radio(choices=[(engine.mode_label, "llm"), (OFFLINE_LABEL, "extractive")],
                             value=chosen, interactive=True)
        else:
            radio = gr.Radio(choices=[(OFFLINE_LABEL, "extractive")], value="extractive",
                             interactive=False)
        return {"header": self.header(mode), "status": status_html(engine.status()),
                "picks": self.picker(corpus),
                "mode": radio, "timer": gr.Timer(active=False)}

    def picker(self, corpus: CorpusCache) -> Any:
        """The Compare picker's choices: every title, up to `ui_picker_max_papers` (each page
        load sends them to the browser); past that, typed titles are taken and checked."""
        limit = self.settings.ui_picker_max_papers
        if len(corpus.papers) <= limit:
            return gr.Dropdown(choices=[p.title for p in corpus.papers], allow_custom_value=False)
        return gr.Dropdown(choices=[p.title for p in corpus.papers[:limit]], allow_custom_value=True,
                           info=f"{len(corpus.papers):,} papers: type or paste exact titles, or "
                           "select papers in the Corpus tab.")

    # --- conversations ------------------------------------------------------------------------
    def views(self, conversation: Conversation | None) -> list[ExchangeView]:
        return [view(e) for e in (conversation.exchanges if conversation else [])]

    def history_choices(self, owner: str, current: str | None) -> Any:
        summaries = self.conversations.list(owner)
        return gr.Radio(choices=[(s.title or "(untitled)", s.id) for s in summaries],
                        value=current if current and any(s.id == current for s in summaries) else None)

    def show(self, conversation: Conversation, owner: str) -> Out:
        exchanges = self.views(conversation)
        latest = exchanges[-1] if exchanges else None
        return {"conversation": conversation, "thread": thread_html(exchanges),
                "sources": sources_html(exchanges, self.settings.support_threshold),
                "conv_id": conversation.id, "history": self.history_choices(owner, conversation.id),
                "live": "", "notice": "",
                "unfilter": gr.update(visible=bool(latest and latest.filters)),
                "export_row": gr.update(visible=bool(latest and latest.sources)),
                "export_file": gr.update(value=None, visible=False), "export_msg": ""}

    def open_conversation(self, conversation_id: str | None, owner: str) -> Out:
        """A saved conversation (from the sidebar, or the page's address after a reload), or a
        new one when it does not exist or belongs to someone else."""
        found = self.conversations.get(owner, (conversation_id or "").strip())
        return self.show(found or Conversation(), owner)

    def new_conversation(self, owner: str) -> Out:
        """The one way to start over: screen, memory, sources and the "ask about" scope."""
        return {**self.show(Conversation(), owner), "scope": [], "scope_view": "", "question": ""}

    def delete_conversation(self, conversation: Conversation | None, owner: str) -> Out:
        if conversation is not None and conversation.id:
            self.conversations.delete(owner, conversation.id)
        return self.new_conversation(owner)

    # --- asking -------------------------------------------------------------------------------
    def begin(self, question: str, conversation: Conversation | None, scope: Sequence[str],
              compare: Sequence[str] = (), filters: Filters | None = None) -> Out:
        """Check the question before anything changes (on failure it stays in the box, with the
        reason shown once, inline); on success lock the input and show the question at once."""
        conversation = conversation or Conversation()
        try:
            question = clean_question(question, self.settings.max_question_chars)
            if 2 * len(conversation.exchanges) + 2 > self.settings.max_turns:
                raise AssistantError(
                    f"this conversation has reached {self.settings.max_turns} messages, the limit",
                    hint="press “New conversation” to start over (setting ASSISTANT_MAX_TURNS)")
        except AssistantError as exc:
            return {"pending": None, "notice": notice_html(message(exc)), "error": message(exc)}
        pending = Pending(question, list(compare), list(scope), filters)
        waiting = "Waiting for the assistant…" if not self.holder.ready else "Searching the papers…"
        return {"pending": pending, "notice": "", "compare_msg": "",
                "question": gr.update(value="", interactive=False),
                "send": gr.update(visible=False), "stop": gr.update(visible=True),
                "live": live_html(ExchangeView(pending.exchange_id, question, ""), waiting,
                                  comparison=self._comparison(pending))}

    def begin_filtered(self, question: str, conversation: Conversation | None, scope: Sequence[str],
                       years: str | None = None, authors: str | None = None,
                       venues: str | None = None, collection: str | None = None) -> Out:
        """`begin` with the session's filter controls; a filter that cannot be read (a year
        range such as "2025-2020") is refused inline like a bad question."""
        try:
            filters = session_filters(years, authors, venues, collection)
        except AssistantError as exc:
            return {"pending": None, "notice": notice_html(message(exc)), "error": message(exc)}
        return self.begin(question, conversation, scope, filters=filters)

    def begin_unfiltered(self, conversation: Conversation | None, scope: Sequence[str]) -> Out:
        """The latest question asked again with no filter at all: explicit empty filters also stop
        the engine from reading filters out of the question's words ("since 2023")."""
        latest = conversation.exchanges[-1] if conversation and conversation.exchanges else None
        if latest is None:
            return {"pending": None, "notice": "", "error": "no question to ask again"}
        return self.begin(latest.question, conversation, scope, filters=Filters())

    def begin_compare(self, titles: Sequence[str] | None, conversation: Conversation | None,
                      scope: Sequence[str]) -> Out:
        titles = list(dict.fromkeys(titles or []))
        problem = ""
        if len(titles) < 2:
            problem = "Pick at least two papers to compare."
        elif len(titles) > MAX_COMPARE:
            problem = f"Pick at most {MAX_COMPARE} papers to compare."
        elif self.holder.ready:
            known = self.corpus.refresh(self.holder.get()).by_title
            unknown = [t for t in titles if t not in known]
            if unknown:
                problem = f"Not in the collection: {'; '.join(unknown)}"
        if problem:
            return {"pending": None, "compare_msg": notice_html(problem), "error": problem}
        question = f"Compare {', '.join(titles[:-1])} and {titles[-1]}"
        if len(question) > self.settings.max_question_chars:
            question = "Compare the selected papers"
        return self.begin(question, conversation, scope, compare=titles)

    def answer_now(self, started: Out, conversation: Conversation | None, k: float | None,
                   mode: str | None, owner: str) -> Out:
        """`begin` then `answer` in one call, for API clients of the page (gradio_client): the
        final outputs, or an AssistantError with the reason a question was refused."""
        if started["pending"] is None:
            raise AssistantError(started["error"])
        result: Out = {}
        for out in self.answer(started["pending"], conversation, k, mode, owner):
            result.update(out)
        return result

    def finish(self) -> Out:
        return {"question": gr.update(interactive=True), "send": gr.update(visible=True),
                "stop": gr.update(visible=False)}

    def stop(self, pending: Pending | None) -> Out:
        """The Stop button: the answer is marked stopped, and `answer` (within STOP_POLL_SECONDS)
        puts the question back in the box and returns; `finish` then unlocks the input. The
        input stays locked until then, so that a question asked next is never dropped."""
        if pending is None:
            return {"stop": gr.update(visible=False)}
        now = time.monotonic()
        with self._lock:
            # A Stop that arrives before its answer starts (queued) is kept for it; one that
            # arrives after the answer ended would otherwise stay forever.
            for token in [t for t, at in self._stopped.items() if now - at > STOP_MEMORY_SECONDS]:
                del self._stopped[token]
            self._stopped[pending.token] = now
            running = pending.token in self._running
        return {"stop": gr.update(visible=False),
                "notice": notice_html("Stopping…", "info") if running else gr.update()}

    def stopped(self, token: str) -> bool:
        with self._lock:
            return token in self._stopped

    def _stopped_out(self, pending: Pending) -> Out:
        return {"live": "", "question": gr.update(value=pending.question),
                "notice": notice_html(STOPPED_NOTICE, "info")}

    def _until_stopped(self, pending: Pending, events: Iterator[str | Answer]) -> Iterator[str | Answer]:
        """The engine's events, read in a worker thread so that Stop is noticed at once, also while
        the stream waits on retrieval or on the LLM's first token. The worker stops at its next
        event once this generator has ended (stopped, or closed by the page) and closes the
        stream itself (a generator is closed by the thread that runs it)."""
        handed: queue.Queue[tuple[str, Any]] = queue.Queue()
        done = threading.Event()

        def produce() -> None:
            try:
                for event in events:
                    if done.is_set():
                        break
                    handed.put(("event", event))
            except Exception as exc:  # re-raised in the page's thread
                handed.put(("error", exc))
            finally:
                events.close()  # a stopped answer stops the LLM request here
                handed.put(("end", None))

        threading.Thread(target=produce, name="ui-answer", daemon=True).start()
        try:
            while True:
                try:
                    kind, value = handed.get(timeout=STOP_POLL_SECONDS)
                except queue.Empty:
                    if self.stopped(pending.token):
                        return
                    continue
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                if self.stopped(pending.token):
                    return
                yield value
        finally:
            done.set()

    def _comparison(self, pending: Pending) -> bool:
        return len(pending.compare) >= 2 or bool(COMPARE.search(pending.question))

    def answer(self, pending: Pending | None, conversation: Conversation | None, k: float | None,
               mode: str | None, owner: str) -> Iterator[Out]:
        """Stream the answer into the live area; at the end move it into the conversation, draw
        its sources, save the conversation."""
        if pending is None:  # `begin` refused the question and said why
            yield {}
            return
        conversation = conversation or Conversation()
        with self._lock:
            self._running.add(pending.token)
        try:
            answered = yield from self._answer(pending, conversation, k, mode, owner)
            if not answered and self.stopped(pending.token):  # a Stop after the end changes nothing
                yield self._stopped_out(pending)
        finally:
            with self._lock:
                self._running.discard(pending.token)
                self._stopped.pop(pending.token, None)

    def _answer(self, pending: Pending, conversation: Conversation, k: float | None,
                mode: str | None, owner: str) -> Generator[Out, None, bool]:
        live = ExchangeView(pending.exchange_id, pending.question, "")
        comparison = self._comparison(pending)
        while not self.holder.ready and self.holder.error is None:
            yield {"live": live_html(live, f"The assistant is starting: {self.holder.describe()}…")}
            self.holder.wait(1.0)
            if self.stopped(pending.token):
                return False
        if self.stopped(pending.token):  # stopped while queued
            return False
        try:
            engine = self.holder.get()
            corpus = self.corpus.refresh(engine)
            if not (pending.compare or pending.scope) and not understood(
                    pending.question, corpus.known, in_conversation=bool(conversation.exchanges)):
                exchange = Exchange(pending.exchange_id, pending.question, NOT_UNDERSTOOD,
                                    {"understood": False, "mode": "none"})
                yield from self._done(conversation, exchange, owner)
                return True
            use_mode = mode if engine.llm is not None and mode in ("llm", "extractive") else None
            llm = engine.llm is not None and use_mode != "extractive"
            name = engine.llm.name if engine.llm is not None else "the LLM"
            status = f"Searching the papers, then asking {name}…" if llm else "Searching the papers…"
            yield {"live": live_html(live, status, comparison=comparison and llm)}
            turns = [Turn(role, text) for e in conversation.exchanges
                     for role, text in (("user", e.question), ("assistant", e.answer))]
            titles = pending.compare or pending.scope
            # "Ask about these": the selected papers are the named ones, and the only ones kept.
            top = len(pending.scope) if pending.scope and not pending.compare else (int(k) if k else None)
            result: Answer | None = None
            events = engine.stream(pending.question, turns, mode=use_mode, k=top,
                                   compare_titles=list(titles), filters=pending.filters)
            for event in self._until_stopped(pending, events):
                if isinstance(event, Answer):
                    result = event
                elif llm:
                    yield {"live": live_html(live, f"{name} is writing…", comparison=comparison,
                                             body=event)}
            if result is None:
                if self.stopped(pending.token):
                    return False
                raise RuntimeError("the engine's stream ended without an answer")
        except AssistantError as exc:
            yield {"live": "", "notice": notice_html(message(exc)),
                   "question": gr.update(value=pending.question)}
            return False
        except Exception as exc:
            log.exception("answering failed")
            yield {"live": "", "notice": notice_html(
                f"Internal error ({type(exc).__name__}); see the server log."),
                   "question": gr.update(value=pending.question)}
            return False
        exchange = exchange_from(pending.exchange_id, result, supporting_sentences(engine, result),
                                 engine.mode_label if result.mode == "llm" else OFFLINE_LABEL)
        yield from self._done(conversation, exchange, owner)
        return True

    def _done(self, conversation: Conversation, exchange: Exchange, owner: str) -> Iterator[Out]:
        conversation.exchanges.append(exchange)
        try:
            self.conversations.save(owner, conversation)
        except Exception as exc:  # the answer is shown all the same
            log.warning("could not save the conversation: %s", exc)
            yield {**self.show(conversation, owner),
                   "notice": notice_html(f"The conversation could not be saved ({exc}).")}
            return
        yield self.show(conversation, owner)

    # --- feedback -----------------------------------------------------------------------------
    def thread_event(self, data: dict[str, Any] | None, conversation: Conversation | None) -> Out:
        """Clicks inside the conversation that need the server: the feedback buttons."""
        data = data or {}
        kind = str(data.get("fb", ""))
        exchange = next((e for e in (conversation.exchanges if conversation else [])
                         if e.id == data.get("answer")), None)
        if kind not in FEEDBACK_FLAGS or exchange is None:
            return {}
        rating, flags = FEEDBACK_FLAGS[kind]
        return {"notice": notice_html(self.record_feedback(rating, exchange, flags), "info")}

    def record_feedback(self, rating: str, exchange: Exchange, flags: list[str]) -> str:
        # Imported here: assistant.feedback is optional (another module's work); without it the
        # buttons say so instead of failing.
        try:
            from assistant.feedback import FeedbackStore  # type: ignore[import-not-found]
        except ImportError:
            return "Feedback storage is not available on this server."
        sources = exchange.data.get("sources", [])
        citations = [{"n": s["n"], "title": s["title"], "paper_id": s["paper_id"], "url": s["url"],
                      "support": s.get("support"), "flagged": s.get("flagged", False)}
                     for s in sources if s.get("cited")]
        shown = [{k: s[k] for k in ("n", "title", "paper_id", "url", "score", "passages")}
                 for s in sources]
        try:
            FeedbackStore(self.settings).add(
                question=exchange.question, answer=exchange.answer, rating=rating, flags=flags,
                citations=citations, sources=shown, kind=str(exchange.data.get("kind", "")),
                mode=str(exchange.data.get("mode", "")))
        except AssistantError as exc:
            return f"Feedback not recorded: {exc.message}"
        except Exception:  # a feedback store of another shape must not break the page
            log.exception("recording feedback failed")
            return "Feedback not recorded (see the server log)."
        return "Thank you: your feedback was recorded."

    # --- corpus -------------------------------------------------------------------------------
    def corpus_view(self, query: str | None, page: int | None, selection: Sequence[str]) -> Out:
        if not self.holder.ready:
            return {"corpus": notice_html(self.holder.describe(), "info")}
        engine = self.holder.get()
        corpus = self.corpus.refresh(engine)
        words = [w for w in (query or "").lower().split() if w]
        # Titles by substring; abstracts through the lexical index (word forms, not substrings).
        in_text = set(engine.retriever.lexical.papers_with_words(
            " ".join(words), self.settings.corpus_search_max_chunks) or []) if words else set()
        shown = [p for p in corpus.papers
                 if all(w in p.title.lower() for w in words) or p.id in in_text]
        pages = max(1, -(-len(shown) // CORPUS_PAGE))
        page = min(max(int(page or 0), 0), pages - 1)
        on_page = shown[page * CORPUS_PAGE:(page + 1) * CORPUS_PAGE]
        full = engine.store.get_papers([p.id for p in on_page])  # the abstracts shown
        rows = [row(full.get(p.id, p)) for p in on_page]
        return {"corpus": corpus_page_html(rows, set(selection), page, pages, len(corpus.papers),
                                           len(shown)),
                "page": page, "prev": gr.update(interactive=page > 0),
                "next": gr.update(interactive=page < pages - 1)}

    def corpus_search(self, query: str | None, selection: Sequence[str]) -> Out:
        return self.corpus_view(query, 0, selection)

    def corpus_page(self, query: str | None, page: int | None, step: int,
                    selection: Sequence[str]) -> Out:
        return self.corpus_view(query, (page or 0) + step, selection)

    def corpus_toggle(self, data: dict[str, Any] | None, selection: Sequence[str]) -> Out:
        data = data or {}
        pid, on = str(data.get("id", "")), bool(data.get("on"))
        chosen = [p for p in selection if p != pid]
        notice = ""
        if on and self.holder.ready and pid in self.corpus.refresh(self.holder.get()).by_id:
            if len(chosen) >= MAX_SELECTED:
                notice = notice_html(f"At most {MAX_SELECTED} papers can be selected.")
            else:
                chosen.append(pid)
        return {**self.selection(chosen), "corpus_msg": notice}

    def selection(self, chosen: Sequence[str]) -> Out:
        titles = self._titles(chosen)
        label = ("Ask about this paper" if len(titles) == 1 else "Ask about these papers" if titles
                 else "Ask about the selected papers")
        return {"selection": list(chosen), "selection_view": selection_html(titles),
                "ask_selected": gr.update(interactive=bool(titles), value=label)}

    def _titles(self, ids: Sequence[str]) -> list[str]:
        if not self.holder.ready:
            return []
        by_id = self.corpus.refresh(self.holder.get()).by_id
        return [by_id[i].title for i in ids if i in by_id]

    def ask_about(self, ids: Sequence[str]) -> Out:
        """Limit the next questions to these papers and go to the Ask tab."""
        titles = self._titles(ids)[:MAX_SELECTED]
        return {"scope": titles, "scope_view": scope_html(titles), "tabs": gr.Tabs(selected="ask"),
                "scope_clear": gr.update(visible=bool(titles))}

    def clear_scope(self) -> Out:
        return {"scope": [], "scope_view": "", "scope_clear": gr.update(visible=False)}

    # --- upload -------------------------------------------------------------------------------
    def upload(self, files: Sequence[str] | None, collection: str | None,
               progress: Callable[..., Any] | None = None) -> Out:
        """Ingest the files of an upload into the store (and a named collection when given):
        limits checked first, then every file read and validated before anything is written, so
        a wrong file is refused with its reason, inline, and changes nothing."""
        paths = [Path(f) for f in files or []]
        collection = (collection or "").strip() or None
        try:
            self._check_upload(paths)
            engine = self.holder.get()
            if progress is not None:
                progress(0.0, desc="Reading the files")

            def embedded(done: int, total: int) -> None:
                if progress is not None and total:
                    progress(done / total, desc=f"Embedding {done:,}/{total:,} passages")

            summary = ingest_files(paths, self.settings, collection=collection, progress=embedded)
        except AssistantError as exc:
            return {"upload_msg": notice_html(local_names(message(exc), paths))}
        except Exception as exc:  # a parser's surprise must not leave the page without an answer
            log.exception("upload failed")
            return {"upload_msg": notice_html(
                f"Internal error ({type(exc).__name__}) while reading the upload; nothing was "
                "added. See the server log.")}
        for attribute in ("duplicates", "skipped", "warnings"):
            setattr(summary, attribute,
                    [local_names(line, paths) for line in getattr(summary, attribute)])
        engine.refresh_if_stale()  # the next question, the header and the tabs see the new papers
        corpus = self.corpus.refresh(engine)
        return {"upload_msg": upload_summary_html(summary, [p.name for p in paths], collection),
                "upload_files": None, "header": self.header(None),
                "status": status_html(engine.status()),
                "picks": self.picker(corpus)}

    def _check_upload(self, paths: Sequence[Path]) -> None:
        limit_files, limit_bytes = self.settings.max_upload_files, self.settings.max_upload_bytes
        if not paths:
            raise CorpusError("choose one or more files to add first")
        if len(paths) > limit_files:
            raise CorpusError(f"{len(paths)} files in one upload; the limit is {limit_files}",
                              hint="upload them in smaller groups (setting ASSISTANT_MAX_UPLOAD_FILES)")
        wrong = [p.name for p in paths if p.suffix.lower() not in UPLOAD_EXTENSIONS]
        if wrong:
            raise CorpusError(f"not a supported file type: {', '.join(wrong)}",
                              hint=f"upload {', '.join(UPLOAD_EXTENSIONS)} files")
        size = sum(p.stat().st_size for p in paths)
        if size > limit_bytes:
            raise CorpusError(f"the upload holds {size:,} bytes; the limit is {limit_bytes:,}",
                              hint="upload fewer or smaller files (setting ASSISTANT_MAX_UPLOAD_BYTES)")

    # --- export -------------------------------------------------------------------------------
    def export(self, fmt: str, conversation: Conversation | None) -> Out:
        """The latest answer in `fmt` (EXPORTS) as a file to download: its cited papers as
        BibTeX or RIS, the answer as Markdown with its references, its table as CSV."""
        latest = next((e for e in reversed(conversation.exchanges if conversation else [])
                       if e.data.get("sources")), None)
        try:
            if latest is None:
                raise AssistantError("there is no answer with sources to export yet")
            engine = self.holder.get()
            text = export_answer(engine, answer_of(latest), fmt)
        except AssistantError as exc:
            return {"export_file": gr.update(value=None, visible=False),
                    "export_msg": notice_html(message(exc))}
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="paper-assistant-exports-"))
        folder = Path(tempfile.mkdtemp(dir=self._exports))  # one per export: names never clash
        path = folder / f"{'cited-papers' if fmt in ('bibtex', 'ris') else 'answer'}{EXTENSIONS[fmt]}"
        path.write_text(text, encoding="utf-8")
        return {"export_file": gr.update(value=str(path), visible=True), "export_msg": ""}

    # --- map ----------------------------------------------------------------------------------
    def map_view(self, conversation: Conversation | None, selected: str | None = None) -> Out:
        if not self.holder.ready:
            return {"map": notice_html(self.holder.describe(), "info")}
        engine = self.holder.get()
        corpus = self.corpus.refresh(engine)

        def load() -> tuple[list[str], Any, list[str], int]:
            ids = [p.id for p in corpus.papers]
            kept = [ids[i] for i in sample(ids)]
            full = engine.store.get_papers(kept)
            texts = [f"{full[pid].title}. {full[pid].abstract}" if pid in full else ""
                     for pid in kept]
            return kept, engine.store.paper_vectors(kept), texts, len(ids)

        topic_map = self.maps.get(engine.store.generation, load)
        cited: dict[str, int] = {}
        retrieved: dict[str, int] = {}
        latest = next((e for e in reversed(conversation.exchanges if conversation else [])
                       if e.data.get("sources")), None)
        for s in latest.data["sources"] if latest else []:
            (cited if s.get("cited") else retrieved)[s["paper_id"]] = s["n"]
        titles = {p.id: p.title for p in corpus.papers}
        return {"map": svg(topic_map, titles, cited, retrieved, selected),
                "legend": legend_html(topic_map)}

    def map_click(self, data: dict[str, Any] | None) -> Out:
        pid = str((data or {}).get("id", ""))
        paper = self.corpus.by_id.get(pid) if self.holder.ready else None
        if paper is None:
            return {}
        paper = self.holder.get().store.get_papers([pid]).get(pid, paper)  # with its abstract
        return {"map_paper": paper_html(row(paper)), "map_pick": pid,
                "ask_paper": gr.update(visible=True)}

    def ask_about_paper(self, pid: str | None) -> Out:
        return self.ask_about([pid] if pid else [])


# --- records --------------------------------------------------------------------------------
def message(exc: AssistantError) -> str:
    text = exc.message[:1].upper() + exc.message[1:]
    return f"{text}. {exc.hint[:1].upper() + exc.hint[1:]}." if exc.hint else f"{text}."


def exchange_from(exchange_id: str, answer: Answer, support: dict[int, list[str]],
                  mode_label: str) -> Exchange:
    cited = {c.n: c for c in answer.citations}
    sources = []
    for s in answer.sources:
        citation = cited.get(s.n)
        sources.append(asdict(SourceView(
            n=s.n, paper_id=s.paper_id, title=s.title, url=s.url, abstract=s.abstract,
            passages=list(s.passages), score=float(s.score), cited=citation is not None,
            support=float(citation.support) if citation else None,
            flagged=bool(citation.flagged) if citation else False, sentences=support.get(s.n, []))))
    # Cited papers first, in citation order; the panel keeps that order.
    sources.sort(key=lambda s: (not s["cited"], s["n"]))
    data = {"mode": answer.mode, "mode_label": mode_label, "abstained": answer.abstained,
            "notice": answer.notice, "kind": answer.kind, "understood": True, "sources": sources,
            "standalone": answer.standalone_question,
            "filters": answer.filters.to_json() if answer.filters else None}
    return Exchange(exchange_id, answer.question, answer.answer, data)


def view(exchange: Exchange) -> ExchangeView:
    data = exchange.data
    return ExchangeView(
        id=exchange.id, question=exchange.question, answer=exchange.answer,
        mode=data.get("mode", "extractive"), mode_label=data.get("mode_label", ""),
        abstained=bool(data.get("abstained")), notice=data.get("notice", ""),
        kind=data.get("kind", "factual"), understood=bool(data.get("understood", True)),
        sources=[SourceView(**s) for s in data.get("sources", [])],
        filters=(data.get("filters") or {}).get("description", ""),
        filter_phrases=list((data.get("filters") or {}).get("phrases", [])))


def answer_of(exchange: Exchange) -> Answer:
    """The Answer an exchange was made from, as far as exports need it (also for conversations
    reopened from disk, which keep only what the page shows)."""
    data = exchange.data
    sources = data.get("sources", [])
    citations = [Citation(n=s["n"], paper_id=s["paper_id"], title=s["title"], url=s["url"],
                          support=float(s.get("support") or 0.0), flagged=bool(s.get("flagged")))
                 for s in sorted(sources, key=lambda s: s["n"]) if s.get("cited")]
    docs = [SourceDoc(n=s["n"], paper_id=s["paper_id"], title=s["title"], url=s["url"],
                      abstract=s.get("abstract", ""), score=float(s.get("score", 0.0)),
                      passages=list(s.get("passages", []))) for s in sources]
    filters = data.get("filters")
    return Answer(question=exchange.question, answer=exchange.answer,
                  mode=data.get("mode", "extractive"), abstained=bool(data.get("abstained")),
                  citations=citations, sources=docs, kind=data.get("kind", "factual"),
                  standalone_question=data.get("standalone", ""), notice=data.get("notice", ""),
                  filters=Filters.from_json({k: v for k, v in filters.items() if k != "phrases"})
                  if filters else None)


def session_filters(years: str | None, authors: str | None, venues: str | None,
                    collection: str | None) -> Filters | None:
    """The filters of the session's controls, or None when all are empty (the engine then reads
    filter phrases from the question). Several authors or venues are separated by ";" (names
    hold commas: "Wang, Li; Smith")."""
    def split(text: str | None) -> list[str]:
        return [v.strip() for v in (text or "").split(";") if v.strip()]

    filters = Filters.from_options(year=(years or "").strip() or None, authors=split(authors),
                                   venues=split(venues), collection=collection)
    return filters or None


def local_names(text: str, paths: Sequence[Path]) -> str:
    """A message with the upload's temporary paths replaced by the files' own names (the server's
    folders are nobody's business, and the user knows the files by name)."""
    for path in paths:
        text = text.replace(str(path), path.name)
    return text
