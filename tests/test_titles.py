"""Name resolution (titles.py) and the query-side helpers of retrieval.py, without any store."""

from __future__ import annotations

import pytest

from assistant.retrieval import (
    case_variants,
    classify,
    key_phrases,
    literal_terms,
    rrf,
    term_variants,
)
from assistant.titles import TitleIndex, is_namelike

TITLES = {
    "segmamba": "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation",
    "swinsmt": "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation",
    "medvit": "MedViT: A Robust Vision Transformer for Generalized Medical Image Classification",
    "chatcad": "ChatCAD: Interactive Computer-Aided Diagnosis on Medical Image using Large Language Models",
    "chatcadplus": "ChatCAD+: Towards a Universal and Reliable Interactive CAD using LLMs",
    "medsam2": "MedSAM2: Segment Anything in 3D Medical Images and Videos",
    "medicalsam2": "Medical SAM 2: Segment medical images as video via Segment Anything Model 2",
    "mcp": "MCP-MedSAM: A Powerful Lightweight Medical Segment Anything Model Trained with a Single GPU "
           "in Just One Day",
    "infimed": "InfiMed-Foundation: Pioneering Advanced Multimodal Medical Models with Compute-Efficient "
               "Pre-Training and Multi-Stage Fine-Tuning",
    "coding": "Automated Medical Coding on MIMIC-III and MIMIC-IV: A Critical Review and Replicability "
              "Study",
    "nailfold": "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis",
}


@pytest.fixture(scope="module")
def index() -> TitleIndex:
    return TitleIndex(TITLES)


def names(index: TitleIndex, question: str) -> list[str]:
    return [m.paper_id for m in index.resolve(question)]


# --- aliases ------------------------------------------------------------------------------------

def test_aliases_come_from_the_title_head_and_name_like_tokens(index):
    assert index.aliases["SegMamba"] == {"segmamba"}
    assert index.aliases["Swin SMT"] == {"swinsmt"}  # the part before the colon
    assert index.aliases["ChatCAD+"] == {"chatcadplus"}
    assert index.aliases["MIMIC-IV"] == {"coding"}
    # Generic words in titles name no paper.
    for generic in ("LLMs", "Mamba", "3D"):
        assert generic not in index.aliases


def test_a_title_without_a_name_has_no_alias(index):
    assert not any(ids == {"nailfold"} for ids in index.aliases.values())
    assert names(index, "How accurate is the nailfold capillary pipeline?") == []


@pytest.mark.parametrize(("question", "expected"), [
    ("What does SegMamba do?", ["segmamba"]),
    ("What does segmamba do?", ["segmamba"]),  # case
    ("What Dice does Swin SMT reach?", ["swinsmt"]),
    ("What Dice does SwinSMT reach?", ["swinsmt"]),  # written together
    ("What Dice does Swin-SMT reach?", ["swinsmt"]),  # punctuation
    ("How robust is MedVit?", ["medvit"]),  # near miss
    ("Compare ChatCAD+ and ChatCAD.", ["chatcadplus", "chatcad"]),  # order of mention, + kept apart
    ("MedSAM2 vs Medical SAM 2", ["medsam2", "medicalsam2"]),
])
def test_names_resolve_exactly_or_fuzzily(index, question, expected):
    assert names(index, question) == expected


def test_a_whole_title_pasted_into_the_question_resolves(index):
    question = f'Summarise "{TITLES["nailfold"]}" please'
    assert names(index, question) == ["nailfold"]


def test_fuzzy_matching_respects_the_threshold(index):
    assert names(index, "What about SegMaba?") == ["segmamba"]  # a letter missing
    assert index.resolve("What about SegMaba?", threshold=0.99) == []
    assert names(index, "What about Segmentation?") == []  # an ordinary word is not a near miss


def test_generic_terms_found_by_their_mentions_name_no_paper():
    """"GPU" and "MIMIC-IV" are in one title each, but many abstracts mention them: a question
    about GPU hours or MIMIC-IV experiments does not name those papers."""
    texts = {pid: title for pid, title in TITLES.items()}
    for i in range(6):
        texts[f"other{i}"] = f"Other paper {i}: trained on one GPU with MIMIC-IV and Pre-Training."
    index = TitleIndex(TITLES, texts, max_mention_share=0.015)
    assert "GPU" not in index.aliases and "MIMIC-IV" not in index.aliases
    assert "Pre-Training" not in index.aliases
    assert names(index, "How many GPU hours did JMLR need?") == []
    assert names(index, "Which papers report experiments on MIMIC-IV?") == []
    assert "MCP-MedSAM" in index.aliases  # a name only its own paper uses stays
    # Without the texts the index cannot tell, and keeps them.
    assert "GPU" in TitleIndex(TITLES).aliases


