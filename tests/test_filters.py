"""Filters (issue 15): applied inside retrieval, on the dense side (Chroma `where`) and the lexical
side (BM25 over the matching chunks only), so a filtered question still gets its full k papers;
from the CLI, from Engine, and read from filter phrases in the question."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from conftest import cli, make_settings
from fixtures_corpus import make_papers, write_jsonl
from llama_index.core.schema import QueryBundle

from assistant.errors import AssistantError
from assistant.filters import Filters, author_matches, parse_filter_phrases, venue_matches
from assistant.ingest import ingest
from assistant.store import PaperStore

N = 60
AUTHORS = ["Smith, John", "Wang, Li", "Müller, Hans", "García, Ana", "Chen, Mei", "Okafor, Ngozi"]
VENUES = ["Medical Image Computing and Computer Assisted Intervention – MICCAI 2023",
          "Nature Medicine", "Radiology", "arXiv"]


def records() -> list[dict]:
    rng = random.Random(15)
    out = []
    for i, (title, abstract) in enumerate(make_papers(N, seed=15)):
        out.append({"title": title, "abstract": abstract, "year": 2016 + i % 10,
                    "authors": rng.sample(AUTHORS, 2), "venue": VENUES[i % len(VENUES)],
                    "doi": f"10.5555/paper.{i}"})
    return out


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    directory = tmp_path_factory.mktemp("filters")
    settings = make_settings(directory / "store", embed_backend="hash")
    ingest(settings, [write_jsonl(directory / "papers.jsonl", records())], progress=False)
    return settings


@pytest.fixture(scope="module")
def engine(library):
    from assistant.engine import Engine

    engine = Engine(library)
    yield engine
    engine.stop_warmup()


@pytest.fixture(scope="module")
def meta(library) -> dict[str, dict]:
    """paper id -> its record's metadata."""
    return {r.id: r.metadata() for r in PaperStore(library).all_papers()}


def matching(meta: dict[str, dict], filters: Filters) -> set[str]:
    """The oracle: the papers the filters allow, straight from the paper records."""
    out = set()
    for pid, m in meta.items():
        year = m["year"] or 0
        if filters.year_from is not None and year < filters.year_from:
            continue
        if filters.year_to is not None and not 0 < year <= filters.year_to:
            continue
        if filters.authors and not any(author_matches(a, m["authors"]) for a in filters.authors):
            continue
        if filters.venues and not any(venue_matches(v, m["venue"]) for v in filters.venues):
            continue
        if filters.paper_ids and pid not in filters.paper_ids:
            continue
        if filters.collection and filters.collection not in m["collections"]:
            continue
        out.add(pid)
    return out


QUESTION = "Which papers use transformer segmentation for radiology diagnosis?"
FILTERS = [
    Filters(year_from=2023),
    Filters(year_from=2018, year_to=2019),
    Filters(authors=("Smith",)),
    Filters(authors=("Müller", "Okafor")),
    Filters(venues=("MICCAI",)),
    Filters(year_from=2020, venues=("Nature Medicine", "Radiology"), authors=("wang",)),
]


# --- retrieval ---------------------------------------------------------------------------------
@pytest.mark.parametrize("filters", FILTERS, ids=[f.describe() for f in FILTERS])
def test_filtered_retrieval_returns_only_matching_papers_and_its_full_k(engine, meta, filters):
    allowed = matching(meta, filters)
    k = min(6, len(allowed) - 1)  # fewer than match: the list can be full
    assert k >= 3
    result = engine.retriever.retrieve(QUESTION, k, filters=filters)
    got = [h.paper_id for h in result.papers]
    assert len(got) == k
    assert set(got) <= allowed
    assert result.filters == filters
    # Unfiltered, the same question ranks other papers first: filtering after retrieval would
    # have fallen short of k.
    unfiltered = [h.paper_id for h in engine.retriever.retrieve(QUESTION, k).papers]
    assert not set(unfiltered) <= allowed or len(allowed) == N


def test_the_dense_side_ranks_within_the_matching_chunks(engine, meta, library):
    filters = Filters(authors=("Smith",), year_from=2019)
    retriever = engine.retriever
    scope = retriever._filter_scope(filters)
    allowed, where = set(scope.paper_ids or ()), scope.where
    assert allowed == matching(meta, filters)
    vector = engine.embedder.embed([QUESTION])[0]
    hits = retriever._dense(QueryBundle(query_str=QUESTION, embedding=vector.tolist()), where)
    # The oracle: every matching chunk, ranked by cosine.
    got = PaperStore(library).chunks.get(where={"paper_id": {"$in": sorted(allowed)}},
                                         include=["embeddings"])
    sims = np.asarray(got["embeddings"]) @ vector
    expected = [got["ids"][i] for i in np.argsort(-sims)]
    assert len(hits) == min(library.dense_candidates, len(expected))
    assert [h.node.node_id for h in hits][:10] == expected[:10]


