"""HTML for the web UI, built from plain data (no Gradio here): the conversation with clickable
citations, one block of sources per answer, the corpus table and the store status.

Corpus text is data: every title, abstract and passage goes through `esc()` (HTML-escaped, and
`$`, `{`, `}` as entities so no template engine reads them), answers are rendered from Markdown
with raw HTML off, and links are http(s) only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt

# A citation as the checker writes it: "[1]", "[1, 3]", "[2?]" (weakly supported).
CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)(\?)?\]")
SOURCES_HEADING = re.compile(r"\n+\*\*Sources\*\*\s*\n")
OFFLINE_FOOTER = re.compile(r"\n*_Offline mode:[^\n]*_\s*$")
TABLE_LINE = re.compile(r"^\s*\|")
WHOLE_SHARE = 0.8  # passages covering this share of the abstract are shown as the whole abstract
PASSAGE_JOIN = 20  # passages whose overlap (or gap) in the abstract is this many characters or less merge

RELEVANCE_TIP = ("How closely this paper matches the question, compared with the best-matching paper "
                 "(the search ranking)")
SUPPORT_TIP = "How strongly this paper supports the sentences in the answer that cite it"
NOT_UNDERSTOOD = ("I could not understand the question. Ask about the papers in words: a method, a "
                  "dataset, a disease or a paper's title, for example “Which papers adapt the Segment "
                  "Anything Model?”")


# --- escaping ---------------------------------------------------------------------------------
def braces_inert(text: str) -> str:
    """`$`, `{`, `}` as entities: Gradio's HTML component reads its value as a template."""
    return text.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def esc(text: object) -> str:
    """HTML-escape corpus/user text (quotes too), with the template characters inert."""
    return braces_inert(html.escape(str(text), quote=True))


def safe_url(url: str) -> str | None:
    url = (url or "").strip()
    return url if re.match(r"^https?://[^\s\"'<>]+$", url, re.I) else None


def link(url: str, label_html: str) -> str:
    href = safe_url(url)
    if not href:
        return label_html
    return (f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer nofollow">'
            f"{label_html}</a>")


# --- corpus text made readable ----------------------------------------------------------------
TEX_SYMBOLS = {
    "times": "×", "pm": "±", "mp": "∓", "sim": "∼", "approx": "≈", "leq": "≤", "geq": "≥", "le": "≤",
    "ge": "≥", "neq": "≠", "cdot": "·", "rightarrow": "→", "to": "→", "leftarrow": "←",
    "infty": "∞", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
    "lambda": "λ", "mu": "μ", "sigma": "σ", "theta": "θ", "pi": "π", "rho": "ρ", "tau": "τ",
    "phi": "φ", "omega": "ω", "Delta": "Δ", "Sigma": "Σ", "ell": "ℓ", "circ": "°", "degree": "°",
}
TEX_STYLE = re.compile(r"\\(?:textbf|textit|text|mathrm|mathbf|mathcal|mathit|emph|operatorname)"
                       r"\s*\{([^{}]*)\}")
TEX_COMMAND = re.compile(r"\\([A-Za-z]+)")
# The scraped corpus lost its backslashes: "{64times 64}" and "{0.91 pm 0.5}" are TeX groups.
BARE_OPERATOR = re.compile(r"(?<=[\d)])\s*(times|pm)\s*(?=[\d(])")
SUPERSCRIPT = str.maketrans("0123456789+-n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻ⁿ")
SUBSCRIPT = str.maketrans("0123456789+-", "₀₁₂₃₄₅₆₇₈₉₊₋")


