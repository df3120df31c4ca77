"""Resolving the names a question uses ("SegMamba", "Swin SMT", "ChatCAD+") to paper titles.

Hand-written because no retrieval library resolves short system names against a title list: the
aliases come from the titles themselves (the part before the colon, and distinctive CamelCase /
acronym / digit-bearing tokens), matched exactly after normalisation, and fuzzily with difflib for
near misses ("Segmamba", "MedVit", "SwinSMT").
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from assistant.corpus import normalize_title

TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-+&.]*[A-Za-z0-9+]|[A-Za-z0-9]")
# Words that look like names in titles but name no single system.
GENERIC = {
    "2d", "3d", "ct", "mri", "pet", "x ray", "llm", "llms", "ai", "ml", "vlm", "vlms", "mllm",
    "mllms", "covid 19", "u net", "unet", "gpt 4", "gpt 4v", "chatgpt", "rl", "ehr", "ehrs", "qa",
    "vqa", "nlp", "cnn", "cnns", "gan", "gans", "vit", "sam", "sam 2", "sam2", "rag", "ecg", "eeg",
    "icu", "us", "ii", "iii", "kan", "lora", "mamba", "rwkv", "lstm", "mae", "bert", "clip",
}
MAX_PAPERS_PER_ALIAS = 2
# A title word mentioned by at most this many papers is never judged generic by its mentions alone.
MIN_GENERIC_MENTIONS = 3


@dataclass(frozen=True)
class EntityMatch:
    name: str  # as written in the question
    paper_id: str
    title: str
    exact: bool


def is_namelike(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    if len(token) < 3 and not token.isupper():
        return False
    has_inner_upper = any(c.isupper() for c in token[1:])
    has_digit = any(c.isdigit() for c in token) and bool(letters)
    return has_inner_upper or has_digit or token.endswith("+") or (token.isupper() and len(token) >= 3)


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", text.lower())


def _alias_pattern(alias: str) -> re.Pattern[str]:
    parts = re.findall(r"[A-Za-z0-9]+|\+", alias)
    body = ""
    for part in parts:
        body += re.escape(part) if part == "+" else (r"[\s\-_./]*" if body else "") + re.escape(part)
    return re.compile(rf"(?<![A-Za-z0-9+]){body}(?![A-Za-z0-9+])", re.IGNORECASE)


def _mentions(texts: Mapping[str, str], wanted: set[str]) -> dict[str, int]:
    """How many papers mention each compacted word of `wanted` (word-bounded, any case)."""
    counts: dict[str, int] = defaultdict(int)
    for text in texts.values():
        for word in {_compact(t) for t in TOKEN.findall(text)} & wanted:
            counts[word] += 1
    return counts


class TitleIndex:
    def __init__(self, titles: Mapping[str, str], texts: Mapping[str, str] | None = None,
                 max_mention_share: float = 0.015) -> None:
        """`titles` maps paper id -> exact title. `texts` (paper id -> title and abstract), when
        given, tells names from generic terms: a one-word alias that more than
        `max_mention_share` of the papers (and more than MIN_GENERIC_MENTIONS) mention
        ("GPU", "MIMIC-IV", "Pre-Training") names no single paper."""
        self.titles = dict(titles)
        aliases: dict[str, set[str]] = defaultdict(set)
        for pid, title in self.titles.items():
            for alias in self._aliases(title):
                aliases[alias].add(pid)
        mentions = _mentions(texts, {_compact(a) for a in aliases if " " not in a}) if texts else {}
        limit = max(MIN_GENERIC_MENTIONS, max_mention_share * len(texts or ()))
        self.aliases = {
            a: ids for a, ids in aliases.items()
            if len(ids) <= MAX_PAPERS_PER_ALIAS and normalize_title(a) not in GENERIC
            and mentions.get(_compact(a), 0) <= limit
        }
        self._by_compact: dict[str, set[str]] = defaultdict(set)
        for alias, ids in self.aliases.items():
            self._by_compact[_compact(alias)].update(ids)
        self._patterns = {alias: _alias_pattern(alias) for alias in self.aliases}
        self._normalized_titles = {pid: normalize_title(t) for pid, t in self.titles.items()}

    @staticmethod
    def _aliases(title: str) -> set[str]:
        found: set[str] = set()
        head, sep, _ = title.partition(":")
        if sep and 1 <= len(head.split()) <= 4:
            found.add(head.strip())
        for token in TOKEN.findall(title):
            if is_namelike(token):
                found.add(token)
                # "SAM-Med2D" is also called "SAM Med2D"; "VM-UNet" also "VMUNet".
        return {a for a in found if len(_compact(a)) >= 3}

    def resolve(self, question: str, threshold: float = 0.88) -> list[EntityMatch]:
        """Papers the question names, in the order the names appear."""
        matches: dict[str, EntityMatch] = {}
        positions: dict[str, int] = {}
        norm_q = f" {normalize_title(question)} "
        # 1. a whole title quoted or pasted into the question
        for pid, ntitle in self._normalized_titles.items():
            if len(ntitle) > 20 and f" {ntitle} " in norm_q:
                matches[pid] = EntityMatch(self.titles[pid], pid, self.titles[pid], True)
                # positions are offsets in the question as written
                positions[pid] = norm_q.index(ntitle) * len(question) // max(len(norm_q), 1)
        # 2. exact aliases in any case, word-bounded, with or without separators between their
        # parts ("Swin SMT", "SwinSMT", "Swin-SMT"); "ChatCAD" is not found inside "ChatCAD+"
        for alias, ids in self.aliases.items():
            found = self._patterns[alias].search(question)
            pos = found.start() if found else -1
            if pos >= 0:
                for pid in ids:
                    if pid not in matches:
                        matches[pid] = EntityMatch(alias, pid, self.titles[pid], True)
                        positions[pid] = pos
        # 3. near misses of name-like words in the question
        for match in TOKEN.finditer(question):
            word = match.group(0)
            cw = _compact(word)
            if len(cw) < 5 or normalize_title(word) in GENERIC:
                continue
            if not is_namelike(word) and not word[0].isupper():
                continue
            if cw in self._by_compact:
                candidates = [(1.0, cw)]
            else:
                close = difflib.get_close_matches(cw, self._by_compact.keys(), n=2, cutoff=threshold)
                candidates = [(difflib.SequenceMatcher(None, cw, c).ratio(), c) for c in close]
            for _ratio, key in candidates[:1]:
                for pid in self._by_compact[key]:
                    if pid not in matches:
                        matches[pid] = EntityMatch(word, pid, self.titles[pid], key == cw)
                        positions[pid] = len(question[: match.start()])
        return sorted(matches.values(), key=lambda m: positions[m.paper_id])
