"""The engine every edge uses (CLI, web UI, HTTP API): question (+ conversation) in, retrieval,
an answer in LLM or offline mode, citations checked, sources out."""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant import prompts
from assistant.citations import (
    CheckReport,
    Citation,
    InstructionGuard,
    SourceDoc,
    check_citations,
    drop_unknown_citations,
    inert_text,
    normalize_citations,
    sanitize,
    source_list,
)
from assistant.conversation import Turn, resolve
from assistant.corpus import is_code_link
from assistant.embedding import get_embedder
from assistant.errors import AssistantError, FilterError, StoreError
from assistant.extractive import ExtractiveAnswerer
from assistant.filters import Filters, parse_filter_phrases
from assistant.llm import LLM, LLMError, make_llm
from assistant.prompting import Prompter
from assistant.relevance import Decision, RelevanceJudge
from assistant.retrieval import HybridRetriever, RetrievalResult
from assistant.sentences import SentenceVectors
from assistant.settings import Settings
from assistant.store import PaperRecord, PaperStore, head_record
from assistant.tables import cite_table_rows, cited_numbers, usable_table, without_table
from assistant.tracing import span

log = logging.getLogger(__name__)

Mode = Literal["llm", "extractive"]
OFFLINE_NOTE = "_Offline mode: quoting the papers, no text generated._"
SENTENCE_CACHE = "sentence_vectors.npz"  # in store_dir: the sentence vectors of the last warm-up
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@dataclass
class Answer:
    question: str
    answer: str
    mode: Mode
    abstained: bool
    citations: list[Citation]
    sources: list[SourceDoc]
    kind: str = "factual"
    standalone_question: str = ""
    notice: str = ""
    llm_error: str | None = None
    checks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    filters: Filters | None = None  # the filters retrieval applied (explicit, or read from the question)

    @property
    def cited_titles(self) -> list[str]:
        return [c.title for c in self.citations]

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "abstained": self.abstained,
            "citations": [
                {"n": c.n, "title": c.title, "paper_id": c.paper_id, "url": c.url,
                 "support": c.support, "flagged": c.flagged,
                 "claims": [{"claim": x.text, "evidence": x.evidence, "support": x.support}
                            for x in c.claims]}
                for c in self.citations
            ],
            "sources": [
                {"n": s.n, "title": s.title, "paper_id": s.paper_id, "url": s.url,
                 "score": round(s.score, 5), "passages": s.passages, "verdict": s.verdict,
                 "relevance": s.relevance}
                for s in self.sources
            ],
            "kind": self.kind,
            "standalone_question": self.standalone_question,
            "notice": self.notice,
            "llm_error": self.llm_error,
            "checks": self.checks,
            "seconds": round(self.seconds, 4),
            "filters": self.filters.to_json() if self.filters else None,
        }


def clean_question(question: object, max_chars: int) -> str:
    if not isinstance(question, str):
        raise AssistantError("the question must be text")
    text = CONTROL.sub(" ", question).strip()
    if not text:
        raise AssistantError("the question is empty: type a question about the papers")
    if len(text) > max_chars:
        raise AssistantError(
            f"the question is {len(text):,} characters long; the limit is {max_chars:,}",
            hint="shorten it (setting ASSISTANT_MAX_QUESTION_CHARS)",
        )
    if not re.search(r"\w", text):
        raise AssistantError("the question has no words in it: type a question about the papers")
    return text


