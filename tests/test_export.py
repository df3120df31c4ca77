"""Exports (issue 15): an answer's cited papers as BibTeX, RIS and CSL-JSON that re-import to the
same papers, the answer as Markdown with its reference list, tables as CSV, and the evidence table
of a list question (one row per cited paper, each cell a quoted sentence of that paper)."""

from __future__ import annotations

import csv
import io

import pytest
from conftest import cli, make_settings
from library_files import BIBTEX, CSL_JSON, PUBMED, RIS, SEPSIS, SEPSIS_ABSTRACT, write

from assistant.citations import SourceDoc, split_sentences
from assistant.corpus import load_papers
from assistant.errors import AssistantError
from assistant.evidence import evidence_table
from assistant.export import (
    answer_body,
    cited_papers,
    export_answer,
    export_markdown,
    markdown_table_csv,
)
from assistant.ingest import ingest

QUESTION = "Which papers present a model for medical images or patients?"
METADATA = ("title", "abstract", "url", "authors", "year", "venue", "doi", "arxiv_id", "pmid", "keywords")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The library files in one hash-embedded store that never abstains (the hash embedder's
    similarities mean nothing), so that answers cite papers."""
    directory = tmp_path_factory.mktemp("export")
    settings = make_settings(directory / "store", embed_backend="hash", abstain_threshold=-1.0,
                             abstain_confident_similarity=-1.0, abstain_on_unknown_condition=False)
    files = [write(directory, n, t) for n, t in (("refs.bib", BIBTEX), ("refs.ris", RIS),
                                                 ("zotero.json", CSL_JSON))]
    ingest(settings, files, progress=False)
    return settings


@pytest.fixture(scope="module")
def engine(library):
    from assistant.engine import Engine

    engine = Engine(library)
    yield engine
    engine.stop_warmup()


@pytest.fixture(scope="module")
def answer(engine):
    answer = engine.ask(QUESTION, k=3, mode="extractive")
    assert answer.kind == "list" and not answer.abstained and len(answer.citations) >= 2
    return answer


@pytest.mark.parametrize(("fmt", "name"), [("bibtex", "cited.bib"), ("ris", "cited.ris"),
                                           ("csl-json", "cited.json")])
def test_cited_papers_export_and_re_import_to_the_same_papers(engine, answer, tmp_path, fmt, name):
    records = cited_papers(engine.store, answer)
    assert [r.id for r in records] == list(dict.fromkeys(c.paper_id for c in answer.citations))
    text = export_answer(engine, answer, fmt)
    again = load_papers([write(tmp_path, name, text)]).papers
    assert [p.id for p in again] == [r.id for r in records]
    for paper, record in zip(again, records, strict=True):
        assert tuple(getattr(paper, f) for f in METADATA) == tuple(getattr(record, f) for f in METADATA)


def test_markdown_has_the_answer_and_a_full_reference_list(engine, answer):
    text = export_answer(engine, answer, "markdown")
    assert text.startswith(f"# {QUESTION}\n\n{answer_body(answer)}\n")
    assert "**Sources**" not in text  # replaced by the fuller reference list
    references = text.split("## References\n\n", 1)[1]
    records = {r.id: r for r in cited_papers(engine.store, answer)}
    numbers = list(dict.fromkeys(c.n for c in answer.citations))
    lines = [line.strip() for line in references.splitlines() if line.strip()]
    assert [line.split("]", 1)[0] + "]" for line in lines] == [f"[{n}]" for n in numbers]
    for line, citation in zip(lines, list({c.n: c for c in answer.citations}.values()), strict=True):
        record = records[citation.paper_id]
        assert record.title.rstrip(".") in line and f"({record.year})" in line
        assert record.author_list[0] in line
        if record.doi:
            assert f"<https://doi.org/{record.doi}>" in line


def test_markdown_shows_the_filters_applied(engine):
    from assistant.filters import Filters

    answer = engine.ask(QUESTION, filters=Filters(year_from=2022), mode="extractive")
    records = cited_papers(engine.store, answer)
    assert "_Filters: 2022 or later_" in export_markdown(answer, records)


def test_a_list_answer_exports_its_evidence_table_as_csv(engine, answer):
    text = export_answer(engine, answer, "csv", ["sample size"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["n", "title", "url", "task", "method", "data", "main result", "sample size"]
    cited = list({c.n: c for c in answer.citations}.values())
    assert [int(r["n"]) for r in rows] == [c.n for c in cited]
    abstracts = {s.n: s.abstract for s in answer.sources}
    for row in rows:
        sentences = split_sentences(abstracts[int(row["n"])])
        for column in ("task", "method", "data", "main result", "sample size"):
            cell = row[column]
            if cell == "not stated":
                continue
            quote, _, cite = cell.rpartition(" ")
            assert cite == f"[{row['n']}]"
            assert quote.startswith("“") and quote.endswith("”") and quote[1:-1] in sentences
        quoted = [row[c] for c in ("task", "method", "data", "main result") if row[c] != "not stated"]
        assert len(set(quoted)) == len(quoted)  # each default column quotes its own sentence


def test_other_answers_export_their_cited_papers_as_csv(engine):
    answer = engine.ask("What AUROC does the sepsis model reach?", mode="extractive")
    assert answer.kind == "factual" and answer.citations
    rows = list(csv.DictReader(io.StringIO(export_answer(engine, answer, "csv"))))
    assert rows[0].keys() >= {"n", "title", "authors", "year", "venue", "doi", "url"}
    assert SEPSIS in {r["title"] for r in rows}


def test_a_comparison_table_becomes_csv():
    text = ("Intro.\n\n| | *A* [1] | *B* [2] |\n|---|---|---|\n| **Task** | seg [1] | cls [2] |\n"
            "| **Data** | BraTS [1] | MIMIC [2] |\n\nAfter.")
    rows = list(csv.reader(io.StringIO(markdown_table_csv(text) or "")))
    assert rows == [["", "A [1]", "B [2]"], ["Task", "seg [1]", "cls [2]"],  # emphasis dropped
                    ["Data", "BraTS [1]", "MIMIC [2]"]]
    assert markdown_table_csv("No table here.") is None


def test_nothing_cited_nothing_to_export(engine, answer):
    import dataclasses

    empty = dataclasses.replace(answer, citations=[])
    with pytest.raises(AssistantError, match="cites no paper"):
        export_answer(engine, empty, "bibtex")
    with pytest.raises(AssistantError, match="unknown export format 'docx'"):
        export_answer(engine, answer, "docx")


def test_evidence_cells_quote_the_sentence_that_fits_each_column(tmp_path):
    """With the real sentence embedder: each column gets the sentence a reader would pick."""
    from assistant.citations import SentenceVectors
    from assistant.embedding import get_embedder

    vectors = SentenceVectors(get_embedder(make_settings(tmp_path / "store")))
    source = SourceDoc(n=1, paper_id="p", title=SEPSIS, url="", abstract=SEPSIS_ABSTRACT)
    table = evidence_table([source], vectors, ["sample size", "Hospital count"])
    assert table.columns == ["task", "method", "data", "main result", "sample size", "hospital count"]
    cells = {c: (cell.sentence if cell else None) for c, cell in table.rows[0].cells.items()}
    assert cells["main result"] == ("RESULTS: The model predicted sepsis six hours ahead with an "
                                    "AUROC of 0.87.")
    assert "40,336 patients" in cells["sample size"]
    assert "40,336 patients" in cells["data"] or "40,336 patients" in cells["method"]
    assert cells["task"].startswith("BACKGROUND: Sepsis")
    strict = evidence_table([source], vectors, ["favourite colour"], min_similarity=0.6)
    assert strict.rows[0].cells["favourite colour"] is None
    assert "not stated" in strict.to_csv()
    with pytest.raises(AssistantError, match="column name"):
        evidence_table([source], vectors, ["<script>"])


def test_cli_exports(library, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_EMBED_BACKEND", "hash")
    monkeypatch.setenv("ASSISTANT_ABSTAIN_THRESHOLD", "-1")
    monkeypatch.setenv("ASSISTANT_ABSTAIN_CONFIDENT_SIMILARITY", "-1")
    monkeypatch.setenv("ASSISTANT_ABSTAIN_ON_UNKNOWN_CONDITION", "false")
    store = str(library.store_dir)
    bib = cli("ask", QUESTION, "--format", "bibtex", "--store", store, cwd=tmp_path, doubles=True)
    assert bib.returncode == 0, bib.stderr
    papers = load_papers([write(tmp_path, "cli.bib", bib.stdout)]).papers
    assert papers and all(p.abstract and p.year for p in papers)
    markdown = cli("ask", QUESTION, "--format", "markdown", "--store", store, cwd=tmp_path, doubles=True)
    assert markdown.returncode == 0 and "## References" in markdown.stdout
    bad = cli("ask", QUESTION, "--format", "docx", "--store", store, cwd=tmp_path, doubles=True)
    assert bad.returncode == 2 and "unknown --format 'docx'" in bad.stderr
    both = cli("ask", QUESTION, "--format", "ris", "--json", "--store", store, cwd=tmp_path, doubles=True)
    assert both.returncode == 2 and "--json and --format are alternatives" in both.stderr


def test_the_pubmed_label_sentences_survive_export(tmp_path):
    """A structured abstract keeps "LABEL: text" through BibTeX (no LaTeX mangling of colons)."""
    from assistant.export import export_bibtex
    from assistant.store import PaperStore

    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [write(tmp_path, "pubmed.xml", PUBMED)], progress=False)
    (record,) = PaperStore(settings).all_papers()
    (again,) = load_papers([write(tmp_path, "out.bib", export_bibtex([record]))]).papers
    assert again.abstract == SEPSIS_ABSTRACT
