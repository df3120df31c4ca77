"""The web UI (Gradio Blocks): a streaming chat beside the sources of the latest answer, a corpus
browser, and a map of the corpus with the cited papers highlighted.

Corpus text is data: every title, abstract and passage shown in our own HTML goes through
`esc()` first (HTML-escaped, then the supporting sentences wrapped in <mark>), links are http(s)
only, and chat messages pass through the same sanitiser as answers.
"""

from __future__ import annotations

import html
import logging
import re
import textwrap
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from assistant.citations import CITE, claim_units, sanitize, split_sentences
from assistant.conversation import Turn
from assistant.engine import Answer, Engine, clean_question
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store import PaperRecord
from assistant.web.holder import EngineHolder

log = logging.getLogger(__name__)

EXAMPLES = [
    ("Factual", "How accurate is the nailfold capillary pipeline at predicting abnormality?"),
    ("List", "Which papers adapt the Segment Anything Model to medical images?"),
    ("Comparison", "Compare SegMamba and Swin SMT"),
]
OFFLINE_LABEL = "offline: quoting the papers"
MAX_COMPARE = 4
SUPPORT_SIMILARITY = 0.6  # a sentence this close to a citing claim is highlighted as its support

HEAD = '<meta name="referrer" content="no-referrer">'
CSS = """
.pa-header { display: flex; align-items: baseline; justify-content: space-between; gap: 1rem;
  flex-wrap: wrap; padding: .25rem .25rem 0; }
.pa-header h1 { font-size: 1.35rem; margin: 0; }
.pa-header .pa-sub { color: var(--body-text-color-subdued); font-size: .9rem; }
.pa-badge { display: inline-block; padding: .15rem .6rem; border-radius: 999px; font-size: .85rem;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); white-space: nowrap; }
.pa-badge.pa-offline { background: #fff7e6; border-color: #f0b44c; color: #7a4b00; }
.pa-sources { max-height: 640px; overflow-y: auto; padding-right: .25rem; }
.pa-title { font-weight: 600; font-size: 1.05rem; margin: .1rem 0 .2rem; }
.pa-empty { color: var(--body-text-color-subdued); padding: 1rem .25rem; line-height: 1.5; }
.pa-sources-head { font-size: .85rem; color: var(--body-text-color-subdued); margin: .1rem 0 .5rem; }
.pa-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: .6rem .75rem;
  margin-bottom: .6rem; background: var(--background-fill-primary); }
.pa-card-title { font-weight: 600; line-height: 1.35; }
.pa-card-title a { color: inherit; text-decoration: none; border-bottom: 1px dotted currentColor; }
.pa-n { display: inline-block; min-width: 1.6rem; text-align: center; margin-right: .35rem;
  border-radius: 6px; background: #e8590c; color: white; font-size: .8rem; padding: 0 .3rem; }
.pa-card.pa-uncited .pa-n { background: #6c8ebf; }
.pa-meta { display: flex; gap: .75rem; align-items: center; font-size: .8rem; margin: .3rem 0;
  color: var(--body-text-color-subdued); flex-wrap: wrap; }
.pa-bar { display: inline-block; width: 70px; height: 6px; border-radius: 3px;
  background: var(--border-color-primary); overflow: hidden; vertical-align: middle; }
.pa-bar > i { display: block; height: 100%; background: #e8590c; }
.pa-warn { color: #b54708; }
.pa-passage { font-size: .88rem; line-height: 1.45; border-left: 3px solid var(--border-color-primary);
  padding: .1rem .6rem; margin: .35rem 0; }
.pa-card mark { background: #ffe8a3; color: inherit; padding: 0 .1rem; border-radius: 2px; }
.pa-card details { margin-top: .35rem; font-size: .88rem; }
.pa-card summary { cursor: pointer; color: var(--color-accent); }
.pa-abstract { line-height: 1.5; margin-top: .35rem; }
.pa-more > summary { cursor: pointer; margin: .3rem 0 .5rem; font-size: .9rem; }
.pa-paper h3 { margin: .2rem 0 .4rem; }
.pa-status td { padding: .15rem .8rem .15rem 0; }
#pa-chat table { font-size: .86rem; }
#pa-chat table td:first-child { white-space: nowrap; }
"""


