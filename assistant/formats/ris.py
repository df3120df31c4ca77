"""RIS (EndNote, Zotero, Mendeley, Web of Science, Scopus exports) through rispy; fields that run
over several lines are joined by rispy."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats.common import (
    Entry,
    arxiv_from,
    find_year,
    lines,
    normalize_doi,
    pmid_from,
    split_list,
)

START = re.compile(r"^\s*TY\s{1,2}-")
SNIFF = re.compile(r"\A\s*(?:\d+\.\s*\n\s*)?TY\s{1,2}- ")
VENUE_TAGS = ("secondary_title", "alternate_title3", "journal_name", "alternate_title1",
              "alternate_title2", "tertiary_title")
# Where exports put an accession number or a note carrying "PMID: ..." or "arXiv:...".
NOTE_TAGS = ("accession_number", "notes", "note", "custom1", "custom2", "custom3", "custom4",
             "custom5", "custom6", "custom7", "custom8", "research_notes", "urls", "doi")


def sniff(head: str) -> bool:
    return bool(SNIFF.match(head))


def parse(path: Path, text: str) -> list[Entry]:
    import rispy

    starts = [number for number, line in enumerate(lines(text), start=1) if START.match(line)]
    try:
        records = rispy.loads(text, skip_unknown_tags=True)
    except Exception as exc:  # rispy raises IOError/ValueError/KeyError on broken structure
        raise CorpusError(f"{path}: not readable as RIS ({type(exc).__name__}: {exc}); each record "
                          "starts with 'TY  - ' and ends with 'ER  - '") from None
    if len(records) != len(starts):
        raise CorpusError(f"{path}: {len(starts)} records start with 'TY  - ' but {len(records)} "
                          "end with 'ER  - '; a record is cut short")
    return [_entry(record, line) for record, line in zip(records, starts, strict=True)]


def _text(record: dict, tag: str) -> str:
    value = record.get(tag, "")
    return " ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _entry(record: dict, line: int) -> Entry:
    notes = [_text(record, tag) for tag in NOTE_TAGS]
    urls = record.get("urls") or []
    return Entry(
        title=_text(record, "title") or _text(record, "primary_title"),
        abstract=_text(record, "abstract") or _text(record, "notes_abstract"),
        line=line,
        key=_text(record, "id"),
        url=next((u for u in urls if u.lower().startswith(("http://", "https://"))), ""),
        authors=tuple(record.get("authors") or record.get("first_authors") or ()),
        year=find_year(_text(record, "year")) or find_year(_text(record, "publication_year"))
        or find_year(_text(record, "date")),
        venue=next((_text(record, t) for t in VENUE_TAGS if _text(record, t)), ""),
        doi=normalize_doi(_text(record, "doi")),
        arxiv_id=arxiv_from(*notes),
        pmid=pmid_from(*notes),
        keywords=split_list(record.get("keywords") or []),
    )
