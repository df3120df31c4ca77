"""Bibliographic import (issue 15): BibTeX, RIS, CSL-JSON, PubMed XML and arXiv Atom files written
here with each format's usual oddities; metadata kept; records without an abstract reported and
skipped; the same paper across files and formats merged; each format round-trips through the
exports (import, export the papers, re-import: same papers, same metadata)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import make_settings
from fixtures_corpus import write_jsonl
from library_files import (
    ARXIV,
    BIBTEX,
    CSL_JSON,
    PUBMED,
    RETINA,
    RETINA_ABSTRACT,
    RIS,
    SEGMAMBA,
    SEGMAMBA_ABSTRACT,
    SEPSIS,
    SEPSIS_ABSTRACT,
    write,
)

from assistant.corpus import load_papers, paper_id
from assistant.errors import CorpusError
from assistant.export import export_bibtex, export_csl_json, export_ris
from assistant.formats import choose_format
from assistant.ingest import ingest, ingest_files
from assistant.store import PaperStore

FILES = {"bibtex": ("refs.bib", BIBTEX), "ris": ("refs.ris", RIS), "pubmed": ("pubmed.xml", PUBMED),
         "arxiv": ("arxiv.xml", ARXIV), "csl-json": ("zotero.json", CSL_JSON)}
METADATA = ("title", "abstract", "url", "authors", "year", "venue", "doi", "arxiv_id", "pmid", "keywords")


def by_title(papers):
    return {p.title: p for p in papers}


def meta(paper) -> tuple:
    return tuple(getattr(paper, f) for f in METADATA)


# --- each format -------------------------------------------------------------------------------
def test_bibtex_latex_accents_braces_strings_and_eprints(tmp_path):
    report = load_papers([write(tmp_path, "refs.bib", BIBTEX)])
    papers = by_title(report.papers)
    assert set(papers) == {SEGMAMBA, RETINA}
    seg = papers[SEGMAMBA]
    # Braces that protect capitals are gone, the line break inside the title is a space.
    assert seg.abstract == SEGMAMBA_ABSTRACT  # "91.3\%" and "{BraTS2023}" decoded
    assert seg.authors == "Xing, Zhaohu; Ye, Tian; Yang, Yijun; Liu, Guang; Zhu, Lei"
    assert (seg.year, seg.doi, seg.arxiv_id) == ("2024", "10.1007/978-3-031-72111-3_54", "2401.13560")
    assert seg.venue == "Medical Image Computing and Computer Assisted Intervention (MICCAI)"  # @string
    assert seg.keywords == "Mamba; segmentation; 3D"
    assert seg.url == "https://doi.org/10.1007/978-3-031-72111-3_54"  # built from the DOI
    assert (seg.line, seg.key) == (4, "xing2024segmamba")
    retina = papers[RETINA]
    assert retina.authors == "Müller, Jörg; Schön, Jérôme; Wang, Li"
    assert retina.abstract == RETINA_ABSTRACT  # "\&" decoded
    assert (retina.pmid, retina.url) == ("35000001", "https://pubmed.ncbi.nlm.nih.gov/35000001/")
    assert report.skipped == [f"{tmp_path / 'refs.bib'}:32: abstract missing for "
                              "'A paper whose export has no abstract'; skipped"]


def test_ris_multi_line_fields_and_notes(tmp_path):
    path = write(tmp_path, "refs.ris", RIS)
    report = load_papers([path])
    (paper,) = report.papers
    assert paper.title == SEPSIS  # continued on a second line
    assert paper.abstract == SEPSIS_ABSTRACT  # four lines, joined
    assert (paper.authors, paper.year, paper.venue) == ("Wang, Li; Chen, Mei", "2023",
                                                        "Critical Care Medicine")
    assert (paper.doi, paper.pmid, paper.keywords) == ("10.1097/CCM.0000000000005999", "37000002",
                                                       "sepsis; machine learning")
    assert report.skipped == [f"{path}:18: abstract missing for "
                              "'A conference paper without an abstract'; skipped"]


def test_pubmed_structured_abstract_keeps_its_labels(tmp_path):
    path = write(tmp_path, "pubmed.xml", PUBMED)
    report = load_papers([path])
    (paper,) = report.papers
    assert paper.abstract == SEPSIS_ABSTRACT  # labels joined with their sections, <i> flattened
    assert paper.abstract.startswith("BACKGROUND: Sepsis") and " METHODS: We trained" in paper.abstract
    assert (paper.title, paper.pmid, paper.doi) == (SEPSIS, "37000002", "10.1097/CCM.0000000000005999")
    assert (paper.authors, paper.year, paper.venue) == ("Wang, Li; Chen, Mei", "2023",
                                                        "Critical Care Medicine")
    assert paper.keywords == "sepsis; machine learning"
    assert report.skipped == [f"{path} (PMID 37000003): abstract missing for "
                              "'A letter without an abstract.'; skipped"]


def test_arxiv_feed_keeps_the_latest_version_and_the_id_without_it(tmp_path):
    report = load_papers([write(tmp_path, "arxiv.xml", ARXIV)])
    assert [p.title for p in report.papers] == [SEGMAMBA, "Vision-language pretraining for chest radiographs"]
    seg, vlp = report.papers
    assert seg.abstract == SEGMAMBA_ABSTRACT  # v3's, not v1's or v2's (listed after it)
    assert (seg.arxiv_id, seg.url) == ("2401.13560", "https://arxiv.org/abs/2401.13560")
    assert (seg.authors, seg.year, seg.venue) == ("Zhaohu Xing; Tian Ye", "2024", "MICCAI 2024")
    assert (seg.doi, seg.keywords) == ("10.1007/978-3-031-72111-3_54", "cs.CV; eess.IV")
    assert (vlp.authors, vlp.year, vlp.venue, vlp.arxiv_id) == ("Ana García; Wei Zhang", "2023", "arXiv",
                                                                "2312.00001")
    assert report.duplicates == []  # versions of one paper are not duplicates to report


def test_csl_json_from_zotero(tmp_path):
    path = write(tmp_path, "zotero.json", CSL_JSON)
    report = load_papers([path])
    papers = by_title(report.papers)
    retina, seg = papers[RETINA], papers[SEGMAMBA]
    assert (retina.authors, retina.year, retina.venue, retina.pmid) == (
        "Müller, Jörg; Schön, Jérôme; Wang, Li", "2022", "Nature Medicine", "35000001")
    assert retina.keywords == "retina; foundation model"
    assert (seg.arxiv_id, seg.doi, seg.authors) == ("2401.13560", "10.48550/arXiv.2401.13560",
                                                    "Xing, Zhaohu; The SegMamba Team")
    assert report.skipped == [f"{path} (ITEM-3): abstract missing for "
                              "'A web page without an abstract'; skipped"]


def test_a_json_array_of_plain_records_reads_like_jsonl(tmp_path):
    path = write(tmp_path, "plain.json", json.dumps([
        {"Title": "Plain", "Abstract": "Text.", "Year": 2020, "DOI": "https://doi.org/10.1234/ABC"}]))
    (paper,) = load_papers([path]).papers
    assert (paper.title, paper.year, paper.doi) == ("Plain", "2020", "10.1234/ABC")


# --- choosing the format -----------------------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "expected"), [
    ("export.txt", RIS, "ris"),  # RIS is often saved as .txt
    ("refs.txt", BIBTEX, "bibtex"),
    ("search", ARXIV, "arxiv"),  # no extension
    ("pubmed_result.xml", PUBMED, "pubmed"),
    ("records.json", '{"title": "A", "abstract": "B"}\n{"title": "C", "abstract": "D"}\n', "jsonl"),
    ("zotero.json", CSL_JSON, "csl-json"),
    ("listing.txt", "Title\nAbstract.\n", "listing"),
    ("refs.bib", "", "bibtex"),
])
def test_the_format_is_chosen_by_extension_and_content(tmp_path, name, text, expected):
    assert choose_format(tmp_path / name, text).name == expected


def test_a_forced_format_wins_and_an_unknown_one_is_named(tmp_path):
    assert [p.title for p in load_papers([write(tmp_path, "refs.dat", RIS)]).papers] == [SEPSIS]
    path = write(tmp_path, "notes.dat", "A title\nAn abstract.\n")  # nothing to sniff
    with pytest.raises(CorpusError, match=r"unknown corpus format '\.dat'.*--format"):
        load_papers([path])
    listing = write(tmp_path, "ris.txt", RIS)
    assert load_papers([listing], fmt="ris").formats == {str(listing): "ris"}
    with pytest.raises(CorpusError, match="unknown format 'endnote'; choose one of bibtex, ris"):
        load_papers([path], fmt="endnote")


def test_other_xml_is_rejected_clearly(tmp_path):
    path = write(tmp_path, "other.xml", "<?xml version='1.0'?><catalog><book/></catalog>")
    with pytest.raises(CorpusError, match="neither a PubMed export"):
        load_papers([path])


# --- bad and hostile files: a clear error, nothing half-read -----------------------------------
def test_an_xml_entity_bomb_is_refused(tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            "<PubmedArticleSet><PubmedArticle>&lol2;</PubmedArticle></PubmedArticleSet>")
    for name in ("bomb.xml", "bomb.atom"):
        with pytest.raises(CorpusError, match="declares entities"):
            load_papers([write(tmp_path, name, bomb.replace("PubmedArticleSet", "feed") if name.endswith(
                "atom") else bomb)])


def test_a_broken_bibtex_entry_names_its_line(tmp_path):
    path = write(tmp_path, "broken.bib", BIBTEX + "\n@article{cut,\n  title = {Cut short\n")
    with pytest.raises(CorpusError, match=rf"^{path}:\d+: BibTeX entry that cannot be parsed"):
        load_papers([path])


def test_a_cut_ris_file_is_rejected(tmp_path):
    path = write(tmp_path, "cut.ris", RIS + "TY  - JOUR\nTI  - No end\n")
    with pytest.raises(CorpusError, match=r"cut short|not readable as RIS"):
        load_papers([path])


def test_malformed_pubmed_xml_names_its_line(tmp_path):
    path = write(tmp_path, "bad.xml", PUBMED.replace("</ArticleTitle>", "", 1))
    with pytest.raises(CorpusError, match=rf"^{path}:\d+: not well-formed XML"):
        load_papers([path])


def test_a_bad_file_in_an_upload_changes_nothing(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest_files([write(tmp_path, "refs.ris", RIS)], settings)
    before = {p.id: p for p in PaperStore(settings).all_papers()}
    good = write(tmp_path, "refs.bib", BIBTEX)
    bad = write(tmp_path, "bad.xml", PUBMED.replace("</ArticleTitle>", "", 1))
    with pytest.raises(CorpusError):
        ingest_files([good, bad], settings)
    assert {p.id: p for p in PaperStore(settings).all_papers()} == before


# --- the same paper twice ----------------------------------------------------------------------
def test_the_same_paper_across_formats_is_one_paper(tmp_path):
    paths = [write(tmp_path, name, text) for name, text in FILES.values()]
    report = load_papers(paths)
    papers = by_title(report.papers)
    assert set(papers) == {SEGMAMBA, RETINA, SEPSIS, "Vision-language pretraining for chest radiographs"}
    merged = "\n".join(report.duplicates)
    assert "same DOI 10.1097/ccm.0000000000005999" in merged  # RIS and PubMed: one sepsis paper
    assert "same DOI 10.1007/978-3-031-72111-3_54" in merged  # BibTeX and arXiv: one SegMamba
    assert "same arXiv id 2401.13560" in merged  # Zotero's SegMamba has the arXiv DOI instead
    assert "same PMID 35000001" in merged  # BibTeX and Zotero: one retina paper
    assert len(report.duplicates) == 4 and all(d.endswith("; merged") for d in report.duplicates)
    # The first record wins; what it lacks comes from the later ones.
    assert papers[RETINA].keywords == "retina; foundation model"  # only Zotero's had keywords
    assert papers[RETINA].source.endswith("refs.bib")
    assert papers[SEPSIS].source.endswith("refs.ris")


def test_a_paper_already_stored_under_another_title_is_not_added_again(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest_files([write(tmp_path, "refs.bib", BIBTEX)], settings)
    renamed = write(tmp_path, "renamed.ris", RIS.replace("Critical Care Medicine", "Crit Care Med")
                    .replace("TI  - Early prediction", "TI  - Zzz renamed").replace(
        "DO  - 10.1097/CCM.0000000000005999", "DO  - 10.1007/978-3-031-72111-3_54"))
    summary = ingest_files([renamed], settings)
    assert summary.papers_added == 0
    assert any(f"already stored as {SEGMAMBA!r} (same DOI" in d for d in summary.duplicates)
    assert PaperStore(settings).count_papers() == 2


# --- round trips -------------------------------------------------------------------------------
EXPORTERS = {"bibtex": (export_bibtex, "out.bib"), "ris": (export_ris, "out.ris"),
             "csl-json": (export_csl_json, "out.json")}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Every format's file ingested into its own store: format -> (papers read, records stored)."""
    out = {}
    for fmt, (name, text) in FILES.items():
        directory = tmp_path_factory.mktemp(fmt.replace("-", ""))
        path = write(directory, name, text)
        settings = make_settings(directory / "store", embed_backend="hash")
        ingest(settings, [path], progress=False)
        out[fmt] = (load_papers([path]).papers, PaperStore(settings).all_papers())
    return out


