"""Getting results out: the papers an answer cites as BibTeX, RIS or CSL-JSON (from their metadata,
or built from title and link when the input had none), the answer as Markdown with its reference
list, and tables (comparison, evidence, cited papers) as CSV.

Every function takes the answer and/or the cited papers' records and returns text; `cited_papers`
reads the records from the store. The web layer and the CLI call these.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.engine import Answer, Engine
    from assistant.evidence import EvidenceTable
    from assistant.store import PaperRecord, PaperStore

EXPORT_FORMATS = ("markdown", "bibtex", "ris", "csl-json", "csv")
MEDIA_TYPES = {"markdown": "text/markdown", "bibtex": "application/x-bibtex",
               "ris": "application/x-research-info-systems",
               "csl-json": "application/vnd.citationstyles.csl+json", "csv": "text/csv"}
EXTENSIONS = {"markdown": ".md", "bibtex": ".bib", "ris": ".ris", "csl-json": ".json", "csv": ".csv"}
SOURCES_HEADING = "\n\n**Sources**\n"
CONFERENCE = re.compile(r"\b(conference|proceedings|workshop|symposium|congress|MICCAI|MIDL|ISBI|"
                        r"NeurIPS|NIPS|CVPR|ICCV|ECCV|ICML|ICLR|AAAI|IJCAI|ACL|EMNLP|NAACL|KDD|"
                        r"WACV|BMVC|IPMI)\b", re.IGNORECASE)


def cited_papers(store: PaperStore, answer: Answer) -> list[PaperRecord]:
    """The records of the papers the answer cites, in citation order (each paper once)."""
    ids = list(dict.fromkeys(c.paper_id for c in answer.citations))
    records = store.get_papers(ids)
    return [records[pid] for pid in ids if pid in records]


def source_papers(store: PaperStore, answer: Answer) -> dict[str, PaperRecord]:
    return store.get_papers([s.paper_id for s in answer.sources])


def answer_json(answer: Answer, records: dict[str, PaperRecord]) -> dict[str, Any]:
    """Answer.to_json() with each source's and citation's bibliographic metadata."""
    data = answer.to_json()
    for item in [*data["sources"], *data["citations"]]:
        record = records.get(item["paper_id"])
        item["metadata"] = record.metadata() if record else None
    return data


# --- BibTeX --------------------------------------------------------------------------------------
def export_bibtex(records: Sequence[PaperRecord]) -> str:
    """One entry per paper; LaTeX-encoded (accents, &, %, braces), titles in double braces so that
    styles keep their capitals, names joined by " and "."""
    import bibtexparser
    from bibtexparser.library import Library
    from bibtexparser.middlewares import LatexEncodingMiddleware
    from bibtexparser.model import Entry, Field

    library = Library()
    keys: set[str] = set()
    raw: list[list[Field]] = []  # identifiers and links, which are not LaTeX-encoded
    for record in records:
        fields = [Field("title", record.title)]
        if record.author_list:
            fields.append(Field("author", " and ".join(record.author_list)))
        if record.year:
            fields.append(Field("year", record.year))
        entry_type = "misc"
        if record.venue:
            entry_type = "inproceedings" if CONFERENCE.search(record.venue) else "article"
            fields.append(Field("booktitle" if entry_type == "inproceedings" else "journal",
                                record.venue))
        if record.keyword_list:
            fields.append(Field("keywords", ", ".join(record.keyword_list)))
        fields.append(Field("abstract", record.abstract))
        identifiers = [Field(name, value) for name, value in (
            ("doi", record.doi), ("url", record.url), ("pmid", record.pmid), ("eprint", record.arxiv_id))
            if value]
        if record.arxiv_id:
            fields.append(Field("archiveprefix", "arXiv"))
        raw.append(identifiers)
        library.add(Entry(entry_type, _bibtex_key(record, keys), fields))
    library = LatexEncodingMiddleware(allow_inplace_modification=True).transform(library)
    for entry, identifiers in zip(library.entries, raw, strict=True):
        entry.fields_dict["title"].value = "{" + entry.fields_dict["title"].value + "}"
        for identifier in identifiers:
            entry.set_field(identifier)
    return bibtexparser.write_string(library)


def _bibtex_key(record: PaperRecord, taken: set[str]) -> str:
    """"wang2023segmamba": first author's family name, year, first title word; a, b... on clashes."""
    first = record.author_list[0] if record.author_list else ""
    family = first.split(",")[0] if "," in first else (first.split()[-1] if first.split() else "")
    word = next((w for w in re.findall(r"[^\W\d_]{3,}", record.title)
                 if w.lower() not in {"the", "and", "for", "with", "from", "towards", "toward"}), "paper")
    base = _ascii(f"{family}{record.year}{word}").lower() or f"paper{record.id}"
    key, suffix = base, 0
    while key in taken:
        suffix += 1
        key = base + "abcdefghijklmnopqrstuvwxyz"[(suffix - 1) % 26] * ((suffix - 1) // 26 + 1)
    taken.add(key)
    return key


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^A-Za-z0-9]", "", text.encode("ascii", "ignore").decode())


