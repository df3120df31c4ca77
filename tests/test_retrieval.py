"""Retrieval on the real corpus and model: named papers always retrieved, abstention signals,
grouping by paper, list breadth, and no stale BM25. Quality on question sets is not asserted here:
`assistant eval --check` compares the tune split with its floors (make test runs it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DATA, make_settings

from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.retrieval import EXPLICIT_COMPARE, HybridRetriever, classify, comparison_parts

SETS = {"dev": DATA / "dev_questions.jsonl", "heldout": DATA / "heldout_questions.jsonl"}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_blind_halves_are_distinct_and_cover_every_kind():
    tune = load(DATA / "blind" / "tune.jsonl")
    locked = load(DATA / "blind" / "locked.jsonl")
    assert not {q["question"] for q in tune} & {q["question"] for q in locked}
    for half in (tune, locked):
        assert {q["kind"] for q in half} == {"factual", "paraphrase", "list", "comparative",
                                             "unanswerable"}


def test_question_sets_are_present_and_distinct():
    dev = {q["question"] for q in load(SETS["dev"])}
    heldout = load(SETS["heldout"])
    assert len(heldout) >= 25
    assert not dev & {q["question"] for q in heldout}
    assert {q["kind"] for q in heldout} == {"factual", "paraphrase", "list", "comparative",
                                            "unanswerable"}


# --- a disease the corpus never mentions ---------------------------------------------------------

def test_a_disease_no_paper_mentions_abstains_and_the_answer_says_which(engine):
    question = "Which network finds leprosy lesions in skin photographs, and how accurate is it?"
    result = engine.search(question, k=10)
    assert result.unknown_condition == "leprosy" and not result.covered
    answer = engine.ask(question)
    assert answer.abstained and "None of its papers mentions leprosy." in answer.answer


def test_a_disease_the_corpus_mentions_is_no_reason_to_abstain(engine):
    for question in ("Which papers grade knee osteoarthritis on radiographs?",
                     "Which work detects breast cancer in mammograms?"):
        result = engine.search(question, k=10)
        assert result.unknown_condition is None and result.covered, question


def test_a_named_paper_is_answered_whatever_disease_the_question_adds(engine):
    result = engine.search("Could SegMamba segment tuberculosis lesions?", k=10)
    assert result.covered and result.unknown_condition is None
    assert "SegMamba" in result.papers[0].title


def test_the_unknown_disease_signal_is_a_setting(engine, monkeypatch):
    question = "Which network finds leprosy lesions in skin photographs?"
    settings = engine.retriever.settings.model_copy(update={"abstain_on_unknown_condition": False})
    monkeypatch.setattr(engine.retriever, "settings", settings)
    assert engine.retriever.unknown_condition(question) is None


# --- named papers -------------------------------------------------------------------------------

PAIRS = [
    ("segmamba", "Swin-SMT", "SegMamba: Long-range", "Swin SMT: Global"),
    ("SwinSMT", "VM-UNet", "Swin SMT: Global", "VM-UNet: Vision Mamba"),
    ("MedVit", "MedFuncta", "MedViT: A Robust", "MedFuncta: Modality-Agnostic"),
    ("ChatCAD+", "ChatCAD", "ChatCAD+: Towards", "ChatCAD: Interactive"),
    ("chatcad+", "MedSAM2", "ChatCAD+: Towards", "MedSAM2: Segment Anything"),
    ("Restore-RWKV", "fs-rwkv", "Restore-RWKV: Efficient", "FS-RWKV: Leveraging"),
    ("MedSAM2", "Medical SAM 2", "MedSAM2: Segment Anything", "Medical SAM 2: Segment"),
    ("CT2Rep", "merlin", "CT2Rep: Automated", "Merlin: A Vision Language"),
]


@pytest.mark.parametrize(("a", "b", "title_a", "title_b"), PAIRS)
@pytest.mark.parametrize("template", ["Compare {a} and {b}.", "{a} vs {b}: which is better?"])
def test_compare_a_and_b_retrieves_both_first(engine, template, a, b, title_a, title_b):
    result = engine.search(template.format(a=a, b=b))
    assert result.kind == "comparative"
    first_two = [h.title for h in result.papers[:2]]
    assert any(t.startswith(title_a) for t in first_two), first_two
    assert any(t.startswith(title_b) for t in first_two), first_two
    assert result.covered
    # The named papers come with their own best passages.
    assert all(h.named and h.passages for h in result.papers[:2])


def test_a_generic_word_in_a_title_does_not_make_a_comparison(engine):
    """"GPU" is in the MCP-MedSAM title but many abstracts use it: this is a question about JMLR."""
    result = engine.search("How does JMLR-13B compare with Meditron-70B on medical QA accuracy and in "
                           "GPU hours of training?")
    assert [e.name for e in result.entities] == ["JMLR"]
    assert result.kind == "factual"
    assert result.papers[0].title.startswith("JMLR:")


# --- comparisons that describe a paper ---------------------------------------------------------

def test_a_description_keeps_its_and_and_with():
    coarse, fine = comparison_parts(
        "How does the study with a reader survey and a taxonomy of failure modes differ from "
        "SegMamba?", ["SegMamba"])
    assert coarse == ["the study with a reader survey and a taxonomy of failure modes", "SegMamba"]
    assert fine == ["the study", "a reader survey", "a taxonomy of failure modes", "SegMamba"]
    # A part that names a resolved paper is cut finely: what follows the name may describe another.
    assert comparison_parts("Contrast SegMamba with the nailfold capillary dataset paper", ["SegMamba"]
                            )[0] == ["SegMamba", "the nailfold capillary dataset paper"]


@pytest.mark.parametrize("question", [
    "Which paper segments lesions at different noise levels?",
    "Which model uses a contrastive objective?",
    "Which method reaches comparable accuracy?"])
def test_adjectives_of_comparing_ask_for_no_comparison(question):
    assert not EXPLICIT_COMPARE.search(question)


def test_a_described_paper_is_compared_with_a_named_one(engine):
    result = engine.search("How does the study that builds a dataset and a pipeline for nailfold "
                           "capillaries differ from MedVAE?")
    assert result.kind == "comparative"
    assert sorted(e.title.split(":")[0] for e in result.entities) == [
        "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis", "MedVAE"]


@pytest.mark.parametrize("other", ["the best model", "the baseline methods", "the state of the art"])
def test_a_generic_phrase_is_no_paper_to_compare_with(engine, other):
    result = engine.search(f"How does SegMamba compare with {other}?")
    assert [e.name for e in result.entities] == ["SegMamba"] and result.kind != "comparative"


def test_which_paper_with_a_comparison_in_it_still_asks_for_one_paper(engine):
    result = engine.search("Which paper reports the nailfold capillary pipeline's accuracy compared "
                           "with the clinicians' readings?")
    assert result.kind != "comparative"
    assert result.papers[0].title.startswith("A Comprehensive Dataset and Automated Pipeline")


def test_a_question_about_the_datasets_of_a_named_paper_is_not_a_list():
    assert classify("Which datasets was MedVAE evaluated on, and what block is it built on?", 1) == "factual"
    assert classify("Which datasets are used for polyp segmentation?", 0) == "list"
    assert classify("Which papers build on SegMamba?", 1) == "list"


def test_naming_chatcad_does_not_name_chatcad_plus(engine):
    result = engine.search("What does ChatCAD do?")
    assert [e.title.split(":")[0] for e in result.entities] == ["ChatCAD"]


# --- grouping and breadth -----------------------------------------------------------------------

SAMPLE = ["Which papers use medical knowledge graphs in their methods?",
          "What Dice score does Swin SMT reach on TotalSegmentator?",
          "How do vision transformers handle medical image classification?",
          "Compare SegMamba and Swin SMT."]


@pytest.mark.parametrize("question", SAMPLE)
def test_results_are_grouped_by_paper(engine, question):
    result = engine.search(question)
    ids = [h.paper_id for h in result.papers]
    assert len(ids) == len(set(ids))
    limit = engine.settings.max_chunks_per_paper
    chunk_ids = [p.chunk_id for h in result.papers for p in h.passages]
    got = engine.store.chunks.get(ids=chunk_ids, include=["metadatas"])
    owner = {cid: meta["paper_id"] for cid, meta in zip(got["ids"], got["metadatas"], strict=True)}
    for hit in result.papers:
        assert 1 <= len(hit.passages) <= limit
        assert len({p.chunk_id for p in hit.passages}) == len(hit.passages)
        assert all(owner[p.chunk_id] == hit.paper_id for p in hit.passages)
    # Retrieval ranks by fused score; the engine's search then orders by the relevance model.
    fused = engine.retriever.retrieve(question)
    scores = [h.score for h in fused.papers if not h.named]
    assert scores == sorted(scores, reverse=True)


def test_max_chunks_per_paper_is_a_setting(engine, corpus_store):
    settings = corpus_store.model_copy(update={"max_chunks_per_paper": 1})
    retriever = HybridRetriever(settings, engine.store, engine.embedder)
    for question in SAMPLE:
        assert all(len(h.passages) == 1 for h in retriever.retrieve(question).papers)


@pytest.mark.parametrize("question", [q["question"] for path in SETS.values() for q in load(path)
                                      if q["kind"] == "list"][:6])
def test_list_questions_return_list_top_k_distinct_papers(engine, question):
    result = engine.search(question)
    assert result.kind == "list"
    assert len({h.paper_id for h in result.papers}) >= engine.settings.list_top_k


# --- BM25 is never used stale -------------------------------------------------------------------

def _write_jsonl(path: Path, papers: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers))
    return path


BASE = [(f"Base study {i}: cohort analysis", f"A retrospective cohort of patients number {i} was "
         "analysed with standard statistics and a convolutional network.") for i in range(6)]
NEW = ("Zorblax: quantum capybara scheduling", "We schedule capybara wards with zorblax annealing, "
       "a method unlike anything else in this collection.")


def _bm25_titles(retriever: HybridRetriever, query: str) -> list[str]:
    from llama_index.core.schema import QueryBundle

    vector = retriever.embedder.embed([query])[0]
    hits = retriever._bm25(QueryBundle(query_str=query, embedding=vector.tolist()))
    return [str(h.node.metadata.get("title")) for h in hits]


def test_an_ingest_by_another_process_reaches_bm25_before_the_next_answer(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [_write_jsonl(tmp_path / "a.jsonl", BASE)], progress=False)
    engine = Engine(settings)
    assert _bm25_titles(engine.retriever, "zorblax capybara") == []
    # Another process (another Engine's store handle) ingests a new paper.
    ingest(settings, [_write_jsonl(tmp_path / "b.jsonl", [NEW])], progress=False)
    result = engine.search("zorblax capybara annealing")
    assert result.papers[0].title == NEW[0]
    assert _bm25_titles(engine.retriever, "zorblax capybara")[:1] == [NEW[0]]


def test_a_stale_bm25_index_on_disk_is_rebuilt_not_used(tmp_path):
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [_write_jsonl(tmp_path / "a.jsonl", BASE)], progress=False)
    stale = tmp_path / "stale-lexical"
    shutil.copytree(settings.lexical_path, stale)
    ingest(settings, [_write_jsonl(tmp_path / "b.jsonl", [NEW])], progress=False)
    # Put the old index (with its old stamp) back, as a crash or a copied store would.
    shutil.rmtree(settings.lexical_path)
    shutil.copytree(stale, settings.lexical_path)
    retriever = Engine(settings).retriever
    assert _bm25_titles(retriever, "zorblax capybara")[:1] == [NEW[0]]


def test_overlapping_the_dense_and_lexical_sides_changes_no_result(engine, corpus_store):
    """retrieval_threads runs the question's embedding and dense search in a worker while the
    lexical searches run here: the same papers, scores and passages as one after the other, for
    every kind of question, a comparison resolved by description included."""
    in_turn = HybridRetriever(corpus_store.model_copy(update={"retrieval_threads": 0}),
                              engine.store, engine.embedder)
    assert engine.retriever._workers is not None and in_turn._workers is None
    for question in ("What Dice does Swin SMT reach?", "Which papers adapt SAM?",
                     "Compare SegMamba and Swin SMT",
                     "Compare the nailfold capillary dataset paper with MedVAE",
                     "Which papers use knowledge graphs for radiology reports?"):
        overlapped, plain = engine.retriever.retrieve(question), in_turn.retrieve(question)
        assert [(h.paper_id, round(h.score, 9), [p.chunk_id for p in h.passages])
                for h in overlapped.papers] == \
            [(h.paper_id, round(h.score, 9), [p.chunk_id for p in h.passages]) for h in plain.papers]
        assert overlapped.best_similarity == pytest.approx(plain.best_similarity)


def test_a_failure_on_the_dense_side_reaches_the_caller(engine, corpus_store, monkeypatch):
    retriever = HybridRetriever(corpus_store, engine.store, engine.embedder)

    def broken(*args, **kwargs):
        raise RuntimeError("the vector store went away")

    monkeypatch.setattr(retriever, "_dense", broken)
    with pytest.raises(RuntimeError, match="went away"):
        retriever.retrieve("Which papers adapt SAM?")


def test_a_large_store_uses_the_fusion_weights_fitted_at_scale(engine, monkeypatch):
    """Two sets of fusion weights are fitted (bench/fit_answers.py): on the bundled corpus and on
    a large store of it among distractors. A store takes the set fitted nearer its own size on a
    log scale."""
    from assistant.fitted import fitted_params

    params = fitted_params()
    small, large = params["fusion_papers"], params["fusion_large"]["papers"]
    assert large > small
    middle = (small * large) ** 0.5
    retriever = engine.retriever
    assert retriever.fusion_weights("list") == params["fusion"]["list"]
    for papers, expected in ((int(middle) - 1, params["fusion"]),
                             (int(middle) + 1, params["fusion_large"]["weights"]),
                             (1_000_000, params["fusion_large"]["weights"])):
        monkeypatch.setattr(retriever.titles, "n_papers", lambda n=papers: n)
        for kind in ("factual", "list", "comparative"):
            assert retriever.fusion_weights(kind) == expected[kind], (papers, kind)
    assert params["fusion"]["list"] != params["fusion_large"]["weights"]["list"]