def test_the_lexical_side_is_bm25_over_the_matching_chunks(engine, meta):
    filters = Filters(venues=("Radiology",))
    retriever = engine.retriever
    scope = retriever._filter_scope(filters)
    allowed = set(scope.paper_ids or ())
    assert allowed == matching(meta, filters)
    hits = retriever._bm25(QueryBundle(query_str=QUESTION), scope)
    assert hits and {h.node.metadata["paper_id"] for h in hits} <= allowed
    # The oracle: the whole index's BM25 ranking (every chunk), restricted to the matching chunks:
    # the filter changes neither the scores nor their order.
    every = retriever.lexical.bm25(QUESTION, 100_000)
    expected = [(h.node.node_id, round(h.score, 5)) for h in every
                if h.node.metadata["paper_id"] in allowed]
    assert [(h.node.node_id, round(h.score, 5)) for h in hits] == expected[: len(hits)]
    assert len(hits) == min(engine.settings.bm25_candidates, len(expected))


def test_a_year_range_alone_lists_no_papers_and_still_filters_every_side(engine, meta):
    filters = Filters(year_from=2021)
    scope = engine.retriever._filter_scope(filters)
    assert scope.paper_ids is None  # a range query, not a list of every paper in it
    allowed = matching(meta, filters)
    assert scope.allowed(meta) == allowed
    hits = engine.retriever._bm25(QueryBundle(query_str=QUESTION), scope)
    assert hits and {h.node.metadata["paper_id"] for h in hits} <= allowed


def test_a_list_question_gets_its_full_list_under_a_filter(engine, meta):
    filters = Filters(year_from=2021)
    result = engine.retriever.retrieve("Which papers propose a diffusion model for segmentation?",
                                       filters=filters)
    assert result.kind == "list"
    assert len(result.papers) == engine.settings.list_top_k
    assert {h.paper_id for h in result.papers} <= matching(meta, filters)


def test_chosen_papers_by_id_doi_or_title(engine, meta):
    some = sorted(meta)[:3]
    records = PaperStore(engine.settings).get_papers(some)
    refs = (some[0], records[some[1]].doi, records[some[2]].title.upper())
    result = engine.retriever.retrieve(QUESTION, 10, filters=Filters(paper_ids=refs))
    assert {h.paper_id for h in result.papers} == set(some)
    with pytest.raises(AssistantError, match="no paper 'nope' in the collection"):
        engine.retriever.retrieve(QUESTION, filters=Filters(paper_ids=("nope",)))


def test_no_matching_paper_is_a_clear_error(engine):
    with pytest.raises(AssistantError) as caught:
        engine.retriever.retrieve(QUESTION, filters=Filters(year_from=2030))
    assert "no paper in the collection matches the filters (2030 or later)" in str(caught.value)
    with pytest.raises(AssistantError, match="author Nobody"):
        engine.retriever.retrieve(QUESTION, filters=Filters(authors=("Nobody",)))


def test_a_store_from_before_metadata_asks_for_a_rebuild(tmp_path):
    from assistant.embedding import get_embedder
    from assistant.retrieval import HybridRetriever

    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [write_jsonl(tmp_path / "p.jsonl", records()[:10])], progress=False)
    store = PaperStore(settings)
    store.chunks.modify(metadata={**store.manifest, "metadata_version": 1})  # as an old store says
    retriever = HybridRetriever(settings, store, get_embedder(settings))
    assert retriever.retrieve(QUESTION, 3).papers  # unfiltered questions work as before
    with pytest.raises(AssistantError) as caught:
        retriever.retrieve(QUESTION, 3, filters=Filters(year_from=2020))
    assert "built before paper metadata was kept" in caught.value.message
    assert "assistant ingest --rebuild" in (caught.value.hint or "")


def test_collections_filter(tmp_path):
    from assistant.embedding import get_embedder
    from assistant.ingest import ingest_files
    from assistant.retrieval import HybridRetriever

    settings = make_settings(tmp_path / "store", embed_backend="hash")
    everything = records()
    ingest_files([write_jsonl(tmp_path / "a.jsonl", everything[:20])], settings)
    ingest_files([write_jsonl(tmp_path / "b.jsonl", everything[20:30])], settings, collection="thesis")
    retriever = HybridRetriever(settings, PaperStore(settings), get_embedder(settings))
    result = retriever.retrieve(QUESTION, 20, filters=Filters(collection="thesis"))
    titles = {h.title for h in result.papers}
    assert titles == {r["title"] for r in everything[20:30]}