def clean_latex(text: str) -> str:
    """TeX fragments in abstracts as plain text: "{64\\times 64}" → "64×64", "\\textbf{Mamba}"
    → "Mamba", "44\\%" → "44%", "N^2" → "N²", "mAP_{50}" → "mAP₅₀"."""
    if not re.search(r"[\\{}^_~$]", text):
        return text
    out = text
    for _ in range(3):  # nested styles: \textbf{\emph{x}}
        out = TEX_STYLE.sub(r"\1", out)
    out = re.sub(r"\$([^$\n]{1,120})\$", lambda m: m.group(1) if re.search(r"[\\^_{}]", m.group(1))
                 else m.group(0), out)
    out = re.sub(r"\\([%&_#$])", r"\1", out)
    out = re.sub(r"\\[,;:! ]", " ", out)
    out = TEX_COMMAND.sub(lambda m: TEX_SYMBOLS.get(m.group(1), m.group(1)), out)
    out = re.sub(r"(?<=[\d)])\s*([×±])\s*(?=[\d(])", lambda m: "×" if m.group(1) == "×" else " ± ", out)
    out = BARE_OPERATOR.sub(lambda m: "×" if m.group(1) == "times" else " ± ", out)
    out = re.sub(r"\^\{?([0-9+\-n]{1,4})\}?", lambda m: m.group(1).translate(SUPERSCRIPT), out)
    out = re.sub(r"(?<=\w)_\{([0-9+\-]{1,4})\}", lambda m: m.group(1).translate(SUBSCRIPT), out)
    out = re.sub(r"(?<=\w)_\{([^{}]{1,20})\}", r"_\1", out)
    for _ in range(3):
        out = re.sub(r"\{([^{}]*)\}", r"\1", out)
    out = re.sub(r"(?<=\S)~(?=[A-Za-z(])", " ", out)
    return re.sub(r"[ \t]{2,}", " ", out)


def merge_passages(abstract: str, passages: Sequence[str]) -> list[str]:
    """The retrieved passages with their overlaps removed: each passage found in the abstract
    becomes a span there, overlapping or adjacent spans merge, and the spans come back in the
    abstract's order. A passage not found in the abstract is kept as it is (once)."""
    spans: list[tuple[int, int]] = []
    loose: list[str] = []
    for passage in passages:
        text = passage.strip()
        if not text:
            continue
        start = abstract.find(text)
        if start < 0:
            if text not in loose and not any(text in x for x in loose):
                loose.append(text)
            continue
        spans.append((start, start + len(text)))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + PASSAGE_JOIN:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [abstract[s:e].strip() for s, e in merged] + [x for x in loose
                                                       if not any(x in abstract[s:e] for s, e in merged)]


def highlight(text: str, sentences: Iterable[str]) -> str:
    """Escape first, then wrap the (escaped) supporting sentences in <mark>."""
    out = esc(text)
    for sentence in sorted(set(sentences), key=len, reverse=True):
        needle = esc(sentence)
        if needle and needle in out and f"<mark>{needle}" not in out:
            out = out.replace(needle, f"<mark>{needle}</mark>", 1)
    return out


# --- the records the UI renders ---------------------------------------------------------------
@dataclass
class SourceView:
    n: int
    paper_id: str
    title: str
    url: str
    abstract: str
    passages: list[str]
    score: float
    cited: bool = False
    support: float | None = None
    flagged: bool = False
    sentences: list[str] = field(default_factory=list)  # the abstract's sentences backing the answer


@dataclass
class ExchangeView:
    """One question and its answer, as the page shows it."""

    id: str
    question: str
    answer: str  # the engine's text (Markdown, with its source list)
    mode: str = "extractive"
    mode_label: str = ""
    abstained: bool = False
    notice: str = ""
    kind: str = "factual"
    sources: list[SourceView] = field(default_factory=list)
    understood: bool = True
    filters: str = ""  # the filters retrieval applied, for people ("2023 or later; author Wang")
    filter_phrases: list[str] = field(default_factory=list)  # the question's words they came from


def answer_body(answer: str, notice: str = "") -> str:
    """What the UI shows of an answer: the inline citations without the source list (the panel
    has it), the offline footer (a badge instead) and the notice (shown on its own line)."""
    body = SOURCES_HEADING.split(answer, maxsplit=1)[0]
    body = OFFLINE_FOOTER.sub("", body).strip()
    if notice:
        body = re.sub(r"^_[^\n]*_\s*\n+", "", body, count=1) if body.startswith("_") else body
    return body.strip()


def tables_first(markdown: str) -> str:
    """Tables moved to the top, in their order, so a comparison's table stands where the reader
    first looks from the first streamed token to the last."""
    lines = markdown.splitlines()
    table = [line for line in lines if TABLE_LINE.match(line)]
    if not table:
        return markdown
    rest = [line for line in lines if not TABLE_LINE.match(line)]
    return "\n".join(table) + "\n\n" + re.sub(r"\n{3,}", "\n\n", "\n".join(rest)).strip()


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # No raw HTML and no images: an answer's text never loads or runs anything.
    return (MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
            .enable("table").disable("image"))


