"""Restricting a question or search to part of the collection: by year range, author, venue, a
chosen set of papers or a named collection.

Filters are applied inside retrieval (retrieval.py): a Chroma `where` on the dense side and a
BM25 weight mask on the lexical side, both computed from `MetadataIndex` (the papers' metadata as
the chunks in BM25's memory carry it), so a filtered question gets its full k papers from the
matching ones. `parse_filter_phrases` reads simple filters out of a question ("since 2023",
"papers by Wang", "published at MICCAI"), offline.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from assistant.errors import AssistantError

MIN_YEAR, MAX_YEAR = 1800, 2199
YEAR_RANGE = re.compile(r"^\s*(\d{4})?\s*(?:(-|–|\.\.|to)\s*(\d{4})?)?\s*$")


@dataclass(frozen=True)
class Filters:
    """What a question is restricted to; several values of one field match any of them (papers by
    Smith or by Wang), different fields must all match."""

    year_from: int | None = None
    year_to: int | None = None
    authors: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    paper_ids: tuple[str, ...] = ()
    collection: str | None = None
    # The question's words these filters were read from ("since 2023"); empty for filters the
    # user set explicitly. Shown so that a misread phrase can be seen and removed.
    phrases: tuple[str, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return any((self.year_from is not None, self.year_to is not None, self.authors,
                    self.venues, self.paper_ids, self.collection))

    @property
    def restricts_papers(self) -> bool:
        """Whether anything besides the year narrows the papers (resolved to ids in memory)."""
        return bool(self.authors or self.venues or self.paper_ids or self.collection)

    @classmethod
    def from_options(cls, *, year: str | None = None, authors: Sequence[str] = (),
                     venues: Sequence[str] = (), papers: Sequence[str] = (),
                     collection: str | None = None) -> Filters:
        """From command-line style values: year "2023", "2023-2025", "2023-" or "-2020"."""
        year_from, year_to = parse_year_range(year) if year else (None, None)
        return cls(year_from=year_from, year_to=year_to,
                   authors=_values(authors, "author"), venues=_values(venues, "venue"),
                   paper_ids=_values(papers, "paper"),
                   collection=collection.strip() if collection and collection.strip() else None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Filters:
        """From a JSON object (the HTTP API): the keys of `to_json`, `year` ("2023-2025") as well;
        unknown keys are an error, so a misspelt filter is not silently ignored."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise AssistantError("filters must be a JSON object")
        known = {"year", "year_from", "year_to", "authors", "venues", "paper_ids", "collection"}
        unknown = sorted(set(data) - known - {"phrases", "description"})
        if unknown:
            raise AssistantError(f"unknown filter field(s) {', '.join(unknown)}; use "
                                 f"{', '.join(sorted(known))}")
        year_from, year_to = (parse_year_range(str(data["year"])) if data.get("year")
                              else (None, None))

        def year(key: str, default: int | None) -> int | None:
            value = data.get(key)
            if value is None or value == "":
                return default
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
                raise AssistantError(f"filter {key} must be a year, not {value!r}")
            return _check_year(int(value))

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise AssistantError(f"filter {key} must be a list of strings")
            return _values(value, key)

        collection = data.get("collection")
        if collection is not None and not isinstance(collection, str):
            raise AssistantError("filter collection must be a string")
        filters = cls(year_from=year("year_from", year_from), year_to=year("year_to", year_to),
                      authors=strings("authors"), venues=strings("venues"),
                      paper_ids=strings("paper_ids"), collection=(collection or "").strip() or None)
        _check_order(filters.year_from, filters.year_to)
        return filters

    def to_json(self) -> dict[str, Any]:
        return {"year_from": self.year_from, "year_to": self.year_to, "authors": list(self.authors),
                "venues": list(self.venues), "paper_ids": list(self.paper_ids),
                "collection": self.collection, "phrases": list(self.phrases),
                "description": self.describe()}

    def describe(self) -> str:
        """For people: "2023–2025; author Smith; venue MICCAI"."""
        parts = []
        if self.year_from is not None and self.year_to is not None:
            parts.append(str(self.year_from) if self.year_from == self.year_to
                         else f"{self.year_from}–{self.year_to}")
        elif self.year_from is not None:
            parts.append(f"{self.year_from} or later")
        elif self.year_to is not None:
            parts.append(f"{self.year_to} or earlier")
        if self.authors:
            parts.append("author " + " or ".join(self.authors))
        if self.venues:
            parts.append("venue " + " or ".join(self.venues))
        if self.paper_ids:
            parts.append(f"{len(self.paper_ids)} chosen paper(s)")
        if self.collection:
            parts.append(f"collection {self.collection}")
        return "; ".join(parts)


