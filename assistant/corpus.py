"""Reading paper collections: the scraped title/abstract listing, JSONL and CSV.

Everything is validated before anything is ingested, so a bad file is rejected whole with a message
naming the file and line, and never half-ingested.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from assistant.errors import CorpusError

LISTING_HEADER = re.compile(r"^get trending papers", re.IGNORECASE)
# The scraped page glues its "Subscribe" button text to the first title.
SUBSCRIBE_PREFIX = re.compile(r"^Subscribe(?=[A-Z0-9])")
URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
# Zero-width and bidirectional controls: invisible, and able to make a title read differently.
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Lone surrogates (legal as JSON escapes like "\ud800") cannot be encoded to UTF-8: hashing or
# storing them would crash, so they become the replacement character.
SURROGATE = re.compile("[\ud800-\udfff]")
CODE_HOSTS = ("github.com", "gitlab.com", "huggingface.co", "bitbucket.org", "zenodo.org")
# Only these end a line. str.splitlines() also splits on U+2028/U+2029, NEL, form feeds and other
# separators, which occur inside scraped abstracts and (unescaped, legally) inside JSON strings.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    source: str
    line: int = 0
    url: str = ""
    authors: str = ""
    year: str = ""
    external_id: str = ""
    links: tuple[str, ...] = field(default_factory=tuple)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that is stored for the paper changes."""
        payload = "\x1f".join([self.title, self.abstract, self.url, self.authors, self.year])
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]

    @property
    def code_links(self) -> tuple[str, ...]:
        return tuple(u for u in self.links if is_code_link(u))

    @property
    def link(self) -> str:
        """The paper's own link where known, else its first code link."""
        return self.url or (self.code_links[0] if self.code_links else "")


@dataclass
class LoadReport:
    papers: list[Paper]
    duplicates: list[str] = field(default_factory=list)


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
                max_bytes: int = 512 * 1024 * 1024) -> LoadReport:
    """Load and validate every file; duplicate titles (same normalised title) keep the first and are
    reported. Raises CorpusError naming file and line on the first bad record."""
    papers: list[Paper] = []
    seen: dict[str, Paper] = {}
    duplicates: list[str] = []
    for path in paths:
        for paper in _load_file(Path(path), max_bytes=max_bytes):
            _check_sizes(paper, max_title_chars, max_abstract_chars)
            if paper.id in seen:
                first = seen[paper.id]
                duplicates.append(
                    f"{paper.source}:{paper.line}: duplicate title {paper.title!r} "
                    f"(first at {first.source}:{first.line}); skipped"
                )
                continue
            seen[paper.id] = paper
            papers.append(paper)
    return LoadReport(papers=papers, duplicates=duplicates)


def _check_sizes(paper: Paper, max_title: int, max_abstract: int) -> None:
    if len(paper.title) > max_title:
        raise CorpusError(
            f"{paper.source}:{paper.line}: title is {len(paper.title):,} characters "
            f"(limit {max_title:,}); is this a title/abstract line mix-up?"
        )
    if len(paper.abstract) > max_abstract:
        raise CorpusError(
            f"{paper.source}:{paper.line}: abstract is {len(paper.abstract):,} characters "
            f"(limit {max_abstract:,}, setting ASSISTANT_MAX_ABSTRACT_CHARS)"
        )


def _load_file(path: Path, *, max_bytes: int) -> list[Paper]:
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory; give corpus files (.txt, .jsonl, .csv)")
    size = path.stat().st_size
    if size > max_bytes:
        raise CorpusError(f"{path}: {size:,} bytes is over the {max_bytes:,}-byte limit")
    text = _decode(path, path.read_bytes())
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        papers = _parse_jsonl(path, text)
    elif suffix == ".csv":
        papers = _parse_csv(path, text)
    elif suffix in (".txt", ""):
        papers = _parse_listing(path, text)
    else:
        raise CorpusError(
            f"{path}: unknown corpus format {suffix!r}; use .txt (title/abstract lines), "
            ".jsonl or .csv"
        )
    if not papers:
        raise CorpusError(f"{path}: no papers found")
    return papers


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


def _lines(text: str) -> list[str]:
    lines = LINE_BREAK.split(text)
    if lines and not lines[-1]:
        lines.pop()  # the break that ends the last line does not start another
    return lines