# --- Engine ------------------------------------------------------------------------------------
def test_engine_applies_explicit_filters_and_reports_them(engine, meta):
    filters = Filters.from_options(year="2022-2024", authors=["Chen"])
    answer = engine.ask(QUESTION, filters=filters)
    assert answer.filters == filters
    assert answer.sources and {s.paper_id for s in answer.sources} <= matching(meta, filters)
    data = answer.to_json()["filters"]
    assert (data["year_from"], data["year_to"], data["authors"]) == (2022, 2024, ["Chen"])
    assert data["description"] == "2022–2024; author Chen" and data["phrases"] == []


def test_engine_reads_filter_phrases_from_the_question(engine, meta):
    answer = engine.ask("Which papers by Wang since 2023 use transformer segmentation?")
    assert answer.filters is not None
    assert (answer.filters.year_from, answer.filters.authors) == (2023, ("Wang",))
    assert answer.filters.phrases == ("since 2023", "by Wang")
    assert answer.standalone_question == "Which papers use transformer segmentation?"
    assert {s.paper_id for s in answer.sources} <= matching(meta, answer.filters)
    searched = engine.search("transformer segmentation published at MICCAI")
    assert searched.filters is not None and searched.filters.venues == ("MICCAI",)


def test_explicit_filters_turn_the_phrases_off(engine):
    answer = engine.ask("Which papers since 2023 use transformer segmentation?", filters=Filters())
    assert answer.filters is None
    assert answer.standalone_question == "Which papers since 2023 use transformer segmentation?"


def test_engine_says_when_nothing_matches(engine):
    # Filter words in the question that no paper meets: an answer saying so, not an error.
    answer = engine.ask("Which papers since 2030 use transformers?")
    assert answer.abstained and not answer.citations
    assert re.search(r"matches the filters \(2030 or later\), read from the question's words "
                     r"'since 2030'", answer.answer)
    assert not engine.search("Which papers since 2030 use transformers?").papers
    # Filters the user gave explicitly are the user's error.
    with pytest.raises(AssistantError, match=r"matches the filters \(2030 or later\)"):
        engine.ask("Which papers use transformers?", filters=Filters(year_from=2030))


# --- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def hash_env(monkeypatch):
    monkeypatch.setenv("ASSISTANT_EMBED_BACKEND", "hash")  # the CLI subprocess opens a hash store


def test_cli_filters_and_json_metadata(library, meta, tmp_path, hash_env):
    run = cli("ask", QUESTION, "--year", "2019-2023", "--author", "García", "--venue", "Radiology",
              "--venue", "arXiv", "--json", "--store", str(library.store_dir), cwd=tmp_path, doubles=True)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    filters = Filters(year_from=2019, year_to=2023, authors=("García",), venues=("Radiology", "arXiv"))
    assert data["filters"]["description"] == filters.describe()
    assert data["sources"] and {s["paper_id"] for s in data["sources"]} <= matching(meta, filters)
    for source in data["sources"]:
        assert source["metadata"] == meta[source["paper_id"]]
    assert "filters: 2019–2023; author García; venue Radiology or arXiv" in run.stderr


def test_cli_rejects_a_bad_year_and_an_empty_result(library, tmp_path, hash_env):
    bad = cli("ask", QUESTION, "--year", "20-21", "--store", str(library.store_dir), cwd=tmp_path,
              doubles=True)
    assert bad.returncode == 2 and "year '20-21' is not a year or a range" in bad.stderr
    empty = cli("ask", QUESTION, "--author", "Nobody", "--store", str(library.store_dir), cwd=tmp_path,
                doubles=True)
    assert empty.returncode == 2 and "no paper in the collection matches" in empty.stderr
    assert "Traceback" not in bad.stderr + empty.stderr


# --- parsing -----------------------------------------------------------------------------------
PHRASES = [
    ("Which papers since 2023 use SAM?", "Which papers use SAM?", Filters(year_from=2023)),
    ("Which papers from 2020 to 2022 segment tumours?", "Which papers segment tumours?",
     Filters(year_from=2020, year_to=2022)),
    ("Which papers by Wang use transformers?", "Which papers use transformers?",
     Filters(authors=("Wang",))),
    ("Which papers published at MICCAI segment the liver?", "Which papers segment the liver?",
     Filters(venues=("MICCAI",))),
    ("Papers published in Nature Medicine about sepsis", "Papers about sepsis",
     Filters(venues=("Nature Medicine",))),
    ("Which studies published in 2021 use federated learning?", "Which studies use federated learning?",
     Filters(year_from=2021, year_to=2021)),
    ("Which papers published before 2020 use CNNs?", "Which papers use CNNs?", Filters(year_to=2019)),
    ("Which papers from 2021 use CNNs?", "Which papers use CNNs?", Filters(year_from=2021, year_to=2021)),
    ("Which papers from 2021 onwards use CNNs?", "Which papers use CNNs?", Filters(year_from=2021)),
    ("Which papers at MICCAI 2023 use Mamba?", "Which papers use Mamba?",
     Filters(year_from=2023, year_to=2023, venues=("MICCAI",))),
    ("What did Chen et al. propose? Papers by Chen et al. after 2021 only", None, None),
]
NOT_FILTERS = [
    "Which papers use data collected from 2015 to 2018?",
    "Which papers use MIMIC-IV data from 2019?",
    "What Dice score does SegMamba reach on BraTS 2023?",
    "Which models were trained by the authors on 2020 scans?",
    "Who won the 2018 FIFA World Cup?",
]