@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("fmt", list(FILES))
def test_each_format_round_trips_through_each_export(stored, tmp_path, fmt, exporter):
    papers, records = stored[fmt]
    records = sorted(records, key=lambda r: r.title)
    # What was stored is what was read.
    assert [meta(r) for r in records] == [meta(p) for p in sorted(papers, key=lambda p: p.title)]
    export, name = EXPORTERS[exporter]
    again = load_papers([write(tmp_path, name, export(records))]).papers
    assert sorted(meta(p) for p in again) == [meta(r) for r in records]
    assert {p.id for p in again} == {r.id for r in records}


def test_papers_without_metadata_export_from_title_and_link(tmp_path):
    path = write_jsonl(tmp_path / "bare.jsonl", [
        {"title": "A bare paper & its {braces} at 50% off", "abstract": "Only text, $x_1$ and all.",
         "url": "https://example.org/bare"}])
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [path], progress=False)
    records = PaperStore(settings).all_papers()
    bib = export_bibtex(records)
    assert bib.startswith("@misc{") and "url = {https://example.org/bare}" in bib
    ris = export_ris(records)
    assert "TY  - GEN" in ris and "UR  - https://example.org/bare" in ris
    for text, name in ((bib, "bare.bib"), (ris, "bare.ris")):
        (again,) = load_papers([write(tmp_path, name, text)]).papers
        assert meta(again) == meta(records[0])
        assert again.id == paper_id("A bare paper & its {braces} at 50% off")


