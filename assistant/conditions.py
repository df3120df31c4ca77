"""Diseases a question names that the corpus never mentions: a signal to abstain.

A question about a disease the corpus never names ("Which model detects tuberculosis on chest
X-rays?") still lands close to the papers of its familiar setting (chest X-rays) in dense search and
BM25, so similarity alone cannot tell it from an answerable one. The disease names come from the
Disease Ontology (data/disease-names.txt, source in data/README.md). Written here because no library
at hand pairs an offline disease lexicon with a phrase lookup: it is a set of word tuples, matched
longest first against the question's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from assistant.resources import disease_names

WORDS = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORDS.findall(text.lower())


class ConditionLexicon:
    def __init__(self, names: Iterable[str]) -> None:
        # Names shorter than four letters ("CLL") are acronyms that mean other things in prose.
        self.names = {tuple(words(n)): n.strip() for n in names if len(n.strip()) >= 4}
        self.names.pop((), None)
        self.longest = max((len(n) for n in self.names), default=0)

    @classmethod
    def load(cls, path: Path | None = None) -> ConditionLexicon:
        lines = (path or disease_names()).read_text(encoding="utf-8").splitlines()
        return cls(line for line in lines if line.strip() and not line.startswith("#"))

    def mentioned(self, text: str) -> list[tuple[str, ...]]:
        """The disease names in the text, longest match first, left to right."""
        tokens = words(text)
        found: list[tuple[str, ...]] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.longest, len(tokens) - i), 0, -1):
                if tuple(tokens[i:i + n]) in self.names:
                    found.append(tuple(tokens[i:i + n]))
                    i += n
                    break
            else:
                i += 1
        return found


@lru_cache(maxsize=1)
def default_lexicon() -> ConditionLexicon:
    """Loaded on first use (not at import), once per process."""
    return ConditionLexicon.load()