@pytest.mark.parametrize(("question", "rest", "filters"), PHRASES[:-1], ids=[p[0] for p in PHRASES[:-1]])
def test_filter_phrases(question, rest, filters):
    got_rest, got = parse_filter_phrases(question)
    assert (got_rest, got) == (rest, filters)
    assert got.phrases and all(p in question for p in got.phrases)


def test_author_phrases_with_et_al_and_an_after_year():
    rest, filters = parse_filter_phrases("Which papers by Chen et al. after 2021 use diffusion?")
    assert filters == Filters(year_from=2022, authors=("Chen",))
    assert rest == "Which papers use diffusion?"


@pytest.mark.parametrize("question", NOT_FILTERS)
def test_words_that_are_not_filters_stay_in_the_question(question):
    assert parse_filter_phrases(question) == (question, Filters())


def test_a_question_of_only_filters_keeps_its_words():
    question = "Which papers were published since 2023?"
    rest, filters = parse_filter_phrases(question)
    assert rest == question and filters == Filters(year_from=2023)


@pytest.mark.parametrize(("text", "expected"), [
    ("2023", (2023, 2023)), ("2023-2025", (2023, 2025)), ("2023 – 2025", (2023, 2025)),
    ("2023..2025", (2023, 2025)), ("2023-", (2023, None)), ("-2020", (None, 2020)),
])
def test_year_ranges(text, expected):
    assert Filters.from_options(year=text).year_from == expected[0]
    assert Filters.from_options(year=text).year_to == expected[1]


@pytest.mark.parametrize(("data", "message"), [
    ({"year": "2025-2023"}, "first year is after the last"),
    ({"year": "soon"}, "not a year or a range"),
    ({"authers": ["Smith"]}, "unknown filter field(s) authers"),
    ({"authors": "Smith", "venues": [3]}, "venues must be a list of strings"),
    ({"year_from": True}, "must be a year"),
])
def test_bad_filters_are_clear_errors(data, message):
    with pytest.raises(AssistantError) as caught:
        Filters.from_json(data)
    assert message in str(caught.value)


def test_filters_round_trip_through_json():
    filters = Filters(year_from=2020, year_to=2022, authors=("Smith",), venues=("MICCAI",),
                      paper_ids=("abc",), collection="thesis")
    assert Filters.from_json(filters.to_json()) == filters
    assert not Filters() and filters


def test_author_and_venue_matching():
    names = ["Müller, Hans", "Wang, Li"]
    assert author_matches("muller", names) and author_matches("H. Müller", names)
    assert author_matches("Li Wang", names) and not author_matches("Wang Hans", names)
    assert not author_matches("Mull", names)
    assert venue_matches("MICCAI", VENUES[0]) and venue_matches("nature medicine", "Nature Medicine")
    assert not venue_matches("Nature", "Signature Reviews")


# --- HTTP API ----------------------------------------------------------------------------------
def test_api_filters_on_search_and_chat_completions(library, meta):
    from fastapi.testclient import TestClient

    from assistant.engine import Engine
    from assistant.web.server import create_app

    wanted = matching(meta, Filters(year_from=2023))
    with TestClient(create_app(library, Engine(library))) as client:
        found = client.post("/v1/search", json={"q": QUESTION, "k": 5, "filters": {"year": "2023-"}})
        assert found.status_code == 200, found.text
        ids = {p["paper_id"] for p in found.json()["papers"]}
        assert ids and ids <= wanted
        chat = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": QUESTION}], "filters": {"year_from": 2023}})
        assert chat.status_code == 200, chat.text
        sources = {s["paper_id"] for s in chat.json()["sources"]}
        assert sources and sources <= wanted
        bad = client.post("/v1/search", json={"q": QUESTION, "filters": {"colour": "red"}})
        assert bad.status_code == 400 and "unknown filter field" in bad.text


def test_api_export_of_the_cited_papers(library):
    from fastapi.testclient import TestClient

    from assistant.engine import Engine
    from assistant.web.server import create_app

    with TestClient(create_app(library, Engine(library))) as client:
        got = client.post("/v1/export", json={"question": QUESTION, "format": "bibtex"})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("application/x-bibtex")
        assert got.text.lstrip().startswith("@")
        bad = client.post("/v1/export", json={"question": QUESTION, "format": "docx"})
        assert bad.status_code == 400 and "unknown format" in bad.text
