"""Follow-up questions: "and what dataset did the second one use?" resolved against the
conversation before retrieval.

The previous answer's source list ("[2] Exact Title") is the conversation's memory of which papers
were discussed, so this works the same for the CLI, the web UI and stateless API clients that
resend the history. Ordinals and pronouns are resolved in code (reliable with any model, and with
none); in LLM mode the question is also rewritten by the condense prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.corpus import normalize_title

SOURCE_LINE = re.compile(r"^\[(\d+)\]\s+(.+?)(?:\s+—\s+\[.*)?(?:\s+\(⚠.*)?\s*$")
ORDINALS = {
    "first": 0, "1st": 0, "former": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2,
    "fourth": 3, "4th": 3, "fifth": 4, "5th": 4, "last": -1, "latter": -1,
}
ORDINAL = re.compile(r"\b(" + "|".join(ORDINALS) + r")\b(?:\s+(?:one|paper|study|model|method|work|"
                     r"system|approach|article))?", re.IGNORECASE)
NUMBERED = re.compile(r"(?:\[(\d+)\]|\b(?:paper|source|reference|number|#)\s*#?(\d+)\b)", re.I)
SINGULAR = re.compile(r"\b(it|its|this (?:paper|one|model|study|work|method|system)|that (?:paper|"
                      r"one|model|study|work|method|system)|the paper|the model|the method)\b", re.I)
PLURAL = re.compile(r"\b(they|their|them|these|those|both|each of them|either|the two|the papers)\b",
                    re.I)
FOLLOWUP_START = re.compile(r"^\s*(and|also|what about|how about|then|so)\b", re.I)


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass
class Resolution:
    question: str  # standalone form used for retrieval
    paper_titles: list[str] = field(default_factory=list)
    is_followup: bool = False


def cited_titles(answer_text: str) -> list[tuple[int, str]]:
    """(number, title) pairs of an answer's source list, in order."""
    found: list[tuple[int, str]] = []
    in_sources = False
    for line in answer_text.splitlines():
        if line.strip().strip("*").lower() == "sources":
            in_sources = True
            continue
        if in_sources:
            match = SOURCE_LINE.match(line.strip())
            if match:
                title = match.group(2).replace("&lt;", "<").replace("&gt;", ">")
                found.append((int(match.group(1)), title))
    return found


def resolve(question: str, history: Sequence[Turn], names_papers: bool) -> Resolution:
    """Point a follow-up at the papers it refers to. `names_papers`: the question already names
    papers itself, so pronouns refer to those, not to the conversation."""
    previous = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    sources = cited_titles(previous)
    if not sources:
        return Resolution(question)
    titles: list[str] = []
    for match in ORDINAL.finditer(question):
        index = ORDINALS[match.group(1).lower()]
        if -len(sources) <= index < len(sources):
            titles.append(sources[index][1])
    by_number = dict(sources)
    for match in NUMBERED.finditer(question):
        n = int(match.group(1) or match.group(2))
        if n in by_number:
            titles.append(by_number[n])
    if not titles and not names_papers:
        if PLURAL.search(question):
            titles = [t for _, t in sources]
        elif SINGULAR.search(question) or FOLLOWUP_START.search(question):
            titles = [sources[0][1]]
    titles = list(dict.fromkeys(titles))
    if not titles:
        return Resolution(question)
    standalone = f"{question.strip()} (about: {'; '.join(titles)})"
    return Resolution(standalone, titles, True)


def history_text(history: Sequence[Turn], max_chars: int = 4_000) -> str:
    """The conversation as plain text for the condense prompt, newest last, trimmed from the start."""
    lines = [f"{t.role}: {t.content.strip()}" for t in history]
    text = "\n".join(lines)
    return text[-max_chars:]


def same_title(a: str, b: str) -> bool:
    return normalize_title(a) == normalize_title(b)
