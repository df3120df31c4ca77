"""Citations the user can trust: every `[n]` shown points to a retrieved paper that supports the
sentence it ends, checked in code; and the text is made safe to render (no raw HTML, no images, no
links other than the sources' own).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.sentences import (
    SentenceVectors,
    content_words,
    numbers,
    split_sentences,
)

CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
# Link text may hold one level of brackets ("[fig [1] a](url)"), which CommonMark accepts.
MD_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?[^)]*\)")
# Whatever still reads as "](destination" after MD_LINK: deeper nesting, odd spacing.
LINK_OPENER = re.compile(r"\]\(\s*<?([^)\s>]*)")
# "[r1]: //host/path" makes every later "[text][r1]" a link.
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S.*$", re.M)
# Anything a GFM renderer (Gradio's chat) autolinks: scheme URLs, www. addresses, e-mail addresses.
AUTOLINK = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'\])*]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
# Addresses a reader (or a linkifier) could still follow: protocol-relative `//host/path`, bare
# `host.tld/path`, and data:, file:, javascript: and vbscript: URIs.
LOOSE_ADDRESS = re.compile(
    r"(?<![\w/:.])//(?:[\w-]+\.)+[a-z]{2,}\b[^\s<>\"'\])]*"
    r"|\b(?:[a-z0-9](?:[\w-]*[a-z0-9])?\.)+[a-z]{2,24}/[^\s<>\"'\])]*"
    r"|\b(?:data|file|javascript|vbscript):[^\s<>\"'\])]+", re.I)
# AUTOLINK first: a source's own https:// link is matched whole (and kept) before the loose
# forms could match inside it.
ADDRESS = re.compile(f"{AUTOLINK.pattern}|{LOOSE_ADDRESS.pattern}", re.I)
HTML_TAG = re.compile(r"</?[A-Za-z!][^>]*>")
# Citation-like brackets the checker would not see: "[ 9 ]", "[^12]", "[1-8]", "[1000]".
LOOSE_CITE = re.compile(r"\[\^?\s*(\d{1,4}(?:\s*[-–,;]\s*\d{1,4})*)\s*\]")


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
    # The relevance decision (relevance.py): "answers" papers are cited, "related" ones listed
    # without a citation, "irrelevant" ones only retrieved.
    verdict: str = "answers"
    relevance: float = 1.0


@dataclass
class Claim:
    """One span of the answer that a citation vouches for, and the paper's sentence behind it."""

    text: str  # the answer's sentence, list item or table cell, citation marks removed
    evidence: str  # the cited paper's sentence that supports it best
    support: float


@dataclass
class Citation:
    n: int
    paper_id: str
    title: str
    url: str
    support: float
    flagged: bool = False  # shown, but its sentence is not well supported by the paper
    claims: list[Claim] = field(default_factory=list)


@dataclass
class CheckReport:
    text: str
    citations: list[Citation]
    invented: int = 0  # numbers outside the sources, removed
    reattributed: int = 0  # pointed at a source that did not support it; moved to one that does
    flagged: int = 0
    removed_links: int = 0
    removed_html: int = 0


def support_score(claim: str, source: SourceDoc, vectors: SentenceVectors) -> float:
    """How well a source backs a claim, in [0, 1]: semantic similarity with the source's closest
    sentence, plus overlap of the claim's numbers and content words with the source."""
    return evidence_for(claim, source, vectors)[1]


def evidence_for(claim: str, source: SourceDoc, vectors: SentenceVectors) -> tuple[str, float]:
    """The source's sentence closest to the claim, and the claim's support score."""
    claim = CITE.sub("", claim).strip()
    if not claim:
        return "", 0.0
    text = f"{source.title} {source.abstract}"
    sentences = split_sentences(source.abstract) or [source.abstract]
    if _quoted(claim, text):
        semantic = 1.0  # a verbatim quote needs no model to vouch for it
        flat = claim.replace("[", "(").replace("]", ")")
        quoted = [s for s in sentences if s[:40].replace("[", "(").replace("]", ")") in flat]
        best = " ".join(quoted) if quoted else sentences[0]
    else:
        sims = vectors(sentences) @ vectors([claim])[0]
        semantic = float(np.max(sims))
        best = sentences[int(np.argmax(sims))]
    claim_numbers = numbers(claim)
    number_score = (len(claim_numbers & numbers(text)) / len(claim_numbers)) if claim_numbers else 1.0
    claim_words = content_words(claim)
    word_score = (len(claim_words & content_words(text)) / len(claim_words)) if claim_words else 1.0
    return best, round(max(0.0, min(1.0, 0.5 * semantic + 0.25 * number_score + 0.25 * word_score)), 3)


