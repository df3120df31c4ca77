"""Reading paper collections: files in any supported format (assistant/formats) become validated,
cleaned and deduplicated `Paper`s.

Everything is validated before anything is ingested, so a bad file is rejected whole with a message
naming the file and line, and never half-ingested. Records without an abstract (common in
bibliographic exports) are reported and skipped; the same paper met twice, in one file or across
files and formats, is one paper (matched by DOI, then arXiv id or PMID, then normalised title).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlparse

from assistant.errors import CorpusError
from assistant.formats import Entry, Format, parse_file
from assistant.formats.common import LINE_BREAK, NAME_SEPARATOR, URL, identifier_url
from assistant.formats.listing import LISTING_HEADER, SUBSCRIBE_PREFIX

__all__ = ["LINE_BREAK", "LISTING_HEADER", "SUBSCRIBE_PREFIX", "URL", "LoadReport", "Paper",
           "load_papers"]

# Zero-width and bidirectional controls: invisible, and able to make a title read differently.
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Lone surrogates (legal as JSON escapes like "\ud800") cannot be encoded to UTF-8: hashing or
# storing them would crash, so they become the replacement character.
SURROGATE = re.compile("[\ud800-\udfff]")
CODE_HOSTS = ("github.com", "gitlab.com", "huggingface.co", "bitbucket.org", "zenodo.org")
# Bibliographic metadata beyond title, abstract, link, authors and year. Part of a paper's content
# hash only when present, so papers without any keep the hash (and store records) they had.
EXTRA_FIELDS = ("venue", "doi", "arxiv_id", "pmid", "keywords", "collections")
COLLECTION_NAME = re.compile(r"^[\w][\w .\-]{0,63}$")


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    source: str
    line: int = 0
    url: str = ""
    authors: str = ""  # names joined by "; " ("Family, Given" names carry commas)
    year: str = ""  # four digits, or ""
    external_id: str = ""
    links: tuple[str, ...] = field(default_factory=tuple)
    venue: str = ""
    doi: str = ""
    arxiv_id: str = ""  # without version
    pmid: str = ""
    keywords: str = ""  # joined by "; "
    collections: tuple[str, ...] = ()  # named collections the paper belongs to (besides all papers)
    key: str = ""  # the record's key in its file (BibTeX key, RIS ID, PMID), for reports

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that is stored for the paper changes."""
        parts = [self.title, self.abstract, self.url, self.authors, self.year]
        extra = [self.venue, self.doi, self.arxiv_id, self.pmid, self.keywords, ";".join(self.collections)]
        if any(extra):
            parts += extra
        payload = "\x1f".join(parts)
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]

    @property
    def code_links(self) -> tuple[str, ...]:
        return tuple(u for u in self.links if is_code_link(u))

    @property
    def link(self) -> str:
        """The paper's own link where known, else its first code link."""
        return self.url or (self.code_links[0] if self.code_links else "")

    @property
    def author_list(self) -> list[str]:
        return [a.strip() for a in self.authors.split(NAME_SEPARATOR.strip()) if a.strip()]

    @property
    def location(self) -> str:
        """Where the record is, for reports: "file:line", or "file (key)" for formats without lines."""
        if self.line:
            return f"{self.source}:{self.line}"
        return f"{self.source} ({self.key})" if self.key else self.source

    def identifiers(self) -> list[tuple[str, str]]:
        """(kind, value) pairs that make two records the same paper, strongest first."""
        found = [("DOI", self.doi.lower()), ("arXiv id", self.arxiv_id.lower()), ("PMID", self.pmid)]
        return [(kind, value) for kind, value in found if value]


@dataclass
class LoadReport:
    papers: list[Paper]
    duplicates: list[str] = field(default_factory=list)  # merged duplicates, one line each
    skipped: list[str] = field(default_factory=list)  # records without an abstract or a title
    formats: dict[str, str] = field(default_factory=dict)  # file -> format name