def _labelled_tables(rendered: str) -> str:
    """Each cell gets its column's header as `data-label`, so a narrow screen can show a row
    as a card ("Method: ...") instead of a table wider than the phone."""
    def one(table: str) -> str:
        headers = [re.sub(r"<[^>]+>", "", h).strip()
                   for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]

        def row(match: re.Match[str]) -> str:
            cells = iter(headers)
            return re.sub(r"<td([^>]*)>", lambda m: f'<td{m.group(1)} data-label="{next(cells, "")}">',
                          match.group(0))

        return re.sub(r"<tr>.*?</tr>", row, table, flags=re.S)

    return re.sub(r"<table>.*?</table>", lambda m: one(m.group(0)), rendered, flags=re.S)


def markdown_html(text: str) -> str:
    out = _markdown().render(text)
    out = out.replace("<a href=", '<a target="_blank" rel="noopener noreferrer nofollow" href=')
    return _labelled_tables(out)


def cite_links(rendered: str, exchange_id: str, sources: dict[int, SourceView]) -> str:
    """Every `[n]` outside tags, links and code turned into a link to source card n of this
    answer, with the supporting sentence as its preview (`data-tip`, shown by CSS)."""
    parts = re.split(r"(<[^>]+>)", rendered)
    depth = 0  # inside <a> or <code>
    for i, part in enumerate(parts):
        if part.startswith("<"):
            if re.match(r"<(a|code|pre)[\s>]", part):
                depth += 1
            elif re.match(r"</(a|code|pre)>", part):
                depth = max(depth - 1, 0)
            continue
        if depth or "[" not in part:
            continue

        def anchor(match: re.Match[str]) -> str:
            numbers = [int(x) for x in re.split(r"\s*[,;]\s*", match.group(1))]
            if not all(n in sources for n in numbers):
                return match.group(0)
            weak = match.group(2) or ""
            return "".join(_cite_anchor(exchange_id, sources[n], weak) for n in numbers)

        parts[i] = CITATION.sub(anchor, part)
    return "".join(parts)


def _cite_anchor(exchange_id: str, source: SourceView, weak: str) -> str:
    sentence = source.sentences[0] if source.sentences else (source.passages[0] if source.passages else "")
    sentence = clean_latex(sentence)
    if len(sentence) > 280:
        sentence = sentence[:277].rsplit(" ", 1)[0] + "…"
    tip = clean_latex(source.title) + ("\n“" + sentence + "”" if sentence else "")
    label = f"[{source.n}{weak}]"
    cls = "pa-cite pa-weak" if weak or source.flagged else "pa-cite"
    return (f'<a class="{cls}" href="#pa-src-{esc(exchange_id)}-{source.n}" role="button" '
            f'data-answer="{esc(exchange_id)}" data-n="{source.n}" data-tip="{esc(tip)}" '
            f'aria-label="source {source.n}: {esc(clean_latex(source.title))}">{label}</a>')


# --- the conversation -------------------------------------------------------------------------
FEEDBACK = (("up", "Helpful", "This answer helped"), ("down", "Not helpful", "This answer did not help"),
            ("wrong_citation", "Wrong citation", "A citation points at the wrong paper"),
            ("missing_paper", "Missing paper", "A paper that should be here is missing"))


def _mode_badge(exchange: ExchangeView) -> str:
    if not exchange.understood:
        return ""
    if exchange.mode == "llm":
        label, title = exchange.mode_label or "LLM", "Written by the language model from the papers"
        return f'<span class="pa-chip pa-chip-llm" title="{esc(title)}">{esc(label)}</span>'
    return ('<span class="pa-chip pa-chip-offline" title="Offline mode: sentences quoted from the '
            'papers, no text generated">offline · quoted</span>')


def answer_html(exchange: ExchangeView, body: str | None = None, *, live: bool = False,
                comparison: bool = False) -> str:
    """The answer part of one exchange: Markdown with clickable citations (tables first)."""
    text = answer_body(exchange.answer, exchange.notice) if body is None else body
    by_n = {s.n: s for s in exchange.sources}
    if live and comparison and not re.search(r"^\s*\|", text, re.M):
        # The table's place is held from the first token: the text below does not move later.
        slot = '<div class="pa-table-slot">The comparison table appears here…</div>'
    else:
        slot = ""
    rendered = cite_links(markdown_html(tables_first(text)), exchange.id, by_n) if text else ""
    notice = f'<div class="pa-notice">{esc(exchange.notice)}</div>' if exchange.notice else ""
    return f'{notice}{slot}<div class="pa-md">{braces_inert(rendered)}</div>'


