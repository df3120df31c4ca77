"""Answers in offline (extractive) mode on the real corpus (issue 4), and the citation checker and
sanitiser they rely on."""

from __future__ import annotations

import json
import re

import pytest
from conftest import DATA

from assistant.citations import CITE, SourceDoc, check_citations, sanitize, source_list
from assistant.conversation import Turn, cited_titles
from assistant.engine import OFFLINE_NOTE, Answer, Engine


def load(name: str) -> list[dict]:
    path = DATA / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]




def body(answer: Answer) -> str:
    """The answer text above its source list."""
    return answer.answer.split("**Sources**")[0]


def assert_citations_are_sound(engine: Engine, answer: Answer) -> None:
    """Every [n] in the text is in the source list, and each listed source is a retrieved paper
    shown with its exact title."""
    numbers_in_text = {int(n) for group in CITE.findall(body(answer)) for n in re.split(r"[,;]", group)}
    listed = dict(cited_titles(answer.answer))
    assert numbers_in_text, answer.answer
    assert numbers_in_text <= set(listed), (numbers_in_text, listed)
    assert {c.n for c in answer.citations} == set(listed)
    by_n = {s.n: s for s in answer.sources}
    records = engine.store.get_papers([c.paper_id for c in answer.citations])
    for citation in answer.citations:
        source = by_n[citation.n]
        assert citation.paper_id == source.paper_id
        assert citation.title == source.title == records[citation.paper_id].title
        assert listed[citation.n] == citation.title


# --- the examples ---------------------------------------------------------------------

def test_factual_answer_quotes_the_asked_for_number(engine):
    answer = engine.ask("How accurate is the nailfold capillary pipeline at predicting abnormality?")
    assert answer.mode == "extractive" and not answer.abstained
    assert "90%" in body(answer)
    assert answer.cited_titles[0] == ("A Comprehensive Dataset and Automated Pipeline for Nailfold "
                                      "Capillary Analysis")
    assert OFFLINE_NOTE in answer.answer
    assert_citations_are_sound(engine, answer)




def test_comparison_renders_a_table_citing_both_papers(engine):
    answer = engine.ask("Compare SegMamba and Swin SMT: how does each capture long-range dependencies?")
    text = body(answer)
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) >= 4  # header, separator, at least two filled rows
    header = rows[0]
    assert "SegMamba" in header and "Swin SMT" in header
    assert re.fullmatch(r"\|(---\|){3}", rows[1])  # one column per paper, plus the row labels
    cited = set(answer.cited_titles)
    assert {t.split(":")[0] for t in cited} >= {"SegMamba", "Swin SMT"}
    n_of = {c.title.split(":")[0]: c.n for c in answer.citations}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        for cell, name in zip(cells, ("SegMamba", "Swin SMT"), strict=True):
            if cell and cell != "not stated":
                assert cell.endswith(f"[{n_of[name]}]"), (name, cell)
    assert_citations_are_sound(engine, answer)


def test_unanswerable_question_abstains_and_lists_the_nearest_papers(engine):
    answer = engine.ask("What is the recommended starting dose of metformin for type 2 diabetes?")
    assert answer.abstained
    assert answer.citations == []
    assert "does not seem to cover" in answer.answer
    nearest = [line[2:] for line in answer.answer.splitlines() if line.startswith("- ")]
    assert nearest == [s.title.replace("[", "(").replace("]", ")") for s in answer.sources[:3]]
    assert len(nearest) == 3


def test_answerable_question_does_not_abstain(engine):
    assert not engine.ask("Which dataset is SegMamba evaluated on?").abstained


def test_follow_up_resolves_the_second_paper_from_history(engine):
    first = engine.ask("Compare SegMamba and Swin SMT.")
    names = [t.split(":")[0] for _, t in cited_titles(first.answer)]
    assert names[:2] == ["SegMamba", "Swin SMT"]
    history = [Turn("user", "Compare SegMamba and Swin SMT."), Turn("assistant", first.answer)]
    follow = engine.ask("and what dataset did the second one use?", history)
    assert "Swin SMT" in follow.standalone_question
    assert follow.cited_titles[0].startswith("Swin SMT:")
    assert "TotalSegmentator" in body(follow)
    assert "BraTS" not in body(follow)  # SegMamba's dataset: the first paper, not asked about
    assert_citations_are_sound(engine, follow)


