"""Resolving the names a question uses ("SegMamba", "Swin SMT", "ChatCAD+") to paper titles.

Hand-written because no retrieval library resolves short system names against a title list: the
aliases come from the titles themselves (the part before the colon, and distinctive CamelCase /
acronym / digit-bearing tokens), matched exactly after normalisation, and fuzzily with difflib for
near misses ("Segmamba", "MedVit", "SwinSMT").

The algorithm (`NameResolver`) runs over lookups: dictionaries in memory (`TitleIndex`, built from a
title list) or the store's lexical index on disk (name_index.py, fed by `paper_name_fields`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

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
MIN_WHOLE_TITLE = 20  # characters a normalised title needs to be found written whole in a question


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


NOT_COMPACT = re.compile(r"[^a-z0-9+]")
TOKEN_PUNCTUATION = str.maketrans("", "", "-&.")  # what TOKEN lets inside a word, _compact drops


def compact(text: str) -> str:
    """A name's lower-case letters, digits and "+": what its spellings are looked up by."""
    return NOT_COMPACT.sub("", text.lower())


_compact = compact


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
LOWER_WORD = re.compile(r"\b[a-z][a-z0-9\-+]*")  # a word written in lower case (an ordinary word)


def introduced_names(text: str) -> set[str]:
    """Name-like words (MeWM, UniT, M-SYNTH) that a paper's text introduces as its own names."""
    names = set()
    for match in INTRODUCED.finditer(text):
        name = match.group("a") or match.group("b")
        if name and is_namelike(name) and len(_compact(name)) >= 3:
            names.add(name)
    return names


def spelled_words(texts: Iterable[str]) -> set[str]:
    """The words of a paper's texts as written (TOKEN), and those written in lower case: what
    case-sensitive names are told apart and counted by (`_lowercase_words`, `_exact_mentions`)."""
    words: set[str] = set()
    for text in texts:
        words.update(TOKEN.findall(text))
        words.update(LOWER_WORD.findall(text))
    return words


def may_be_case_sensitive(alias: str) -> bool:
    """Whether an alias is of the form whose capitalisation can matter: one word, not all lower
    case, starting with a letter (a lower-case word of the corpus starts with one)."""
    return " " not in alias and alias != alias.lower() and alias[:1].isalpha()


def mention_words(texts: Iterable[str]) -> set[str]:
    """The compacted words of a paper's texts (title, chunks): what its mentions of a name are
    counted by."""
    tokens: set[str] = set()
    for text in texts:
        tokens.update(TOKEN.findall(text))
    # A TOKEN holds ASCII letters, digits and "-+&." only: this is _compact, without a regex.
    return {token.lower().translate(TOKEN_PUNCTUATION) for token in tokens}


def _mentions(texts: Mapping[str, str], wanted: set[str]) -> dict[str, int]:
    """How many papers mention each compacted word of `wanted` (word-bounded, any case)."""
    counts: dict[str, int] = defaultdict(int)
    for text in texts.values():
        for word in mention_words([text]) & wanted:
            counts[word] += 1
    return counts


def _lowercase_words(texts: Mapping[str, str], wanted: set[str]) -> set[str]:
    """The words of `wanted` that some text writes in lower case (ordinary words)."""
    found: set[str] = set()
    for text in texts.values():
        found |= wanted & set(LOWER_WORD.findall(text))
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


def alias_kept(alias: str, papers: int, mentions: int, n_papers: int, max_mention_share: float,
               introduced: bool = False) -> bool:
    """Whether an alias names a paper: used by at most MAX_PAPERS_PER_ALIAS titles, not a generic
    term, and (a one-word alias) mentioned by at most `max_mention_share` of the papers or
    MIN_GENERIC_MENTIONS of them, whichever is more. A name only an abstract introduces must be
    that paper's own: no other paper mentions it (papers also spell out the datasets they use:
    "Medical Question Answering (MedQA)")."""
    limit = max(MIN_GENERIC_MENTIONS, max_mention_share * n_papers)
    if not (1 <= papers <= MAX_PAPERS_PER_ALIAS and normalize_title(alias) not in GENERIC):
        return False
    if introduced:
        return mentions <= 1  # the paper that introduces it, and no other
    return " " in alias or mentions <= limit