class Engine:
    def __init__(self, settings: Settings, *, llm: LLM | None = None) -> None:
        self.settings = settings
        self.embedder = get_embedder(settings)
        self.store = PaperStore(settings)
        self.store.check_compatible()
        self.retriever = HybridRetriever(settings, self.store, self.embedder)
        self.vectors = SentenceVectors(self.embedder)
        self.extractive = ExtractiveAnswerer(self.vectors, settings.sentences_per_paper)
        self.judge = RelevanceJudge(self.vectors)
        self.guard = InstructionGuard(_instruction_texts())
        self.llm: LLM | None = llm if llm is not None else make_llm(settings)
        self.prompter = Prompter(settings, self.llm)
        if settings.answer_mode == "llm" and self.llm is None:
            raise AssistantError(
                "answer_mode is 'llm' but no LLM is configured",
                hint="set OPENAI_API_KEY and/or OPENAI_BASE_URL, or ASSISTANT_LOCAL_MODEL",
            )
        self._refresh_lock = threading.Lock()
        self._warmup: threading.Thread | None = None
        self._stop_warmup = threading.Event()
        self.start_warmup()

    # --- state ----------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return "llm" if self.llm is not None else "extractive"

    @property
    def mode_label(self) -> str:
        return f"LLM: {self.llm.name}" if self.llm is not None else "offline: quoting the papers"

    def refresh_if_stale(self) -> None:
        """Pick up ingests made by other processes (the store generation moved on)."""
        generation = self._guard(lambda: self.store.generation)
        if generation != self.retriever.generation:
            with self._refresh_lock:
                if generation != self.retriever.generation:
                    log.info("store changed (generation %s); reloading indexes", generation)
                    self.store.open_collections()  # a --rebuild elsewhere makes new collections
                    self.retriever.refresh()
                    self.start_warmup()  # the new papers' sentences

    # --- sentence cache ---------------------------------------------------------------------
    def start_warmup(self) -> None:
        """Embed every abstract's sentences in a background thread, for stores of at most
        `sentence_cache_max_papers` papers, starting from the copy an earlier start saved: the
        extractive answerer and the citation checker then find every sentence vector ready (a cold
        list question otherwise embeds ~100 sentences on the spot)."""
        if self.settings.sentence_cache_max_papers <= 0 or self._stop_warmup.is_set():
            return
        if self._warmup is not None and self._warmup.is_alive():
            return
        self._warmup = threading.Thread(target=self._warm_sentences, name="sentence-warmup",
                                        daemon=True)
        self._warmup.start()
        _WARMING.add(self)

    def stop_warmup(self, timeout: float = 5.0) -> None:
        """Stop the warm-up after its current small batch (it saves what it has)."""
        self._stop_warmup.set()
        if self._warmup is not None and self._warmup is not threading.current_thread():
            self._warmup.join(timeout)

    def warmup_done(self, timeout: float | None = None) -> bool:
        """Wait for the warm-up to finish (for benchmarks and tests); True when it has."""
        if self._warmup is not None:
            self._warmup.join(timeout)
        return self._warmup is None or not self._warmup.is_alive()

    def _warm_sentences(self) -> None:
        path = self.settings.store_dir / SENTENCE_CACHE
        try:
            loaded = self.vectors.load(path)
            if self.store.count_papers() > self.settings.sentence_cache_max_papers:
                return
            abstracts = [p.abstract for p in self.store.all_papers()]
            added = self.vectors.warm(abstracts, stop=self._stop_warmup.is_set)
            if added and path.parent.is_dir():  # never recreate a store directory removed meanwhile
                self.vectors.save(path, only=abstracts)
            log.info("sentence cache: %d sentences loaded, %d embedded", loaded, added)
        except Exception as exc:  # only a cache: answers embed what they need themselves
            log.warning("sentence warm-up stopped: %s: %s", type(exc).__name__, exc)

    def status(self) -> dict[str, Any]:
        return self._guard(lambda: {
            "store": self.store.label,
            "papers": self.store.count_papers(),
            "chunks": self.store.count_chunks(),
            "embedding_model": self.store.manifest.get("embed_model", self.settings.embed_model),
            "answer_mode": self.mode,
            "mode_label": self.mode_label,
            "llm_model": self.llm.name if self.llm else None,
        })

    def papers(self, *, abstracts: bool = True) -> list[PaperRecord]:
        """Every paper; `abstracts=False`: without abstracts, from the lexical index when it
        matches the store (fast and light on a large store), else from the store."""
        if not abstracts:
            self.refresh_if_stale()
            heads = (self.retriever.lexical.paper_heads()
                     if self.retriever.generation == self.store.generation else None)
            if heads is not None:
                return [head_record(h) for h in heads]
        return self._guard(lambda: self.store.all_papers(abstracts=abstracts))

    # --- retrieval ------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, *, filters: Filters | None = None
               ) -> RetrievalResult:
        """Papers for a query, best first: retrieval's candidates ordered by the relevance model.
        `filters=None` reads filter phrases ("since 2023") from the query; explicit filters (even
        empty ones) turn that off."""
        query = clean_question(query, self.settings.max_question_chars)
        phrased = filters is None
        if phrased:
            query, filters = parse_filter_phrases(query)
        self.refresh_if_stale()
        try:
            with span("retrieval", k=k):
                result, _records, _decision = self._guard(
                    lambda: self._retrieve(query, k, filters=filters or None))
        except FilterError:
            if not phrased:
                raise
            # As in an answer: the question's own words ask for papers the collection lacks.
            return RetrievalResult(query, "factual", [], False, 0.0, filters=filters or None)
        return result

    def _retrieve(self, question: str, k: int | None = None, *, kind: str | None = None,
                  extra: Sequence[str] = (), filters: Filters | None = None
                  ) -> tuple[RetrievalResult, dict[str, PaperRecord], Decision]:
        """Retrieve, judge every paper's relevance, and order the papers by it (named ones first):
        the relevance model, fitted on labelled questions, ranks better than fusion alone. For a
        list question the pool is at least `list_top_k` papers before the cut to `k`."""
        pool = max(k or 0, self.settings.list_top_k) if k else None
        result = self.retriever.retrieve(question, pool, kind=kind,  # type: ignore[arg-type]
                                         extra_paper_ids=list(extra), filters=filters)
        records = self.store.get_papers([h.paper_id for h in result.papers])
        if not result.papers:
            return result, records, Decision([])
        decision = self.judge.judge(question, result,
                                    {pid: r.abstract for pid, r in records.items()})
        # Named papers first, in the order the question names them; then by relevance.
        lowered = question.lower()
        mentioned = {e.paper_id: (lowered.find(e.name.lower()) % (len(lowered) + 1))
                     for e in reversed(result.entities)}
        order = sorted(range(len(result.papers)), key=lambda i: (
            not result.papers[i].named, mentioned.get(result.papers[i].paper_id, len(lowered) + 1),
            -decision.judgements[i].probability))
        result.papers = [result.papers[i] for i in order]
        decision.judgements = [decision.judgements[i] for i in order]
        if k:
            keep = max(k, sum(1 for h in result.papers if h.named))
            result.papers, decision.judgements = result.papers[:keep], decision.judgements[:keep]
        return result, records, decision

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except AssistantError:
            raise
        except Exception as exc:  # the store went away mid-request (server down, files removed)
            if _store_failure(exc):
                raise self.store.unavailable(exc) from exc
            raise

    # --- answering ------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[Turn] = (), **options: Any) -> Answer:
        answer: Answer | None = None
        for event in self.stream(question, history, **options):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[Turn] = (), *, mode: Mode | None = None,
               k: int | None = None, compare_titles: Sequence[str] = (),
               filters: Filters | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text as it grows (sanitised, citations not yet checked), then the
        final Answer (checked, with its source list). `filters=None` reads filter phrases ("since
        2023") from the question; explicit filters (even empty ones) turn that off."""
        try:
            with span("question", mode=mode or self.mode, k=k, turns=len(history),
                      compared=len(compare_titles)):
                yield from self._stream(question, history, mode=mode, k=k, compare_titles=compare_titles,
                                        filters=filters)
        except AssistantError:
            raise
        except Exception as exc:  # any store read of the request, not only retrieval
            if _store_failure(exc):
                raise self.store.unavailable(exc) from exc
            raise

    def _stream(self, question: str, history: Sequence[Turn], *, mode: Mode | None,
                k: int | None, compare_titles: Sequence[str],
                filters: Filters | None = None) -> Iterator[str | Answer]:
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        if len(history) > self.settings.max_turns:
            raise AssistantError(
                f"the conversation has {len(history)} messages; the limit is "
                f"{self.settings.max_turns}",
                hint="start a new conversation (setting ASSISTANT_MAX_TURNS)",
            )
        self.refresh_if_stale()
        if self.store.count_papers() == 0:
            # Missing, emptied or replaced store: say so, rather than "not covered".
            raise StoreError(f"the store at {self.store.label} holds no papers",
                             hint="build it with `assistant ingest` (`assistant ingest --rebuild` if it "
                                  "was damaged)", status=503)
        use_llm = self.llm is not None and mode != "extractive"

        resolution = resolve(question, history,
                             bool(self.retriever.resolve_names(question)) or bool(compare_titles))
        standalone = resolution.question
        llm_failure: LLMError | None = None
        if use_llm and resolution.is_followup and history:
            condensed, llm_failure = self.prompter.condense(question, history)
            standalone = condensed or standalone
        extra = self._ids_for(list(compare_titles) + resolution.paper_titles)
        kind = "comparative" if len(compare_titles) >= 2 else None
        phrased = filters is None
        if phrased:
            standalone, filters = parse_filter_phrases(standalone)
        try:
            with span("retrieval", k=k, named=len(extra)):
                result, records, decision = self._guard(
                    lambda: self._retrieve(standalone, k, kind=kind, extra=extra, filters=filters or None))
        except FilterError as exc:
            if not phrased:
                raise  # filters the user set explicitly: their error
            # Filters read from the question's own words that no paper meets: the question is
            # about papers the collection does not hold, an answer rather than an error.
            answer = Answer(question=question, answer=f"{exc.message}.", mode="extractive",
                            abstained=True, citations=[], sources=[], kind="factual",
                            standalone_question=standalone, filters=filters or None,
                            seconds=time.perf_counter() - started)
            yield answer.answer
            yield answer
            return
        sources = self._sources(result, records, decision)

        answer = Answer(question=question, answer="", mode="llm" if use_llm else "extractive",
                        abstained=False, citations=[], sources=sources, kind=result.kind,
                        standalone_question=standalone, filters=result.filters)
        if not result.covered or not sources:
            answer.abstained, answer.mode = True, "extractive"  # no model wrote an abstention
            answer.answer = self._abstain_text(sources, result.unknown_condition)
            answer.seconds = time.perf_counter() - started
            yield answer.answer
            yield answer
            return

        focus = [s.n for s in sources if s.paper_id in set(extra) | {e.paper_id for e in result.entities}]
        if decision.abstain:
            # Retrieval found papers near the question, and none of them answers it.
            answer.abstained, answer.mode = True, "extractive"
            answer.answer = self._abstain_text(sources)
            answer.seconds = time.perf_counter() - started
            yield answer.answer
            yield answer
            return
        raw = ""
        if use_llm:
            assert self.llm is not None
            try:
                if llm_failure is not None:
                    # The model just failed on the follow-up; a second try would double the wait.
                    raise llm_failure
                with span("llm", model=self.llm.name):
                    for delta in self.llm.stream(self.prompter.messages(question, result, sources, history)):
                        raw += delta
                        yield self._draft(raw, sources)
            except LLMError as exc:
                log.warning("LLM failed, answering offline: %s", exc)
                answer.mode = "extractive"
                answer.llm_error = exc.message
                answer.notice = (f"The language model was unavailable ({exc.message}); this is the "
                                 "offline answer, quoting the papers.")
                raw = ""
        table_needed = False
        if answer.mode == "llm" and result.kind == "comparative":
            raw = cite_table_rows(raw)
        if answer.mode == "llm" and result.kind == "comparative" and not usable_table(raw, focus):
            # The model's table is unusable: dropped here, built from the papers themselves below.
            raw, table_needed = without_table(raw), True
        if answer.mode == "llm" and not cited_numbers(raw) & {s.n for s in sources}:
            # An answer that cites no source cannot be checked (small models write confident,
            # uncited figures): the offline answer instead, saying why.
            log.warning("the LLM's answer cited no source; answering offline")
            answer.mode = "extractive"
            answer.llm_error = "the model's answer cited none of the sources"
            answer.notice = ("The language model's answer cited none of the papers, so it is not shown; "
                             "this is the offline answer, quoting the papers.")
        if answer.mode == "extractive":
            with span("fallback" if use_llm else "extractive", reason=answer.llm_error):
                raw = self.extractive.answer(standalone, result.kind, sources, result.query_vector, focus)
        elif table_needed:
            table = self.extractive.compare(standalone, [s for s in sources if s.n in focus])
            raw = f"{table}\n\n{raw}"
        final = self._finish(raw, sources, answer)
        answer.seconds = time.perf_counter() - started
        yield final
        yield answer

    def _draft(self, raw: str, sources: list[SourceDoc]) -> str:
        """What a partial LLM answer may show while it streams: made inert like the final one,
        with unknown citation numbers and instruction text (also half-written) kept out."""
        text = sanitize(raw, self._allowed_urls(sources))[0]
        text = self.guard.hold_back(self.guard.redact(text)[0])
        return drop_unknown_citations(text, {s.n for s in sources})

    def _finish(self, raw: str, sources: list[SourceDoc], answer: Answer) -> str:
        text, removed_links, removed_html = sanitize(raw, self._allowed_urls(sources))
        text, removed_instructions = self.guard.redact(text)
        with span("citations.check", sources=len(sources)):
            report: CheckReport = check_citations(normalize_citations(text), sources, self.vectors,
                                                  self.settings.support_threshold)
        answer.citations = report.citations
        answer.checks = {
            "invented_removed": report.invented,
            "reattributed": report.reattributed,
            "flagged": report.flagged,
            "links_removed": removed_links,
            "html_removed": removed_html,
            "instructions_removed": removed_instructions,
        }
        # "[2][1]" with [2] moved to 1 reads "[1][1]": one mark is enough.
        body = re.sub(r"(\[\d+\??\])(?:[ \t]*\1)+", r"\1", report.text).strip()
        if answer.mode == "extractive":
            body = f"{body}\n\n{OFFLINE_NOTE}"
        if answer.notice:
            # The notice quotes the LLM's error, which the LLM's server wrote: inert it too.
            answer.notice = sanitize(answer.notice[:500], set())[0].replace("_", " ").replace("*", " ")
            body = f"_{answer.notice}_\n\n{body}"
        answer.answer = body + source_list(report.citations)
        return answer.answer

    def _abstain_text(self, sources: list[SourceDoc], unknown_condition: str | None = None) -> str:
        total = self.store.count_papers()
        nearest = "\n".join(f"- {inert_text(s.title)}" for s in sources[:3])
        text = (f"The collection ({total} papers) does not seem to cover this question, so I won't "
                "answer it from the abstracts.")
        if unknown_condition:
            text += f" None of its papers mentions {inert_text(unknown_condition)}."
        if nearest:
            text += f"\n\nThe nearest papers, in case they help:\n{nearest}"
        return text

    def _sources(self, result: RetrievalResult, records: dict[str, PaperRecord],
                 decision: Decision) -> list[SourceDoc]:
        """The retrieved papers numbered for the answer, each with its relevance decision."""
        judged = {j.paper_id: j for j in decision.judgements}
        sources = []
        for n, hit in enumerate(result.papers, start=1):
            record = records.get(hit.paper_id)
            judgement = judged.get(hit.paper_id)
            sources.append(SourceDoc(
                n=n, paper_id=hit.paper_id, title=hit.title or (record.title if record else ""),
                url=(record.url if record else hit.url), abstract=record.abstract if record else "",
                links=record.links if record else (), score=hit.score,
                passages=[p.text for p in hit.passages],
                verdict=judgement.verdict if judgement else "answers",
                relevance=round(judgement.probability, 4) if judgement else 1.0,
            ))
        return sources

    def _ids_for(self, titles: Sequence[str]) -> list[str]:
        from assistant.corpus import paper_id

        known = self.retriever.titles.titles
        ids = [paper_id(t) for t in titles]
        return [i for i in dict.fromkeys(ids) if i in known]

    @staticmethod
    def _allowed_urls(sources: list[SourceDoc]) -> set[str]:
        """A source's own link and its code links. Other addresses in an abstract are not
        linked: a poisoned abstract must not be able to put a link of its choosing in an answer."""
        return {u for s in sources for u in (s.url, *[x for x in s.links if is_code_link(x)]) if u}

    # --- LLM prompts ----------------------------------------------------------------------

def _store_failure(exc: Exception) -> bool:
    """An exception from the store's machinery (Chroma, its HTTP client, SQLite, the filesystem),
    as opposed to a bug: reported as "store unavailable" (503) rather than a traceback."""
    module = type(exc).__module__.lower()
    return ("chroma" in module or module.startswith(("httpx", "httpcore", "sqlite3"))
            or isinstance(exc, (ConnectionError, OSError)))


_WARMING: weakref.WeakSet[Engine] = weakref.WeakSet()


@atexit.register
def _stop_warmups() -> None:
    """A process that exits mid warm-up (`assistant ask`) stops it cleanly instead of leaving
    torch running in a daemon thread during interpreter shutdown."""
    for engine in list(_WARMING):
        engine.stop_warmup(timeout=2.0)


def _instruction_texts() -> list[str]:
    """The system prompt and the templates' fixed lines: text that must never reach an answer."""
    texts = [prompts.render("system")]
    for name in ("answer", "compare", "condense"):
        try:
            texts.append(prompts.load_prompt(name).template)
        except AssistantError:  # a deployment without that template
            continue
    return texts


