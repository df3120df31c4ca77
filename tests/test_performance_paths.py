"""The fast paths of issues 7 and 18 give the same answers as the slow ones they replace: verbatim
search in the lexical index versus Chroma's `$contains`, chunks by id versus a `where` scan, name
resolution from the index on disk versus the in-memory title index (and that versus a scan of every
title), cached name resolution, the persisted sentence cache and its background warm-up,
single-threaded query embedding. No timing is asserted here (speed is measured by bench/)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import StoreFactory, make_settings

from assistant.corpus import load_papers, normalize_title
from assistant.engine import SENTENCE_CACHE, Engine
from assistant.ingest import ingest
from assistant.lexical import LexicalIndex
from assistant.name_index import IndexedTitles
from assistant.resources import bundled_corpus
from assistant.retrieval import case_variants, key_phrases, literal_terms, term_variants
from assistant.sentences import SentenceVectors, split_sentences
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.testing.embedder import HashEmbedder
from assistant.testing.oracles import old_verbatim
from assistant.titles import TitleIndex, _alias_pattern, _compact, near_miss_words

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def hash_corpus(make_store: StoreFactory) -> Settings:
    """The bundled corpus with the fake embedder (fast), no warm-up."""
    return make_store(bundled_corpus(), name="perf", sentence_cache_max_papers=0)


def _spellings() -> list[str]:
    questions = [json.loads(line)["question"]
                 for line in (DATA / "dev_questions.jsonl").read_text().splitlines() if line.strip()]
    found: set[str] = set()
    for q in questions:
        found |= {v for p in key_phrases(q) for v in case_variants(p)}
        found |= {v for t in literal_terms(q) for v in term_variants(t)}
    # Edge cases: short, no word characters, punctuation inside, non-ASCII, absent.
    found |= {"a", "of", " ", "+", "SAM 2", "SAM-2", "U-Net", "state-of-the-art", "μ", "–",
              "COVID-19", "Zyxwquorble", "ation", "segmentation netw"}
    return sorted(found)


def test_verbatim_index_matches_chroma_contains(hash_corpus: Settings) -> None:
    store = PaperStore(hash_corpus)
    index = LexicalIndex(hash_corpus.lexical_path)
    assert len(index) == store.count_chunks()
    for spelling in _spellings():
        for limit in (100, 3):
            expected = store.chunks.get(where_document={"$contains": spelling}, limit=limit,
                                        include=[])["ids"]
            assert index.contains(spelling, limit) == expected, (spelling, limit)


def test_verbatim_index_of_an_empty_store(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "none")
    assert len(index) == 0 and index.contains("anything", 10) == []
    assert index.bm25("anything", 10) == [] and not IndexedTitles(index).resolve("SegMamba")


def test_verbatim_search_after_updates_matches_chroma_contains(tmp_path: Path) -> None:
    """Papers rewritten and removed by later ingests: the index's words and store order follow."""
    from fixtures_corpus import make_papers, write_listing

    settings = make_settings(tmp_path / "store", embed_backend="hash", ingest_batch_papers=3)
    papers = make_papers(12, seed=3)
    corpus = write_listing(tmp_path / "c.txt", papers)
    ingest(settings, [corpus], progress=False)
    edited = [(t, a.replace("segmentation", "SegZebra-3 segmentation")) for t, a in papers[:4]]
    write_listing(corpus, [*edited, *papers[6:]])
    ingest(settings, [corpus], prune=True, progress=False)
    store = PaperStore(settings)
    index = LexicalIndex(settings.lexical_path)
    assert len(index) == store.count_chunks()
    for spelling in ["SegZebra", "Zebra-3", "segmentation", "Segmentation", "ation", "Paper study1",
                     "study4", "radiology", "cohort tumour", "a", "ebr"]:
        for limit in (100, 3):
            expected = store.chunks.get(where_document={"$contains": spelling}, limit=limit,
                                        include=[])["ids"]
            assert index.contains(spelling, limit) == expected, (spelling, limit)


