"""Citations the user can trust: every `[n]` shown points to a retrieved paper that supports the
sentence it ends, checked in code; and the text is made safe to render (no raw HTML, no images, no
links other than the sources' own).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

from assistant.embedding import Embedder

CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%)?")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-+]{3,}")
STOP = set(STOPWORDS_EN) | {"paper", "papers", "study", "this", "that", "which", "these", "their"}
MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
MD_LINK = re.compile(r"\[([^\]]*)\]\((\s*[^)\s]*)[^)]*\)")
BARE_URL = re.compile(r"(?<![(<\w])(?:https?|ftp)://[^\s)<>\]]+|(?<![\w@/])www\.[^\s)<>\]]+", re.I)
HTML_TAG = re.compile(r"</?[A-Za-z!][^>]*>")


@dataclass
class SourceDoc:
    """A retrieved paper as the answer layer numbers it."""

    n: int
    paper_id: str
    title: str
    url: str
    abstract: str
    links: tuple[str, ...] = ()
    score: float = 0.0
    passages: list[str] = field(default_factory=list)


@dataclass
class Citation:
    n: int
    paper_id: str
    title: str
    url: str
    support: float
    flagged: bool = False  # shown, but its sentence is not well supported by the paper


@dataclass
class CheckReport:
    text: str
    citations: list[Citation]
    invented: int = 0  # numbers outside the sources, removed
    reattributed: int = 0  # pointed at a source that did not support it; moved to one that does
    flagged: int = 0
    removed_links: int = 0
    removed_html: int = 0


_split = None
_split_lock = threading.Lock()


def split_sentences(text: str) -> list[str]:
    """Sentences via llama-index's bundled punkt tokenizer (offline)."""
    global _split
    with _split_lock:
        if _split is None:
            _split = split_by_sentence_tokenizer()
    return [s.strip() for s in _split(text) if s.strip()]


def numbers(text: str) -> set[str]:
    return {n.replace(",", "").replace(" ", "") for n in NUMBER.findall(text)}


def content_words(text: str) -> set[str]:
    """Lower-cased 6-character prefixes: a crude stem that lets "accurate" meet "accuracy"."""
    return {w.lower()[:6] for w in WORD.findall(text) if w.lower() not in STOP}


class SentenceVectors:
    """Embeddings of sentences, cached: abstracts are scored again and again across questions."""

    def __init__(self, embedder: Embedder, capacity: int = 50_000) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, sentences: list[str]) -> np.ndarray:
        with self._lock:
            missing = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if missing:
            vectors = self.embedder.embed(missing)
            with self._lock:
                for sentence, vector in zip(missing, vectors, strict=True):
                    self._cache[sentence] = vector
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = [self._cache.get(s) for s in sentences]
        if any(r is None for r in rows):  # evicted meanwhile under heavy load
            return self.embedder.embed(sentences)
        return np.vstack(rows) if rows else np.zeros((0, self.embedder.dim), dtype=np.float32)


def support_score(claim: str, source: SourceDoc, vectors: SentenceVectors) -> float:
    """How well a source backs a claim, in [0, 1]: semantic similarity with the source's closest
    sentence, plus overlap of the claim's numbers and content words with the source."""
    claim = CITE.sub("", claim).strip()
    if not claim:
        return 0.0
    text = f"{source.title} {source.abstract}"
    if _quoted(claim, text):
        semantic = 1.0  # a verbatim quote needs no model to vouch for it
    else:
        sentences = split_sentences(source.abstract) or [source.abstract]
        sims = vectors([claim, *sentences])
        semantic = float(np.max(sims[1:] @ sims[0]))
    claim_numbers = numbers(claim)
    number_score = (len(claim_numbers & numbers(text)) / len(claim_numbers)) if claim_numbers else 1.0
    claim_words = content_words(claim)
    word_score = (len(claim_words & content_words(text)) / len(claim_words)) if claim_words else 1.0
    return round(max(0.0, min(1.0, 0.5 * semantic + 0.25 * number_score + 0.25 * word_score)), 3)


def _quoted(claim: str, text: str) -> bool:
    """Every sentence of the claim (markdown and title labels aside) appears verbatim in text."""
    body = re.sub(r"^\s*[-*]?\s*\*[^*]+\*\s*(?:\[\d+\])?\s*[:—-]?\s*", "", claim).strip(" *")
    parts = [p.strip(" …") for p in re.split(r"(?<=[.!?])\s+", body) if len(p.strip(" …")) > 20]
    flat = text.replace("[", "(").replace("]", ")")
    return bool(parts) and all(p in flat for p in parts)