def theme() -> gr.themes.Base:
    # Local fonts: nothing is fetched from the internet (the app works offline).
    return gr.themes.Soft(
        primary_hue="orange", secondary_hue="blue", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


# --- escaping ---------------------------------------------------------------------------------
def esc(text: object) -> str:
    """HTML-escape corpus/user text; `$`, `{`, `}` too, so no template engine reads it as code."""
    return (html.escape(str(text), quote=True)
            .replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;"))


def safe_url(url: str) -> str | None:
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s\"'<>]+$", url, re.I) else None


def link(url: str, label_html: str) -> str:
    href = safe_url(url)
    if not href:
        return label_html
    return (f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer nofollow">'
            f"{label_html}</a>")


def highlight(text: str, sentences: Sequence[str]) -> str:
    """Escape first, then wrap the (escaped) supporting sentences in <mark>."""
    out = esc(text)
    for sentence in sorted(set(sentences), key=len, reverse=True):
        needle = esc(sentence)
        if needle and needle in out and f"<mark>{needle}" not in out:
            out = out.replace(needle, f"<mark>{needle}</mark>", 1)
    return out


def shown_question(question: str) -> str:
    """A user's message as the chat shows it: inert (no HTML, no links, no images)."""
    return sanitize(question, set())[0]


# --- sources panel ----------------------------------------------------------------------------
def supporting_sentences(engine: Engine, answer: Answer) -> dict[int, list[str]]:
    """For each cited source, the sentences of its abstract that back the answer's claims citing it:
    quoted verbatim (offline answers) or the closest sentence by embedding (LLM answers)."""
    body = answer.answer.split("\n**Sources**")[0]
    claims: dict[int, list[str]] = {}
    previous = ""
    for start, end in claim_units(body):
        unit = body[start:end]
        numbers = {int(n) for m in CITE.finditer(unit) for n in re.split(r"[,;]", m.group(1))}
        claim = CITE.sub("", unit).strip(" |*-_").replace("&lt;", "<").replace("&gt;", ">")
        # "Sentence. [1]" at a line's end comes out as a unit of its own: it cites the sentence before.
        claim = claim or previous
        previous = claim
        if claim:
            for n in numbers:
                claims.setdefault(n, []).append(claim)
    by_n = {s.n: s for s in answer.sources}
    support: dict[int, list[str]] = {}
    for n, texts in claims.items():
        source = by_n.get(n)
        if source is None or not source.abstract:
            continue
        sentences = [s for s in split_sentences(source.abstract) if len(s) > 15]
        if not sentences:
            continue
        found: list[str] = []
        loose: list[str] = []
        for claim in texts:
            quoted = [s for s in sentences if s.rstrip(" .…") in claim or s[:80] in claim]
            if quoted:
                found.extend(quoted)
            else:
                loose.append(claim)
        if loose:
            try:
                vectors = engine.vectors([*loose, *sentences])
                sims = vectors[len(loose):] @ vectors[: len(loose)].T  # sentences x claims
                for j in range(len(loose)):
                    best = int(np.argmax(sims[:, j]))
                    if sims[best, j] >= SUPPORT_SIMILARITY:
                        found.append(sentences[best])
            except Exception:  # highlighting is a nicety; never fail an answer over it
                log.debug("support highlighting failed", exc_info=True)
        support[n] = list(dict.fromkeys(found))
    return support


def _card(source: Any, support: list[str], top_score: float, citation: Any | None) -> str:
    width = 100 * source.score / top_score if top_score > 0 else 0
    meta = [f'<span title="fused retrieval score">relevance {source.score:.3f} '
            f'<span class="pa-bar"><i style="width:{width:.0f}%"></i></span></span>']
    if citation is not None:
        meta.append(f'<span title="how well the paper supports the sentences citing it">support '
                    f"{citation.support:.2f}</span>")
        if citation.flagged:
            meta.append('<span class="pa-warn">⚠ weak support</span>')
    passages = "".join(f'<div class="pa-passage">{highlight(p, support)}</div>'
                       for p in source.passages)
    abstract = highlight(source.abstract, support) if source.abstract else "<em>(no abstract)</em>"
    classes = "pa-card" if citation is not None else "pa-card pa-uncited"
    return (
        f'<div class="{classes}" data-n="{source.n}">'
        f'<div class="pa-card-title"><span class="pa-n">{source.n}</span>'
        f"{link(source.url, esc(source.title))}</div>"
        f'<div class="pa-meta">{"".join(meta)}</div>'
        f"{passages}"
        f"<details><summary>Whole abstract</summary><div class=\"pa-abstract\">{abstract}</div>"
        f"</details></div>"
    )


def sources_html(answer: Answer | None, support: dict[int, list[str]] | None = None) -> str:
    if answer is None:
        return ('<div class="pa-sources"><div class="pa-title">Sources</div>'
                '<div class="pa-empty">The papers behind the latest answer '
                "appear here: number, title, link, relevance, the passages used with the supporting "
                "sentences <mark>highlighted</mark>, and the whole abstract on demand.</div></div>")
    support = support or {}
    cited = {c.n: c for c in answer.citations}
    top = max((s.score for s in answer.sources), default=0.0)
    head = (f'<div class="pa-title">Sources</div><div class="pa-sources-head">{len(cited)} cited '
            f"of {len(answer.sources)} retrieved "
            f"for <q>{esc(answer.question)}</q></div>")
    if answer.abstained:
        head += ('<div class="pa-empty">The collection does not cover this question; the nearest '
                 "papers are listed below.</div>")
    first = [_card(s, support.get(s.n, []), top, cited[s.n]) for s in answer.sources if s.n in cited]
    rest = [_card(s, [], top, None) for s in answer.sources if s.n not in cited]
    body = "".join(first)
    if rest:
        label = "Retrieved" if not first else "Also retrieved, not cited"
        opened = " open" if not first else ""
        body += (f'<details class="pa-more"{opened}><summary>{label} ({len(rest)})</summary>'
                 f'{"".join(rest)}</details>')
    return f'<div class="pa-sources">{head}{body}</div>'


# --- corpus: table, status, map ---------------------------------------------------------------
class CorpusCache:
    """Papers, titles and the 2-D map, recomputed only when the store changes (generation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._papers: list[PaperRecord] = []
        self._map: tuple[list[str], np.ndarray, float, float] | None = None

    def _refresh(self, engine: Engine) -> None:
        key = (engine.store.generation, engine.store.count_papers())
        with self._lock:
            if key != self._key:
                self._papers = sorted(engine.papers(), key=lambda p: p.title.lower())
                self._map = None
                self._key = key

    def papers(self, engine: Engine) -> list[PaperRecord]:
        self._refresh(engine)
        return self._papers

    def projection(self, engine: Engine) -> tuple[list[str], np.ndarray, float, float]:
        """(paper ids, 2-D points, variance explained by each axis) by PCA (scikit-learn)."""
        self._refresh(engine)
        with self._lock:
            if self._map is None:
                from sklearn.decomposition import PCA

                ids, vectors = engine.store.paper_vectors()
                if len(ids) >= 3:
                    pca = PCA(n_components=2, random_state=0)
                    points = pca.fit_transform(vectors)
                    var = pca.explained_variance_ratio_
                    self._map = (ids, points, float(var[0]), float(var[1]))
                else:
                    self._map = (ids, np.zeros((len(ids), 2)), 0.0, 0.0)
            return self._map


def _wrap(title: str, width: int = 70) -> str:
    return "<br>".join(esc(line) for line in textwrap.wrap(title, width)) or "(untitled)"


def answer_ids(answer: Answer) -> dict[str, dict[str, int]]:
    return {"cited": {c.paper_id: c.n for c in answer.citations},
            "retrieved": {s.paper_id: s.n for s in answer.sources}}


def corpus_map(engine: Engine, cache: CorpusCache,
               latest: dict[str, dict[str, int]] | None = None) -> go.Figure:
    """The papers' embeddings in 2-D; the latest answer's cited papers (and the other retrieved
    ones) highlighted."""
    ids, points, var_x, var_y = cache.projection(engine)
    titles = {p.id: p.title for p in cache.papers(engine)}
    cited = (latest or {}).get("cited", {})
    retrieved = (latest or {}).get("retrieved", {})
    groups: dict[str, list[int]] = {"other": [], "retrieved": [], "cited": []}
    for i, pid in enumerate(ids):
        groups["cited" if pid in cited else "retrieved" if pid in retrieved else "other"].append(i)
    fig = go.Figure()
    styles = [
        ("other", "Papers", dict(size=7, color="#94a3b8", opacity=0.6)),
        ("retrieved", "Retrieved, not cited", dict(size=11, color="#3b82f6", opacity=0.9,
                                                    line=dict(width=1, color="white"))),
        ("cited", "Cited in the latest answer", dict(size=16, color="#e8590c", symbol="star",
                                                     line=dict(width=1, color="#7c2d12"))),
    ]
    for key, name, marker in styles:
        rows = groups[key]
        if not rows and key != "other":
            continue
        labels = [f"[{cited[ids[i]]}]" if key == "cited" else "" for i in rows]
        hover = [(f"<b>[{cited.get(ids[i]) or retrieved.get(ids[i])}]</b> " if key != "other" else "")
                 + _wrap(titles.get(ids[i], ids[i])) for i in rows]
        fig.add_trace(go.Scatter(
            x=points[rows, 0] if rows else [], y=points[rows, 1] if rows else [],
            mode="markers+text" if key == "cited" else "markers", name=name, text=labels,
            textposition="top center", textfont=dict(size=12, color="#7c2d12"),
            customdata=hover, hovertemplate="%{customdata}<extra></extra>", marker=marker,
        ))
    fig.update_layout(
        height=560, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
        xaxis=dict(title=f"PC1 ({var_x:.0%} of variance)", zeroline=False, showticklabels=False),
        yaxis=dict(title=f"PC2 ({var_y:.0%} of variance)", zeroline=False, showticklabels=False),
        hoverlabel=dict(align="left"),
    )
    return fig


def corpus_table(papers: list[PaperRecord], query: str) -> tuple[pd.DataFrame, str]:
    words = [w for w in query.lower().split() if w]
    shown = [p for p in papers if all(w in p.title.lower() for w in words)]
    columns = {"Title": [p.title for p in shown], "Link": [p.url for p in shown]}
    count = (f"**{len(shown)}** of {len(papers)} papers" if words
             else f"**{len(papers)}** papers")
    return pd.DataFrame(columns), count


def paper_html(paper: PaperRecord | None) -> str:
    if paper is None:
        return '<div class="pa-empty">Select a paper in the table to read its abstract.</div>'
    extra = " · ".join(esc(v) for v in (paper.authors, paper.year) if v)
    links = " ".join(link(u, esc(u)) for u in dict.fromkeys((paper.url, *paper.links)) if safe_url(u))
    return (f'<div class="pa-card pa-paper"><h3>{link(paper.url, esc(paper.title))}</h3>'
            f'<div class="pa-meta">{extra}</div><div class="pa-abstract">{esc(paper.abstract)}</div>'
            f'<div class="pa-meta">{links}</div></div>')


def status_md(engine: Engine) -> str:
    info = engine.status()
    rows = [("Store", info["store"]), ("Papers", f"{info['papers']:,}"),
            ("Chunks", f"{info['chunks']:,}"), ("Embedding model", info["embedding_model"]),
            ("Answer mode", info["answer_mode"]), ("LLM model", info["llm_model"] or "none (offline)")]
    return ('<table class="pa-status">' + "".join(
        f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>")


def header_html(label: str, papers: int | None, starting: str | None = None) -> str:
    offline = label == OFFLINE_LABEL
    badge = (f'<span class="pa-badge{" pa-offline" if offline else ""}" id="pa-mode" '
             f'title="answer mode">Answer mode: {esc(label)}</span>')
    sub = (f"{papers:,} paper abstracts · answers cite their sources" if papers is not None
           else esc(starting or "starting…"))
    return (f'<div class="pa-header"><div><h1>Paper assistant</h1><span class="pa-sub">{sub}'
            f"</span></div>{badge}</div>")


# --- the app ----------------------------------------------------------------------------------
def build_ui(holder: EngineHolder, settings: Settings) -> gr.Blocks:
    cache = CorpusCache()
    llm_expected = settings.llm_configured and settings.answer_mode != "extractive"

    def mode_label(engine: Engine | None, mode: str | None) -> str:
        if engine is not None and engine.llm is not None and mode != "extractive":
            return engine.mode_label
        if engine is None and llm_expected and mode != "extractive":
            return f"LLM: {settings.llm_model}"
        return OFFLINE_LABEL

    # --- chat --------------------------------------------------------------------------------
    def display(history: list[list[str]]) -> list[dict[str, str]]:
        return [{"role": role, "content": shown_question(text) if role == "user" else text}
                for role, text in history]

    def answer_stream(question: str, history: list[list[str]] | None, k: float | None,
                      mode: str | None, compare: Sequence[str] = ()) -> Iterator[tuple]:
        history = list(history or [])
        try:
            question = clean_question(question, settings.max_question_chars)
            if len(history) + 2 > settings.max_turns:
                raise AssistantError(
                    f"this conversation has reached {settings.max_turns} messages, the limit",
                    hint="press “New conversation” to start over (setting ASSISTANT_MAX_TURNS)")
        except AssistantError as exc:  # before anything changes: the question stays in the box
            raise gr.Error(esc(str(exc)), title="Cannot ask this", print_exception=False) from None
        chat = [*display(history), {"role": "user", "content": shown_question(question)},
                {"role": "assistant", "content": "_Searching the papers…_"}]
        yield "", chat, gr.skip(), gr.skip(), gr.skip()
        while not holder.ready and holder.error is None:
            chat[-1]["content"] = f"_The assistant is starting: {esc(holder.describe())}…_"
            yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
            holder.wait(1.0)
        try:
            engine = holder.get()
            use_mode = mode if engine.llm is not None and mode in ("llm", "extractive") else None
            if engine.llm is not None and use_mode != "extractive":
                chat[-1]["content"] = f"_Searching the papers, then asking {esc(engine.llm.name)}…_"
                yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
            turns = [Turn(role, text) for role, text in history]
            answer: Answer | None = None
            for event in engine.stream(question, turns, mode=use_mode, k=int(k) if k else None,
                                       compare_titles=list(compare)):
                if isinstance(event, Answer):
                    answer = event
                else:
                    chat[-1]["content"] = event
                    yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
            assert answer is not None
        except AssistantError as exc:
            chat[-1]["content"] = f"⚠ {esc(exc.message)}" + (f"  \n_{esc(exc.hint)}_" if exc.hint else "")
            yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
            return
        except Exception as exc:
            log.exception("answering failed")
            chat[-1]["content"] = f"⚠ internal error ({esc(type(exc).__name__)}); see the server log"
            yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
            return
        chat[-1]["content"] = answer.answer
        history += [["user", question], ["assistant", answer.answer]]
        support = supporting_sentences(engine, answer)
        yield gr.skip(), chat, history, sources_html(answer, support), answer_ids(answer)

    def ask(question: str, history: list[list[str]], k: float, mode: str) -> Iterator[tuple]:
        yield from answer_stream(question, history, k, mode)

    def compare(titles: list[str] | None, history: list[list[str]], k: float,
                mode: str) -> Iterator[tuple]:
        titles = list(dict.fromkeys(titles or []))
        if len(titles) < 2:
            raise gr.Error("Pick at least two papers to compare.", title="Compare",
                           print_exception=False)
        if len(titles) > MAX_COMPARE:
            raise gr.Error(f"Pick at most {MAX_COMPARE} papers to compare.", title="Compare",
                           print_exception=False)
        if holder.ready:
            known = {p.title for p in cache.papers(holder.get())}
            unknown = [t for t in titles if t not in known]
            if unknown:
                raise gr.Error(f"Not in the collection: {esc('; '.join(unknown))}", title="Compare",
                               print_exception=False)
        question = f"Compare {', '.join(titles[:-1])} and {titles[-1]}"
        if len(question) > settings.max_question_chars:
            question = "Compare the selected papers"
        yield from answer_stream(question, history, k, mode, compare=titles[:MAX_COMPARE])

    def example(text: str) -> Any:
        def run(history: list[list[str]], k: float, mode: str) -> Iterator[tuple]:
            yield from answer_stream(text, history, k, mode)

        return run

    def new_conversation() -> tuple:
        return [], [], sources_html(None), None, ""

    def show_map(latest: dict | None) -> Any:
        # Drawn when the tab opens: a plot updated while its tab was never shown keeps a stale value.
        if not holder.ready:
            return gr.skip()
        return corpus_map(holder.get(), cache, latest)

    # --- page load / startup progress ----------------------------------------------------------
    def refresh(mode: str | None) -> tuple:
        """Header, status, corpus table, compare choices, map and mode control: filled once the
        engine is ready; until then the header shows the startup progress and the timer polls."""
        if not holder.ready:
            starting = holder.describe()
            return (header_html(mode_label(None, mode), None, starting),
                    f"_{esc(starting)}_", gr.skip(), gr.skip(), gr.skip(), gr.skip(),
                    gr.Timer(active=holder.error is None))
        engine = holder.get()
        papers = cache.papers(engine)
        table, count = corpus_table(papers, "")
        if engine.llm is not None:
            radio = gr.Radio(choices=[(engine.mode_label, "llm"), (OFFLINE_LABEL, "extractive")],
                             value=mode if mode in ("llm", "extractive") else "llm", interactive=True)
        else:
            radio = gr.Radio(choices=[(OFFLINE_LABEL, "extractive")], value="extractive",
                             interactive=False)
        return (header_html(mode_label(engine, mode), len(papers)), status_md(engine), table, count,
                gr.Dropdown(choices=[p.title for p in papers]), radio,
                gr.Timer(active=False))

    def filter_corpus(query: str) -> tuple:
        if not holder.ready:
            return gr.skip(), gr.skip()
        return corpus_table(cache.papers(holder.get()), query or "")

    def select_paper(evt: gr.SelectData) -> str:
        if not holder.ready:
            return paper_html(None)
        title = evt.row_value[0] if evt.row_value else None
        papers = cache.papers(holder.get())
        return paper_html(next((p for p in papers if p.title == title), None))

    def on_mode(mode: str) -> str:
        engine = holder.get() if holder.ready else None
        papers = engine.store.count_papers() if engine else None
        return header_html(mode_label(engine, mode), papers, holder.describe())

    # --- layout ------------------------------------------------------------------------------
    # No telemetry: the app runs offline and sends nothing anywhere.
    with gr.Blocks(title="Paper assistant", fill_width=True, analytics_enabled=False) as demo:
        history = gr.State([])
        last = gr.State(None)  # paper ids of the latest answer: {"cited": {id: n}, "retrieved": ...}
        header = gr.HTML(header_html(mode_label(None, None), None, holder.describe()))
        timer = gr.Timer(2.0, active=not holder.ready)
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=420):
                    chatbot = gr.Chatbot(
                        elem_id="pa-chat", label="Conversation", show_label=False, height=620,
                        layout="panel",
                        allow_tags=False, sanitize_html=True, buttons=["copy", "copy_all"],
                        feedback_options=None, latex_delimiters=[],
                        placeholder="**Ask about the papers.** Answers quote or cite the "
                                    "abstracts, numbered [1], [2]…; the sources appear on the "
                                    "right. Try an example below.",
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            elem_id="pa-question", show_label=False, scale=8, lines=1,
                            max_lines=6, autofocus=True, submit_btn=False,
                            placeholder="Ask a question about the papers…")
                        send = gr.Button("Ask", variant="primary", scale=1, min_width=80,
                                         elem_id="pa-send")
                    with gr.Row():
                        example_buttons = [
                            gr.Button(f"{kind}: {text}", size="sm", variant="secondary",
                                      elem_classes="pa-example")
                            for kind, text in EXAMPLES
                        ]
                    clear = gr.Button("New conversation", size="sm", variant="secondary")
                with gr.Column(scale=2, min_width=320):
                    sources = gr.HTML(sources_html(None), label="Sources", elem_id="pa-sources",
                                      js_on_load=None)
                    with gr.Accordion("Settings for this session", open=False,
                                      elem_id="pa-settings"):
                        k = gr.Slider(0, 20, value=0, step=1, label="Papers to retrieve",
                                      info=f"0 = automatic ({settings.top_k}, or "
                                           f"{settings.list_top_k} for list questions)")
                        mode = gr.Radio(
                            choices=[(f"LLM: {settings.llm_model}", "llm"),
                                     (OFFLINE_LABEL, "extractive")] if llm_expected
                            else [(OFFLINE_LABEL, "extractive")],
                            value="llm" if llm_expected else "extractive",
                            label="Answer mode", interactive=llm_expected,
                            info="Choosable when an LLM is configured on the server.")
                        # Titles arrive with the page's load event (refresh), after sign-in:
                        # initial choices would be inlined in the login page's API description.
                        picks = gr.Dropdown(choices=[], multiselect=True,
                                            allow_custom_value=True,
                                            max_choices=MAX_COMPARE,
                                            label="Compare these papers",
                                            info=f"Pick 2–{MAX_COMPARE} titles.",
                                            elem_id="pa-compare")
                        compare_btn = gr.Button("Compare these papers", size="sm")
            with gr.Tab("Corpus", id="corpus"):
                with gr.Row():
                    title_filter = gr.Textbox(label="Filter titles", scale=3,
                                              placeholder="e.g. segmentation", elem_id="pa-filter")
                    count = gr.Markdown("", elem_id="pa-count")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        table = gr.Dataframe(interactive=False, wrap=True, max_height=520,
                                             datatype="str", elem_id="pa-table",
                                             column_widths=["72%", "28%"],
                                             buttons=["fullscreen"])
                    with gr.Column(scale=2):
                        paper = gr.HTML(paper_html(None), js_on_load=None, elem_id="pa-paper")
                        gr.Markdown("#### Store status")
                        status = gr.HTML("", js_on_load=None, elem_id="pa-status")
            with gr.Tab("Map", id="map") as map_tab:
                gr.Markdown("Each point is a paper: its embedding projected to 2-D by PCA. Nearby "
                            "papers are about similar things. The papers cited in the latest "
                            "answer are the orange stars; hover a point for its title.")
                plot = gr.Plot(label="Corpus map", show_label=False, elem_id="pa-map")

        outputs = [question, chatbot, history, sources, last]
        settings_inputs = [history, k, mode]
        events = dict(outputs=outputs, show_progress="minimal",
                      concurrency_id="answers")
        question.submit(ask, [question, *settings_inputs], api_name="ask", **events)
        send.click(ask, [question, *settings_inputs], api_visibility="private", **events)
        for button, (_, text) in zip(example_buttons, EXAMPLES, strict=True):
            button.click(example(text), settings_inputs, api_visibility="private", **events)
        compare_btn.click(compare, [picks, *settings_inputs], api_name="compare", **events)
        clear.click(new_conversation, None, [chatbot, history, sources, last, question],
                    api_visibility="private")
        map_tab.select(show_map, [last], [plot], api_visibility="private")
        load_outputs = [header, status, table, count, picks, mode, timer]
        demo.load(refresh, [mode], load_outputs, api_visibility="private")
        timer.tick(refresh, [mode], load_outputs, api_visibility="private", show_progress="hidden")
        mode.change(on_mode, [mode], [header], api_visibility="private")
        title_filter.change(filter_corpus, [title_filter], [table, count], api_visibility="private",
                            show_progress="hidden")
        table.select(select_paper, None, [paper], api_visibility="private")
    return demo