def test_is_namelike():
    for word in ("SegMamba", "MIMIC-IV", "ChatCAD+", "RWKV", "Hi-End-MAE", "R2MED"):
        assert is_namelike(word), word
    for word in ("segmentation", "Model", "of", "Pipeline"):
        assert not is_namelike(word), word


# --- query-side helpers ---------------------------------------------------------------------------

def test_literal_terms_keep_numbers_and_capitalised_runs():
    terms = literal_terms("Which papers build on the Segment Anything Model 2 (SAM 2) for videos?")
    assert terms[0] == "SAM 2"
    assert "Segment Anything Model 2" in terms
    assert literal_terms("Compare VM-UNet, LightM-UNet and MSVM-UNet.") == [
        "VM-UNet", "LightM-UNet", "MSVM-UNet"]
    assert "Mamba" in literal_terms("Which papers propose Mamba-based architectures?")
    assert literal_terms("which papers use knowledge graphs?") == []


def test_term_and_case_variants():
    assert term_variants("SAM 2") == ["SAM 2", "SAM-2", "SAM2"]
    assert term_variants("RWKV") == ["RWKV"]
    assert case_variants("knowledge graph") == ["knowledge graph", "Knowledge graph", "Knowledge Graph"]


def test_key_phrases_are_topic_pairs_in_the_singular():
    assert key_phrases("Which papers use medical knowledge graphs in their methods?") == [
        "medical knowledge", "knowledge graph"]
    assert "inverse problem" in key_phrases("Which papers use diffusion models to solve inverse problems?")
    # Question framing and names are not topic phrases.
    assert key_phrases("Which papers use SegMamba?") == []


@pytest.mark.parametrize(("question", "entities", "kind"), [
    ("Compare SegMamba and Swin SMT", 2, "comparative"),
    ("SegMamba vs Swin SMT", 2, "comparative"),
    ("Compare SegMamba and Swin SMT", 1, "factual"),  # one name: nothing to compare it with
    ("Which papers use the MIMIC-CXR dataset?", 0, "list"),
    ("List studies on flow matching", 0, "list"),
    ("What Dice score does Swin SMT reach?", 1, "factual"),
])
def test_classify(question, entities, kind):
    assert classify(question, entities) == kind


# --- fusion ---------------------------------------------------------------------------------------

def test_rrf_sums_reciprocal_ranks():
    scores = rrf([["a", "b"], ["b", "c"]], k=60)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 62)
    assert max(scores, key=scores.__getitem__) == "b"  # agreement between rankings wins


def test_rrf_weights_and_constant():
    scores = rrf([["a"], ["b"]], k=10, weights=[1.0, 3.0])
    assert scores["b"] == pytest.approx(3 / 11)
    assert scores["a"] == pytest.approx(1 / 11)
    assert rrf([], k=60) == {}
    # A smaller k favours the top ranks more.
    assert rrf([["a", "b"]], k=1)["a"] / rrf([["a", "b"]], k=1)["b"] > \
        rrf([["a", "b"]], k=100)["a"] / rrf([["a", "b"]], k=100)["b"]


# --- disease names (conditions.py) ------------------------------------------------------------------

def test_disease_names_are_found_longest_first_in_any_case():
    from assistant.conditions import ConditionLexicon

    lexicon = ConditionLexicon(["asthma", "allergic asthma", "Parkinson's disease", "CLL", "disease"])
    assert lexicon.mentioned("Does ALLERGIC asthma differ from asthma?") == [
        ("allergic", "asthma"), ("asthma",)]
    assert lexicon.mentioned("Parkinson's disease from voice") == [("parkinson", "s", "disease")]
    assert lexicon.names[("parkinson", "s", "disease")] == "Parkinson's disease"
    assert lexicon.mentioned("CLL cells") == []  # too short to trust
    assert lexicon.mentioned("asthmatic children") == []  # whole words only


def test_the_bundled_disease_list_loads_with_its_source_noted():
    from assistant.conditions import default_lexicon
    from assistant.resources import disease_names

    assert disease_names().read_text(encoding="utf-8").startswith("# Disease Ontology")
    lexicon = default_lexicon()
    assert len(lexicon.names) > 10_000
    assert ("tuberculosis",) in lexicon.names and ("atrial", "fibrillation") in lexicon.names
    assert not any(name[0].startswith("obsolete") for name in lexicon.names)
