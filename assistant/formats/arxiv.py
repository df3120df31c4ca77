"""arXiv API Atom feeds saved to a file (export.arxiv.org/api/query results), read with feedparser.
Several versions of one paper keep the latest; the arXiv id is recorded without its version."""

from __future__ import annotations

import io
import re
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats.common import ARXIV_ID, Entry, find_year, normalize_doi

ATOM = "http://www.w3.org/2005/Atom"


def sniff(head: str) -> bool:
    return "<feed" in head and ATOM in head


def parse(path: Path, text: str) -> list[Entry]:
    import feedparser

    if re.search(r"<!ENTITY", text[:200_000], re.IGNORECASE):
        raise CorpusError(f"{path}: XML that declares entities is not accepted")
    # A stream, never a string: feedparser takes a string that looks like a URL or a file name
    # for one and opens it.
    feed = feedparser.parse(io.BytesIO(text.encode("utf-8")), sanitize_html=True,
                            resolve_relative_uris=False)
    if feed.get("bozo") and not feed.entries:
        error = feed.get("bozo_exception")
        raise CorpusError(f"{path}: not a readable Atom feed ({type(error).__name__}: {error})")
    latest: dict[str, tuple[int, str, Entry]] = {}
    order: list[str] = []
    for item in feed.entries:
        entry, version = _entry(item)
        key = entry.arxiv_id or entry.key
        if key not in latest:
            order.append(key)
        updated = str(item.get("updated", ""))
        if key not in latest or (version, updated) > latest[key][:2]:
            latest[key] = (version, updated, entry)
    return [latest[key][2] for key in order]


def _entry(item: dict) -> tuple[Entry, int]:
    raw_id = str(item.get("id", ""))
    match = re.search(r"arxiv\.org/abs/" + ARXIV_ID.pattern, raw_id, re.IGNORECASE)
    arxiv_id = match.group(1) if match else ""
    version = int(match.group(2)[1:]) if match and match.group(2) else 0
    authors = tuple(str(a.get("name", "")).strip() for a in item.get("authors", []) if a.get("name"))
    keywords = tuple(str(t.get("term", "")) for t in item.get("tags", []) if t.get("term"))
    journal = " ".join(str(item.get("arxiv_journal_ref", "")).split())
    entry = Entry(
        title=str(item.get("title", "")),
        abstract=str(item.get("summary", "")),
        key=f"arXiv:{arxiv_id}" if arxiv_id else raw_id,
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else "",
        authors=authors,
        year=find_year(item.get("published", "")) or find_year(item.get("updated", "")),
        venue=journal or "arXiv",
        doi=normalize_doi(str(item.get("arxiv_doi", ""))),
        arxiv_id=arxiv_id,
        keywords=tuple(dict.fromkeys(keywords)),
    )
    return entry, version