def parse_year_range(text: str) -> tuple[int | None, int | None]:
    """"2023" -> (2023, 2023); "2023-2025", "2023..2025", "2023 to 2025"; "2023-" and "-2020"
    leave a side open."""
    match = YEAR_RANGE.match(str(text))
    if not match or not (match.group(1) or match.group(3)):
        raise AssistantError(f"year {text!r} is not a year or a range",
                             hint="use 2023, 2023-2025, 2023- (from) or -2020 (until)")
    first = _check_year(int(match.group(1))) if match.group(1) else None
    last = _check_year(int(match.group(3))) if match.group(3) else None
    if match.group(2) is None:
        last = first
    _check_order(first, last)
    return first, last


def _check_year(year: int) -> int:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise AssistantError(f"year {year} is out of range ({MIN_YEAR}-{MAX_YEAR})")
    return year


def _check_order(first: int | None, last: int | None) -> None:
    if first is not None and last is not None and first > last:
        raise AssistantError(f"year range {first}-{last} is empty: the first year is after the last")


def _values(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = []
    for value in values:
        value = " ".join(str(value).split())
        if not value:
            continue
        if len(value) > 200:
            raise AssistantError(f"{what} filter {value[:40]!r}... is too long (200 characters at most)")
        out.append(value)
    return tuple(dict.fromkeys(out))


# --- matching ------------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Lower-case, accent-free words separated by single spaces: "Müller-Lüdenscheidt" and
    "muller ludenscheidt" fold alike."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.findall(r"\w+", text))


def author_matches(query: str, names: Sequence[str]) -> bool:
    """Whether one of the names has every word of the query ("Smith", "J. Smith", "Li Wang"); a
    one-letter word matches an initial or a given name starting with it."""
    words = fold(query).split()
    if not words:
        return False
    for name in names:
        tokens = fold(name).split()
        if all(any(t == w or (len(w) == 1 and t.startswith(w)) for t in tokens) for w in words):
            return True
    return False


def venue_matches(query: str, venue: str) -> bool:
    """The query's words, in order, inside the venue ("MICCAI" in "Medical Image Computing ... –
    MICCAI 2023", "Nature Medicine" but not "Nature" in "Signature")."""
    q = fold(query)
    return bool(q) and f" {q} " in f" {fold(venue)} "


class MetadataIndex:
    """The papers' filterable metadata in memory, from the chunk records in BM25's corpus (the same
    chunks in the same order as the lexical index): paper masks, chunk masks, ids."""

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        position: dict[str, int] = {}
        chunk_paper = np.zeros(len(entries), dtype=np.int32)
        self.ids: list[str] = []
        years: list[int] = []
        self.authors: list[tuple[str, ...]] = []
        self.venues: list[str] = []
        self.collections: list[frozenset[str]] = []
        self.aliases: dict[str, str] = {}  # folded title, DOI, arXiv id -> paper id
        for i, entry in enumerate(entries):
            pid = str(entry.get("paper_id", ""))
            p = position.get(pid)
            if p is None:
                p = position[pid] = len(self.ids)
                self.ids.append(pid)
                year = entry.get("year")
                years.append(int(year) if isinstance(year, int | float) and not isinstance(year, bool)
                             else 0)
                self.authors.append(tuple(a.strip() for a in str(entry.get("authors", "")).split(";")
                                          if a.strip()))
                self.venues.append(str(entry.get("venue", "")))
                self.collections.append(frozenset(
                    n for n in str(entry.get("collections", "")).split(";") if n))
                for alias in (fold(str(entry.get("title", ""))), str(entry.get("doi", "")).lower(),
                              str(entry.get("arxiv_id", "")).lower()):
                    if alias:
                        self.aliases.setdefault(alias, pid)
            chunk_paper[i] = p
        self.position = position
        self.chunk_paper = chunk_paper
        self.years = np.asarray(years, dtype=np.int32)
        self._masks: dict[Filters, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def resolve_paper(self, ref: str) -> str | None:
        """A paper id from an id, a DOI, an arXiv id or an exact (case-insensitive) title."""
        ref = ref.strip()
        if ref in self.position:
            return ref
        return (self.aliases.get(ref.lower()) or self.aliases.get(fold(ref))
                or self.aliases.get(ref.lower().removeprefix("arxiv:")))

    def paper_mask(self, filters: Filters) -> np.ndarray:
        key = replace(filters, phrases=())
        with self._lock:
            cached = self._masks.get(key)
        if cached is not None:
            return cached
        mask = np.ones(len(self.ids), dtype=bool)
        if filters.year_from is not None:
            mask &= self.years >= filters.year_from
        if filters.year_to is not None:
            mask &= (self.years <= filters.year_to) & (self.years > 0)
        if filters.paper_ids:
            chosen = np.zeros(len(self.ids), dtype=bool)
            for ref in filters.paper_ids:
                pid = self.resolve_paper(ref)
                if pid is None:
                    raise AssistantError(f"no paper {ref!r} in the collection",
                                         hint="give a paper id (see `--json` output), DOI, arXiv "
                                              "id or exact title")
                chosen[self.position[pid]] = True
            mask &= chosen
        for values, test, source in (
                (filters.authors, author_matches, self.authors),
                (filters.venues, venue_matches, self.venues)):
            if values:
                mask &= np.fromiter(
                    (bool(m) and any(test(v, item) for v in values)  # type: ignore[arg-type]
                     for m, item in zip(mask, source, strict=True)), dtype=bool, count=len(mask))
        if filters.collection:
            mask &= np.fromiter((filters.collection in c for c in self.collections), dtype=bool,
                                count=len(mask))
        with self._lock:
            if len(self._masks) >= 64:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def chunk_mask(self, filters: Filters) -> np.ndarray:
        return self.paper_mask(filters)[self.chunk_paper]

    def paper_ids(self, filters: Filters) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(self.paper_mask(filters))]


def chroma_where(filters: Filters, paper_ids: Sequence[str] | None) -> dict[str, Any] | None:
    """The dense side's Chroma `where` over chunk metadata: the year range natively, everything
    else as the matching paper ids (author and venue matching is by words, which Chroma's
    metadata operators cannot express)."""
    clauses: list[dict[str, Any]] = []
    if filters.year_from is not None:
        clauses.append({"year": {"$gte": filters.year_from}})
    if filters.year_to is not None:
        clauses.append({"year": {"$lte": filters.year_to}})
    if paper_ids is not None:
        clauses.append({"paper_id": {"$in": list(paper_ids)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# --- filter phrases in a question ----------------------------------------------------------------
Y = r"((?:19|20)\d\d)"
NAME = r"([A-Z][\w'’\-]+(?:\s+(?:van|von|de|der|da|di|le|la)?\s*[A-Z][\w'’\-]+)?)"
VENUE = r"([A-Z][\w&+\-]*(?:\s+(?:of|on|for|and|in)?\s*[A-Z][\w&+\-]*){0,5})"
PUBLISHED = (r"(?i:(?:(?:were|was|that\s+were|that\s+was)\s+)?"
             r"(?:published|released|appeared|presented|accepted))")
PAPERS = r"(?i:(?<=papers\s)|(?<=paper\s)|(?<=studies\s)|(?<=articles\s)|(?<=work\s))"
# "data collected from 2015 to 2018" is about the data, not the paper.
NOT_DATA = "".join(rf"(?<!{w}\s)" for w in ("collected", "acquired", "recruited", "enrolled",
                                            "treated", "admitted", "recorded", "gathered"))
PHRASES: list[tuple[str, re.Pattern[str]]] = [
    ("between", re.compile(rf"(?i:\b(?:{PUBLISHED}\s+)?){NOT_DATA}(?i:from)\s+{Y}\s*"
                           rf"(?i:to|until|-|–)\s*{Y}\b")),
    ("between", re.compile(rf"\b(?:{PUBLISHED}\s+|{PAPERS})(?i:between)\s+{Y}\s*(?i:and|-|–)\s*{Y}\b")),
    ("since", re.compile(rf"\b(?:{PUBLISHED}\s+)?(?i:since|after)\s+{Y}(?i:\s+onwards?)?\b")),
    ("since", re.compile(rf"\b(?:{PUBLISHED}\s+|{PAPERS})(?i:from)\s+{Y}(?i:\s+onwards?)\b")),
    ("before", re.compile(rf"\b(?:{PUBLISHED}\s+)?(?i:before|until)\s+{Y}\b")),
    ("in", re.compile(rf"\b(?:{PUBLISHED}\s+|{PAPERS})(?i:in|from)\s+{Y}\b")),
    ("venue", re.compile(rf"\b{PUBLISHED}\s+(?i:at|in)\s+(?i:the\s+)?{VENUE}(?:\s+{Y})?")),
    ("venue", re.compile(rf"\b{PAPERS}(?i:at)\s+{VENUE}(?:\s+{Y})?")),
    ("author", re.compile(rf"\b(?:{PAPERS}|(?i:written|authored)\s+)(?i:by)\s+{NAME}(?:\s+et\s+al\.?)?")),
    ("author", re.compile(rf"\b(?i:by)\s+{NAME}\s+et\s+al\.?")),
]
FRAME_WORDS = {"which", "what", "who", "are", "were", "was", "the", "there", "any", "papers", "paper",
               "studies", "works", "articles", "approaches", "methods", "list", "show", "find", "all",
               "give"}
# Capitalised words that start a clause after a venue rather than continue its name.
NOT_VENUE = {"Which", "What", "That", "And", "Or", "Use", "Using", "With", "About", "On", "For"}


def parse_filter_phrases(question: str) -> tuple[str, Filters]:
    """The question without its filter phrases, and the filters they say. Conservative: only the
    phrasings listed in PHRASES, capitalised names for authors and venues, four-digit years."""
    found: dict[str, Any] = {"authors": [], "venues": []}
    spans: list[tuple[int, int]] = []
    phrases: list[str] = []
    for kind, pattern in PHRASES:
        for match in pattern.finditer(question):
            if any(a < match.end() and match.start() < b for a, b in spans):
                continue  # already read by an earlier pattern
            if kind == "between":
                first, last = sorted((int(match.group(1)), int(match.group(2))))
                found["year_from"], found["year_to"] = first, last
            elif kind == "since":
                word = re.search(r"since|after|from", match.group(0), re.I)  # "after 2022": 2023-
                year = int(match.group(1))
                found["year_from"] = year + 1 if word and word.group(0).lower() == "after" else year
            elif kind == "before":
                word = re.search(r"before|until", match.group(0), re.I)
                year = int(match.group(1))
                found["year_to"] = year - 1 if word and word.group(0).lower() == "before" else year
            elif kind == "in":
                found["year_from"] = found["year_to"] = int(match.group(1))
            elif kind == "venue":
                venue = _trim_venue(match.group(1))
                if not venue:
                    continue
                found["venues"].append(venue)
                if match.group(2):
                    found["year_from"] = found["year_to"] = int(match.group(2))
                end = match.start(1) + len(venue) if not match.group(2) else match.end()
                spans.append((match.start(), end))
                phrases.append(question[match.start():end])
                continue
            elif kind == "author":
                found["authors"].append(match.group(1))
            spans.append(match.span())
            phrases.append(match.group(0))
    if not spans:
        return question, Filters()
    try:
        filters = Filters(year_from=found.get("year_from"), year_to=found.get("year_to"),
                          authors=tuple(dict.fromkeys(found["authors"])),
                          venues=tuple(dict.fromkeys(found["venues"])), phrases=tuple(phrases))
        _check_order(filters.year_from, filters.year_to)
    except AssistantError:
        return question, Filters()
    rest = question
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    rest = re.sub(r"\s+([?.!,;:])", r"\1", re.sub(r"\s{2,}", " ", rest)).strip(" ,;")
    # "Which papers were published since 2023?" leaves no topic: the question is kept whole.
    if not [w for w in re.findall(r"[A-Za-z]{3,}", rest) if w.lower() not in FRAME_WORDS]:
        rest = question
    return rest, filters


def _trim_venue(text: str) -> str:
    words = text.split()
    while words and (words[-1] in NOT_VENUE or words[-1].lower() in {"of", "on", "for", "and", "in"}):
        words.pop()
    for i, word in enumerate(words):
        if i and word in NOT_VENUE:
            words = words[:i]
            break
    return " ".join(words)