def _units(text: str) -> list[tuple[int, int]]:
    """Spans that a citation vouches for: table cells, list items, sentences."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if body.lstrip().startswith("|"):
            col = 0
            for cell in body.split("|"):
                spans.append((offset + col, offset + col + len(cell)))
                col += len(cell) + 1
        else:
            start = 0
            for match in re.finditer(r"(?<=[.!?])(?:\s*\[[\d,;\s]+\])*\s+(?=[A-Z*\"(\[-])", body):
                end = match.start() + len(match.group(0).rstrip())
                spans.append((offset + start, offset + end))
                start = match.end()
            spans.append((offset + start, offset + len(body)))
        offset += len(line)
    return spans


def check_citations(text: str, sources: list[SourceDoc], vectors: SentenceVectors,
                    threshold: float) -> CheckReport:
    """Remove invented citation numbers, move or flag unsupported ones, and score the rest."""
    by_n = {s.n: s for s in sources}
    report = CheckReport(text="", citations=[])
    best_support: dict[int, float] = {}
    flagged_ns: set[int] = set()
    pieces: list[str] = []
    cursor = 0
    for start, end in _units(text):
        unit = text[start:end]
        claim = CITE.sub("", unit).strip(" |*-")

        def replace(match: re.Match[str], claim: str = claim) -> str:
            kept: list[str] = []
            for raw in re.split(r"[,;]", match.group(1)):
                n = int(raw.strip())
                if n not in by_n:
                    report.invented += 1
                    continue
                score = support_score(claim, by_n[n], vectors) if claim else 1.0
                if score < threshold:
                    alternatives = [
                        (support_score(claim, s, vectors), s.n) for s in sources if s.n != n
                    ]
                    alt_score, alt_n = max(alternatives, default=(0.0, n))
                    if alt_score >= threshold:
                        report.reattributed += 1
                        n, score = alt_n, alt_score
                    else:
                        report.flagged += 1
                        flagged_ns.add(n)
                best_support[n] = max(best_support.get(n, 0.0), score)
                mark = f"[{n}]" if score >= threshold else f"[{n}?]"
                if mark not in kept:
                    kept.append(mark)
            return "".join(kept)

        pieces.append(text[cursor:start])
        pieces.append(CITE.sub(replace, unit))
        cursor = end
    pieces.append(text[cursor:])
    report.text = re.sub(r"[ \t]+([.,;:])", r"\1", "".join(pieces))
    for n in sorted(best_support):
        source = by_n[n]
        report.citations.append(
            Citation(n, source.paper_id, source.title, source.url, best_support[n],
                     flagged=n in flagged_ns and best_support[n] < threshold)
        )
    return report


def sanitize(text: str, allowed_urls: set[str]) -> tuple[str, int, int]:
    """Make model or corpus text inert: HTML escaped away, images dropped, links kept only when
    they point to a source's own link. Returns (text, links removed, html tags removed)."""
    removed_links = 0

    def image(_: re.Match[str]) -> str:
        nonlocal removed_links
        removed_links += 1
        return ""

    def link(match: re.Match[str]) -> str:
        nonlocal removed_links
        label, url = match.group(1), match.group(2).strip()
        if url in allowed_urls:
            return match.group(0)
        removed_links += 1
        return label

    def bare(match: re.Match[str]) -> str:
        nonlocal removed_links
        url = match.group(0).rstrip(".,;:")
        if url in allowed_urls:
            return match.group(0)
        removed_links += 1
        return "[link removed]"

    text = MD_IMAGE.sub(image, text)
    text = MD_LINK.sub(link, text)
    text = BARE_URL.sub(bare, text)
    html = len(HTML_TAG.findall(text))
    text = HTML_TAG.sub("", text)
    # Whatever angle brackets remain are shown, never interpreted.
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text, removed_links, html


def source_list(citations: list[Citation]) -> str:
    if not citations:
        return ""
    lines = ["", "", "**Sources**", ""]
    for c in citations:
        title = c.title.replace("[", "(").replace("]", ")").replace("<", "&lt;").replace(">", "&gt;")
        line = f"[{c.n}] {title}"
        if c.url:
            line += f" — [{c.url}]({c.url})"
        if c.flagged:
            line += " (⚠ weak support for the sentence citing it)"
        lines.append(line + "  ")
    return "\n".join(lines)