def test_bm25_terms_are_the_ones_bm25s_made(hash_corpus: Settings) -> None:
    """The index tokenises for BM25 as bm25s did through llama-index (runs of two or more word
    characters, lower case, its English stop words out) and stems with Snowball English, so BM25
    ranks by the same terms: the same words as bm25s, the same stems but for the few words newer
    Snowball versions conflate more ("international" / "intern"), and the index holds exactly them."""
    import bm25s
    import Stemmer

    from assistant.lexical import bm25_analyzer

    store = PaperStore(hash_corpus)
    texts = [f"{(meta or {}).get('title', '')}\n\n{doc}"
             for page in store._pages(store.chunks, ["documents", "metadatas"])
             for doc, meta in zip(page["documents"], page["metadatas"], strict=True)]
    words = set(bm25s.tokenize(texts, stopwords="en", stemmer=None, show_progress=False).vocab)
    plain = bm25_analyzer(stem=False)
    assert {w for text in texts for w in plain.analyze(text)} == words
    stem, py_stem = bm25_analyzer(), Stemmer.Stemmer("english")
    differ = {w for w in words if stem.analyze(w) != [py_stem.stemWord(w)]}
    assert len(differ) <= 0.01 * len(words), sorted(differ)
    searcher = LexicalIndex(hash_corpus.lexical_path).searcher()
    assert {term for term, _ in searcher.terms_with_prefix("body", "")} == \
        {s for w in words for s in stem.analyze(w)}


def test_paper_chunks_by_id_match_the_where_scan(hash_corpus: Settings) -> None:
    engine = Engine(hash_corpus)
    store = engine.store
    for pid in list(engine.retriever.titles.titles)[:25]:
        by_id = engine.retriever._paper_chunks(pid)
        scan = store.chunks.get(where={"paper_id": pid}, include=["documents"])
        assert sorted(by_id["ids"]) == sorted(scan["ids"]) and by_id["ids"]
    assert engine.retriever._paper_chunks("no-such-paper")["ids"] == []


def test_name_resolution_is_cached_per_question_and_reset_on_refresh(hash_corpus: Settings) -> None:
    engine = Engine(hash_corpus)
    r = engine.retriever
    question = "What Dice score does Swin SMT reach on TotalSegmentator?"
    first = r.resolve_names(question)
    assert first == r.titles.resolve(question, hash_corpus.entity_match_threshold) and first
    assert r.resolve_names(question) == first
    r.refresh()
    assert r._names == {}
    assert r.chunk_count == engine.store.count_chunks()


def test_sentence_cache_round_trip(tmp_path: Path) -> None:
    vectors = SentenceVectors(HashEmbedder())
    texts = ["Segmentation of the liver. It reaches 90% Dice.", "A second abstract here."]
    assert vectors.warm(texts) == 3
    path = tmp_path / "cache.npz"
    vectors.save(path, only=texts[:1])
    again = SentenceVectors(HashEmbedder())
    assert again.load(path) == 2
    sentences = split_sentences(texts[0])
    assert np.array_equal(again(sentences), vectors(sentences))
    other = SentenceVectors(HashEmbedder(dim=64))  # another model: the file is not used
    assert other.load(path) == 0
    path.write_bytes(b"not a cache")
    assert SentenceVectors(HashEmbedder()).load(path) == 0
    assert SentenceVectors(HashEmbedder()).load(tmp_path / "missing.npz") == 0


def test_engine_warms_the_sentence_cache_and_keeps_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "store", embed_backend="hash")
    ingest(settings, [bundled_corpus()], progress=False)
    engine = Engine(settings)
    assert engine.warmup_done(timeout=120)
    abstracts = [p.abstract for p in engine.store.all_papers()]
    wanted = {s for a in abstracts for s in split_sentences(a)}
    assert len(engine.vectors) >= len(wanted)
    assert (settings.store_dir / SENTENCE_CACHE).exists()
    second = Engine(settings)
    assert second.warmup_done(timeout=120)
    assert len(second.vectors) >= len(wanted)
    before = engine.ask("Which papers use knowledge graphs?").answer
    assert second.ask("Which papers use knowledge graphs?").answer == before


def test_warm_up_is_off_for_large_stores_and_when_disabled(hash_corpus: Settings, tmp_path: Path
                                                           ) -> None:
    engine = Engine(hash_corpus)  # sentence_cache_max_papers=0
    assert engine.warmup_done(timeout=1) and len(engine.vectors) == 0
    small_limit = hash_corpus.model_copy(update={"sentence_cache_max_papers": 10})
    engine = Engine(small_limit)
    assert engine.warmup_done(timeout=60) and len(engine.vectors) == 0


