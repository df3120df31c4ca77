"""Paper names resolved from the lexical index on disk: the algorithm of titles.py over lookups in
the index's term dictionaries (lexical.py writes each paper's names on its first chunk), so opening
a store loads no title list and a question costs a few dozen lookups whatever the corpus size.

What the in-memory `TitleIndex` decides once when it is built (which aliases name a single paper,
which are generic terms) is decided here per question for the names it meets, from live counts:
papers whose titles give the alias, papers whose text mentions it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise

from tantivy import Occur, Order, Query

from assistant.corpus import normalize_title
from assistant.lexical import PAPER_KIND, SCHEMA, LexicalIndex
from assistant.titles import (
    MAX_PAPERS_PER_ALIAS,
    MIN_WHOLE_TITLE,
    NameLookups,
    NameResolver,
    TitleIndex,
    alias_kept,
    alias_term,
    compact,
    gram_prefix,
    may_be_case_sensitive,
    name_grams,
)

PAGE = 1_000


def _term(field_name: str, value: str) -> Query:
    return Query.term_query(SCHEMA, field_name, value, index_option="basic")


def _paper_query(pid: str) -> Query:
    return Query.boolean_query([(Occur.Must, _term("paper_id", pid)),
                                (Occur.Must, _term("kind", PAPER_KIND))])


class PaperTitles(Mapping[str, str]):
    """Paper id -> title, read from the index when asked."""

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def __getitem__(self, pid: str) -> str:
        if not self.index.exists:
            raise KeyError(pid)
        searcher = self.index.searcher()
        hits = searcher.search(_paper_query(pid), limit=1, count=False).hits
        if not hits:
            raise KeyError(pid)
        return str(json.loads(searcher.doc(hits[0][1]).get_first("meta")).get("title", ""))

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, str) and self.index.exists and bool(
            self.index.searcher().search(_paper_query(pid), limit=1, count=False).hits)

    def __len__(self) -> int:
        return self.index.count_papers()

    def __iter__(self) -> Iterator[str]:
        """Every paper id, in the store's order (reads the whole index: for tests and tools)."""
        if not self.index.exists:
            return
        searcher = self.index.searcher()
        offset = 0
        while True:
            hits = searcher.search(_term("kind", PAPER_KIND), limit=PAGE, count=False, offset=offset,
                                   order_by_field="seq", order=Order.Asc).hits
            for _, addr in hits:
                yield str(searcher.doc(addr).get_first("paper_id"))
            if len(hits) < PAGE:
                return
            offset += PAGE


class IndexedTitles(NameResolver):
    def __init__(self, index: LexicalIndex, max_mention_share: float = 0.015) -> None:
        self.index = index
        self.max_mention_share = max_mention_share
        self.titles = PaperTitles(index)
        # Corpus-wide figures, read once per refresh of the retriever (which makes a new one).
        self._maxima: dict[str, int] = {}
        self._papers: int | None = None

    def _lookups(self) -> NameLookups:
        if not self.index.exists:
            return TitleIndex({})
        return _Lookups(self)

    def maximum(self, fast_field: str) -> int:
        """The largest value of a paper's fast field (atoms per alias, words per title)."""
        if fast_field not in self._maxima:
            hits = self.index.searcher().search(_term("kind", PAPER_KIND), limit=1, count=False,
                                                order_by_field=fast_field, order=Order.Desc).hits
            self._maxima[fast_field] = int(hits[0][0]) if hits else 0
        return self._maxima[fast_field]

    def n_papers(self) -> int:
        if self._papers is None:
            self._papers = self.index.count_papers()
        return self._papers