def exchange_html(exchange: ExchangeView) -> str:
    cited = sum(1 for s in exchange.sources if s.cited)
    foot = [_mode_badge(exchange)]
    if exchange.sources:
        label = (f"Sources: {cited} cited · {len(exchange.sources) - cited} more retrieved" if cited
                 else f"Nearest papers ({len(exchange.sources)})")
        foot.append(f'<a class="pa-srclink" href="#pa-block-{esc(exchange.id)}" role="button" '
                    f'data-answer="{esc(exchange.id)}">{label}</a>')
    if exchange.filters:
        where = (f" (read from “{'”, “'.join(exchange.filter_phrases)}”)" if exchange.filter_phrases
                 else "")
        foot.append(f'<span class="pa-chip pa-filters" title="Only papers matching these filters '
                    f'were searched">Filters: {esc(exchange.filters)}{esc(where)}</span>')
    if exchange.understood:
        buttons = "".join(
            f'<button type="button" class="pa-fb" data-fb="{key}" data-answer="{esc(exchange.id)}" '
            f'title="{esc(tip)}" aria-pressed="false">{esc(label)}</button>'
            for key, label, tip in FEEDBACK)
        foot.append(f'<span class="pa-fbs" aria-label="feedback">{buttons}</span>')
    return (f'<article class="pa-turn" id="pa-turn-{esc(exchange.id)}" data-answer="{esc(exchange.id)}">'
            f'<div class="pa-q">{esc(exchange.question)}</div>'
            f'<div class="pa-a">{answer_html(exchange)}'
            f'<div class="pa-foot">{"".join(foot)}</div></div></article>')


def thread_html(exchanges: Sequence[ExchangeView]) -> str:
    if not exchanges:
        return ('<div class="pa-thread pa-thread-empty"><p><b>Ask about the papers.</b> Answers quote '
                "or cite the abstracts; click a citation such as [1] to see the paper and the sentence "
                "behind it. Try an example below.</p></div>")
    return '<div class="pa-thread">' + "".join(exchange_html(e) for e in exchanges) + "</div>"


def live_html(exchange: ExchangeView | None, status: str = "", *, comparison: bool = False,
              body: str = "") -> str:
    """The exchange being answered: the question, the draft so far and a progress line whose
    elapsed time the page's script counts (no server round trip per second)."""
    if exchange is None:
        return ""
    progress = (f'<div class="pa-progress" role="status" data-started="{esc(exchange.id)}">'
                f'<span class="pa-spinner"></span>{esc(status)} <span class="pa-elapsed"></span></div>'
                if status else "")
    return (f'<article class="pa-turn pa-live" id="pa-turn-{esc(exchange.id)}">'
            f'<div class="pa-q">{esc(exchange.question)}</div><div class="pa-a">'
            f"{answer_html(exchange, body, live=True, comparison=comparison) if body or comparison else ''}"
            f"{progress}</div></article>")


# --- sources ----------------------------------------------------------------------------------
def relevance_words(score: float, top: float) -> tuple[str, float]:
    share = score / top if top > 0 else 0.0
    if share >= 0.95:
        return "best match", share
    if share >= 0.7:
        return "strong match", share
    if share >= 0.4:
        return "partial match", share
    return "weak match", share


def support_words(source: SourceView, threshold: float) -> str:
    if source.support is None:
        return ""
    if source.flagged or source.support < threshold:
        return "weak support"
    return "quoted" if source.support >= 0.99 else "supported"