@pytest.mark.parametrize("backend", ["onnx", "sentence-transformers"])
def test_a_question_alone_gets_its_vector_in_a_batch(corpus_store: Settings, backend: str) -> None:
    """Torch runs a lone question on one thread; onnxruntime sorts a batch by length: neither may
    change a vector."""
    from assistant.embedding import get_embedder

    embedder = get_embedder(corpus_store.model_copy(update={"embed_backend": backend}))
    texts = ["Which papers segment the liver?", "How accurate is the nailfold pipeline?",
             "A third text", "A fourth", "A fifth one, so the batch runs on every thread"]
    batch = embedder.embed(texts)
    for i, text in enumerate(texts[:2]):
        assert np.allclose(embedder.embed([text])[0], batch[i], atol=1e-5)


def test_verbatim_sub_queries_match_the_per_spelling_chroma_reads(hash_corpus: Settings) -> None:
    """`_verbatim` (index + one read by id) against the code it replaced (a Chroma `$contains`
    read per spelling): the same chunks, in the same order, with the same similarities."""
    engine = Engine(hash_corpus)
    r = engine.retriever

    old = old_verbatim(r)  # the Chroma `$contains` path (bench/changes.py measures both)

    questions = [json.loads(line)["question"]
                 for line in (DATA / "dev_questions.jsonl").read_text().splitlines() if line.strip()]
    for q in questions:
        v = engine.embedder.embed([q])[0]
        for terms in ([term_variants(t) for t in literal_terms(q)],
                      [case_variants(p) for p in key_phrases(q)]):
            new_found, old_found = r._verbatim(terms, v), old(terms, v)
            assert list(new_found) == list(old_found), q
            assert all(abs(new_found[c][1] - old_found[c][1]) < 1e-6 for c in new_found)


def test_ingest_brings_the_index_search_breadth_to_the_setting(tmp_path: Path) -> None:
    old = make_settings(tmp_path / "store", embed_backend="hash", hnsw_ef_search=100)
    assert PaperStore(old).chunks.configuration["hnsw"]["ef_search"] == 100
    new = old.model_copy(update={"hnsw_ef_search": 700})
    ingest(new, [bundled_corpus()], progress=False)
    store = PaperStore(new)
    fresh = store.client.get_collection(store.chunks.name, embedding_function=None)
    assert fresh.configuration["hnsw"]["ef_search"] == 700


def _resolve_by_scanning(index: TitleIndex, question: str, threshold: float) -> set[tuple[str, bool]]:
    """What TitleIndex.resolve did before it looked names up: every alias's pattern searched in the
    question, every name compared with difflib."""
    found: dict[str, bool] = {}
    norm_q = f" {normalize_title(question)} "
    for pid, title in index.titles.items():
        ntitle = normalize_title(title)
        if len(ntitle) > 20 and f" {ntitle} " in norm_q:
            found.setdefault(pid, True)
    spans = [(m.start(), alias) for alias in index.aliases
             for m in _alias_pattern(alias, index.case_sensitive(alias)).finditer(question)]
    # Where one spelling is written exactly as the question writes it, the others are not meant.
    exact = {pos for pos, alias in spans if question[pos:pos + len(alias)] == alias}
    for pos, alias in spans:
        if pos not in exact or question[pos:pos + len(alias)] == alias:
            for pid in index.aliases[alias]:
                found.setdefault(pid, True)
    for match in near_miss_words(question):
        word = match.group(0)
        if match.start() in {pos for pos, _ in spans}:
            continue
        cw = _compact(word)
        keys = [cw] if cw in index._by_compact else difflib.get_close_matches(
            cw, index._fuzzy, n=1, cutoff=threshold)
        for key in keys:
            for pid in index._by_compact[key]:
                found.setdefault(pid, key == cw)
    return set(found.items())


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_name_lookup_finds_what_scanning_every_title_finds() -> None:
    """The dictionary lookups of TitleIndex.resolve against a scan of every alias and name, on the
    dev questions and on each real title's names written with typos, other case and separators."""
    records = load_papers([bundled_corpus()]).papers
    index = TitleIndex({p.id: p.title for p in records},
                       {p.id: f"{p.title}\n{p.abstract}" for p in records})
    for q in _resolution_questions(index, records):
        for threshold in (0.88, 0.8):
            got = {(m.paper_id, m.exact) for m in index.resolve(q, threshold)}
            assert got == _resolve_by_scanning(index, q, threshold), q


