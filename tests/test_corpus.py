"""Corpus loading: the bundled scraped listing, JSONL and CSV, and every way a file can be bad."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fixtures_corpus import LISTING_HEADER, write_csv, write_jsonl, write_listing

from assistant import corpus
from assistant.corpus import CODE_HOSTS, extract_links, load_papers, normalize_title, paper_id
from assistant.errors import CorpusError
from assistant.resources import bundled_corpus

FIRST_TITLE = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"
LAST_TITLE = (
    "Exploring the Effect of Dataset Diversity in Self-Supervised Learning for Surgical Computer "
    "Vision"
)
MEDVAE_TITLE = (
    "MedVAE: Efficient Automated Interpretation of Medical Images with Large-Scale Generalizable "
    "Autoencoders"
)


@pytest.fixture(scope="module")
def bundled():
    return load_papers([bundled_corpus()])


# --- the bundled corpus -----------------------------------------------------------------------


def test_bundled_corpus_has_215_papers_in_order(bundled):
    papers = bundled.papers
    assert len(papers) == 215
    assert bundled.duplicates == []
    assert papers[0].title == FIRST_TITLE
    assert papers[1].title == MEDVAE_TITLE
    assert papers[-1].title == LAST_TITLE
    # Line numbers point at the title lines: two header lines, then title/abstract pairs.
    assert [p.line for p in papers] == list(range(3, 3 + 2 * 215, 2))
    assert all(p.source == str(bundled_corpus()) for p in papers)


def test_bundled_titles_are_clean_and_paired_with_their_abstracts(bundled):
    for paper in bundled.papers:
        assert not paper.title.startswith("Subscribe"), paper.title
        assert not corpus.LISTING_HEADER.match(paper.title)
        assert paper.title == paper.title.strip() and "\n" not in paper.title
        # A title/abstract mix-up would put a long paragraph in the title.
        assert len(paper.title) < 300, paper.title
        assert len(paper.abstract) > 2 * len(paper.title), paper.title
    assert bundled.papers[0].abstract.startswith("Nailfold capillaroscopy is a well-established")


def test_bundled_links_are_extracted_without_trailing_punctuation(bundled):
    by_title = {p.title: p for p in bundled.papers}
    medvae = by_title[MEDVAE_TITLE]
    # The abstract says "...at https://github.com/StanfordMIMI/MedVAE." - the period is prose.
    assert "https://github.com/StanfordMIMI/MedVAE." in medvae.abstract
    assert medvae.links == ("https://github.com/StanfordMIMI/MedVAE",)
    assert medvae.code_links == medvae.links
    assert medvae.link == "https://github.com/StanfordMIMI/MedVAE"
    # "(available at https://github.com/...Capillary)" - the closing bracket is not in the URL.
    assert by_title[FIRST_TITLE].links == (
        "https://github.com/THU-CS-PI-LAB/ANFC-Automated-Nailfold-Capillary",
    )
    all_links = [link for p in bundled.papers for link in p.links]
    assert len(all_links) >= 70
    for link in all_links:
        assert link.startswith(("http://", "https://")), link
        assert link[-1] not in ".,;:!?)]}'\"", link
        assert "{" not in link and "}" not in link, link
    github = [p for p in bundled.papers if any("github.com/" in u for u in p.code_links)]
    assert len(github) >= 60
    for paper in bundled.papers:
        if "github.com/" in paper.abstract:
            assert any("github.com/" in u for u in paper.code_links), paper.title
        assert set(paper.code_links) <= set(paper.links)
        assert all(any(h in u for h in CODE_HOSTS) for u in paper.code_links)


def test_bundled_ids_are_unique_stable_and_title_derived(bundled):
    ids = [p.id for p in bundled.papers]
    assert len(set(ids)) == 215
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids), [i for i in ids if len(i) != 16][:3]
    assert ids == [p.id for p in load_papers([bundled_corpus()]).papers]
    assert all(p.id == paper_id(p.title) for p in bundled.papers)
    # Pinned: stores built by earlier versions must keep matching these papers.
    assert bundled.papers[0].id == "42047ad03a239b99"


@pytest.mark.parametrize(
    "variant",
    [
        "medvae: efficient automated interpretation of medical images with large-scale "
        "generalizable autoencoders",
        "MEDVAE - Efficient Automated Interpretation of Medical Images, with Large Scale "
        "Generalizable Autoencoders!",
        "  MedVAE:   Efficient Automated Interpretation of Medical Images with Large-Scale\t"
        "Generalizable   Autoencoders. ",
        "MédVAE: Efficient Automated Interpretation of Medical Images with Large-Scale "
        "Generalizable Autoencoders",
    ],
)
def test_paper_id_ignores_case_punctuation_spacing_and_accents(variant):
    assert paper_id(variant) == paper_id(MEDVAE_TITLE)
    assert normalize_title(variant) == normalize_title(MEDVAE_TITLE)


def test_paper_id_distinguishes_different_titles():
    assert paper_id("MedVAE for CT") != paper_id("MedVAE for MRI")
    assert paper_id("Model 1") != paper_id("Model 2")


def test_extract_links_strips_prose_punctuation_and_deduplicates():
    text = (
        "Code: https://github.com/a/b. Data (https://zenodo.org/r/1), see "
        "https://github.com/a/b; and <https://example.org/x?y=1>."
    )
    assert extract_links(text) == (
        "https://github.com/a/b",
        "https://zenodo.org/r/1",
        "https://example.org/x?y=1",
    )


# --- JSONL / CSV / listing ----------------------------------------------------------------------


def test_jsonl_with_and_without_optional_fields(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"title": "Full Record", "abstract": "An abstract. Code at https://github.com/x/full.",
         "url": "https://arxiv.org/abs/1234.5678", "authors": ["Ada Lovelace", "Alan Turing"],
         "year": 2024, "id": "arXiv:1234.5678"},
        {"title": "Bare Record", "abstract": "Only the required fields."},
        {"title": "String Authors", "abstract": "Text.", "authors": "A. One and B. Two",
         "year": "2023", "url": "", "id": 42},
    ])
    path.write_text(path.read_text() + "\n   \n", encoding="utf-8")  # blank lines are skipped
    full, bare, strings = load_papers([path]).papers
    assert (full.title, full.url, full.authors, full.year, full.external_id) == (
        "Full Record", "https://arxiv.org/abs/1234.5678", "Ada Lovelace; Alan Turing", "2024",
        "arXiv:1234.5678",
    )
    assert full.link == "https://arxiv.org/abs/1234.5678"
    assert full.links == ("https://github.com/x/full",)
    assert (full.line, bare.line, strings.line) == (1, 2, 3)
    assert (bare.url, bare.authors, bare.year, bare.external_id, bare.links) == ("", "", "", "", ())
    assert bare.link == ""
    assert (strings.authors, strings.year, strings.external_id, strings.url) == (
        "A. One; B. Two", "2023", "42", "",
    )
    assert full.id == paper_id("Full Record")


def test_csv_with_optional_columns_and_quoted_multiline_cells(tmp_path):
    path = write_csv(tmp_path / "p.csv", [
        {"title": "First, With Comma", "abstract": "Line one,\nline two \"quoted\".",
         "url": "https://example.org/1", "authors": "A, B", "year": "2022", "id": "E1"},
        {"title": "Second", "abstract": "Plain.", "url": "", "authors": "", "year": "", "id": ""},
        {"title": "", "abstract": "", "url": "", "authors": "", "year": "", "id": ""},  # blank row
        {"title": "Third", "abstract": "See https://github.com/o/r.", "url": "", "authors": "",
         "year": "", "id": ""},
    ], ["id", "title", "abstract", "url", "authors", "year"])
    first, second, third = load_papers([path]).papers
    assert first.title == "First, With Comma"
    assert first.abstract == 'Line one, line two "quoted".'
    assert (first.url, first.authors, first.year, first.external_id) == (
        "https://example.org/1", "A, B", "2022", "E1")
    assert (second.url, second.authors, second.year, second.external_id) == ("", "", "", "")
    assert third.links == ("https://github.com/o/r",)
    assert first.line == 2  # the record starts on line 2, even though it spans two lines
    assert second.line == 4


def test_csv_needs_only_title_and_abstract(tmp_path):
    path = tmp_path / "min.csv"
    path.write_text("abstract,title\nSome abstract.,Some Title\n", encoding="utf-8")
    (paper,) = load_papers([path]).papers
    assert (paper.title, paper.abstract, paper.url) == ("Some Title", "Some abstract.", "")


def test_listing_without_header_with_crlf_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes(b"Title One\r\nAbstract one.\r\nTitle Two\r\nAbstract two.\r\n\r\n\r\n")
    papers = load_papers([path]).papers
    assert [(p.title, p.abstract, p.line) for p in papers] == [
        ("Title One", "Abstract one.", 1), ("Title Two", "Abstract two.", 3)]


def test_subscribe_is_stripped_from_the_first_title_only(tmp_path):
    path = write_listing(tmp_path / "s.txt", [
        ("SubscribeDeep Nets for CT", "A."), ("SubscribeNet: Learning to Subscribe", "B.")])
    assert [p.title for p in load_papers([path]).papers] == [
        "Deep Nets for CT", "SubscribeNet: Learning to Subscribe"]


def test_text_is_cleaned_of_invisible_and_control_characters(tmp_path):
    path = write_listing(tmp_path / "c.txt", [
        ("Zero\u200bWidth\u202e Title", "Tabs\tand  \x07bells   everywhere.")], header=False)
    (paper,) = load_papers([path]).papers
    assert paper.title == "ZeroWidth Title"
    assert paper.abstract == "Tabs and bells everywhere."


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1e"])
def test_unicode_line_separators_inside_a_record_do_not_split_it(tmp_path, separator):
    """Only \\n, \\r\\n and \\r end a line: a scraped abstract with U+2028 (or a form feed) in
    it stays one abstract, and JSON, which allows U+2028 unescaped, stays parseable."""
    listing = write_listing(tmp_path / "s.txt", [
        ("First Title", f"Sentence one.{separator}Sentence two."), ("Second Title", "Two.")])
    papers = load_papers([listing]).papers
    assert [(p.title, p.abstract, p.line) for p in papers] == [
        ("First Title", "Sentence one. Sentence two.", 3), ("Second Title", "Two.", 5)]
    if ord(separator) < 0x20:
        return  # JSON escapes control characters, so they never appear raw in a JSONL line
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(json.dumps({"title": "Third Title", "abstract": f"A{separator}B"},
                                ensure_ascii=False) + "\n" + GOOD_JSON, encoding="utf-8")
    assert separator in jsonl.read_text(encoding="utf-8")
    papers = load_papers([jsonl]).papers
    assert [(p.title, p.abstract, p.line) for p in papers] == [
        ("Third Title", "A B", 1), ("Good", "Fine.", 2)]


def test_multiple_files_and_formats_load_in_order(tmp_path):
    a = write_listing(tmp_path / "a.txt", [("Alpha", "A."), ("Beta", "B.")])
    b = write_jsonl(tmp_path / "b.jsonl", [{"title": "Gamma", "abstract": "G."}])
    c = write_csv(tmp_path / "c.csv", [{"title": "Delta", "abstract": "D."}], ["title", "abstract"])
    papers = load_papers([a, b, c]).papers
    assert [(p.title, Path(p.source).name) for p in papers] == [
        ("Alpha", "a.txt"), ("Beta", "a.txt"), ("Gamma", "b.jsonl"), ("Delta", "c.csv")]


def test_duplicate_titles_are_reported_and_the_first_kept(tmp_path):
    a = write_listing(tmp_path / "a.txt", [
        ("Deep Learning for X-Rays", "First version."),
        ("Other Paper", "Other."),
        ("deep learning for x rays", "Same title, different case and punctuation."),
    ], header=False)
    b = write_jsonl(tmp_path / "b.jsonl", [{"title": "DEEP LEARNING FOR X-RAYS!",
                                            "abstract": "Third copy."}])
    report = load_papers([a, b])
    assert [p.title for p in report.papers] == ["Deep Learning for X-Rays", "Other Paper"]
    assert report.papers[0].abstract == "First version."
    assert len(report.duplicates) == 2
    assert f"{a}:5" in report.duplicates[0] and f"{a}:1" in report.duplicates[0]
    assert f"{b}:1" in report.duplicates[1] and f"{a}:1" in report.duplicates[1]
    assert all("duplicate title" in d for d in report.duplicates)


# --- bad input: CorpusError naming the file and the line ---------------------------------------

GOOD_JSON = '{"title": "Good", "abstract": "Fine."}\n'

BAD_INPUTS = [
    # (file name, content, line named in the message, fragment of the message)
    ("odd.txt", LISTING_HEADER + "T1\nA1\nT2\n", 5, "odd number"),
    ("empty_title.txt", "T1\nA1\n   \nA2\n", 3, "empty title"),
    ("empty_abstract.txt", "T1\nA1\nT2\n\nT3\nA3\n", 4, "abstract missing"),
    ("punct_title.txt", "T1\nA1\n--- !!! ---\nA2\n", 3, "no letters or digits"),
    ("latin1.txt", "T1\nA1\nCaf\u00e9 Title\nA2\n".encode("latin-1"), 3, "not UTF-8"),
    ("binary.txt", b"T1\nA1\nT2\nA\x00\x01\x02\x03\n", 4, "NUL byte"),
    ("utf16.jsonl", GOOD_JSON.encode("utf-16"), 1, "not UTF-8"),
    ("not_object.jsonl", GOOD_JSON + '["Title", "Abstract"]\n', 2, "expected a JSON object"),
    ("scalar.jsonl", GOOD_JSON + GOOD_JSON.replace("Good", "Also") + '"just a string"\n', 3,
     "expected a JSON object"),
    ("invalid.jsonl", GOOD_JSON + "\n" + '{"title": "T", "abstract": \n', 3, "not valid JSON"),
    ("trailing_comma.jsonl", '{"title": "T", "abstract": "A",}\n', 1, "not valid JSON"),
    ("title_number.jsonl", GOOD_JSON + '{"title": 42, "abstract": "A"}\n', 2,
     "'title' must be a string"),
    ("abstract_list.jsonl", '{"title": "T", "abstract": ["A"]}\n', 1,
     "'abstract' must be a string"),
    ("authors_dict.jsonl", '{"title": "T", "abstract": "A", "authors": {"name": "X"}}\n', 1,
     "'authors' must be a string or a list of strings"),
    ("authors_numbers.jsonl", '{"title": "T", "abstract": "A", "authors": [1, 2]}\n', 1,
     "'authors' must be a string or a list of strings"),
    ("year_float.jsonl", '{"title": "T", "abstract": "A", "year": 2023.5}\n', 1,
     "'year' must be a string"),
    ("url_bool.jsonl", '{"title": "T", "abstract": "A", "url": true}\n', 1,
     "'url' must be a string"),
    ("url_not_http.jsonl", '{"title": "T", "abstract": "A", "url": "ftp://x/y"}\n', 1,
     "'url' must be an http(s) URL"),
    ("empty_title.jsonl", '{"title": "", "abstract": "A"}\n', 1, "empty title"),
    ("missing_column.csv", "title,summary\nT,A\n", 1, "lacks column(s) abstract"),
    ("missing_both.csv", "name,text\nT,A\n", 1, "lacks column(s) title, abstract"),
    ("extra_cells.csv", "title,abstract\nT,A\nT2,A2,surplus\n", 3, "more cells"),
    ("nul.csv", "title,abstract\nT,A\x00\n", 2, "NUL byte"),
]


@pytest.mark.parametrize(("name", "content", "line", "fragment"), BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_names_file_and_line(tmp_path, name, content, line, fragment):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError) as caught:
        load_papers([path])
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message


SKIPPED_RECORDS = [
    # (file name, content, where the skipped record is, its title)
    ("missing_abstract.jsonl", GOOD_JSON + '{"title": "T"}\n', 2, "T"),
    ("blank_abstract.jsonl", GOOD_JSON + '{"title": "T", "abstract": "  \\u200b "}\n', 2, "T"),
    ("empty_abstract.csv", "title,abstract\nGood,Fine.\nT2,\n", 3, "T2"),
    ("short_row.csv", "title,abstract\nGood,Fine.\nT2\n", 3, "T2"),
]


@pytest.mark.parametrize(("name", "content", "line", "title"), SKIPPED_RECORDS,
                         ids=[case[0] for case in SKIPPED_RECORDS])
def test_records_without_an_abstract_are_reported_and_skipped(tmp_path, name, content, line, title):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    report = load_papers([path])
    assert [p.title for p in report.papers] == ["Good"]
    assert report.skipped == [f"{path}:{line}: abstract missing for {title!r}; skipped"]


def test_a_file_whose_records_all_lack_abstracts_says_which_fields_it_found(tmp_path):
    path = write_jsonl(tmp_path / "other.jsonl", [{"Title": "T", "Summary": "S"}])
    with pytest.raises(CorpusError) as caught:
        load_papers([path])
    message = str(caught.value)
    assert message.startswith(f"{path}: none of its 1 records has an abstract")
    assert f"first: {path}:1: abstract missing for 'T'" in message
    assert "the fields expected are title, abstract" in caught.value.hint
    headless = write_jsonl(tmp_path / "keys.jsonl", [{"name": "T", "text": "S"}])
    with pytest.raises(CorpusError, match=r":1: no title field; expected title, abstract .*found name, text"):
        load_papers([headless])


def test_field_names_are_case_insensitive(tmp_path):
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"Title": "Upper", "ABSTRACT": "Text.", "Year": 2021}])
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("Title,Abstract Note,Publication Year,Author\nZotero Row,Text.,2020,"
                        "\"Wang, Li; Smith, Ann\"\n", encoding="utf-8")
    upper, zotero = load_papers([jsonl, csv_path]).papers
    assert (upper.title, upper.abstract, upper.year) == ("Upper", "Text.", "2021")
    assert (zotero.title, zotero.year, zotero.author_list) == ("Zotero Row", "2020",
                                                               ["Wang, Li", "Smith, Ann"])


def test_bad_file_among_good_ones_is_named(tmp_path):
    good = write_listing(tmp_path / "good.txt", [("Alpha", "A.")])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"title": "Beta", "abstract": "B."}, ["oops"]])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(bad))}:2: expected a JSON object"):
        load_papers([good, bad])


def test_unknown_extension(tmp_path):
    path = tmp_path / "papers.pdf"
    path.write_text("Title\nAbstract\n", encoding="utf-8")
    with pytest.raises(CorpusError) as caught:
        load_papers([path])
    assert str(caught.value).startswith(f"{path}: unknown corpus format '.pdf'")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(tmp_path / 'nope.jsonl'))}: no such file"):
        load_papers([tmp_path / "nope.jsonl"])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(tmp_path))}: is a directory"):
        load_papers([tmp_path])


@pytest.mark.parametrize("content", ["", "\n\n", LISTING_HEADER])
def test_file_without_papers(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}: no papers found"):
        load_papers([path])


def test_size_limits(tmp_path):
    long_title = write_listing(tmp_path / "t.txt", [("A" * 50, "Abstract."), ("T" * 2000, "B.")])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(long_title))}:5: title is 2,000 characters"):
        load_papers([long_title])
    long_abstract = write_jsonl(tmp_path / "a.jsonl", [{"title": "T", "abstract": "w " * 600}])
    with pytest.raises(CorpusError,
                       match=rf"^{re.escape(str(long_abstract))}:1: abstract is 1,199 characters"):
        load_papers([long_abstract], max_abstract_chars=1000)
    big = write_listing(tmp_path / "big.txt", [("Title", "x" * 5000)])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(big))}: .* over the 2,048-byte limit"):
        load_papers([big], max_bytes=2048)
