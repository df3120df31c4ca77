"""PubMed XML as PubMed exports it (Save > Format: PubMed XML, or E-utilities efetch), read with the
standard library's ElementTree. Structured abstracts keep their section labels
("BACKGROUND: ... METHODS: ...")."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

from assistant.errors import CorpusError
from assistant.formats.common import Entry, find_year, normalize_doi, normalize_pmid


def sniff(head: str) -> bool:
    return "<PubmedArticleSet" in head or "<PubmedArticle>" in head


def parse(path: Path, text: str) -> list[Entry]:
    root = parse_xml(path, text)
    articles = root.iter("PubmedArticle")
    entries = [_entry(article) for article in articles]
    if not entries and root.tag not in ("PubmedArticleSet", "PubmedArticle"):
        raise CorpusError(f"{path}: XML without PubmedArticle records (root <{root.tag}>)")
    return entries


def parse_xml(path: Path, text: str) -> ElementTree.Element:
    # Entity declarations are how XML bombs and external-entity reads work; PubMed's exports
    # never declare any (expat >= 2.4.1 also caps entity expansion).
    if re.search(r"<!ENTITY", text[:200_000], re.IGNORECASE):
        raise CorpusError(f"{path}: XML that declares entities is not accepted")
    try:
        return ElementTree.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text))
    except ElementTree.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise CorpusError(f"{path}:{line}: not well-formed XML ({exc})") from None


def _text(element: ElementTree.Element | None) -> str:
    """All text inside an element, inline markup (<i>, <sup>) included."""
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _entry(article: ElementTree.Element) -> Entry:
    citation = article.find("MedlineCitation")
    paper = citation.find("Article") if citation is not None else None
    if citation is None or paper is None:
        return Entry(title="", abstract="", key="PubmedArticle without MedlineCitation/Article")
    pmid = normalize_pmid(_text(citation.find("PMID")))
    sections = []
    for part in paper.findall("Abstract/AbstractText"):
        body = _text(part)
        label = (part.get("Label") or "").strip()
        if body:
            sections.append(f"{label}: {body}" if label else body)
    authors = []
    for author in paper.findall("AuthorList/Author"):
        if author.get("ValidYN", "Y") != "Y":
            continue
        family, given = _text(author.find("LastName")), _text(author.find("ForeName"))
        given = given or _text(author.find("Initials"))
        name = f"{family}, {given}" if family and given else family or _text(author.find("CollectiveName"))
        if name:
            authors.append(name)
    journal = paper.find("Journal")
    pub_date = journal.find("JournalIssue/PubDate") if journal is not None else None
    year = ""
    if pub_date is not None:
        year = find_year(_text(pub_date.find("Year"))) or find_year(_text(pub_date.find("MedlineDate")))
    year = year or find_year(_text(paper.find("ArticleDate/Year")))
    doi = ""
    for node in [*article.findall("PubmedData/ArticleIdList/ArticleId"), *paper.findall("ELocationID")]:
        if (node.get("IdType") or node.get("EIdType") or "").lower() == "doi":
            doi = normalize_doi(_text(node))
            if doi:
                break
    keywords = [_text(k) for k in citation.findall("KeywordList/Keyword") if _text(k)]
    venue = ""
    if journal is not None:
        venue = _text(journal.find("Title")) or _text(journal.find("ISOAbbreviation"))
    return Entry(
        title=_text(paper.find("ArticleTitle")) or _text(paper.find("VernacularTitle")),
        abstract=" ".join(sections),
        key=f"PMID {pmid}" if pmid else "",
        authors=tuple(authors),
        year=year,
        venue=venue,
        doi=doi,
        pmid=pmid,
        keywords=tuple(dict.fromkeys(keywords)),
    )
