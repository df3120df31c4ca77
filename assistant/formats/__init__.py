"""Input formats: one module per format, and this registry that picks one for a file by its name
and its content (or by the name the user forced with `--format`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import CorpusError
from assistant.formats import arxiv, bibtex, csljson, listing, pubmed, records, ris
from assistant.formats.common import Entry

SNIFF_CHARS = 4_096


@dataclass(frozen=True)
class Format:
    name: str
    extensions: tuple[str, ...]
    description: str
    parse: Callable[[Path, str], list[Entry]]
    sniff: Callable[[str], bool] | None = None
    # Whether a record without a usable title (abstract) rejects the file or is skipped and
    # reported. Bibliographic exports routinely hold entries without an abstract.
    strict_title: bool = False
    strict_abstract: bool = False


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("bibtex", (".bib", ".bibtex"), "BibTeX / BibLaTeX", bibtex.parse, bibtex.sniff),
    Format("ris", (".ris",), "RIS (EndNote, Zotero, Mendeley)", ris.parse, ris.sniff),
    Format("pubmed", (), "PubMed XML", pubmed.parse, pubmed.sniff),
    Format("arxiv", (".atom",), "arXiv API Atom feed", arxiv.parse, arxiv.sniff),
    Format("jsonl", (".jsonl", ".ndjson"), "JSON Lines records", records.parse_jsonl,
           records.sniff_jsonl, strict_title=True),
    Format("csl-json", (".json",), "CSL-JSON (Zotero) or a JSON array of records", csljson.parse,
           csljson.sniff),
    Format("csv", (".csv",), "CSV with title and abstract columns", records.parse_csv,
           strict_title=True),
    Format("listing", (".txt",), "title and abstract on alternate lines", listing.parse,
           strict_title=True, strict_abstract=True),
)}
# Content is sniffed in this order (JSON Lines before CSL-JSON: both start with "{").
SNIFF_ORDER = ("bibtex", "ris", "pubmed", "arxiv", "jsonl", "csl-json")


def format_names() -> list[str]:
    return list(FORMATS)


def choose_format(path: Path, text: str, forced: str | None = None) -> Format:
    """The format named by `forced`, else by the file's extension, else by its content. A `.txt`
    or `.xml` file and a file without extension are sniffed (RIS and BibTeX are often saved as
    .txt); a listing is the fallback for text only."""
    if forced:
        try:
            return FORMATS[forced.lower()]
        except KeyError:
            raise CorpusError(f"unknown format {forced!r}; choose one of "
                              f"{', '.join(FORMATS)}") from None
    suffix = path.suffix.lower()
    head = text[:SNIFF_CHARS]
    by_extension = [f for f in FORMATS.values() if suffix in f.extensions]
    if by_extension and suffix not in (".txt", ".json"):
        return by_extension[0]
    if suffix == ".json" and FORMATS["jsonl"].sniff(head):  # type: ignore[misc]
        return FORMATS["jsonl"]
    if suffix == ".json":
        return FORMATS["csl-json"]
    sniffed = next((FORMATS[n] for n in SNIFF_ORDER if FORMATS[n].sniff(head)), None)  # type: ignore[misc]
    if sniffed is not None and (suffix in (".txt", "", ".xml") or sniffed.name not in ("jsonl", "csl-json")):
        return sniffed
    if suffix in (".txt", ""):
        return FORMATS["listing"]
    if suffix == ".xml":
        raise CorpusError(f"{path}: XML that is neither a PubMed export (<PubmedArticleSet>) nor an "
                          "arXiv Atom feed (<feed>)")
    raise CorpusError(
        f"{path}: unknown corpus format {suffix!r}; use .txt (title/abstract lines), .jsonl, .csv, "
        ".bib, .ris, .json (CSL-JSON), .xml (PubMed) or .atom (arXiv), or force one with --format"
    )


def parse_file(path: Path, text: str, forced: str | None = None) -> tuple[Format, list[Entry]]:
    fmt = choose_format(path, text, forced)
    return fmt, fmt.parse(path, text)


__all__ = ["FORMATS", "Entry", "Format", "choose_format", "format_names", "parse_file"]