def _quoted(claim: str, text: str) -> bool:
    """Every sentence of the claim (markdown and title labels aside) appears verbatim in text."""
    body = re.sub(r"^\s*[-*]?\s*\*[^*]+\*\s*(?:\[\d+\])?\s*[:—-]?\s*", "", claim).strip(" *")
    parts = [p.strip(" …") for p in re.split(r"(?<=[.!?])\s+", body) if len(p.strip(" …")) > 20]
    flat = text.replace("[", "(").replace("]", ")")
    return bool(parts) and all(p in flat for p in parts)


def claim_units(text: str) -> list[tuple[int, int]]:
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
            for match in re.finditer(r"(?<=[.!?])(?:\s*\[[\d,;\s]+\])*+\s+(?=[A-Z*\"(\[-])", body):
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
    claims: dict[int, list[Claim]] = {}
    flagged_ns: set[int] = set()
    pieces: list[str] = []
    cursor = 0
    for start, end in claim_units(text):
        unit = text[start:end]
        claim = CITE.sub("", unit).strip(" |*-")

        def replace(match: re.Match[str], claim: str = claim) -> str:
            kept: list[str] = []
            for raw in re.split(r"[,;]", match.group(1)):
                n = int(raw.strip())
                if n not in by_n:
                    report.invented += 1
                    continue
                evidence, score = evidence_for(claim, by_n[n], vectors) if claim else ("", 1.0)
                if score < threshold:
                    alternatives = [
                        (*reversed(evidence_for(claim, s, vectors)), s.n) for s in sources if s.n != n
                    ]
                    alt_score, alt_evidence, alt_n = max(alternatives, default=(0.0, "", n))
                    if alt_score >= threshold:
                        report.reattributed += 1
                        n, score, evidence = alt_n, alt_score, alt_evidence
                    else:
                        report.flagged += 1
                        flagged_ns.add(n)
                best_support[n] = max(best_support.get(n, 0.0), score)
                if claim:
                    claims.setdefault(n, []).append(Claim(claim, evidence, score))
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
                     flagged=n in flagged_ns and best_support[n] < threshold,
                     claims=claims.get(n, []))
        )
    return report