def bibliographic_meta(paper: Paper) -> dict[str, str | int]:
    """The paper's metadata as Chroma takes it: scalars only (names and keywords joined by "; ",
    collections by ";"), the year an int and absent when unknown, so that `$gte` compares it."""
    meta: dict[str, str | int] = {
        "authors": paper.authors,
        "venue": paper.venue,
        "doi": paper.doi,
        "arxiv_id": paper.arxiv_id,
        "pmid": paper.pmid,
        "collections": join_collections(paper.collections),
    }
    if paper.year.isdigit():
        meta["year"] = int(paper.year)
    return meta


def join_collections(names: Sequence[str]) -> str:
    return ";".join(names)


def split_collections(value: object) -> tuple[str, ...]:
    return tuple(n for n in str(value or "").split(";") if n)


def is_code_link(url: str) -> bool:
    """A link to a code or data host, by its host name (not a substring anywhere in the URL, which
    `https://evil.example/?github.com` would pass)."""
    host = (urlparse(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in CODE_HOSTS)


def normalize_title(title: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a title, used for ids and matching."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^\w]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def paper_id(title: str) -> str:
    return hashlib.sha1(normalize_title(title).encode("utf-8")).hexdigest()[:16]


def clean_text(text: str) -> str:
    text = SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text)
    text = INVISIBLE.sub("", text)
    text = CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def extract_links(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for match in URL.findall(text):
        url = match.rstrip(".,;:!?")
        if url not in found:
            found.append(url)
    return tuple(found)


def load_papers(paths: Sequence[Path], *, max_title_chars: int = 1_000,
                max_abstract_chars: int = 20_000,
                max_bytes: int = 512 * 1024 * 1024, fmt: str | None = None,
                collection: str | None = None) -> LoadReport:
    """Load and validate every file (in the format `fmt` names, else chosen by name and content).
    The same paper twice (same DOI, arXiv id, PMID or normalised title) is merged into the first:
    its empty fields are filled from the later record, and the merge is reported. Records without
    an abstract are reported and skipped. Raises CorpusError naming file and line on the first bad
    record. `collection` names a collection every paper is put in."""
    collections = (check_collection(collection),) if collection else ()
    papers: list[Paper] = []
    index: dict[tuple[str, str], int] = {}  # (kind, value) -> position in papers
    report = LoadReport(papers=papers)
    for path in paths:
        chosen, loaded = _load_file(Path(path), max_bytes=max_bytes, fmt=fmt, skipped=report.skipped)
        report.formats[str(path)] = chosen.name
        for paper in loaded:
            _check_sizes(paper, max_title_chars, max_abstract_chars)
            if collections:
                paper = replace(paper, collections=collections)
            keys = [*paper.identifiers(), ("title", paper.id)]
            match = next((key for key in keys if key in index), None)
            if match is None:
                for key in keys:
                    index[key] = len(papers)
                papers.append(paper)
                continue
            position = index[match]
            first = papers[position]
            if match[0] == "title":
                reason = f"duplicate title {paper.title!r} (first at {first.location})"
            else:
                reason = f"duplicate of {first.location} (same {match[0]} {match[1]})"
            report.duplicates.append(f"{paper.location}: {reason}; merged")
            merged = merge_papers(first, paper)
            papers[position] = merged
            for key in [*merged.identifiers(), ("title", merged.id)]:
                index.setdefault(key, position)
    return report


def merge_papers(first: Paper, later: Paper) -> Paper:
    """The first record, with the fields it lacks taken from a later record of the same paper."""
    missing = {f.name: getattr(later, f.name) for f in fields(Paper)
               if f.name in ("url", "authors", "year", "external_id", *EXTRA_FIELDS[:-1])
               and not getattr(first, f.name) and getattr(later, f.name)}
    return replace(first, **missing) if missing else first


def check_collection(name: str) -> str:
    name = name.strip()
    if not COLLECTION_NAME.match(name):
        raise CorpusError(f"collection name {name!r} is not usable: 1-64 letters, digits, spaces, "
                          "dots, hyphens or underscores, starting with a letter or digit")
    return name


def _check_sizes(paper: Paper, max_title: int, max_abstract: int) -> None:
    if len(paper.title) > max_title:
        raise CorpusError(
            f"{paper.location}: title is {len(paper.title):,} characters "
            f"(limit {max_title:,}); is this a title/abstract line mix-up?"
        )
    if len(paper.abstract) > max_abstract:
        raise CorpusError(
            f"{paper.location}: abstract is {len(paper.abstract):,} characters "
            f"(limit {max_abstract:,}, setting ASSISTANT_MAX_ABSTRACT_CHARS)"
        )


def _load_file(path: Path, *, max_bytes: int, fmt: str | None,
               skipped: list[str]) -> tuple[Format, list[Paper]]:
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory; give corpus files (.txt, .jsonl, .csv, .bib, .ris, "
                          ".json, .xml, .atom)")
    size = path.stat().st_size
    if size > max_bytes:
        raise CorpusError(f"{path}: {size:,} bytes is over the {max_bytes:,}-byte limit")
    text = _decode(path, path.read_bytes())
    chosen, entries = parse_file(path, text, fmt)
    if not entries:
        raise CorpusError(f"{path}: no papers found")
    papers = []
    own_skips = []
    for entry in entries:
        paper = entry_paper(path, entry, chosen, own_skips)
        if paper is not None:
            papers.append(paper)
    if not papers:
        hint = "export the records with their abstracts"
        if chosen.name in ("jsonl", "csv", "csl-json"):
            from assistant.formats.records import EXPECTED

            hint = f"the fields expected are {EXPECTED}"
        raise CorpusError(f"{path}: none of its {len(entries)} records has an abstract (read as "
                          f"{chosen.description}; first: {own_skips[0]})", hint=hint)
    skipped.extend(own_skips)
    return chosen, papers


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CorpusError(
            f"{path}:{line}: bytes that are not UTF-8 (at byte {exc.start}); save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise CorpusError(f"{path}:{line}: NUL byte; this looks like a binary file, not a corpus")
    return text


def entry_paper(path: Path, entry: Entry, fmt: Format, skipped: list[str]) -> Paper | None:
    """A parsed record as a cleaned Paper; None (with a line in `skipped`) for a record without a
    usable title or abstract, where the format allows skipping it."""
    where = f"{path}:{entry.line}" if entry.line else (f"{path} ({entry.key})" if entry.key else str(path))
    title = clean_text(entry.title)
    abstract = clean_text(entry.abstract)
    problem = ""
    if not title:
        problem = "empty title"
    elif not normalize_title(title):
        problem = f"title {title!r} has no letters or digits"
    if problem:
        if fmt.strict_title:
            raise CorpusError(f"{where}: {problem}")
        skipped.append(f"{where}: {problem}; skipped")
        return None
    if not abstract:
        if fmt.strict_abstract:
            raise CorpusError(f"{where}: abstract missing for title {title!r}")
        skipped.append(f"{where}: abstract missing for {title!r}; skipped")
        return None
    doi, arxiv_id, pmid = clean_text(entry.doi), clean_text(entry.arxiv_id), clean_text(entry.pmid)
    url = clean_text(entry.url)
    if url and not URL.fullmatch(url):
        url = ""  # a bibliographic export's odd link is dropped, not rendered
    return Paper(
        id=paper_id(title),
        title=title,
        abstract=abstract,
        source=str(path),
        line=entry.line,
        url=url or identifier_url(doi, arxiv_id, pmid),
        authors=NAME_SEPARATOR.join(n for n in (clean_text(a) for a in entry.authors) if n),
        year=entry.year,
        external_id=clean_text(entry.external_id),
        links=extract_links(abstract),
        venue=clean_text(entry.venue),
        doi=doi,
        arxiv_id=arxiv_id,
        pmid=pmid,
        keywords=NAME_SEPARATOR.join(k for k in (clean_text(k) for k in entry.keywords) if k),
        key=clean_text(entry.key),
    )
