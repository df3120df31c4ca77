"""Plain records: JSON Lines and CSV with a `title` and an `abstract` field, plus optional metadata.
Field names are forgiving: case, spaces, hyphens and underscores are ignored, and the names other
tools export (Zotero's CSV: "Abstract Note", "Publication Title", "Manual Tags") are understood."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats.common import (
    URL,
    Entry,
    find_year,
    lines,
    normalize_arxiv_id,
    normalize_doi,
    normalize_pmid,
    split_list,
)

# Canonical field -> the (normalised) names it goes by.
ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "abstract": ("abstract", "abstract note", "abstractnote"),
    "url": ("url", "link"),
    "authors": ("authors", "author", "creators"),
    "year": ("year", "publication year", "date"),
    "venue": ("venue", "journal", "publication title", "container title", "booktitle",
              "conference", "source title"),
    "doi": ("doi",),
    "arxiv_id": ("arxiv id", "arxiv", "arxivid", "eprint"),
    "pmid": ("pmid", "pubmed id"),
    "keywords": ("keywords", "keyword", "tags", "manual tags"),
    "id": ("id", "key"),
}
EXPECTED = "title, abstract (optional: " + ", ".join(k for k in ALIASES if k not in (
    "title", "abstract")) + "; names are case-insensitive)"


def field_name(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def canonical_fields(names: list[str]) -> dict[str, str]:
    """canonical field -> the record's own key for it (the first that matches)."""
    lookup = {alias: canonical for canonical, aliases in ALIASES.items() for alias in aliases}
    found: dict[str, str] = {}
    for name in names:
        canonical = lookup.get(field_name(name))
        if canonical and canonical not in found:
            found[canonical] = name
    return found


def record_entry(path: Path, line: int, record: dict[str, object]) -> Entry:
    """A plain record as an Entry. Raises CorpusError (naming file and line) for a missing title or
    a field of the wrong type; a missing abstract is left for the caller to report."""
    keys = canonical_fields(list(record))
    where = f"{path}:{line}" if line else f"{path}"
    if "title" not in keys:
        raise CorpusError(f"{where}: no title field; expected {EXPECTED}; found "
                          f"{', '.join(map(str, record)) or 'no fields'}")
    value: dict[str, object] = {k: record.get(name) for k, name in keys.items()}
    for key in ("title", "abstract"):
        if value.get(key) is None or value.get(key) == "":
            value[key] = ""
            if key == "title":
                raise CorpusError(f"{where}: empty title")
        elif not isinstance(value[key], str):
            raise CorpusError(f"{where}: field {key!r} must be a string, not "
                              f"{type(value[key]).__name__}")
    scalars: dict[str, str] = {}
    for key in ("url", "year", "id", "venue", "doi", "arxiv_id", "pmid"):
        item = value.get(key)
        if item is None or item == "":
            continue
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise CorpusError(f"{where}: field {key!r} must be a string, not {type(item).__name__}")
        scalars[key] = str(item).strip()
    url = scalars.get("url", "")
    if url and not re.match(r"^https?://", url, re.IGNORECASE):
        raise CorpusError(f"{where}: field 'url' must be an http(s) URL")
    # One URL and nothing else: it is rendered as the paper's link, so text such as
    # `https://a.org/x) ![i](https://evil.example/p.png` must not ride along with it.
    if url and not URL.fullmatch(url):
        raise CorpusError(f"{where}: field 'url' must be a single http(s) URL without spaces, "
                          "quotes or brackets")
    authors = value.get("authors")
    names: tuple[str, ...] = ()
    if authors not in (None, "", []):
        if isinstance(authors, str):
            # "A; B" or BibTeX's "A and B"; a string of one name stays whole.
            parts = authors.split(";") if ";" in authors else re.split(r"\s+and\s+", authors)
            names = tuple(a.strip() for a in parts if a.strip())
        elif isinstance(authors, list) and all(isinstance(a, str) for a in authors):
            names = tuple(a for a in authors if a.strip())
        else:
            raise CorpusError(f"{where}: field 'authors' must be a string or a list of strings")
    keywords = value.get("keywords")
    if keywords not in (None, "", []) and not isinstance(keywords, str | list):
        raise CorpusError(f"{where}: field 'keywords' must be a string or a list of strings")
    return Entry(
        title=str(value["title"]),
        abstract=str(value["abstract"]),
        line=line,
        key=scalars.get("id", ""),
        url=url,
        authors=names,
        year=find_year(scalars.get("year", "")),
        venue=scalars.get("venue", ""),
        doi=normalize_doi(scalars.get("doi", "")),
        arxiv_id=normalize_arxiv_id(scalars.get("arxiv_id", "")),
        pmid=normalize_pmid(scalars.get("pmid", "")),
        keywords=split_list(keywords),
        external_id=scalars.get("id", ""),
    )


def sniff_jsonl(head: str) -> bool:
    rows = [line for line in lines(head) if line.strip()]
    if len(rows) < 2 or not rows[0].lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(rows[0]), dict)
    except ValueError:
        return False


def parse_jsonl(path: Path, text: str) -> list[Entry]:
    entries = []
    for number, raw in enumerate(lines(text), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except RecursionError:  # valid JSON nested deeper than the parser's stack
            raise CorpusError(f"{path}:{number}: JSON nested too deeply to be a paper record") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise CorpusError(f"{path}:{number}: not a usable JSON record ({exc})") from None
        if not isinstance(record, dict):
            raise CorpusError(
                f"{path}:{number}: expected a JSON object, got {type(record).__name__}"
            )
        entries.append(record_entry(path, number, record))
    return entries


def parse_csv(path: Path, text: str) -> list[Entry]:
    # A plain reader, not DictReader: it yields blank lines too, so each record's first line is
    # known (a quoted abstract can span many lines; errors name the line the record starts on).
    # strict: an unterminated quote is an error, not a field that silently swallows every record
    # after it.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next((row for row in reader if row), [])  # leading blank lines are skipped
        known = canonical_fields(header)
        missing = [c for c in ("title", "abstract") if c not in known]
        if missing:
            raise CorpusError(f"{path}:{max(reader.line_num, 1)}: CSV header lacks column(s) "
                              f"{', '.join(missing)}; expected {EXPECTED}; found "
                              f"{', '.join(header) or 'no columns'}")
        entries = []
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if len(cells) > len(header):
                raise CorpusError(f"{path}:{line}: more cells than header columns")
            if not any(c.strip() for c in cells):
                continue
            entries.append(record_entry(path, line, dict(zip(header, cells, strict=False))))
    except csv.Error as exc:
        raise CorpusError(f"{path}:{start}: malformed CSV record ({exc}); check its quotes "
                          "(an unclosed quote runs to the end of the file)") from None
    return entries