# --- RIS and CSL-JSON ----------------------------------------------------------------------------
def export_ris(records: Sequence[PaperRecord]) -> str:
    """RIS through rispy. PMID and arXiv id go into notes ("PMID: 123", "arXiv:2401.12345"), where
    reference managers keep them and import reads them back."""
    import rispy

    entries = []
    for record in records:
        kind = "GEN"
        if record.venue:
            kind = "CONF" if CONFERENCE.search(record.venue) else "JOUR"
        entry: dict[str, Any] = {"type_of_reference": kind, "title": record.title}
        if record.author_list:
            entry["authors"] = record.author_list
        if record.year:
            entry["year"] = record.year
        if record.venue:
            entry["secondary_title"] = record.venue
        if record.doi:
            entry["doi"] = record.doi
        if record.url:
            entry["urls"] = [record.url]
        notes = [f"PMID: {record.pmid}"] * bool(record.pmid) + [f"arXiv:{record.arxiv_id}"] * bool(
            record.arxiv_id)
        if notes:
            entry["notes"] = notes
        if record.keyword_list:
            entry["keywords"] = record.keyword_list
        entry["abstract"] = record.abstract
        entry["id"] = record.id
        entries.append(entry)
    return rispy.dumps(entries)


def export_csl_json(records: Sequence[PaperRecord]) -> str:
    """CSL-JSON, which Zotero, Mendeley and citeproc tools import."""
    items = []
    for record in records:
        item: dict[str, Any] = {"id": record.id, "type": "article-journal" if record.venue else "article",
                                "title": record.title, "abstract": record.abstract}
        authors = []
        for name in record.author_list:
            family, sep, given = name.partition(",")
            authors.append({"family": family.strip(), "given": given.strip()} if sep else {"literal": name})
        if authors:
            item["author"] = authors
        if record.year:
            item["issued"] = {"date-parts": [[int(record.year)]]}
        for key, value in (("container-title", record.venue), ("DOI", record.doi), ("URL", record.url),
                           ("PMID", record.pmid)):
            if value:
                item[key] = value
        if record.arxiv_id:
            item["number"] = f"arXiv:{record.arxiv_id}"
        if record.keyword_list:
            item["keyword"] = ", ".join(record.keyword_list)
        items.append(item)
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


# --- Markdown ------------------------------------------------------------------------------------
def answer_body(answer: Answer) -> str:
    """The answer's text without the short source list the engine appends."""
    return answer.answer.split(SOURCES_HEADING, 1)[0].rstrip()


def reference(record: PaperRecord) -> str:
    """"Wang, Li; Müller, Hans (2023). Title. *Venue*. https://doi.org/..." """
    parts = []
    if record.author_list:
        names = record.author_list
        parts.append("; ".join(names[:6]) + ("; et al." if len(names) > 6 else ""))
    if record.year:
        parts.append(f"({record.year})")
    head = " ".join(parts)
    text = (f"{head}. " if head else "") + f"{record.title.rstrip('.')}."
    if record.venue:
        text += f" *{record.venue}*."
    link = f"https://doi.org/{record.doi}" if record.doi else record.url
    if link:
        text += f" <{link}>"
    return text


