"""Filters (filters.py) answered from the lexical index on disk: what an in-memory list of every
chunk's metadata answered before (main's `MetadataIndex`), without loading anything proportional to
the store when it opens.

The index keeps, per paper (lexical.py writes them at ingest): its year on every chunk (a fast
field), and on its first chunk the folded words of its authors and venue, its collections, the
references it can be chosen by (DOI, arXiv id, folded title) and the metadata itself. A filter
becomes a tantivy query: the year as a range, authors and venues as their words (narrowing), the
chosen papers and collections as terms; the papers found are then checked exactly with the same
matching rules as before (filters.author_matches, filters.venue_matches).

A question's cost follows the papers the filter keeps: a year range alone is never listed paper by
paper (BM25 and the checks below take it as a range query).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tantivy import FieldType, Occur, Order, Query

from assistant.errors import AssistantError
from assistant.filters import Filters, author_matches, chroma_where, fold, venue_matches
from assistant.lexical import PAPER_KIND, SCHEMA, LexicalIndex

PAGE = 1_000


def _term(field_name: str, value: str) -> Query:
    return Query.term_query(SCHEMA, field_name, value, index_option="basic")


def _all(clauses: list[Query]) -> Query:
    return Query.boolean_query([(Occur.Must, q) for q in clauses]) if clauses else Query.all_query()


def _any(clauses: list[Query]) -> Query:
    return Query.boolean_query([(Occur.Should, q) for q in clauses])


@dataclass(frozen=True)
class FilterScope:
    """What a filtered question may search: the allowed papers (None: every paper in the year
    range, not listed), the chunks BM25 may rank (a tantivy query) and the dense side's Chroma
    `where` (filters.chroma_where)."""

    filters: Filters
    paper_ids: frozenset[str] | None
    chunks: Query
    where: dict | None
    index: LexicalIndex

    def allowed(self, pids: Iterable[str]) -> set[str]:
        """Which of these papers the filters allow."""
        pids = set(pids)
        if self.paper_ids is not None:
            return pids & self.paper_ids
        if not pids or not self.index.exists:
            return set()
        query = _all([_term("kind", PAPER_KIND),
                      Query.term_set_query(SCHEMA, "paper_id", sorted(pids)), *_years(self.filters)])
        searcher = self.index.searcher()
        hits = searcher.search(query, limit=len(pids), count=False).hits
        return {str(searcher.doc(addr).get_first("paper_id")) for _, addr in hits}


def _years(filters: Filters) -> list[Query]:
    """The year range (an unknown year, stored as 0, matches neither bound)."""
    if filters.year_from is None and filters.year_to is None:
        return []
    lower = filters.year_from if filters.year_from is not None else 1
    return [Query.range_query(SCHEMA, "year", FieldType.Integer, lower, filters.year_to)
            if filters.year_to is not None else
            Query.range_query(SCHEMA, "year", FieldType.Integer, lower, None)]


class IndexedMetadata:
    """The papers' filterable metadata, read from the lexical index per question."""

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return self.index.count_papers()

    def resolve_paper(self, ref: str) -> str | None:
        """A paper id from an id, a DOI, an arXiv id or an exact (case-insensitive) title."""
        if not self.index.exists:
            return None
        ref = ref.strip()
        searcher = self.index.searcher()
        for field_name, value in (("paper_id", ref), ("ref", ref.lower()), ("ref", fold(ref)),
                                  ("ref", ref.lower().removeprefix("arxiv:"))):
            if not value:
                continue
            query = _all([_term("kind", PAPER_KIND), _term(field_name, value)])
            # The first paper in store order wins a shared reference, as before.
            hits = searcher.search(query, limit=1, count=False, order_by_field="seq",
                                   order=Order.Asc).hits
            if hits:
                return str(searcher.doc(hits[0][1]).get_first("paper_id"))
        return None

    def scope(self, filters: Filters) -> FilterScope | None:
        """The scope of a filter, or None when no paper matches it."""
        years = _years(filters)
        if not filters.restricts_papers:
            papers = _all([_term("kind", PAPER_KIND), *years])
            if not self.index.exists or not self.index.count(papers):
                return None
            return FilterScope(filters, None, _all(years), chroma_where(filters, None), self.index)
        ids = self.paper_ids(filters)
        if not ids:
            return None
        chunks = _all([Query.term_set_query(SCHEMA, "paper_id", sorted(ids)), *years])
        return FilterScope(filters, frozenset(ids), chunks, chroma_where(filters, ids), self.index)

    def paper_ids(self, filters: Filters) -> list[str]:
        """The papers matching filters that name authors, venues, papers or a collection, in
        store order: candidates from the index's terms, each checked exactly."""
        clauses = [_term("kind", PAPER_KIND), *_years(filters)]
        if filters.paper_ids:
            chosen = []
            for ref in filters.paper_ids:
                pid = self.resolve_paper(ref)
                if pid is None:
                    raise AssistantError(f"no paper {ref!r} in the collection",
                                         hint="give a paper id (see `--json` output), DOI, arXiv "
                                              "id or exact title")
                chosen.append(pid)
            clauses.append(Query.term_set_query(SCHEMA, "paper_id", sorted(set(chosen))))
        if filters.collection:
            clauses.append(_term("collection", filters.collection))
        if filters.authors:
            clauses.append(_any([_words("author", a, initials=True) for a in filters.authors]))
        if filters.venues:
            clauses.append(_any([_words("venue", v) for v in filters.venues]))
        if not self.index.exists:
            return []
        searcher = self.index.searcher()
        query = _all(clauses)
        out: list[str] = []
        offset = 0
        while True:
            hits = searcher.search(query, limit=PAGE, offset=offset, count=False,
                                   order_by_field="seq", order=Order.Asc).hits
            for _, addr in hits:
                doc = searcher.doc(addr)
                meta = json.loads(doc.get_first("filter_meta") or b"{}")
                if _checks(filters, meta):
                    out.append(str(doc.get_first("paper_id")))
            if len(hits) < PAGE:
                return out
            offset += PAGE


def _words(field_name: str, text: str, initials: bool = False) -> Query:
    """Papers with every folded word of the text; a one-letter word of an author's name stands
    for an initial or a name starting with it."""
    words = fold(text).split()
    if not words:
        return Query.boolean_query([(Occur.MustNot, Query.all_query())])
    clauses = []
    for word in words:
        if initials and len(word) == 1:
            clauses.append(Query.regex_query(SCHEMA, field_name, re.escape(word) + ".*"))
        else:
            clauses.append(_term(field_name, word))
    return _all(clauses)


def _checks(filters: Filters, meta: dict) -> bool:
    """The exact author and venue rules, on a candidate's stored metadata."""
    if filters.authors:
        names = [a.strip() for a in str(meta.get("authors", "")).split(";") if a.strip()]
        if not any(author_matches(a, names) for a in filters.authors):
            return False
    if filters.venues:
        venue = str(meta.get("venue", ""))
        if not any(venue_matches(v, venue) for v in filters.venues):
            return False
    return True