@pytest.mark.parametrize("question", [
    "Which papers use the MIMIC-CXR dataset?",
    "What Dice score does Swin SMT reach on TotalSegmentator?",
    "How do MedGemma and Hulu-Med differ?",
    "Is there a method that hides imperceptible noise in clinical scans to stop unauthorised training?",
])
def test_every_citation_maps_to_a_retrieved_paper_with_its_exact_title(engine, question):
    assert_citations_are_sound(engine, engine.ask(question))


# --- the JSON shape -----------------------------------------------------------------------------

def check_schema(data: dict) -> None:
    assert isinstance(data["answer"], str) and data["answer"]
    assert data["mode"] in ("llm", "extractive")
    assert isinstance(data["abstained"], bool)
    assert isinstance(data["citations"], list) and isinstance(data["sources"], list)
    for citation in data["citations"]:
        assert {"n", "title", "paper_id", "url", "support"} <= citation.keys()
        assert isinstance(citation["n"], int) and isinstance(citation["support"], float)
        assert all(isinstance(citation[k], str) for k in ("title", "paper_id", "url"))
    for source in data["sources"]:
        assert {"title", "paper_id", "score", "passages"} <= source.keys()
        assert isinstance(source["score"], float)
        assert source["passages"] and all(isinstance(p, str) for p in source["passages"])
    json.dumps(data)  # serialisable as it is


def test_to_json_schema(engine):
    answered = engine.ask("What Dice score does Swin SMT reach on TotalSegmentator?").to_json()
    check_schema(answered)
    assert answered["mode"] == "extractive" and answered["abstained"] is False
    assert answered["citations"] and answered["sources"]
    cited_ids = {c["paper_id"] for c in answered["citations"]}
    assert cited_ids <= {s["paper_id"] for s in answered["sources"]}
    abstained = engine.ask("Who won the 2018 FIFA World Cup?").to_json()
    check_schema(abstained)
    assert abstained["abstained"] is True and abstained["citations"] == []


def test_answers_are_deterministic(engine):
    question = "Which papers propose foundation models for computational pathology?"
    first, second = engine.ask(question), engine.ask(question)
    assert first.answer == second.answer
    assert [(c.n, c.paper_id, c.support) for c in first.citations] == \
        [(c.n, c.paper_id, c.support) for c in second.citations]


# --- sanitize ----------------------------------------------------------------------------------

SOURCE_URL = "https://arxiv.org/abs/2401.00001"
CODE_URL = "https://github.com/example/segmamba"


def test_sanitize_removes_html_and_images():
    text, links, html = sanitize(
        "Fine <b>bold</b> <script>alert(1)</script> ![pixel](https://evil.example/p.png) end "
        "<img src=x onerror=alert(1)>", {SOURCE_URL})
    assert "<" not in text and ">" not in text
    assert "script" not in text.replace("alert(1)", "")  # the tag is gone; its text is inert
    assert "evil.example" not in text and "pixel" not in text
    assert links == 1 and html == 5  # <b> </b> <script> </script> <img>


def test_sanitize_removes_outside_links_and_keeps_source_links():
    text, links, _ = sanitize(
        f"See [the paper]({SOURCE_URL}) and {CODE_URL}, not [this](http://evil.example/x) or "
        "www.evil.example/y or http://evil.example.", {SOURCE_URL, CODE_URL})
    assert f"[the paper]({SOURCE_URL})" in text
    assert CODE_URL in text
    assert "evil.example" not in text
    assert "this" in text  # the label of a removed link stays, as plain text
    assert text.count("[link removed]") == 2
    assert links == 3


def test_sanitize_escapes_leftover_angle_brackets():
    text, _, html = sanitize("p < 0.05 and a > b", set())
    assert text == "p &lt; 0.05 and a &gt; b" and html == 0


# --- check_citations ----------------------------------------------------------------------------

SWIN = SourceDoc(1, "p-swin", "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation",
                 "https://example.org/swin", "Swin SMT achieves an average Dice Similarity Coefficient "
                 "of 85.09% on the TotalSegmentator-V2 dataset with 117 anatomical structures.")