def test_metadata_is_stored_on_papers_and_chunks_as_scalars(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest_files([write(tmp_path, "refs.bib", BIBTEX)], settings, collection="thesis")
    store = PaperStore(settings)
    record = store.get_papers([paper_id(SEGMAMBA)])[paper_id(SEGMAMBA)]
    assert record.metadata() == {
        "authors": ["Xing, Zhaohu", "Ye, Tian", "Yang, Yijun", "Liu, Guang", "Zhu, Lei"], "year": 2024,
        "venue": "Medical Image Computing and Computer Assisted Intervention (MICCAI)",
        "doi": "10.1007/978-3-031-72111-3_54", "arxiv_id": "2401.13560", "pmid": "",
        "url": "https://doi.org/10.1007/978-3-031-72111-3_54",
        "keywords": ["Mamba", "segmentation", "3D"], "collections": ["thesis"]}
    chunks = store.chunks.get(where={"paper_id": paper_id(SEGMAMBA)}, include=["metadatas"])
    for chunk in chunks["metadatas"]:
        assert chunk["year"] == 2024 and isinstance(chunk["year"], int)
        assert chunk["authors"].startswith("Xing, Zhaohu; Ye, Tian")
        assert chunk["collections"] == "thesis"
        assert all(isinstance(v, str | int | float | bool) for v in chunk.values())
    # Metadata stays out of what is embedded and searched: only the title travels with the text.
    (node,) = [n for n in store.all_chunk_nodes() if n.metadata["paper_id"] == paper_id(SEGMAMBA)][:1]
    from llama_index.core.schema import MetadataMode
    embedded = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "Xing" not in embedded and "MICCAI" not in embedded and SEGMAMBA in embedded


def test_collections_accumulate_across_uploads(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    bib = write(tmp_path, "refs.bib", BIBTEX)
    ingest_files([bib], settings, collection="thesis")
    again = ingest_files([bib], settings)  # the shared collection: nothing changes
    assert (again.papers_unchanged, again.papers_updated) == (2, 0)
    ingest_files([bib], settings, collection="review")
    record = PaperStore(settings).get_papers([paper_id(RETINA)])[paper_id(RETINA)]
    assert record.collections == ("thesis", "review")
    with pytest.raises(CorpusError, match="collection name"):
        ingest_files([bib], settings, collection="../etc")


def test_progress_and_summary_of_an_upload(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    calls = []
    summary = ingest_files([write(tmp_path, n, t) for n, t in FILES.values()], settings,
                           progress=lambda done, total: calls.append((done, total)))
    assert summary.papers_added == 4 and len(summary.duplicates) == 4 and len(summary.skipped) == 4
    assert calls and calls[-1][0] == calls[-1][1] == summary.chunks_total
    assert summary.formats == {str(tmp_path / n): f for f, (n, _) in FILES.items()}
    assert "4 duplicate(s) merged" in summary.line() and "4 record(s) without" in summary.line()


def test_old_metadata_free_papers_keep_their_hash():
    from assistant.corpus import Paper

    plain = Paper(id="x", title="T", abstract="A", source="s", url="u", authors="a", year="2020")
    # The hash the code before issue 15 gave this paper: unchanged, so no re-embedding on upgrade.
    import hashlib
    old = hashlib.sha1("\x1f".join(["T", "A", "u", "a", "2020"]).encode()).hexdigest()[:16]
    assert plain.content_hash == old
    assert dataclasses.replace(plain, venue="V").content_hash != old