def card_html(exchange_id: str, source: SourceView, top: float, threshold: float) -> str:
    words, share = relevance_words(source.score, top)
    meta = [f'<span class="pa-score" title="{esc(RELEVANCE_TIP)}"><span class="pa-bar" aria-hidden="true">'
            f'<i style="width:{max(share, 0.05) * 100:.0f}%"></i></span>{words}</span>']
    if source.cited:
        support = support_words(source, threshold)
        cls = "pa-support pa-warn" if support == "weak support" else "pa-support"
        meta.append(f'<span class="{cls}" title="{esc(SUPPORT_TIP)}">'
                    f'{"⚠ " if support == "weak support" else "✓ "}{support}</span>')
    sentences = [clean_latex(s) for s in source.sentences]
    abstract = clean_latex(source.abstract)
    passages = merge_passages(abstract, [clean_latex(p) for p in source.passages])
    whole = highlight(abstract, sentences) if abstract else "<em>(no abstract)</em>"
    if abstract and sum(len(p) for p in passages) >= WHOLE_SHARE * len(abstract):
        # The passages are (nearly) the whole abstract: shown once, whole.
        shown, fold = f'<p class="pa-passage">{whole}</p>', ""
    else:
        shown = "".join(f'<p class="pa-passage">{highlight(p, sentences)}</p>' for p in passages)
        fold = (f'<details><summary>Whole abstract</summary><div class="pa-abstract">{whole}</div>'
                f"</details>")
    classes = "pa-card" if source.cited else "pa-card pa-uncited"
    return (f'<div class="{classes}" id="pa-src-{esc(exchange_id)}-{source.n}" data-n="{source.n}" '
            f'tabindex="-1"><div class="pa-card-title"><span class="pa-n">{source.n}</span>'
            f"{link(source.url, esc(clean_latex(source.title)))}</div>"
            f'<div class="pa-meta">{"".join(meta)}</div>{shown}{fold}</div>')


def source_block_html(exchange: ExchangeView, threshold: float, *, active: bool) -> str:
    top = max((s.score for s in exchange.sources), default=0.0)
    cited = [s for s in exchange.sources if s.cited]
    rest = [s for s in exchange.sources if not s.cited]
    head = (f'<div class="pa-srchead"><span>Sources for <q>{esc(exchange.question)}</q></span>'
            f'<a class="pa-back" href="#pa-turn-{esc(exchange.id)}" data-answer="{esc(exchange.id)}">'
            f"↩ to the answer</a></div>")
    if exchange.abstained:
        head += ('<div class="pa-empty">The collection does not cover this question; these are the '
                 "nearest papers.</div>")
    body = "".join(card_html(exchange.id, s, top, threshold) for s in cited)
    if rest:
        label = f"Also retrieved, not cited ({len(rest)})" if cited else f"Retrieved ({len(rest)})"
        body += (f'<details class="pa-more"{"" if cited else " open"}><summary>{label}</summary>'
                 + "".join(card_html(exchange.id, s, top, threshold) for s in rest) + "</details>")
    hidden = "" if active else " hidden"
    return (f'<section class="pa-srcblock" id="pa-block-{esc(exchange.id)}" '
            f'data-answer="{esc(exchange.id)}"{hidden}>{head}{body}</section>')


def sources_html(exchanges: Sequence[ExchangeView], threshold: float) -> str:
    """Every answer's sources, each in its own block; the latest answer's block is shown, the
    others open when one of their citations is clicked."""
    with_sources = [e for e in exchanges if e.sources]
    if not with_sources:
        return ('<div class="pa-sources"><div class="pa-title">Sources</div><div class="pa-empty">The '
                "papers behind each answer appear here: the ones it cites first, with the supporting "
                "sentences <mark>highlighted</mark>, then the others it retrieved.</div></div>")
    blocks = "".join(source_block_html(e, threshold, active=e is with_sources[-1]) for e in with_sources)
    return f'<div class="pa-sources"><div class="pa-title">Sources</div>{blocks}</div>'


# --- corpus tab -------------------------------------------------------------------------------
@dataclass
class PaperRow:
    id: str
    title: str
    url: str
    abstract: str
    year: str = ""
    authors: str = ""


def corpus_page_html(rows: Sequence[PaperRow], selected: set[str], page: int, pages: int,
                     total: int, matching: int) -> str:
    if not rows:
        return '<div class="pa-empty">No paper matches.</div>'
    items = []
    for row in rows:
        checked = " checked" if row.id in selected else ""
        title = esc(clean_latex(row.title))
        title = link(row.url, title + " ↗") if safe_url(row.url) else title
        extra = " · ".join(esc(v) for v in (row.authors, row.year) if v)
        meta = f'<div class="pa-meta">{extra}</div>' if extra else ""
        abstract = clean_latex(row.abstract)
        snippet = abstract if len(abstract) <= 220 else abstract[:220].rsplit(" ", 1)[0] + "…"
        items.append(
            f'<li class="pa-row"><label class="pa-pick"><input type="checkbox" value="{esc(row.id)}"'
            f'{checked} aria-label="select {esc(row.title)}"></label><div class="pa-rowtext">'
            f'<div class="pa-rowtitle">{title}</div>{meta}'
            f'<details><summary>{esc(snippet)}</summary><div class="pa-abstract">{esc(abstract)}</div>'
            f"</details></div></li>")
    return (f'<div class="pa-corpus"><ul class="pa-rows">{"".join(items)}</ul>'
            f'<div class="pa-pageinfo">Page {page + 1} of {pages} · {matching:,} of {total:,} papers'
            f"</div></div>")