def export_markdown(answer: Answer, records: Sequence[PaperRecord]) -> str:
    """The question, the answer with its [n] citations, the filters applied, and a reference list
    numbered as the citations are."""
    by_id = {r.id: r for r in records}
    lines = [f"# {answer.question}", "", answer_body(answer), ""]
    if answer.filters:
        lines += [f"_Filters: {answer.filters.describe()}_", ""]
    seen: set[int] = set()
    refs = []
    for citation in answer.citations:
        if citation.n in seen:
            continue
        seen.add(citation.n)
        record = by_id.get(citation.paper_id)
        fallback = f"{citation.title}." + (f" <{citation.url}>" if citation.url else "")
        refs.append(f"[{citation.n}] " + (reference(record) if record else fallback))
    if refs:
        lines += ["## References", "", *[r + "  " for r in refs]]
    return "\n".join(lines).rstrip() + "\n"


# --- CSV -----------------------------------------------------------------------------------------
def papers_csv(records: Sequence[PaperRecord], numbers: Sequence[int] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["n", "title", "authors", "year", "venue", "doi", "arxiv_id", "pmid", "url"])
    for i, r in enumerate(records):
        n = numbers[i] if numbers else i + 1
        writer.writerow([n, r.title, r.authors, r.year, r.venue, r.doi, r.arxiv_id, r.pmid, r.url])
    return out.getvalue()


def markdown_table_csv(text: str) -> str | None:
    """The first Markdown table in the text as CSV (the comparison table of a comparative answer),
    or None when there is none."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if all(re.fullmatch(r":?-{3,}:?", c) for c in cells if c):
                continue  # the header's separator row
            rows.append([re.sub(r"\*\*?([^*]+)\*\*?", r"\1", c) for c in cells])
        elif rows:
            break
    if len(rows) < 2:
        return None
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def answer_csv(answer: Answer, records: Sequence[PaperRecord],
               evidence: EvidenceTable | None = None) -> str:
    """The table an answer has: its comparison table (comparative questions), the evidence table
    (list questions, when given), else the cited papers, one row each."""
    if answer.kind == "comparative":
        table = markdown_table_csv(answer_body(answer))
        if table:
            return table
    if evidence is not None and evidence.rows:
        return evidence.to_csv()
    numbers = {c.paper_id: c.n for c in answer.citations}
    return papers_csv(records, [numbers.get(r.id, i + 1) for i, r in enumerate(records)])


def evidence_for(engine: Engine, answer: Answer, extra_columns: Sequence[str] = ()) -> EvidenceTable:
    """The evidence table of an answer's cited papers (all its sources when it cites none)."""
    from assistant.evidence import evidence_table

    cited = {c.paper_id for c in answer.citations}
    sources = [s for s in answer.sources if s.paper_id in cited] or list(answer.sources)
    return evidence_table(sources, engine.vectors, extra_columns,
                          min_similarity=engine.settings.evidence_min_similarity)


def export_answer(engine: Engine, answer: Answer, fmt: str, extra_columns: Sequence[str] = ()) -> str:
    """The answer in one of EXPORT_FORMATS, reading what it needs from the engine's store."""
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise AssistantError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    records = cited_papers(engine.store, answer)
    if fmt == "markdown":
        return export_markdown(answer, records)
    if fmt == "csv":
        evidence = evidence_for(engine, answer, extra_columns) if answer.kind == "list" or extra_columns \
            else None
        return answer_csv(answer, records, evidence)
    if not records:
        raise AssistantError("the answer cites no paper, so there is nothing to export",
                             hint="ask a question the collection covers")
    return {"bibtex": export_bibtex, "ris": export_ris, "csl-json": export_csl_json}[fmt](records)