def title_aliases(title: str) -> set[str]:
    """A title's names: the part before the colon (up to four words) and its name-like tokens."""
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


@dataclass(frozen=True)
class PaperNames:
    """What the lexical index keeps of one paper for name resolution (see name_index.py)."""

    aliases: list[str]  # "<compact>\t<alias>": the aliases, found by their compact form
    # "<compact>\t<alias>": names the paper's text introduces that are not among its title's
    # aliases; one counts only where no title gives it and no other paper mentions it.
    introduced: list[str]
    grams: list[str]  # "<length>\t<gram>\t<compact>": near-miss candidates (see NameResolver._near)
    ntitle: str  # the normalised title, when long enough to be matched whole ("" otherwise)
    mentions: set[str]  # compacted words of the title and text
    spelled: set[str]  # its words as written, and those written in lower case (spelled_words)
    atoms: int  # most atoms in one of its aliases
    title_words: int  # words of ntitle


def alias_term(key: str, alias: str) -> str:
    return f"{key}\t{alias}"


def gram_prefix(length: int, gram: str) -> str:
    return f"{length:03d}\t{gram}\t"


def paper_name_fields(title: str, texts: Sequence[str]) -> PaperNames:
    """A paper's names, from its title and its texts (the chunks), computed when it is written."""
    aliases = title_aliases(title)
    # As the in-memory index reads a paper: its title and chunks, one per line.
    introduced = introduced_names("\n".join([title, *texts])) - aliases
    keys = {_compact(a) for a in aliases}
    ntitle = normalize_title(title)
    ntitle = ntitle if len(ntitle) > MIN_WHOLE_TITLE else ""
    return PaperNames(
        aliases=sorted(alias_term(_compact(a), a) for a in aliases),
        introduced=sorted(alias_term(_compact(a), a) for a in introduced),
        grams=sorted({gram_prefix(len(k), g) + k for k in keys for g in name_grams(k)}),
        ntitle=ntitle,
        mentions=mention_words([title, *texts]),
        spelled=spelled_words([title, *texts]),
        atoms=max((len(ATOM.findall(a)) for a in aliases | introduced), default=0),
        title_words=len(ntitle.split()),
    )


class NameResolver:
    """Resolution of the names a question uses, over lookups a subclass provides: `TitleIndex`
    from dictionaries in memory, `name_index.IndexedTitles` from the lexical index on disk. Each
    step looks up the question's own words, so its cost follows the question's length, not the
    corpus size."""

    titles: Mapping[str, str]

    # --- lookups ----------------------------------------------------------------------------
    def _lookups(self) -> NameLookups:
        raise NotImplementedError

    def resolve(self, question: str, threshold: float = 0.88) -> list[EntityMatch]:
        """Papers the question names, in the order the names appear."""
        names = self._lookups()
        matches: dict[str, EntityMatch] = {}
        positions: dict[str, int] = {}
        norm_q = f" {normalize_title(question)} "
        # 1. a whole title quoted or pasted into the question
        for pid, title, ntitle in names.whole_titles(norm_q.split()):
            if pid not in matches and f" {ntitle} " in norm_q:
                matches[pid] = EntityMatch(title, pid, title, True)
                # positions are offsets in the question as written
                positions[pid] = norm_q.index(ntitle) * len(question) // max(len(norm_q), 1)
        # 2. exact aliases in any case, word-bounded, with or without separators between their
        # parts ("Swin SMT", "SwinSMT", "Swin-SMT"); "ChatCAD" is not found inside "ChatCAD+"
        spans = self._alias_spans(names, question)
        # Two papers' names that differ only in case ("VM-UNet", "VM-Unet"): the one written as
        # the question writes it is meant.
        exact = {pos for pos, alias in spans if question[pos:pos + len(alias)] == alias}
        for pos, alias in spans:
            if pos in exact and question[pos:pos + len(alias)] != alias:
                continue
            for pid in sorted(names.alias_papers(alias)):
                if pid not in matches:
                    matches[pid] = EntityMatch(alias, pid, names.title(pid), True)
                    positions[pid] = pos
        # 3. near misses of name-like words in the question
        for match in near_miss_words(question):
            word = match.group(0)
            if match.start() in {pos for pos, _ in spans}:
                continue  # found as written in step 2
            cw = _compact(word)
            key = cw if names.compact_papers(cw) else self._closest(names, cw, threshold)
            if key is None:
                continue
            for pid in sorted(names.compact_papers(key)):
                if pid not in matches:
                    matches[pid] = EntityMatch(word, pid, names.title(pid), key == cw)
                    positions[pid] = len(question[: match.start()])
        return sorted(matches.values(), key=lambda m: positions[m.paper_id])

    def _alias_spans(self, names: NameLookups, question: str) -> list[tuple[int, str]]:
        """(offset, alias) for every alias written in the question. A match of an alias's pattern
        starts and ends at the edges of runs of letters, digits and "+" ("atoms") and has only
        separators between them, so every such span of up to `max_atoms` atoms is looked up by
        its compact form and confirmed with the pattern."""
        atoms = list(ATOM.finditer(question))
        found: list[tuple[int, str]] = []
        most = names.max_atoms()
        for i, first in enumerate(atoms):
            key = ""
            for j in range(i, min(i + most, len(atoms))):
                if j > i and not SEPARATORS.fullmatch(question, atoms[j - 1].end(), atoms[j].start()):
                    break
                key += atoms[j].group(0).lower()
                for alias in names.aliases_for(key):
                    pattern = _pattern(alias, names.case_sensitive(alias))
                    if pattern.fullmatch(question, first.start(), atoms[j].end()):
                        found.append((first.start(), alias))
        return found

    @staticmethod
    def _closest(names: NameLookups, key: str, threshold: float) -> str | None:
        """The name closest to `key` (difflib's ratio, at least `threshold`; ties go to the
        greater string, as in difflib.get_close_matches), among those that name a paper."""
        near = names.near_keys(key, _length_range(len(key), threshold))
        for candidate in difflib.get_close_matches(key, near, n=max(len(near), 1), cutoff=threshold):
            if names.fuzzy_key(candidate):
                return candidate
        return None


