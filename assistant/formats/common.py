"""What every format parser produces (an `Entry`), and the identifier and year helpers they share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
# Only these end a line. str.splitlines() also splits on U+2028/U+2029, NEL, form feeds and other
# separators, which occur inside scraped abstracts and (unescaped, legally) inside JSON strings.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
YEAR = re.compile(r"(?<!\d)(1[89]\d\d|2[01]\d\d)(?!\d)")
DOI = re.compile(r"\b(10\.\d{4,9}/\S+)", re.IGNORECASE)
# New-style (2401.12345, optionally v2) and old-style (hep-th/9901001) arXiv identifiers.
ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?", re.IGNORECASE)
ARXIV_IN_TEXT = re.compile(r"arxiv[:\s./]*(?:abs/|pdf/)?\s*" + ARXIV_ID.pattern, re.IGNORECASE)
ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/" + ARXIV_ID.pattern, re.IGNORECASE)
PMID_IN_TEXT = re.compile(r"\bPMID[:\s]*(\d{1,9})\b", re.IGNORECASE)
PUBMED_URL = re.compile(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d{1,9})", re.IGNORECASE)
# "; " separates names: "Family, Given" names carry commas themselves.
NAME_SEPARATOR = "; "


@dataclass
class Entry:
    """One bibliographic record as a format parser read it: not yet cleaned or validated."""

    title: str
    abstract: str
    line: int = 0  # where the record starts in its file (1-based); 0 when the format has no lines
    key: str = ""  # the record's own key (BibTeX key, RIS ID, PMID...), for reports
    url: str = ""
    authors: tuple[str, ...] = ()
    year: str = ""
    venue: str = ""
    doi: str = ""
    arxiv_id: str = ""
    pmid: str = ""
    keywords: tuple[str, ...] = ()
    external_id: str = ""


def lines(text: str) -> list[str]:
    found = LINE_BREAK.split(text)
    if found and not found[-1]:
        found.pop()  # the break that ends the last line does not start another
    return found


def find_year(value: object) -> str:
    """The four-digit year in a date ("2023/05/01/", "2023 Jan-Feb", 2023), or ""."""
    match = YEAR.search(str(value or ""))
    return match.group(1) if match else ""


def normalize_doi(value: str) -> str:
    """A bare DOI ("https://doi.org/10.1/X" and "doi:10.1/X" give "10.1/X"); DOIs ignore case,
    so comparisons lower-case them."""
    match = DOI.search(unquote(value or ""))
    return match.group(1).rstrip(".,;") if match else ""


def normalize_arxiv_id(value: str) -> str:
    """An arXiv identifier without prefix or version ("arXiv:2401.12345v2" gives "2401.12345")."""
    value = (value or "").strip()
    match = ARXIV_URL.search(value) or ARXIV_IN_TEXT.search(value) or ARXIV_ID.fullmatch(value)
    return match.group(1) if match else ""


def normalize_pmid(value: object) -> str:
    text = str(value or "").strip()
    if text.isdigit():
        return text.lstrip("0")
    match = PMID_IN_TEXT.search(text) or PUBMED_URL.search(text)
    return match.group(1).lstrip("0") if match else ""


def arxiv_from(*texts: str) -> str:
    """The arXiv id in any of the texts: an arXiv URL, "arXiv:ID", or an arXiv DOI."""
    for text in texts:
        if not text:
            continue
        match = ARXIV_URL.search(text) or ARXIV_IN_TEXT.search(text)
        if match:
            return match.group(1)
        doi = re.search(r"10\.48550/arxiv\.(\S+)", text, re.IGNORECASE)
        if doi and ARXIV_ID.fullmatch(doi.group(1).rstrip(".,;")):
            return ARXIV_ID.fullmatch(doi.group(1).rstrip(".,;")).group(1)  # type: ignore[union-attr]
    return ""


def pmid_from(*texts: str) -> str:
    for text in texts:
        match = PMID_IN_TEXT.search(text or "") or PUBMED_URL.search(text or "")
        if match:
            return match.group(1).lstrip("0")
    return ""


def split_list(value: object) -> tuple[str, ...]:
    """Keywords and the like: a list as is, a string split on commas and semicolons."""
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[;,]", str(value or ""))
    return tuple(dict.fromkeys(i.strip() for i in items if i and i.strip()))


def identifier_url(doi: str, arxiv_id: str, pmid: str) -> str:
    """A link built from the paper's identifiers, for records that came without one."""
    if doi:
        return f"https://doi.org/{doi}"
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    if pmid:
        return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
    return ""
