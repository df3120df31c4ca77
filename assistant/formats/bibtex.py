"""BibTeX and BibLaTeX (Zotero, Mendeley, JabRef, Google Scholar exports) through bibtexparser 2:
@string macros resolved, LaTeX accents and braces decoded, co-authors split."""

from __future__ import annotations

import logging
import re
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

SNIFF = re.compile(r"^\s*@(?:article|inproceedings|incollection|conference|book|inbook|misc|online|"
                   r"phdthesis|mastersthesis|techreport|unpublished|preamble|string|comment|report|"
                   r"thesis|proceedings|software|dataset|electronic|manual|booklet)\s*[{(]",
                   re.IGNORECASE | re.MULTILINE)
VENUE_FIELDS = ("journal", "journaltitle", "booktitle", "eventtitle", "series")
# Identifiers and links are not LaTeX: "%" in a URL is not a comment, "_" in a DOI not a subscript.
RAW_FIELDS = ("url", "doi", "eprint", "pmid")


def sniff(head: str) -> bool:
    return bool(SNIFF.search(head)) and not head.lstrip().startswith(("<", "{", "["))


def parse(path: Path, text: str) -> list[Entry]:
    import bibtexparser
    from bibtexparser.middlewares import LatexDecodingMiddleware, SeparateCoAuthors
    from bibtexparser.model import DuplicateBlockKeyBlock

    # bibtexparser logs each failed block itself; the failure is reported here, once, as an error.
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)
    try:
        library = bibtexparser.parse_string(text)
        raw = [{f.key.lower(): f.value for f in entry.fields if f.key.lower() in RAW_FIELDS}
               for entry in library.entries]
        library = SeparateCoAuthors().transform(LatexDecodingMiddleware().transform(library))
        for entry, values in zip(library.entries, raw, strict=True):
            for field in entry.fields:
                if field.key.lower() in values:
                    field.value = values[field.key.lower()]
    except Exception as exc:  # the parser's own errors have no common base class
        raise CorpusError(f"{path}: not readable as BibTeX ({type(exc).__name__}: {exc})") from None
    blocks = list(library.entries)
    for failed in library.failed_blocks:
        if isinstance(failed, DuplicateBlockKeyBlock):
            # Two entries under one key (merged .bib files): both are read, and deduplicated
            # later by DOI, arXiv id, PMID or title like any other pair.
            blocks.append(failed.ignore_error_block)
            continue
        error = getattr(failed, "error", None)
        raise CorpusError(f"{path}:{failed.start_line + 1}: BibTeX entry that cannot be parsed"
                          + (f" ({error})" if error else "") + "; fix or remove it")
    blocks.sort(key=lambda b: b.start_line)
    return [_entry(block) for block in blocks]


def _entry(block: object) -> Entry:
    fields = {f.key.lower(): f.value for f in block.fields}  # type: ignore[attr-defined]

    def text(name: str) -> str:
        value = fields.get(name, "")
        return " ".join(value) if isinstance(value, list) else str(value)

    authors = fields.get("author", [])
    if isinstance(authors, str):
        authors = [authors]
    eprint = text("eprint")
    prefix = (text("archiveprefix") or text("eprinttype")).lower()
    arxiv = normalize_arxiv_id(eprint) if (prefix == "arxiv" or not prefix) else ""
    return Entry(
        title=text("title"),
        abstract=text("abstract"),
        line=block.start_line + 1,  # type: ignore[attr-defined]
        key=str(block.key),  # type: ignore[attr-defined]
        url=text("url"),
        authors=tuple(str(a) for a in authors),
        year=find_year(text("year")) or find_year(text("date")),
        venue=next((text(f) for f in VENUE_FIELDS if text(f)), ""),
        doi=normalize_doi(text("doi")),
        arxiv_id=arxiv or arxiv_from(text("url"), text("doi"), text("note"), text("journal")),
        pmid=normalize_pmid(text("pmid")) or pmid_from(text("note"), text("url")),
        keywords=split_list(text("keywords")),
    )