class NameLookups(Protocol):
    def whole_titles(self, words: list[str]) -> list[tuple[str, str, str]]:
        """(paper id, title, normalised title) of the titles that may be written in the question
        (its normalised words), in the order their first two words appear in it."""
        ...

    def aliases_for(self, key: str) -> Iterable[str]:
        """The kept aliases whose compact form is `key`."""
        ...

    def alias_papers(self, alias: str) -> set[str]: ...

    def compact_papers(self, key: str) -> set[str]:
        """The papers of the kept aliases whose compact form is `key` (empty: none)."""
        ...

    def near_keys(self, key: str, lengths: range) -> list[str]:
        """Compact names of these lengths sharing a three-letter run or the first or last two
        letters with `key` (kept ones at least; others are tolerated)."""
        ...

    def max_atoms(self) -> int: ...

    def fuzzy_key(self, key: str) -> bool:
        """Whether a kept alias from a title (not one an abstract introduces) has this compact
        form: only those are reached by a near miss."""
        ...

    def case_sensitive(self, alias: str) -> bool:
        """Whether the alias is matched in its own capitalisation only ("UniT", not "unit")."""
        ...

    def title(self, pid: str) -> str: ...


@lru_cache(maxsize=4_096)
def _pattern(alias: str, case_sensitive: bool = False) -> re.Pattern[str]:
    return _alias_pattern(alias, case_sensitive)


def _length_range(n: int, threshold: float) -> range:
    """Lengths a name can have to be within `threshold` (difflib's ratio) of one of length n: the
    ratio is 2 * matches / (n + length) and matches <= the shorter length; the epsilon keeps a
    bound that is exact in decimals (6 * 1.2 / 0.8 = 9) from rounding down."""
    lo = math.ceil(n * threshold / (2 - threshold) - 1e-9)
    hi = math.floor(n * (2 - threshold) / threshold + 1e-9) if threshold > 0 else 4 * n
    return range(lo, hi + 1)


