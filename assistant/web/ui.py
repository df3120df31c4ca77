"""The web UI's layout (Gradio Blocks) and its wiring to `UIHandlers`: a sidebar of saved
conversations; the Ask tab (the conversation, with clickable citations, beside one block of
sources per answer); the Corpus tab (search, select papers, ask about them); the Map tab (the
topic map). What each control does lives in handlers.py; the HTML in render.py.

The page's own script (citation clicks, elapsed time, the address of the open conversation)
is installed by the conversation component's `js_on_load`: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.web.handlers import EXPORTS, MAX_COMPARE, UPLOAD_EXTENSIONS, UIHandlers, owner_of
from assistant.web.holder import EngineHolder
from assistant.web.render import paper_html, selection_html, sources_html, thread_html

EXAMPLES = [
    ("Factual", "How accurate is the nailfold capillary pipeline at predicting abnormality?"),
    ("List", "Which papers adapt the Segment Anything Model to medical images?"),
    ("Comparison", "Compare SegMamba and Swin SMT"),
]

HEAD = '<meta name="referrer" content="no-referrer">'

# Installed once for the page (guarded): delegated handlers survive every re-render of the HTML.
PAGE_JS = """
if (!window.__paUi) {
  window.__paUi = true;
  const starts = {};
  setInterval(() => {
    document.querySelectorAll('.pa-progress[data-started]').forEach((el) => {
      const id = el.dataset.started;
      starts[id] = starts[id] || Date.now();
      const out = el.querySelector('.pa-elapsed');
      if (out) out.textContent = Math.floor((Date.now() - starts[id]) / 1000) + ' s';
    });
  }, 250);
  const touch = window.matchMedia('(hover: none)').matches;
  const closeTips = () => document.querySelectorAll('.pa-tip-open')
    .forEach((x) => x.classList.remove('pa-tip-open'));
  const showBlock = (answer) => {
    let found = null;
    document.querySelectorAll('#pa-sources .pa-srcblock').forEach((b) => {
      const on = b.dataset.answer === answer;
      b.hidden = !on;
      if (on) found = b;
    });
    return found;
  };
  document.addEventListener('mouseover', (e) => {
    const cite = e.target.closest && e.target.closest('a.pa-cite');
    if (cite) {
      cite.classList.toggle('pa-tip-left', cite.getBoundingClientRect().left + 400 > window.innerWidth);
    }
  });
  document.addEventListener('click', (e) => {
    const cite = e.target.closest('a.pa-cite');
    if (cite) {
      e.preventDefault();
      if (touch && !cite.classList.contains('pa-tip-open')) {
        closeTips();
        cite.classList.add('pa-tip-open');
        return;
      }
      closeTips();
      const block = showBlock(cite.dataset.answer);
      const card = block && block.querySelector('.pa-card[data-n="' + cite.dataset.n + '"]');
      if (!card) return;
      const fold = card.closest('details');
      if (fold) fold.open = true;
      document.querySelectorAll('.pa-card.pa-hl').forEach((x) => x.classList.remove('pa-hl'));
      card.classList.add('pa-hl');
      card.scrollIntoView({block: 'center'});
      card.focus({preventScroll: true});
      window.__paBack = cite;
      return;
    }
    closeTips();
    const srclink = e.target.closest('a.pa-srclink');
    if (srclink) {
      e.preventDefault();
      const block = showBlock(srclink.dataset.answer);
      if (block) block.scrollIntoView({block: 'start'});
      return;
    }
    const back = e.target.closest('a.pa-back');
    if (back) {
      e.preventDefault();
      const from = window.__paBack;
      const target = from && document.contains(from) && from.dataset.answer === back.dataset.answer
        ? from : document.getElementById('pa-turn-' + back.dataset.answer);
      if (target) target.scrollIntoView({block: 'center'});
      return;
    }
    const copy = e.target.closest('button.pa-copy');
    if (copy) {
      const turn = copy.closest('.pa-turn');
      const text = turn && turn.querySelector('.pa-md');
      if (text && navigator.clipboard) navigator.clipboard.writeText(text.innerText);
    }
  });
}
"""
THREAD_JS = PAGE_JS + """
element.addEventListener('click', (e) => {
  const b = e.target.closest('button.pa-fb');
  if (!b) return;
  b.setAttribute('aria-pressed', 'true');
  trigger('click', {fb: b.dataset.fb, answer: b.dataset.answer});
});
"""
CORPUS_JS = """
element.addEventListener('change', (e) => {
  const box = e.target.closest('input[type=checkbox]');
  if (box) trigger('click', {id: box.value, on: box.checked});
});
"""
MAP_JS = """
const pick = (e) => {
  const dot = e.target.closest('circle.pa-pt');
  if (!dot) return;
  element.querySelectorAll('circle.pa-pt-selected').forEach((x) => x.classList.remove('pa-pt-selected'));
  dot.classList.add('pa-pt-selected');
  trigger('click', {id: dot.dataset.id});
};
element.addEventListener('click', pick);
element.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(e); }
});
"""
# The open conversation's id lives in the address (#c=...), so a reload or a bookmark reopens it.
READ_HASH_JS = "() => new URLSearchParams(window.location.hash.slice(1)).get('c') || ''"
WRITE_HASH_JS = """(id) => {
  const url = window.location.pathname + window.location.search + (id ? '#c=' + id : '');
  window.history.replaceState(null, '', url);
  return id;
}"""

CSS = """
.pa-hidden { display: none !important; }
/* clip, not hidden: a hidden overflow would make the sticky composer and sources panel inert */
.gradio-container { overflow: clip !important; }
.pa-header { display: flex; align-items: baseline; justify-content: space-between; gap: .5rem 1rem;
  flex-wrap: wrap; padding: .25rem .25rem 0; }