class _Lookups:
    """One question's lookups, against one searcher (a consistent view of the index), memoised."""

    def __init__(self, owner: IndexedTitles) -> None:
        self.owner = owner
        self.searcher = owner.index.searcher()
        self._kept: dict[str, set[str]] = {}
        self._titles: dict[str, str] = {}
        self._case: dict[str, bool] = {}
        self._title_alias: dict[str, bool] = {}

    def whole_titles(self, words: list[str]) -> list[tuple[str, str, str]]:
        longest = self.owner.maximum("title_words")
        runs = {" ".join(words[i:j]) for i in range(len(words))
                for j in range(i + 1, min(len(words), i + longest) + 1)}
        runs = {r for r in runs if len(r) > MIN_WHOLE_TITLE}
        if not runs:
            return []
        query = Query.term_set_query(SCHEMA, "ntitle", sorted(runs))
        found = []
        for _, addr in self.searcher.search(query, limit=len(runs), count=False,
                                            order_by_field="seq", order=Order.Asc).hits:
            pid, title = self._read(addr)
            found.append((pid, title, normalize_title(title)))
        # In the order their first (two) words appear among the question's words, then the store's.
        starts = {s: i for i, s in enumerate(dict.fromkeys(
            [*((w,) for w in words), *pairwise(words)]))}
        found.sort(key=lambda f: starts.get(tuple(f[2].split()[:2]), len(starts)))
        return found

    def _spellings(self, key: str) -> list[str]:
        """Every alias with this compact form, from titles or introduced by abstracts, sorted."""
        found = {term[len(key) + 1:] for name in ("alias", "introduced")
                 for term, _ in self.searcher.terms_with_prefix(name, key + "\t")}
        return sorted(found)

    def aliases_for(self, key: str) -> Iterable[str]:
        for alias in self._spellings(key):
            if self._papers_of(key, alias):
                yield alias

    def alias_papers(self, alias: str) -> set[str]:
        return self._papers_of(compact(alias), alias)

    def compact_papers(self, key: str) -> set[str]:
        papers: set[str] = set()
        for alias in self._spellings(key):
            papers |= self._papers_of(key, alias)
        return papers

    def fuzzy_key(self, key: str) -> bool:
        return any(self._from_title(alias) and self._papers_of(key, alias)
                   for alias in self._spellings(key))

    def case_sensitive(self, alias: str) -> bool:
        """A capitalised one-word alias whose lower-case spelling some paper writes."""
        found = self._case.get(alias)
        if found is None:
            found = self._case[alias] = may_be_case_sensitive(alias) and bool(
                self.searcher.search(_term("spelled", alias.lower()), limit=1, count=False).hits)
        return found

    def near_keys(self, key: str, lengths: range) -> list[str]:
        out: dict[str, None] = {}
        for length in lengths:
            for gram in name_grams(key):
                prefix = gram_prefix(length, gram)
                out.update(dict.fromkeys(t[len(prefix):] for t, _ in
                                         self.searcher.terms_with_prefix("gram", prefix)))
        return list(out)

    def max_atoms(self) -> int:
        return self.owner.maximum("atoms")

    def title(self, pid: str) -> str:
        title = self._titles.get(pid)
        return title if title is not None else self.owner.titles.get(pid, "")

    def _from_title(self, alias: str) -> bool:
        """Whether some paper's title gives the alias (else only abstracts introduce it)."""
        found = self._title_alias.get(alias)
        if found is None:
            term = alias_term(compact(alias), alias)
            found = self._title_alias[alias] = bool(
                self.searcher.search(_term("alias", term), limit=1, count=False).hits)
        return found

    def _papers_of(self, key: str, alias: str) -> set[str]:
        """The papers an alias names, if it is kept (titles.alias_kept), from live counts: the
        papers whose titles give it (or, where none does, whose abstracts introduce it) and the
        papers that mention it (in its own capitalisation, for a case-sensitive one)."""
        term = alias_term(key, alias)
        kept = self._kept.get(term)
        if kept is None:
            introduced = not self._from_title(alias)
            result = self.searcher.search(_term("introduced" if introduced else "alias", term),
                                          limit=MAX_PAPERS_PER_ALIAS + 1)
            mentions = 0
            if " " not in alias and result.count:
                mention = _term("spelled", alias) if self.case_sensitive(alias) \
                    else _term("mention", key)
                mentions = self.searcher.search(mention, limit=1, count=True).count
            kept = set()
            if alias_kept(alias, result.count, mentions, self.owner.n_papers(),
                          self.owner.max_mention_share, introduced=introduced):
                kept = {self._read(addr)[0] for _, addr in result.hits}
            self._kept[term] = kept
        return kept

    def _read(self, addr: object) -> tuple[str, str]:
        doc = self.searcher.doc(addr)
        pid = str(doc.get_first("paper_id"))
        self._titles[pid] = str(json.loads(doc.get_first("meta")).get("title", ""))
        return pid, self._titles[pid]
