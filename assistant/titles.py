"""Resolving the names a question uses ("SegMamba", "Swin SMT", "ChatCAD+") to paper titles.

Hand-written because no retrieval library resolves short system names against a title list: the
aliases come from the titles themselves (the part before the colon, and distinctive CamelCase /
acronym / digit-bearing tokens), matched exactly after normalisation, and fuzzily with difflib for
near misses ("Segmamba", "MedVit", "SwinSMT").
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from assistant.corpus import normalize_title

ATOM = re.compile(r"[A-Za-z0-9+]+")  # what an alias pattern's word boundaries delimit
SEPARATORS = re.compile(r"[\s\-_./]*")  # what may stand between the parts of an alias
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


def _alias_pattern(alias: str, case_sensitive: bool = False) -> re.Pattern[str]:
    parts = re.findall(r"[A-Za-z0-9]+|\+", alias)
    body = ""
    for part in parts:
        body += re.escape(part) if part == "+" else (r"[\s\-_./]*" if body else "") + re.escape(part)
    return re.compile(rf"(?<![A-Za-z0-9+]){body}(?![A-Za-z0-9+])",
                      0 if case_sensitive else re.IGNORECASE)


def near_miss_words(question: str) -> list[re.Match[str]]:
    """The question's words that may be a name written with a typo: name-like or capitalised, and
    of five letters or more once compacted, generic terms aside."""
    return [m for m in TOKEN.finditer(question)
            if len(_compact(m.group(0))) >= 5 and normalize_title(m.group(0)) not in GENERIC
            and (is_namelike(m.group(0)) or m.group(0)[0].isupper())]


# Where prose introduces a name: "we propose X", "called X", "termed X", "(X)" after the words it
# abbreviates. Conventions of scientific English, not of any one corpus.
INTRODUCED = re.compile(
    r"\b(?:propose[sd]?|present(?:s|ed)?|introduce[sd]?|develop(?:s|ed)?|name[sd]?|call(?:s|ed)?|"
    r"term(?:s|ed)?|dub(?:s|bed)?|coin(?:s|ed)?|release[sd]?|build|built|design(?:s|ed)?)\b"
    r"(?:\s+(?:a|an|the|our|new|novel|first|here|this|we|it|as|model|framework|method|dataset|"
    r"benchmark|system|approach|network|architecture|pipeline|agent|tool|suite|family|series|"
    r"of|for|called|named|termed|dubbed)\b[,]?){0,4}\s+(?P<a>[A-Za-z][A-Za-z0-9\-+]*[A-Za-z0-9+])"
    r"|\((?P<b>[A-Za-z][A-Za-z0-9\-+]*[A-Za-z0-9+])\)"
)


def introduced_names(text: str) -> set[str]:
    """Name-like words (MeWM, UniT, M-SYNTH) that a paper's text introduces as its own names."""
    names = set()
    for match in INTRODUCED.finditer(text):
        name = match.group("a") or match.group("b")
        if name and is_namelike(name) and len(_compact(name)) >= 3:
            names.add(name)
    return names


def _mentions(texts: Mapping[str, str], wanted: set[str]) -> dict[str, int]:
    """How many papers mention each compacted word of `wanted` (word-bounded, any case)."""
    counts: dict[str, int] = defaultdict(int)
    compact: dict[str, str] = {}  # most tokens recur across papers: compact each spelling once
    for text in texts.values():
        words = set()
        for token in set(TOKEN.findall(text)):
            word = compact.get(token)
            if word is None:
                word = compact[token] = _compact(token)
            words.add(word)
        for word in words & wanted:
            counts[word] += 1
    return counts


def _lowercase_words(texts: Mapping[str, str], wanted: set[str]) -> set[str]:
    """The words of `wanted` that some text writes in lower case (ordinary words)."""
    found: set[str] = set()
    for text in texts.values():
        found |= wanted & set(re.findall(r"\b[a-z][a-z0-9\-+]*", text))
        if found == wanted:
            break
    return found


