"""CSL-JSON (Zotero's "CSL JSON" export, Mendeley, citeproc tools): a JSON array of items, read with
the standard library. An array of plain records (`title`, `abstract`, ...) is read too."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats.common import (
    Entry,
    arxiv_from,
    find_year,
    normalize_arxiv_id,
    normalize_doi,
    normalize_pmid,
    pmid_from,
    split_list,
)
from assistant.formats.records import record_entry

DATE_FIELDS = ("issued", "published-print", "published-online", "original-date", "event-date")


def sniff(head: str) -> bool:
    return head.lstrip().startswith(("[", "{"))


def parse(path: Path, text: str) -> list[Entry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise CorpusError(f"{path}: not a usable JSON document ({type(exc).__name__})") from None
    if isinstance(data, dict):
        data = data.get("items", [data])  # one item, or Zotero's API wrapper
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a JSON array of items (CSL-JSON), got "
                          f"{type(data).__name__}")
    entries = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise CorpusError(f"{path}: item {number} is {type(item).__name__}, not a JSON object")
        entries.append(_entry(path, number, item))
    return entries


def _entry(path: Path, number: int, item: dict) -> Entry:
    if "author" not in item and "container-title" not in item and "issued" not in item:
        # Not CSL: a plain record, read with the JSONL field names.
        entry = record_entry(path, 0, item)
        entry.key = entry.key or f"item {number}"
        return entry

    def text(name: str) -> str:
        value = item.get(name, "")
        if isinstance(value, list):
            return " ".join(str(v) for v in value)
        return "" if value is None or isinstance(value, dict) else str(value)

    key = text("id") or text("citation-key") or f"item {number}"
    return Entry(
        title=text("title"),
        abstract=text("abstract"),
        key=key,
        url=text("URL"),
        authors=tuple(_name(a) for a in item.get("author") or [] if isinstance(a, dict) and _name(a)),
        year=next((y for y in (_year(item.get(f)) for f in DATE_FIELDS) if y), ""),
        venue=text("container-title") or text("event-title") or text("collection-title"),
        doi=normalize_doi(text("DOI")),
        arxiv_id=normalize_arxiv_id(text("arxiv")) or arxiv_from(text("number"), text("URL"),
                                                                text("DOI"), text("note")),
        pmid=normalize_pmid(text("PMID")) or pmid_from(text("note")),
        keywords=split_list(text("keyword")),
    )


def _name(author: dict) -> str:
    """CSL names as "Family, Given" (the form BibTeX and RIS use), or the literal name."""
    if author.get("literal"):
        return str(author["literal"])
    family = " ".join(str(author.get(p, "")) for p in ("non-dropping-particle", "family")).strip()
    given = " ".join(str(author.get(p, "")) for p in ("given", "dropping-particle")).strip()
    return f"{family}, {given}" if family and given else family or given


def _year(date: object) -> str:
    if not isinstance(date, dict):
        return find_year(date) if isinstance(date, str | int) else ""
    parts = date.get("date-parts")
    if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
        return find_year(parts[0][0])
    return find_year(date.get("raw") or date.get("literal") or "")