def _make_paper(path: Path, line: int, title: str, abstract: str, **extra: str) -> Paper:
    title = clean_text(title)
    abstract = clean_text(abstract)
    if not title:
        raise CorpusError(f"{path}:{line}: empty title")
    if not normalize_title(title):
        raise CorpusError(f"{path}:{line}: title {title!r} has no letters or digits")
    if not abstract:
        raise CorpusError(f"{path}:{line}: abstract missing for title {title!r}")
    return Paper(
        id=paper_id(title),
        title=title,
        abstract=abstract,
        source=str(path),
        line=line,
        links=extract_links(abstract),
        **extra,
    )


def _parse_listing(path: Path, text: str) -> list[Paper]:
    lines = _lines(text)
    start = 0
    while start < len(lines) and (not lines[start].strip() or LISTING_HEADER.match(lines[start])):
        start += 1
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    body = lines[start:end]
    if len(body) % 2:
        raise CorpusError(
            f"{path}:{start + len(body)}: odd number of title/abstract lines ({len(body)}): "
            "a title without its abstract, or a stray line"
        )
    papers = []
    for i in range(0, len(body), 2):
        title_line = start + i + 1
        title = body[i].strip()
        if i == 0:  # only the first title follows the button; "SubscribeNet" elsewhere is a name
            title = SUBSCRIBE_PREFIX.sub("", title)
        if not body[i].strip():
            raise CorpusError(f"{path}:{title_line}: empty title line")
        if not body[i + 1].strip():
            raise CorpusError(f"{path}:{title_line + 1}: abstract missing (empty line)")
        papers.append(_make_paper(path, title_line, title, body[i + 1]))
    return papers


def _optional_fields(path: Path, line: int, record: dict[str, object]) -> dict[str, str]:
    extra: dict[str, str] = {}
    for key, target in (("url", "url"), ("year", "year"), ("id", "external_id")):
        value = record.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise CorpusError(f"{path}:{line}: field {key!r} must be a string, not "
                              f"{type(value).__name__}")
        extra[target] = clean_text(str(value))
    if extra.get("url") and not re.match(r"^https?://", extra["url"], re.IGNORECASE):
        raise CorpusError(f"{path}:{line}: field 'url' must be an http(s) URL")
    # One URL and nothing else: it is rendered as the paper's link, so text such as
    # `https://a.org/x) ![i](https://evil.example/p.png` must not ride along with it.
    if extra.get("url") and not URL.fullmatch(extra["url"]):
        raise CorpusError(f"{path}:{line}: field 'url' must be a single http(s) URL without spaces, "
                          "quotes or brackets")
    authors = record.get("authors")
    if authors not in (None, "", []):
        if isinstance(authors, str):
            extra["authors"] = clean_text(authors)
        elif isinstance(authors, list) and all(isinstance(a, str) for a in authors):
            extra["authors"] = ", ".join(clean_text(a) for a in authors)
        else:
            raise CorpusError(f"{path}:{line}: field 'authors' must be a string or a list of strings")
    return extra


def _record_to_paper(path: Path, line: int, record: dict[str, object]) -> Paper:
    for key in ("title", "abstract"):
        value = record.get(key)
        if value is None or value == "":
            what = "empty title" if key == "title" else "abstract missing"
            raise CorpusError(f"{path}:{line}: {what}")
        if not isinstance(value, str):
            raise CorpusError(f"{path}:{line}: field {key!r} must be a string, not "
                              f"{type(value).__name__}")
    return _make_paper(path, line, str(record["title"]), str(record["abstract"]),
                       **_optional_fields(path, line, record))


def _parse_jsonl(path: Path, text: str) -> list[Paper]:
    papers = []
    for number, raw in enumerate(_lines(text), start=1):
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
        papers.append(_record_to_paper(path, number, record))
    return papers


def _parse_csv(path: Path, text: str) -> list[Paper]:
    # A plain reader, not DictReader: it yields blank lines too, so each record's first line is
    # known (a quoted abstract can span many lines; errors name the line the record starts on).
    # strict: an unterminated quote is an error, not a field that silently swallows every record
    # after it.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next((row for row in reader if row), [])  # leading blank lines are skipped
        missing = [c for c in ("title", "abstract") if c not in header]
        if missing:
            raise CorpusError(f"{path}:{max(reader.line_num, 1)}: CSV header lacks column(s) "
                              f"{', '.join(missing)}")
        papers = []
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if len(cells) > len(header):
                raise CorpusError(f"{path}:{line}: more cells than header columns")
            if not any(c.strip() for c in cells):
                continue
            papers.append(_record_to_paper(path, line, dict(zip(header, cells, strict=False))))
    except csv.Error as exc:
        raise CorpusError(f"{path}:{start}: malformed CSV record ({exc}); check its quotes "
                          "(an unclosed quote runs to the end of the file)") from None
    return papers