def selection_html(titles: Sequence[str]) -> str:
    if not titles:
        return ('<div class="pa-empty">Tick papers in the list to ask about just those (or to compare '
                "them).</div>")
    chips = "".join(f'<li>{esc(clean_latex(t))}</li>' for t in titles)
    return f'<div class="pa-selection"><b>{len(titles)} selected</b><ul>{chips}</ul></div>'


def scope_html(titles: Sequence[str]) -> str:
    if not titles:
        return ""
    names = "; ".join(clean_latex(t) for t in titles)
    return (f'<div class="pa-scope" title="{esc(names)}">Answering from '
            f"{'this paper' if len(titles) == 1 else f'these {len(titles)} papers'} only: "
            f"{esc(names if len(names) < 160 else names[:157] + '…')}</div>")


def paper_html(paper: PaperRow | None, note: str = "") -> str:
    if paper is None:
        return f'<div class="pa-empty">{esc(note or "Click a point to open its paper.")}</div>'
    extra = " · ".join(esc(v) for v in (paper.authors, paper.year) if v)
    return (f'<div class="pa-card pa-paper"><div class="pa-card-title">'
            f"{link(paper.url, esc(clean_latex(paper.title)))}</div>"
            f'{f"<div class=pa-meta>{extra}</div>" if extra else ""}'
            f'<div class="pa-abstract">{esc(clean_latex(paper.abstract))}</div></div>')


def status_html(info: dict[str, Any]) -> str:
    """The store's state for readers: counts and models, no filesystem paths."""
    rows = [("Papers", f"{info['papers']:,}"), ("Passages indexed", f"{info['chunks']:,}"),
            ("Embedding model", info["embedding_model"]),
            ("Answers", info.get("mode_label") or info["answer_mode"])]
    return ('<table class="pa-status">' + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>")


def header_html(label: str, papers: int | None, starting: str | None = None,
                offline: bool = True) -> str:
    badge = (f'<span class="pa-badge{" pa-offline" if offline else ""}" id="pa-mode" '
             f'title="What answers are made with">{esc(label)}</span>')
    sub = (f"{papers:,} paper abstracts · answers cite their sources" if papers is not None
           else esc(starting or "starting…"))
    return (f'<div class="pa-header"><div><h1>Paper assistant</h1><span class="pa-sub">{sub}'
            f"</span></div>{badge}</div>")


def notice_html(message: str, kind: str = "error") -> str:
    if not message:
        return ""
    return f'<div class="pa-inline pa-inline-{kind}" role="alert">{esc(message)}</div>'


def upload_summary_html(summary: Any, names: Sequence[str], collection: str | None) -> str:
    """What an upload did: counts, then each merged duplicate and skipped entry with its reason.
    `summary` is an ingest.IngestSummary whose lines already name files by their own names."""
    into = f" into the collection “{esc(collection)}”" if collection else ""
    head = (f"<b>{esc(', '.join(names))}</b>{into}: {summary.papers_added} added, "
            f"{summary.papers_updated} updated, {summary.papers_unchanged} unchanged, "
            f"{len(summary.duplicates)} duplicate(s) merged, {len(summary.skipped)} skipped. "
            f"The collection now holds {summary.papers_total:,} papers.")
    parts = [f'<div class="pa-upload-head">{head}</div>']
    for title, lines in (("Duplicates merged", summary.duplicates), ("Skipped", summary.skipped),
                         ("Warnings", summary.warnings)):
        if lines:
            items = "".join(f"<li>{esc(line)}</li>" for line in lines)
            parts.append(f"<details open><summary>{title} ({len(lines)})</summary><ul>{items}</ul>"
                         "</details>")
    return f'<div class="pa-inline pa-inline-info pa-upload" role="status">{"".join(parts)}</div>'