def sanitize(text: str, allowed_urls: set[str]) -> tuple[str, int, int]:
    """Make model or corpus text inert: HTML tags dropped, images dropped, links and addresses
    kept only when they are a source's own link. Returns (text, links removed, html tags removed).

    Robust to what the regexes cannot parse: after the well-formed cases, any remaining link syntax
    pointing elsewhere is broken apart and any remaining address is replaced, so a renderer finds
    nothing to turn into a link or an image."""
    removed_links = 0

    def replacer(group: int | None, keep: Callable[[re.Match[str]], str],
                 drop: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        """A re.sub callback: the match stays (`keep`) when `group` holds an allowed address,
        else it is replaced (`drop`) and counted. group=None: always replaced."""
        def sub(match: re.Match[str]) -> str:
            nonlocal removed_links
            if group is not None and match.group(group).rstrip(".,;:") in allowed_urls:
                return keep(match)
            removed_links += 1
            return drop(match)
        return sub

    whole = lambda m: m.group(0)  # noqa: E731
    image = replacer(None, whole, lambda _: "")
    link = replacer(2, whole, lambda m: m.group(1))
    opener = replacer(1, whole, lambda m: "] " + m.group(0)[1:])
    definition = replacer(None, whole, lambda _: "")
    address = replacer(0, whole, lambda _: "[link removed]")

    # Tags first, so that the addresses in their attributes go with them.
    html = len(HTML_TAG.findall(text))
    text = HTML_TAG.sub("", text)
    text = MD_IMAGE.sub(image, text)
    removed_links += text.count("![")
    text = text.replace("![", "[")  # an image the regex could not parse becomes a (checked) link
    text = MD_LINK.sub(link, text)
    text = LINK_OPENER.sub(opener, text)
    text = LINK_DEFINITION.sub(definition, text)
    text = ADDRESS.sub(address, text)
    # Whatever angle brackets remain are shown, never interpreted.
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text, removed_links, html


def normalize_citations(text: str) -> str:
    """Rewrite citation-like brackets into the `[n, m]` form the checker reads, so none escapes it:
    "[ 9 ]" -> "[9]", "[^12]" -> "[12]", "[1-3]" -> "[1, 2, 3]". Numbers no source can have
    (over 999) are dropped."""

    def rewrite(match: re.Match[str]) -> str:
        found: list[int] = []
        for part in re.split(r"\s*[,;]\s*", match.group(1).strip()):
            ends = [int(x) for x in re.split(r"\s*[-–]\s*", part) if x]
            if len(ends) == 2 and 0 <= ends[1] - ends[0] <= 20:
                found.extend(range(ends[0], ends[1] + 1))
            else:
                found.extend(ends)
        kept = [str(n) for n in dict.fromkeys(found) if n < 1000]
        return f"[{', '.join(kept)}]" if kept else ""

    return LOOSE_CITE.sub(rewrite, text)


def drop_unknown_citations(text: str, known: set[int]) -> str:
    """Cheap version of the checker for drafts: numbers outside `known` go, nothing is scored."""

    def keep(match: re.Match[str]) -> str:
        ns = [n for n in re.split(r"\s*[,;]\s*", match.group(1)) if int(n) in known]
        return f"[{', '.join(ns)}]" if ns else ""

    return CITE.sub(keep, normalize_citations(text))


class InstructionGuard:
    """Keeps the assistant's own instructions (system prompt, prompt templates) out of answers: a
    model told by a source to reveal them, or that echoes them, has those sentences removed."""

    def __init__(self, texts: list[str], min_words: int = 5) -> None:
        sentences = re.split(r"(?<=[.!?:])\s+|\n", "\n".join(texts))
        self.sentences: list[list[str]] = []
        for sentence in sentences:
            words = re.findall(r"\w+", sentence.lower())
            if len(words) >= min_words and "$" not in sentence and words not in self.sentences:
                self.sentences.append(words)
        self._patterns = [re.compile(r"\b" + r"\W+".join(map(re.escape, w)) + r"\b[\])*_]*[.!?:]?", re.I)
                          for w in self.sentences]
        # Short lines of the templates ("Rules:", "Question: $question"): removed with the rest.
        self._lines = {line.strip() for text in texts for line in text.splitlines() if line.strip()}

    def redact(self, text: str) -> tuple[str, int]:
        removed = 0
        for pattern in self._patterns:
            text, n = pattern.subn("", text)
            removed += n
        if removed:  # drop the husks of the lines that held them ("1. ", "- .")
            husk = re.compile(r"\s*(?:\d+[.)]|[-*+]|#+)?\s*[.:;,]*\s*")
            text = "\n".join(line for line in text.splitlines()
                             if not line.strip() or not (husk.fullmatch(line) or line.strip() in self._lines))
            text = re.sub(r"\n{3,}", "\n\n", text)
        return text, removed

    def hold_back(self, text: str) -> str:
        """For a draft: cut a trailing fragment that starts an instruction sentence (at least 3
        words), so it is not shown before it is complete and can be recognised."""
        words = list(re.finditer(r"\w+", text[-600:]))
        if len(words) < 3:
            return text
        tail = [w.group(0).lower() for w in words]
        offset = max(len(text) - 600, 0)
        cut = len(text)
        for sentence in self.sentences:
            for k in range(min(len(sentence) - 1, len(tail)), 2, -1):
                if tail[-k:] == sentence[:k]:
                    cut = min(cut, offset + words[-k].start())
                    break
        return text[:cut]


def inert_text(text: str) -> str:
    """Corpus text shown outside the sanitised answer (titles in source lists): no markup, no
    address a renderer would turn into a link."""
    text = AUTOLINK.sub("(link removed)", text)
    return text.replace("[", "(").replace("]", ")").replace("<", "&lt;").replace(">", "&gt;")


def source_list(citations: list[Citation]) -> str:
    if not citations:
        return ""
    lines = ["", "", "**Sources**", ""]
    for c in citations:
        title = inert_text(c.title)
        line = f"[{c.n}] {title}"
        if c.url:
            line += f" — [{c.url}]({c.url})"
        if c.flagged:
            line += " (⚠ weak support for the sentence citing it)"
        lines.append(line + "  ")
    return "\n".join(lines)