def test_a_copied_local_store_keeps_its_lexical_index(hash_corpus: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's stamp of a local store does not name its path: a copy (or the same store opened
    by another path) uses the saved index instead of rebuilding it."""
    import shutil

    from assistant import lexical

    copy = tmp_path / "copy"
    shutil.copytree(hash_corpus.store_dir, copy, ignore=shutil.ignore_patterns(".ingest.lock"))
    settings = hash_corpus.model_copy(update={"store_dir": copy})
    monkeypatch.setattr(lexical, "rebuild", lambda *a: pytest.fail("rebuilt a fresh index"))
    index, fresh = lexical.open_index(settings, PaperStore(settings))
    assert fresh and index.path == copy / "lexical"
    assert lexical.index_is_fresh(settings, PaperStore(settings))


def test_titles_in_the_index_match_the_paper_records(hash_corpus: Settings) -> None:
    from tantivy import Occur, Query

    from assistant.lexical import SCHEMA
    from assistant.titles import mention_words

    engine = Engine(hash_corpus)
    records = engine.store.all_papers()
    titles = engine.retriever.titles.titles
    assert dict(titles) == {r.id: r.title for r in records}
    assert len(titles) == len(records) and "no-such-paper" not in titles
    searcher = engine.retriever.lexical.searcher()
    for r in records[:40]:  # every word of the title and abstract counts as the paper's mention
        for word in sorted(mention_words([r.title, r.abstract])):
            query = Query.boolean_query([
                (Occur.Must, Query.term_query(SCHEMA, "paper_id", r.id, index_option="basic")),
                (Occur.Must, Query.term_query(SCHEMA, "mention", word, index_option="basic"))])
            assert searcher.search(query, limit=1).count == 1, (r.title, word)


def _resolution_questions(index: TitleIndex, records: list) -> list[str]:
    import random

    rng = random.Random(7)
    questions = [json.loads(line)["question"]
                 for line in (DATA / "dev_questions.jsonl").read_text().splitlines() if line.strip()]
    for alias in sorted(index.aliases):
        cut = rng.randrange(len(alias))
        doubled = rng.randrange(len(alias))
        questions += [f"What does {alias} do?", f"compare {alias.lower()} with {alias.upper()}!",
                      f"Is {alias.replace(' ', '-')} good", f"About {alias[:cut] + alias[cut + 1:]}.",
                      f"({alias[:doubled] + alias[doubled] + alias[doubled:]}) and x"]
    questions += [f'Summarise "{p.title}" please' for p in records[:20]]
    questions += [f"Compare {a.title} with {b.title}." for a, b in zip(records[20:30], records[30:40],
                                                                       strict=True)]
    return questions


def test_names_resolved_from_the_index_match_the_title_index(hash_corpus: Settings) -> None:
    """The lookups in the lexical index on disk resolve every question exactly as the in-memory
    title index built from the same papers (which the next test checks against a scan)."""
    records = load_papers([bundled_corpus()]).papers
    memory = TitleIndex({p.id: p.title for p in records},
                        {p.id: f"{p.title}\n{p.abstract}" for p in records},
                        hash_corpus.alias_max_mention_share)
    indexed = IndexedTitles(LexicalIndex(hash_corpus.lexical_path), hash_corpus.alias_max_mention_share)
    for q in _resolution_questions(memory, records):
        for threshold in (0.88, 0.8):
            got = [(m.paper_id, m.exact, m.name, m.title) for m in indexed.resolve(q, threshold)]
            want = [(m.paper_id, m.exact, m.name, m.title) for m in memory.resolve(q, threshold)]
            assert got == want, q


def test_a_term_in_more_chunks_than_are_fetched_ranks_nothing(hash_corpus: Settings) -> None:
    """Fetching the first `literal_candidates` chunks of a common term would favour the papers
    ingested first; such a term is left out instead, and a rarer one still counts."""
    settings = hash_corpus.model_copy(update={"literal_candidates": 3, "verbatim_max_paper_share": 1.0})
    engine = Engine(settings)
    r = engine.retriever
    v = engine.embedder.embed(["segment anything"])[0]
    assert len(r.verbatim.contains("Segment Anything", 100)) > 3
    assert r._verbatim([["Segment Anything"]], v) == {}
    rare = r.verbatim.contains("SegMamba", 100)
    assert 0 < len(rare) <= 3
    assert list(r._verbatim([["SegMamba"]], v)) == rare