class TitleIndex(NameResolver):
    def __init__(self, titles: Mapping[str, str], texts: Mapping[str, str] | None = None,
                 max_mention_share: float = 0.015) -> None:
        """`titles` maps paper id -> exact title. `texts` (paper id -> title and abstract), when
        given, tells names from generic terms: a one-word alias that more than
        `max_mention_share` of the papers (and more than MIN_GENERIC_MENTIONS) mention
        ("GPU", "MIMIC-IV", "Pre-Training") names no single paper."""
        self.titles = dict(titles)
        aliases: dict[str, set[str]] = defaultdict(set)
        for pid, title in self.titles.items():
            for alias in title_aliases(title):
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
        self.case_sensitive_aliases = {a for a in aliases if a != a.lower()
                                       and a.lower() in lower_words}
        exact = _exact_mentions(texts, self.case_sensitive_aliases) if texts else {}

        def mentioned(a: str) -> int:
            return exact.get(a, 0) if a in self.case_sensitive_aliases else mentions.get(_compact(a), 0)

        self.aliases = {
            a: ids for a, ids in aliases.items()
            if alias_kept(a, len(ids), mentioned(a), len(texts or ()), max_mention_share,
                          introduced=a in introduced)
        }
        self._by_compact: dict[str, set[str]] = defaultdict(set)
        self._aliases_by_compact: dict[str, list[str]] = defaultdict(list)
        for alias, ids in self.aliases.items():
            self._by_compact[_compact(alias)].update(ids)
            self._aliases_by_compact[_compact(alias)].append(alias)
        self._max_atoms = max((len(ATOM.findall(a)) for a in self.aliases), default=0)
        # Near-miss candidates share three letters in a row, or the first or last two (see _near).
        self._grams: dict[tuple[str, int], list[str]] = defaultdict(list)
        # Names from abstracts are matched as written only: a near miss of a dataset's name
        # ("MedQA") must not turn into another paper's system name ("MedVQA").
        self._fuzzy = {_compact(a) for a in self.aliases if a not in introduced}
        for key in self._fuzzy:
            for gram in name_grams(key):
                self._grams[(gram, len(key))].append(key)
        # Whole titles, found by their first two words: a question is checked against the few
        # titles that start with a pair of its words, not against every title.
        self._normalized_titles: dict[str, str] = {}
        self._title_starts: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for pid, title in self.titles.items():
            ntitle = normalize_title(title)
            if len(ntitle) > MIN_WHOLE_TITLE:
                self._normalized_titles[pid] = ntitle
                self._title_starts[tuple(ntitle.split()[:2])].append(pid)

    def _lookups(self) -> NameLookups:
        return self

    def whole_titles(self, words: list[str]) -> list[tuple[str, str, str]]:
        starts = [*((w,) for w in words), *pairwise(words)]  # a title's first word, or two
        return [(pid, self.titles[pid], self._normalized_titles[pid])
                for start in dict.fromkeys(starts) for pid in self._title_starts.get(start, ())]

    def aliases_for(self, key: str) -> Iterable[str]:
        # Sorted, as the index's terms are: the order of two names at one place in the question
        # ("VM-UNet", "VM-Unet") does not depend on the order titles were read in.
        return sorted(self._aliases_by_compact.get(key, ()))

    def alias_papers(self, alias: str) -> set[str]:
        return self.aliases.get(alias, set())

    def compact_papers(self, key: str) -> set[str]:
        return self._by_compact.get(key, set())

    def max_atoms(self) -> int:
        return self._max_atoms

    def case_sensitive(self, alias: str) -> bool:
        return alias in self.case_sensitive_aliases

    def fuzzy_key(self, key: str) -> bool:
        return key in self._fuzzy

    def title(self, pid: str) -> str:
        return self.titles[pid]

    def near_keys(self, key: str, lengths: range) -> list[str]:
        """Names that can be within the threshold of `key`: of a length the ratio allows, and
        sharing three letters in a row or the first or last two with it. A name as close as the
        threshold asks shares them in practice (one edit in a name of five letters leaves both
        ends or a triple intact); looking them up costs time per question, where comparing with
        every name cost time per name in the corpus."""
        out: dict[str, None] = {}
        for length in lengths:
            for gram in name_grams(key):
                out.update(dict.fromkeys(self._grams.get((gram, length), ())))
        return list(out)


def name_grams(key: str) -> set[str]:
    """The three-letter runs of a compact name, and its first and last two letters marked."""
    return {key[i:i + 3] for i in range(len(key) - 2)} | {"^" + key[:2], "$" + key[-2:]}