def _exact_mentions(texts: Mapping[str, str], wanted: set[str]) -> dict[str, int]:
    """How many papers write each word of `wanted` in exactly that capitalisation."""
    counts: dict[str, int] = defaultdict(int)
    if not wanted:
        return counts
    for text in texts.values():
        for word in wanted & set(TOKEN.findall(text)):
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
        # Names an abstract introduces ("we propose MeWM", "a Unified Model (UniT)"): a paper is
        # often asked about by the name of its system when the title does not carry it.
        introduced: set[str] = set()
        for pid, text in (texts or {}).items():
            for alias in introduced_names(text) - set(aliases):
                introduced.add(alias)
                aliases[alias].add(pid)
        mentions = _mentions(texts, {_compact(a) for a in aliases if " " not in a}) if texts else {}
        # A capitalised name whose lower-case spelling is an ordinary word of the corpus ("UniT",
        # "CARE" against "unit", "care") is counted and matched in its own capitalisation only.
        lower_words = _lowercase_words(texts, {a.lower() for a in aliases if " " not in a}) \
            if texts else set()
        self.case_sensitive = {a for a in aliases if a != a.lower() and a.lower() in lower_words}
        exact = _exact_mentions(texts, self.case_sensitive) if texts else {}
        limit = max(MIN_GENERIC_MENTIONS, max_mention_share * len(texts or ()))

        def mentioned(a: str) -> int:
            return exact.get(a, 0) if a in self.case_sensitive else mentions.get(_compact(a), 0)

        # A name introduced in an abstract alone must be that paper's own: no other paper says it
        # (papers also spell out the datasets they use: "Medical Question Answering (MedQA)").
        self.aliases = {
            a: ids for a, ids in aliases.items()
            if len(ids) <= MAX_PAPERS_PER_ALIAS and normalize_title(a) not in GENERIC
            and mentioned(a) <= (len(ids) if a in introduced else limit)
        }
        self._by_compact: dict[str, set[str]] = defaultdict(set)
        self._aliases_by_compact: dict[str, list[str]] = defaultdict(list)
        for alias, ids in self.aliases.items():
            self._by_compact[_compact(alias)].update(ids)
            self._aliases_by_compact[_compact(alias)].append(alias)
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._max_atoms = max((len(ATOM.findall(a)) for a in self.aliases), default=0)
        # Near-miss candidates share three letters in a row, or the first or last two (see _near).
        self._grams: dict[tuple[str, int], list[str]] = defaultdict(list)
        # Names from abstracts are matched as written only: a near miss of a dataset's name
        # ("MedQA") must not turn into another paper's system name ("MedVQA").
        fuzzy = {_compact(a) for a in self.aliases if a not in introduced}
        for key in fuzzy:
            for gram in _grams(key):
                self._grams[(gram, len(key))].append(key)
        # Whole titles, found by their first two words: a question is checked against the few
        # titles that start with a pair of its words, not against every title.
        self._normalized_titles: dict[str, str] = {}
        self._title_starts: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for pid, title in self.titles.items():
            ntitle = normalize_title(title)
            if len(ntitle) > 20:
                self._normalized_titles[pid] = ntitle
                self._title_starts[tuple(ntitle.split()[:2])].append(pid)

    @staticmethod
    def _aliases(title: str) -> set[str]:
        found: set[str] = set()
        head, sep, _ = title.partition(":")
        if sep and 1 <= len(head.split()) <= 4:
            found.add(head.strip())
            if re.fullmatch(r"[A-Za-z]\d|\d[A-Za-z]", head.strip()):
                return found  # "m1: ...": a two-character name only where it heads the title
        for token in TOKEN.findall(title):
            if is_namelike(token):
                found.add(token)
                # "SAM-Med2D" is also called "SAM Med2D"; "VM-UNet" also "VMUNet".
        return {a for a in found if len(_compact(a)) >= 3}

    def resolve(self, question: str, threshold: float = 0.88) -> list[EntityMatch]:
        """Papers the question names, in the order the names appear.

        Each step looks up the question's own words in dictionaries built from the titles, so its
        cost follows the question's length, not the corpus size."""
        matches: dict[str, EntityMatch] = {}
        positions: dict[str, int] = {}
        norm_q = f" {normalize_title(question)} "
        # 1. a whole title quoted or pasted into the question
        words = norm_q.split()
        starts = [*((w,) for w in words), *pairwise(words)]  # a title's first word, or two
        for start in dict.fromkeys(starts):
            for pid in self._title_starts.get(start, ()):
                ntitle = self._normalized_titles[pid]
                if pid not in matches and f" {ntitle} " in norm_q:
                    matches[pid] = EntityMatch(self.titles[pid], pid, self.titles[pid], True)
                    # positions are offsets in the question as written
                    positions[pid] = norm_q.index(ntitle) * len(question) // max(len(norm_q), 1)
        # 2. exact aliases in any case, word-bounded, with or without separators between their
        # parts ("Swin SMT", "SwinSMT", "Swin-SMT"); "ChatCAD" is not found inside "ChatCAD+"
        spans = self._alias_spans(question)
        # Two papers' names that differ only in case ("VM-UNet", "VM-Unet"): the one written as
        # the question writes it is meant.
        exact = {pos for pos, alias in spans if question[pos:pos + len(alias)] == alias}
        for pos, alias in spans:
            if pos in exact and question[pos:pos + len(alias)] != alias:
                continue
            for pid in sorted(self.aliases[alias]):
                if pid not in matches:
                    matches[pid] = EntityMatch(alias, pid, self.titles[pid], True)
                    positions[pid] = pos
        # 3. near misses of name-like words in the question
        for match in near_miss_words(question):
            word = match.group(0)
            if match.start() in {pos for pos, _ in spans}:
                continue  # found as written in step 2
            cw = _compact(word)
            if cw in self._by_compact:
                candidates = [(1.0, cw)]
            else:
                close = difflib.get_close_matches(cw, self._near(cw, threshold), n=2, cutoff=threshold)
                candidates = [(difflib.SequenceMatcher(None, cw, c).ratio(), c) for c in close]
            for _ratio, key in candidates[:1]:
                for pid in sorted(self._by_compact[key]):
                    if pid not in matches:
                        matches[pid] = EntityMatch(word, pid, self.titles[pid], key == cw)
                        positions[pid] = len(question[: match.start()])
        return sorted(matches.values(), key=lambda m: positions[m.paper_id])

    def _alias_spans(self, question: str) -> list[tuple[int, str]]:
        """(offset, alias) for every alias written in the question. A match of an alias's pattern
        starts and ends at the edges of runs of letters, digits and "+" ("atoms") and has only
        separators between them, so every such span of up to `_max_atoms` atoms is looked up by
        its compact form and confirmed with the pattern."""
        atoms = list(ATOM.finditer(question))
        found: list[tuple[int, str]] = []
        for i, first in enumerate(atoms):
            key = ""
            for j in range(i, min(i + self._max_atoms, len(atoms))):
                if j > i and not SEPARATORS.fullmatch(question, atoms[j - 1].end(), atoms[j].start()):
                    break
                key += atoms[j].group(0).lower()
                for alias in self._aliases_by_compact.get(key, ()):
                    pattern = self._patterns.get(alias)
                    if pattern is None:
                        pattern = self._patterns[alias] = _alias_pattern(
                            alias, alias in self.case_sensitive)
                    if pattern.fullmatch(question, first.start(), atoms[j].end()):
                        found.append((first.start(), alias))
        return found

    def _near(self, key: str, threshold: float) -> list[str]:
        """Names that can be within `threshold` (difflib's ratio) of `key`: of a length the ratio
        allows, and sharing three letters in a row or the first or last two with it. A name as
        close as the threshold asks shares them in practice (one edit in a name of five letters
        leaves both ends or a triple intact); looking them up costs time per question, where
        comparing with every name cost time per name in the corpus."""
        n = len(key)
        # The ratio is 2 * matches / (n + length) and matches <= the shorter length; the epsilon
        # keeps a bound that is exact in decimals (6 * 1.2 / 0.8 = 9) from rounding down.
        lo = math.ceil(n * threshold / (2 - threshold) - 1e-9)
        hi = math.floor(n * (2 - threshold) / threshold + 1e-9) if threshold > 0 else 4 * n
        out: dict[str, None] = {}
        for length in range(lo, hi + 1):
            for gram in _grams(key):
                out.update(dict.fromkeys(self._grams.get((gram, length), ())))
        return list(out)


def _grams(key: str) -> set[str]:
    """The three-letter runs of a compact name, and its first and last two letters marked."""
    return {key[i:i + 3] for i in range(len(key) - 2)} | {"^" + key[:2], "$" + key[-2:]}