NAILFOLD = SourceDoc(2, "p-nail", "A Comprehensive Dataset and Automated Pipeline for Nailfold "
                     "Capillary Analysis", "https://example.org/nail", "The pipeline predicts "
                     "nailfold capillary abnormality with 90% accuracy on 321 images from 68 subjects.")
SOURCES = [SWIN, NAILFOLD]


def test_an_invented_citation_number_is_removed(engine):
    report = check_citations("Swin SMT reaches a Dice of 85.09% on TotalSegmentator [9].", SOURCES,
                             engine.vectors, engine.settings.support_threshold)
    assert "[9]" not in report.text
    assert report.invented == 1
    assert report.citations == []


def test_an_unsupported_citation_is_moved_to_the_source_that_supports_it(engine):
    report = check_citations("The nailfold pipeline predicts abnormality with 90% accuracy [1].",
                             SOURCES, engine.vectors, engine.settings.support_threshold)
    assert report.reattributed == 1
    assert "[2]" in report.text and "[1]" not in report.text
    assert [(c.n, c.paper_id) for c in report.citations] == [(2, "p-nail")]
    assert report.citations[0].support >= engine.settings.support_threshold
    assert not report.citations[0].flagged


def test_a_citation_no_source_supports_is_flagged_with_its_score(engine):
    report = check_citations("Metformin lowers blood glucose in type 2 diabetes [1].", SOURCES,
                             engine.vectors, engine.settings.support_threshold)
    assert report.flagged == 1
    assert "[1?]" in report.text
    (citation,) = report.citations
    assert citation.flagged and citation.n == 1
    assert 0.0 <= citation.support < engine.settings.support_threshold
    assert "weak support" in source_list(report.citations)


def test_a_supported_citation_is_kept_with_its_support(engine):
    report = check_citations("Swin SMT reaches a Dice of 85.09% on TotalSegmentator [1]. The nailfold "
                             "pipeline reaches 90% accuracy [2].", SOURCES, engine.vectors,
                             engine.settings.support_threshold)
    assert (report.invented, report.reattributed, report.flagged) == (0, 0, 0)
    assert "[1]" in report.text and "[2]" in report.text
    assert [c.n for c in report.citations] == [1, 2]
    assert all(c.support >= engine.settings.support_threshold for c in report.citations)


def test_the_cell_model_is_fitted_for_every_row() -> None:
    from assistant.extractive import CELL_FEATURES, ROWS
    from assistant.fitted import fitted_params

    cells = fitted_params()["cells"]
    assert set(cells["rows"]) == set(ROWS)
    for row in ROWS:
        assert set(cells["rows"][row]["coefficients"]) == set(CELL_FEATURES)


# An abstract written for this test (not from the corpus): background first, then the proposal,
# the data and the result, as abstracts go.
INVENTED = SourceDoc(
    n=1, paper_id="x", title="LiverNet: Tumour Segmentation in Abdominal CT", url="",
    abstract=("Liver cancer is a leading cause of death worldwide. "
              "However, manual delineation of tumours remains slow and varies between readers. "
              "We propose LiverNet, a 3D network for liver tumour segmentation in CT scans. "
              "We train and evaluate it on the LiTS and KiTS23 datasets with 331 patients. "
              "LiverNet reaches a Dice score of 0.91, outperforming nnU-Net by 2.3 points. "
              "Code is available online."))


def test_comparison_cells_carry_the_method_data_and_result_not_the_background(engine) -> None:
    from assistant.fitted import fitted_params

    picked = engine.extractive.assign_rows(INVENTED, fitted_params()["cells"])
    sentences = INVENTED.abstract.split(". ")
    assert "Dice score of 0.91" in picked["Results"]
    assert "LiTS" in picked["Data"]
    assert "We propose LiverNet" in picked["Method"]
    for row in ("Task", "Method", "Data", "Results"):  # never the opening background
        assert not picked[row].startswith(sentences[0]), row
    # The row rules it replaced stay as the fallback: one sentence per row.
    rules = engine.extractive.assign_rows(INVENTED, None)
    assert len(set(rules.values())) == len(rules)