.pa-header h1 { font-size: 1.35rem; margin: 0; }
.pa-header .pa-sub { color: var(--body-text-color-subdued); font-size: .9rem; }
.pa-badge { display: inline-block; padding: .15rem .6rem; border-radius: 999px; font-size: .85rem;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); max-width: 100%;
  overflow-wrap: anywhere; }
.pa-badge.pa-offline { background: #fff7e6; border-color: #f0b44c; color: #7a4b00; }
.pa-empty { color: var(--body-text-color-subdued); padding: .5rem .25rem; line-height: 1.5; }
.pa-inline { border-radius: 8px; padding: .4rem .7rem; margin: .35rem 0; font-size: .9rem; }
.pa-inline-error { background: #fef2f2; border: 1px solid #fca5a5; color: #991b1b; }
.pa-inline-info { background: #eff6ff; border: 1px solid #93c5fd; color: #1e3a8a; }
/* the conversation: in the page's flow, no scroll box of its own */
.pa-thread-empty { color: var(--body-text-color-subdued); line-height: 1.5; padding: .25rem; }
.pa-turn { margin: 0 0 1.4rem; }
.pa-q { margin-left: auto; width: fit-content; max-width: 88%; background: var(--color-accent-soft);
  border-radius: 12px; padding: .5rem .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.pa-a { margin-top: .5rem; padding: 0 .2rem; line-height: 1.55; overflow-wrap: break-word; }
.pa-md p { margin: .4rem 0; }
.pa-md ul, .pa-md ol { padding-left: 1.3rem; margin: .3rem 0; }
.pa-md table { border-collapse: collapse; width: 100%; font-size: .88rem; margin: .4rem 0 .8rem; }
.pa-md th, .pa-md td { border: 1px solid var(--border-color-primary); padding: .35rem .5rem;
  vertical-align: top; text-align: left; word-break: normal; overflow-wrap: normal; hyphens: none; }
.pa-table-slot { border: 1px dashed var(--border-color-primary); border-radius: 8px; min-height: 9rem;
  display: flex; align-items: center; justify-content: center; margin: .4rem 0 .8rem;
  color: var(--body-text-color-subdued); font-size: .9rem; }
.pa-notice { font-style: italic; color: #92400e; margin: .2rem 0 .4rem; }
.pa-cite { position: relative; display: inline-block; font-size: .78em; font-weight: 700;
  color: #c2410c; text-decoration: none; padding: 0 .12rem; border-radius: 4px; cursor: pointer;
  vertical-align: super; line-height: 1; }
.pa-cite:hover, .pa-cite:focus-visible { background: #ffedd5; }
.pa-cite.pa-weak { color: #a16207; text-decoration: underline dotted; }
.pa-cite::after { content: attr(data-tip); display: none; position: absolute; z-index: 60; left: 0;
  top: 1.7em; width: max-content; max-width: min(24rem, 80vw); white-space: pre-line;
  font-weight: 400; font-size: .85rem; line-height: 1.4; color: var(--body-text-color);
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  border-radius: 8px; padding: .5rem .65rem; box-shadow: 0 6px 18px rgba(0,0,0,.16);
  vertical-align: baseline; overflow-wrap: break-word; text-align: left; }
.pa-cite.pa-tip-left::after { left: auto; right: 0; }
@media (hover: hover) { .pa-cite:hover::after { display: block; } }
.pa-cite.pa-tip-open::after { display: block; position: fixed; left: .75rem; right: .75rem;
  top: auto; bottom: 1rem; width: auto; max-width: none; }
.pa-foot { display: flex; flex-wrap: wrap; gap: .35rem .6rem; align-items: center; margin-top: .4rem;
  font-size: .82rem; }
.pa-chip { border-radius: 999px; padding: .05rem .55rem; border: 1px solid var(--border-color-primary);
  color: var(--body-text-color-subdued); white-space: nowrap; }
.pa-chip-offline { background: #fff7e6; border-color: #f0b44c; color: #7a4b00; }
.pa-srclink, .pa-back { color: var(--color-accent); text-decoration: none; cursor: pointer; }
.pa-srclink:hover, .pa-back:hover { text-decoration: underline; }
.pa-fbs { display: inline-flex; flex-wrap: wrap; gap: .25rem; }
.pa-fb { font-size: .78rem; border: 1px solid var(--border-color-primary); border-radius: 999px;
  padding: .05rem .5rem; background: transparent; cursor: pointer; color: var(--body-text-color-subdued); }
.pa-fb[aria-pressed=true] { background: var(--color-accent-soft); border-color: var(--color-accent); }
.pa-progress { color: var(--body-text-color-subdued); font-size: .9rem; margin: .3rem 0; }
.pa-spinner { display: inline-block; width: .8rem; height: .8rem; margin-right: .4rem;
  border: 2px solid var(--border-color-primary); border-top-color: var(--color-accent);
  border-radius: 50%; animation: pa-spin 0.9s linear infinite; vertical-align: -1px; }
@keyframes pa-spin { to { transform: rotate(360deg); } }
#pa-composer { position: sticky; bottom: 0; z-index: 20; padding: .4rem 0 .3rem; border: none;
  box-shadow: 0 -8px 12px -10px rgba(0,0,0,.2); }
#pa-composer, #pa-composer > div { background: var(--body-background-fill) !important; }
.pa-scope { font-size: .85rem; background: #eff6ff; border: 1px solid #93c5fd; border-radius: 8px;
  padding: .3rem .6rem; overflow-wrap: anywhere; }
.pa-example { white-space: normal !important; text-align: left !important; }
/* sources: one block per answer */
.pa-title { font-weight: 600; font-size: 1.05rem; margin: .1rem 0 .3rem; }
.pa-srchead { display: flex; justify-content: space-between; gap: .5rem; flex-wrap: wrap;
  font-size: .85rem; color: var(--body-text-color-subdued); margin: 0 0 .5rem; overflow-wrap: anywhere; }
.pa-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: .55rem .7rem;
  margin-bottom: .55rem; background: var(--background-fill-primary); scroll-margin: 4rem; }
.pa-card.pa-hl { outline: 3px solid #e8590c; outline-offset: 1px; animation: pa-flash 1.5s ease-out; }
@keyframes pa-flash { from { background: #ffedd5; } to { background: var(--background-fill-primary); } }
.pa-card-title { font-weight: 600; line-height: 1.35; overflow-wrap: anywhere; }
.pa-card-title a { color: inherit; text-decoration: none; border-bottom: 1px dotted currentColor; }
.pa-n { display: inline-block; min-width: 1.5rem; text-align: center; margin-right: .35rem;
  border-radius: 6px; background: #e8590c; color: white; font-size: .8rem; padding: 0 .3rem; }
.pa-card.pa-uncited .pa-n { background: #6c8ebf; }
.pa-meta { display: flex; gap: .75rem; align-items: center; font-size: .8rem; margin: .3rem 0;
  color: var(--body-text-color-subdued); flex-wrap: wrap; }
.pa-score, .pa-support { cursor: help; }
.pa-bar { display: inline-block; width: 56px; height: 6px; border-radius: 3px; margin-right: .35rem;
  background: var(--border-color-primary); overflow: hidden; vertical-align: middle; }
.pa-bar > i { display: block; height: 100%; background: #e8590c; }
.pa-warn { color: #b54708; }
.pa-passage { font-size: .88rem; line-height: 1.45; border-left: 3px solid var(--border-color-primary);
  padding: .1rem .6rem; margin: .35rem 0; }
.pa-card mark, .pa-abstract mark { background: #ffe8a3; color: inherit; padding: 0 .1rem;
  border-radius: 2px; }
.pa-card details { margin-top: .3rem; font-size: .88rem; }
.pa-card summary, .pa-more > summary { cursor: pointer; color: var(--color-accent); }
.pa-abstract { line-height: 1.5; margin-top: .3rem; }
.pa-more > summary { margin: .3rem 0 .5rem; font-size: .9rem; }
@media (min-width: 1024px) {
  /* beside the conversation: at most the window's height, its own scroll, no page jump */
  #pa-side { position: sticky; top: .5rem; align-self: flex-start; max-height: calc(100vh - 1rem);
    overflow-y: auto; }
}
/* corpus */
.pa-rows { list-style: none; padding: 0; margin: 0; }
.pa-row { display: flex; gap: .6rem; padding: .5rem .2rem;
  border-bottom: 1px solid var(--border-color-primary); }
.pa-pick input { width: 1.1rem; height: 1.1rem; margin-top: .2rem; cursor: pointer; }
.pa-rowtext { min-width: 0; flex: 1; }
.pa-rowtitle { font-weight: 600; overflow-wrap: anywhere; }
.pa-rowtitle a { color: inherit; }
.pa-rowtext summary { cursor: pointer; font-size: .88rem; color: var(--body-text-color-subdued); }
.pa-pageinfo { font-size: .85rem; color: var(--body-text-color-subdued); margin: .5rem 0; }
.pa-selection ul { padding-left: 1.1rem; margin: .3rem 0; font-size: .88rem; }
.pa-status th { text-align: left; padding: .15rem .8rem .15rem 0; font-weight: 600; }
.pa-upload ul { padding-left: 1.1rem; margin: .2rem 0; font-size: .85rem; overflow-wrap: anywhere; }
.pa-filters { background: #eff6ff; border-color: #93c5fd; color: #1e3a8a; white-space: normal; }
/* map */
.pa-mapsvg { width: 100%; height: auto; display: block; background: var(--background-fill-secondary);
  border-radius: 10px; }
.pa-pt { cursor: pointer; stroke: white; stroke-width: 1; opacity: .9; }
.pa-pt:hover, .pa-pt:focus { stroke: #111827; stroke-width: 2; outline: none; }
.pa-pt-retrieved { stroke: #1d4ed8; stroke-width: 2.5; }
.pa-pt-cited { stroke: #7c2d12; stroke-width: 3.5; }
.pa-pt-selected { stroke: #111827; stroke-width: 3.5; }
.pa-cluster { font-size: 15px; font-weight: 700; text-anchor: middle; paint-order: stroke;
  stroke: white; stroke-width: 4px; fill: #1f2937; pointer-events: none; }
.pa-pt-n { font-size: 14px; font-weight: 700; text-anchor: middle; fill: #7c2d12; pointer-events: none;
  paint-order: stroke; stroke: white; stroke-width: 3px; }
.pa-legend ul { list-style: none; padding: 0; margin: .4rem 0; font-size: .88rem; }
.pa-legend li { margin: .15rem 0; }
.pa-legend i { display: inline-block; width: .7rem; height: .7rem; border-radius: 50%; margin-right: .4rem; }
.pa-legend p { font-size: .88rem; color: var(--body-text-color-subdued); }
/* phone: comparison rows as cards, nothing wider than the screen */
@media (max-width: 640px) {
  .pa-md table, .pa-md tbody, .pa-md tr, .pa-md td { display: block; width: 100%; box-sizing: border-box; }
  .pa-md table { border: none; }
  .pa-md thead { display: none; }
  .pa-md tr { border: 1px solid var(--border-color-primary); border-radius: 8px; margin-bottom: .6rem; }
  .pa-md td { border: none; border-top: 1px solid var(--border-color-primary); }
  .pa-md td:first-child { border-top: none; font-weight: 600; }
  .pa-md td[data-label]:not([data-label=""])::before { content: attr(data-label); display: block;
    font-size: .78rem; font-weight: 600; color: var(--body-text-color-subdued); }
  .pa-q { max-width: 100%; }
}
"""


def theme() -> gr.themes.Base:
    # Local fonts: nothing is fetched from the internet (the app works offline).
    return gr.themes.Soft(
        primary_hue="orange", secondary_hue="blue", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def _owner(request: gr.Request | None) -> str:
    return owner_of(getattr(request, "username", None) if request is not None else None)


class Wiring:
    """Named components, and handler results (dicts of names) turned into Gradio's outputs."""

    def __init__(self) -> None:
        self.c: dict[str, Any] = {}

    def add(self, name: str, component: Any) -> Any:
        self.c[name] = component
        return component

    def outs(self, names: list[str]) -> list[Any]:
        return [self.c[n] for n in names]

    @staticmethod
    def pick(result: dict[str, Any], names: list[str]) -> tuple[Any, ...]:
        return tuple(result[n] if n in result else gr.skip() for n in names)

    def fn(self, names: list[str], handler: Callable[..., Any]) -> Callable[..., Any]:
        """An event function with `handler`'s signature (Gradio reads it for gr.Request and
        gr.EventData) whose dict result becomes a tuple in `names` order."""
        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
                for result in handler(*args, **kwargs):
                    yield self.pick(result, names)
            return stream

        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return self.pick(handler(*args, **kwargs), names)
        return call


def build_ui(holder: EngineHolder, settings: Settings) -> gr.Blocks:
    h = UIHandlers(holder, settings)
    w = Wiring()
    add = w.add

    # --- layout -------------------------------------------------------------------------------
    # No telemetry: the app runs offline and sends nothing anywhere.
    with gr.Blocks(title="Paper assistant", fill_width=True, analytics_enabled=False) as demo:
        add("conversation", gr.State(None))
        add("pending", gr.State(None))
        add("scope", gr.State([]))
        add("selection", gr.State([]))
        add("page", gr.State(0))
        add("map_pick", gr.State(None))
        add("conv_id", gr.Textbox("", elem_id="pa-conv-id", elem_classes="pa-hidden",
                                  show_label=False, container=False, interactive=False))
        with gr.Sidebar(label="Conversations", open=False, elem_id="pa-sidebar"):
            add("new_side", gr.Button("New conversation", variant="primary", elem_id="pa-new-side"))
            add("history", gr.Radio(choices=[], label="Saved conversations", elem_id="pa-history"))
            add("delete", gr.Button("Delete this conversation", size="sm", variant="stop",
                                    elem_id="pa-delete"))
        add("header", gr.HTML(h.header(None), elem_id="pa-header", js_on_load=None))
        add("timer", gr.Timer(2.0, active=not holder.ready))
        with add("tabs", gr.Tabs(selected="ask")):
            with gr.Tab("Ask", id="ask"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=340):
                    add("thread", gr.HTML(thread_html([]), elem_id="pa-thread", js_on_load=THREAD_JS))
                    add("live", gr.HTML("", elem_id="pa-live", js_on_load=None))
                    with add("export_row", gr.Row(visible=False, elem_id="pa-export")):
                        gr.Markdown("Export the latest answer:")
                        for fmt, label in EXPORTS.items():
                            add(f"export_{fmt}", gr.Button(label, size="sm", min_width=60,
                                                           elem_id=f"pa-export-{fmt}"))
                    add("export_file", gr.File(label="Export", visible=False, interactive=False,
                                               elem_id="pa-export-file"))
                    add("export_msg", gr.HTML("", elem_id="pa-export-msg", js_on_load=None))
                    with gr.Group(elem_id="pa-composer"):
                        add("scope_view", gr.HTML("", elem_id="pa-scope", js_on_load=None))
                        add("scope_clear", gr.Button("✕ Ask about all papers again", size="sm",
                                                     visible=False, elem_id="pa-scope-clear"))
                        add("unfilter", gr.Button("✕ Ask again without the filters", size="sm",
                                                  visible=False, elem_id="pa-unfilter"))
                        with gr.Row(equal_height=True):
                            add("question", gr.Textbox(
                                elem_id="pa-question", show_label=False, scale=8, lines=1, max_lines=6,
                                autofocus=False, submit_btn=False, container=False,
                                placeholder="Ask a question about the papers…"))
                            add("send", gr.Button("Ask", variant="primary", scale=1, min_width=70,
                                                  elem_id="pa-send"))
                            add("stop", gr.Button("Stop", variant="stop", scale=1, min_width=70,
                                                  visible=False, elem_id="pa-stop"))
                        add("notice", gr.HTML("", elem_id="pa-notice", js_on_load=None))
                    examples = [gr.Button(f"{kind}: {text}", size="sm", variant="secondary",
                                          elem_classes="pa-example") for kind, text in EXAMPLES]
                    add("new", gr.Button("New conversation", size="sm", elem_id="pa-new"))
                with gr.Column(scale=2, min_width=300, elem_id="pa-side"):
                    add("sources", gr.HTML(sources_html([], settings.support_threshold),
                                           elem_id="pa-sources", js_on_load=None))
                    with gr.Accordion("Compare papers, and settings", open=False, elem_id="pa-settings"):
                        # Choices arrive with the page's load event (never inlined in the page).
                        add("picks", gr.Dropdown(choices=[], multiselect=True,
                                                 allow_custom_value=False, max_choices=MAX_COMPARE,
                                                 label="Compare these papers", elem_id="pa-compare",
                                                 info=f"Type part of a title, pick 2–{MAX_COMPARE}."))
                        add("compare_btn", gr.Button("Compare these papers", size="sm",
                                                     elem_id="pa-compare-btn"))
                        add("compare_msg", gr.HTML("", elem_id="pa-compare-msg", js_on_load=None))
                        add("k", gr.Slider(0, 20, value=0, step=1, label="Papers to retrieve",
                                           info=f"0 = automatic ({settings.top_k}, or "
                                                f"{settings.list_top_k} for list questions)"))
                        add("years", gr.Textbox(label="Years", elem_id="pa-years",
                                                placeholder="e.g. 2023-2025, 2023- or -2020"))
                        add("authors", gr.Textbox(label="Author", elem_id="pa-authors",
                                                  placeholder="e.g. Wang; Smith"))
                        add("venues", gr.Textbox(label="Venue", elem_id="pa-venues",
                                                 placeholder="e.g. MICCAI"))
                        add("collection_filter", gr.Textbox(
                            label="Collection", elem_id="pa-collection-filter",
                            placeholder="all papers",
                            info="Filters set here replace those read from the question's words "
                                 "(“since 2023”, “papers by Wang”)."))
                        add("mode", gr.Radio(
                            choices=[(f"LLM: {settings.llm_model}", "llm"), ("offline: quoting the papers",
                                                                             "extractive")]
                            if h.llm_expected else [("offline: quoting the papers", "extractive")],
                            value="llm" if h.llm_expected else "extractive", label="Answer mode",
                            interactive=h.llm_expected, elem_id="pa-answer-mode",
                            info="Choosable when an LLM is configured on the server."))
            with gr.Tab("Corpus", id="corpus") as corpus_tab, gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    add("corpus_query", gr.Textbox(label="Search titles and abstracts",
                                                   placeholder="e.g. segment anything", elem_id="pa-filter"))
                    add("corpus", gr.HTML("", elem_id="pa-table", js_on_load=CORPUS_JS))
                    with gr.Row():
                        add("prev", gr.Button("◀ Previous", size="sm", interactive=False, elem_id="pa-prev"))
                        add("next", gr.Button("Next ▶", size="sm", elem_id="pa-next"))
                with gr.Column(scale=2, min_width=280):
                    add("selection_view", gr.HTML(selection_html([]), elem_id="pa-selection",
                                                  js_on_load=None))
                    add("ask_selected", gr.Button("Ask about the selected papers", variant="primary",
                                                  interactive=False, elem_id="pa-ask-selected"))
                    add("clear_selection", gr.Button("Clear the selection", size="sm"))
                    add("corpus_msg", gr.HTML("", js_on_load=None))
                    gr.Markdown("#### The collection")
                    add("status", gr.HTML("", elem_id="pa-status", js_on_load=None))
                    gr.Markdown("#### Add papers")
                    add("upload_files", gr.File(
                        label="BibTeX, RIS, CSL-JSON, PubMed XML, arXiv Atom, JSONL, CSV or text",
                        file_count="multiple", file_types=UPLOAD_EXTENSIONS, type="filepath",
                        elem_id="pa-upload"))
                    add("upload_collection", gr.Textbox(
                        label="Into the collection", placeholder="all papers (shared)",
                        elem_id="pa-upload-collection",
                        info="Optional: a name puts the papers in that collection too; questions "
                             "can then be limited to it."))
                    add("upload_btn", gr.Button("Add these papers", variant="primary",
                                                elem_id="pa-upload-btn"))
                    add("upload_msg", gr.HTML("", elem_id="pa-upload-msg", js_on_load=None))
            with gr.Tab("Map", id="map") as map_tab, gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    add("map", gr.HTML('<div class="pa-empty">Drawing the map…</div>', elem_id="pa-map",
                                       js_on_load=MAP_JS))
                with gr.Column(scale=1, min_width=260):
                    add("legend", gr.HTML("", elem_id="pa-legend", js_on_load=None))
                    add("ask_paper", gr.Button("Ask about this paper", variant="primary", visible=False,
                                               elem_id="pa-ask-paper"))
                    add("map_paper", gr.HTML(paper_html(None), elem_id="pa-map-paper", js_on_load=None))

        # --- events ---------------------------------------------------------------------------
        c = w.c
        fn = w.fn
        private: dict[str, Any] = {"api_visibility": "private"}
        instant: dict[str, Any] = {"queue": False, "show_progress": "hidden", **private}
        show = ["conversation", "thread", "sources", "conv_id", "history", "live", "notice",
                "unfilter", "export_row", "export_file", "export_msg"]
        begin_out = ["pending", "notice", "compare_msg", "question", "send", "stop", "live"]
        answer_out = [*show, "question"]
        finish_out = ["question", "send", "stop"]

        def answer(pending: Any, conversation: Any, k: float, mode: str,
                   request: gr.Request) -> Iterator[dict[str, Any]]:
            yield from h.answer(pending, conversation, k, mode, _owner(request))

        def chain(started: Any) -> None:
            running = started.then(
                fn(answer_out, answer), [c["pending"], c["conversation"], c["k"], c["mode"]],
                w.outs(answer_out), concurrency_id="answers", show_progress="minimal",
                show_progress_on=[c["live"]], **private)
            running.then(fn(finish_out, h.finish), None, w.outs(finish_out), **instant)

        filter_in = [c["years"], c["authors"], c["venues"], c["collection_filter"]]
        ask_in = [c["question"], c["conversation"], c["scope"], *filter_in]
        chain(c["question"].submit(fn(begin_out, h.begin_filtered), ask_in, w.outs(begin_out),
                                   **instant))
        chain(c["send"].click(fn(begin_out, h.begin_filtered), ask_in, w.outs(begin_out), **instant))
        chain(c["unfilter"].click(fn(begin_out, h.begin_unfiltered), [c["conversation"], c["scope"]],
                                  w.outs(begin_out), **instant))
        for button, (_, text) in zip(examples, EXAMPLES, strict=True):
            def begin_example(conversation: Any, scope: Any, years: str, authors: str, venues: str,
                              collection: str, text: str = text) -> dict[str, Any]:
                return h.begin_filtered(text, conversation, scope, years, authors, venues, collection)
            chain(button.click(fn(begin_out, begin_example), [c["conversation"], c["scope"], *filter_in],
                               w.outs(begin_out), **instant))
        chain(c["compare_btn"].click(fn(begin_out, h.begin_compare),
                                     [c["picks"], c["conversation"], c["scope"]], w.outs(begin_out),
                                     **instant))
        # For gradio_client: /ask and /compare answer in one call, keeping the session's conversation.
        api_out = ["notice", "thread", "sources", "conversation"]

        def ask_api(question: str, conversation: Any, k: float, mode: str,
                    request: gr.Request) -> dict[str, Any]:
            return api_call(h.begin(question, conversation, []), conversation, k, mode, request)

        def compare_api(titles: list[str], conversation: Any, k: float, mode: str,
                        request: gr.Request) -> dict[str, Any]:
            return api_call(h.begin_compare(titles, conversation, []), conversation, k, mode, request)

        def api_call(started: dict[str, Any], conversation: Any, k: float, mode: str,
                     request: gr.Request) -> dict[str, Any]:
            try:
                return h.answer_now(started, conversation, k, mode, _owner(request))
            except AssistantError as exc:
                raise gr.Error(exc.message, print_exception=False) from None

        # The picker's choices arrive with the page's load event, which an API client never runs:
        # /compare takes its titles as plain JSON (checked against the collection by the handler).
        add("api_titles", gr.JSON(visible=False))
        for name, api_fn, first in (("ask", ask_api, "question"), ("compare", compare_api, "api_titles")):
            hidden = gr.Button(visible=False)
            hidden.click(fn(api_out, api_fn), [c[first], c["conversation"], c["k"], c["mode"]],
                         w.outs(api_out), api_name=name, concurrency_id="answers")
        # No `cancels=`: see handlers.py (the answer ends itself, then `finish` unlocks the input).
        stop_out = ["stop", "notice"]
        c["stop"].click(fn(stop_out, h.stop), [c["pending"]], w.outs(stop_out), **instant)

        # Conversations: start over, reopen, delete; the address follows the open one.
        start_over = [*show, "scope", "scope_view", "question", "scope_clear"]

        def new_conversation(request: gr.Request) -> dict[str, Any]:
            return {**h.new_conversation(_owner(request)), "scope_clear": gr.update(visible=False)}

        for button in (c["new"], c["new_side"]):
            button.click(fn(start_over, new_conversation), None, w.outs(start_over), **private)

        def delete(conversation: Any, request: gr.Request) -> dict[str, Any]:
            return {**h.delete_conversation(conversation, _owner(request)),
                    "scope_clear": gr.update(visible=False)}

        c["delete"].click(fn(start_over, delete), [c["conversation"]], w.outs(start_over), **private)

        def open_conversation(conversation_id: str, request: gr.Request) -> dict[str, Any]:
            return h.open_conversation(conversation_id, _owner(request))

        c["history"].input(fn(show, open_conversation), [c["history"]], w.outs(show), **private)
        demo.load(fn(show, open_conversation), [c["conv_id"]], w.outs(show), js=READ_HASH_JS,
                  **private)
        c["conv_id"].change(None, [c["conv_id"]], None, js=WRITE_HASH_JS, **private)

        # Header, status, picker choices and mode: on load, then polled while starting.
        refresh_out = ["header", "status", "picks", "mode", "timer"]
        demo.load(fn(refresh_out, h.refresh), [c["mode"]], w.outs(refresh_out), **private)
        c["timer"].tick(fn(refresh_out, h.refresh), [c["mode"]], w.outs(refresh_out),
                        show_progress="hidden", **private)
        c["mode"].change(h.header, [c["mode"]], [c["header"]], **private)

        def thread_event(conversation: Any, event: gr.EventData) -> dict[str, Any]:
            return h.thread_event(getattr(event, "_data", None), conversation)

        c["thread"].click(fn(["notice"], thread_event), [c["conversation"]], w.outs(["notice"]),
                          show_progress="hidden", **private)

        # Corpus: search, pages, selection, "ask about these".
        corpus_out = ["corpus", "page", "prev", "next"]
        corpus_tab.select(fn(corpus_out, h.corpus_view), [c["corpus_query"], c["page"], c["selection"]],
                          w.outs(corpus_out), show_progress="hidden", **private)
        c["corpus_query"].change(fn(corpus_out, h.corpus_search), [c["corpus_query"], c["selection"]],
                                 w.outs(corpus_out), show_progress="hidden", **private)
        for button, step in ((c["prev"], -1), (c["next"], 1)):
            def page(query: str, current: int, selection: list[str], step: int = step) -> dict[str, Any]:
                return h.corpus_page(query, current, step, selection)
            button.click(fn(corpus_out, page), [c["corpus_query"], c["page"], c["selection"]],
                         w.outs(corpus_out), show_progress="hidden", **private)
        selection_out = ["selection", "selection_view", "ask_selected", "corpus_msg"]

        def toggle(selection: list[str], event: gr.EventData) -> dict[str, Any]:
            return h.corpus_toggle(getattr(event, "_data", None), selection)

        c["corpus"].click(fn(selection_out, toggle), [c["selection"]], w.outs(selection_out),
                          show_progress="hidden", **private)

        def clear_selection(query: str, current: int) -> dict[str, Any]:
            return {**h.selection([]), **h.corpus_view(query, current, []), "corpus_msg": ""}

        c["clear_selection"].click(fn([*selection_out, *corpus_out], clear_selection),
                                   [c["corpus_query"], c["page"]], w.outs([*selection_out, *corpus_out]),
                                   **private)
        scope_out = ["scope", "scope_view", "tabs", "scope_clear"]
        c["ask_selected"].click(fn(scope_out, h.ask_about), [c["selection"]], w.outs(scope_out),
                                **private)
        c["scope_clear"].click(fn(scope_out, h.clear_scope), None, w.outs(scope_out), **private)

        # Upload: files into the store, with a progress bar on the summary while it runs; one
        # upload at a time (ingests take the store's lock anyway).
        upload_out = ["upload_msg", "upload_files", "header", "status", "picks"]

        def upload(files: list[str] | None, collection: str,
                   progress: gr.Progress = gr.Progress()) -> dict[str, Any]:
            return h.upload(files, collection, progress)

        c["upload_btn"].click(fn(upload_out, upload), [c["upload_files"], c["upload_collection"]],
                              w.outs(upload_out), concurrency_limit=1, concurrency_id="uploads",
                              show_progress="full", show_progress_on=[c["upload_msg"]], **private)

        # Export: the latest answer as a file to download.
        export_out = ["export_file", "export_msg"]
        for fmt in EXPORTS:
            def export(conversation: Any, fmt: str = fmt) -> dict[str, Any]:
                return h.export(fmt, conversation)
            c[f"export_{fmt}"].click(fn(export_out, export), [c["conversation"]], w.outs(export_out),
                                     **private)

        # Map: drawn when its tab opens (the latest answer's papers marked); a click opens a paper.
        map_out = ["map", "legend"]
        map_tab.select(fn(map_out, h.map_view), [c["conversation"], c["map_pick"]], w.outs(map_out),
                       **private)
        paper_out = ["map_paper", "map_pick", "ask_paper"]

        def map_click(event: gr.EventData) -> dict[str, Any]:
            return h.map_click(getattr(event, "_data", None))

        c["map"].click(fn(paper_out, map_click), None, w.outs(paper_out), show_progress="hidden",
                       **private)
        c["ask_paper"].click(fn(scope_out, h.ask_about_paper), [c["map_pick"]], w.outs(scope_out),
                             **private)
    return demo
