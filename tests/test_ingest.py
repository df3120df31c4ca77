"""Ingestion into the local Chroma store: all-or-nothing validation, idempotence, updates, pruning,
rebuilds, compatibility, deterministic chunks, the lexical index (BM25) kept in step, and the ingest
lock."""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import make_settings
from fixtures_corpus import (
    expected_chunks,
    make_papers,
    store_chunk_texts,
    store_chunks,
    write_csv,
    write_jsonl,
    write_listing,
)

from assistant import lexical, store
from assistant.chunks import chunk_id, chunk_paper, embed_text
from assistant.corpus import Paper, load_papers, paper_id
from assistant.embedding import get_embedder
from assistant.errors import CorpusError, StoreError
from assistant.ingest import ingest
from assistant.resources import bundled_corpus
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.testing.embedder import HashEmbedder

N = 14


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Hash embedder, small batches so that several batches are written."""
    return make_settings(tmp_path / "store", embed_backend="hash", ingest_batch_papers=4)


@pytest.fixture
def papers() -> list[tuple[str, str]]:
    return make_papers(N, seed=7)


@pytest.fixture
def corpus(tmp_path: Path, papers) -> Path:
    return write_listing(tmp_path / "corpus.txt", papers)


def run(settings: Settings, paths: list[Path], **kwargs):
    return ingest(settings, paths, progress=False, **kwargs)


def snapshot(settings: Settings) -> dict:
    """Everything an ingest may change: paper records, chunks, manifest and the BM25 stamp."""
    store = PaperStore(settings)
    papers = store.papers.get(include=["documents", "metadatas"])
    return {
        "papers": sorted(zip(papers["ids"], papers["documents"],
                             [json.dumps(m, sort_keys=True) for m in papers["metadatas"]],
                             strict=True)),
        "chunks": {pid: sorted(chunks.items()) for pid, chunks in store_chunks(settings).items()},
        "manifest": store.manifest,
        "stamp": lexical.LexicalIndex(settings.lexical_path).stamp(),
    }


def assert_store_matches(settings: Settings, paths: list[Path]) -> None:
    """The store holds exactly the papers of `paths`, each with exactly its expected chunks."""
    expected = expected_chunks(paths, settings)
    store = PaperStore(settings)
    assert store.count_papers() == len(expected)
    assert set(store.paper_hashes()) == set(expected)
    assert store.count_chunks() == sum(len(c) for c in expected.values())
    assert store_chunk_texts(settings) == expected
    for pid, chunks in store_chunks(settings).items():
        assert sorted(chunks) == [chunk_id(pid, i) for i in range(len(expected[pid]))]


# --- all or nothing --------------------------------------------------------------------------

BAD_FILES = {
    "odd.txt": "Title\nAbstract\nOrphan title\n",
    "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "latin1.jsonl": '{"title": "Caf\u00e9", "abstract": "A."}\n'.encode("latin-1"),
    "invalid.jsonl": '{"title": "T", "abstract": "A."}\n{"title": "U", \n',
    "missing.csv": "title,body\nT,A\n",
}


@pytest.mark.parametrize("bad_name", sorted(BAD_FILES))
def test_bad_file_in_multi_file_ingest_on_a_fresh_store_writes_nothing(
        settings, corpus, tmp_path, bad_name):
    bad = tmp_path / bad_name
    content = BAD_FILES[bad_name]
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusError, match=str(bad.name)):
        run(settings, [corpus, bad])
    store = PaperStore(settings)
    assert (store.count_papers(), store.count_chunks()) == (0, 0)
    assert store.manifest == {}
    assert not settings.lexical_path.exists()


@pytest.mark.parametrize("bad_position", ["first", "last"])
def test_bad_file_in_multi_file_ingest_leaves_a_previous_ingest_intact(
        settings, corpus, papers, tmp_path, bad_position):
    run(settings, [corpus])
    before = snapshot(settings)
    assert len(before["papers"]) == N

    # A run that would add papers, change one, and (with prune) drop the rest - plus one bad file.
    changed = write_listing(tmp_path / "changed.txt", [(papers[0][0], "A brand new abstract.")])
    extra = write_jsonl(tmp_path / "extra.jsonl", [{"title": "Extra Paper", "abstract": "New."}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"title": "Fine", "abstract": "Fine."}])
    bad.write_text(bad.read_text() + '{"title": 3, "abstract": "x"}\n')
    files = [changed, extra]
    files = [bad, *files] if bad_position == "first" else [*files, bad]
    with pytest.raises(CorpusError, match=rf"{bad}:2: field 'title' must be a string"):
        run(settings, files, prune=True)
    with pytest.raises(CorpusError):
        run(settings, [*files, tmp_path / "does-not-exist.txt"], rebuild=True)

    assert snapshot(settings) == before
    assert_store_matches(settings, [corpus])


def test_duplicates_are_reported_in_the_summary_and_stored_once(settings, tmp_path, papers):
    first = write_listing(tmp_path / "a.txt", papers[:5])
    title, _ = papers[2]
    second = write_jsonl(tmp_path / "b.jsonl", [
        {"title": title.upper() + "!", "abstract": "A different abstract of the same title."},
        {"title": "Only In B", "abstract": "Unique."},
    ])
    summary = run(settings, [first, second])
    assert len(summary.duplicates) == 1
    assert f"{second}:1" in summary.duplicates[0] and "duplicate title" in summary.duplicates[0]
    assert "1 duplicate(s) merged" in summary.line()
    assert (summary.papers_added, summary.papers_total) == (6, 6)
    store = PaperStore(settings)
    kept = store.get_papers([paper_id(title)])[paper_id(title)]
    assert kept.abstract == papers[2][1]
    assert_store_matches(settings, [first, second])

    again = run(settings, [first, second])
    assert len(again.duplicates) == 1
    assert (again.papers_unchanged, again.papers_added, again.papers_total) == (6, 0, 6)


# --- idempotence, updates, pruning, rebuilds -------------------------------------------------


def test_first_ingest_writes_every_paper_and_chunk(settings, corpus):
    summary = run(settings, [corpus])
    expected = expected_chunks([corpus], settings)
    assert (summary.papers_added, summary.papers_updated, summary.papers_unchanged) == (N, 0, 0)
    assert summary.papers_total == N
    assert summary.chunks_total == sum(len(c) for c in expected.values())
    # The generated corpus really exercises multi-chunk papers and multiple batches.
    assert max(len(c) for c in expected.values()) >= 3
    assert min(len(c) for c in expected.values()) == 1
    assert_store_matches(settings, [corpus])
    store = PaperStore(settings)
    assert store.manifest == {"schema": 1, "embed_model": "hash-256", "chunk_size": 160,
                              "chunk_overlap": 32, "generation": 1, "dirty": False,
                              "metadata_version": 2,
                              "papers_fingerprint": lexical.fingerprint(store.paper_hashes())}


def test_second_ingest_adds_nothing(settings, corpus):
    run(settings, [corpus])
    before = snapshot(settings)
    summary = run(settings, [corpus])
    assert (summary.papers_added, summary.papers_updated, summary.papers_removed) == (0, 0, 0)
    assert summary.papers_unchanged == summary.papers_total == N
    after = snapshot(settings)
    assert after == before  # same chunk ids, texts, metadata; generation not bumped
    assert after["manifest"]["generation"] == 1


def test_same_papers_in_another_format_are_unchanged(settings, corpus, papers, tmp_path):
    run(settings, [corpus])
    as_csv = write_csv(tmp_path / "same.csv", [{"title": t, "abstract": a} for t, a in papers],
                       ["title", "abstract"])
    summary = run(settings, [as_csv])
    assert summary.papers_unchanged == N and summary.papers_added == summary.papers_updated == 0


def test_editing_one_abstract_replaces_exactly_that_papers_chunks(settings, papers, tmp_path):
    expected0 = expected_chunks([write_listing(tmp_path / "probe.txt", papers)], settings)
    # The paper with the most chunks, so that a short abstract leaves fewer chunks behind.
    target = max(range(N), key=lambda i: len(expected0[paper_id(papers[i][0])]))
    target_id = paper_id(papers[target][0])
    assert len(expected0[target_id]) >= 3

    corpus = write_listing(tmp_path / "corpus.txt", papers)
    run(settings, [corpus])
    before = store_chunks(settings)

    edited = list(papers)
    edited[target] = (papers[target][0], "Short replacement abstract mentioning quokkas.")
    write_listing(corpus, edited)
    summary = run(settings, [corpus])
    assert (summary.papers_updated, summary.papers_added, summary.papers_unchanged) == (1, 0, N - 1)

    after = store_chunks(settings)
    assert set(after) == set(before)
    for pid in before:
        if pid != target_id:
            assert after[pid] == before[pid], "an unchanged paper's chunks were rewritten"
    assert sorted(after[target_id]) == [chunk_id(target_id, 0)]
    text, meta = after[target_id][chunk_id(target_id, 0)]
    assert text == "Short replacement abstract mentioning quokkas."
    assert meta["n_chunks"] == 1 and meta["paper_hash"] != before[target_id][chunk_id(
        target_id, 0)][1]["paper_hash"]
    record = PaperStore(settings).get_papers([target_id])[target_id]
    assert record.abstract == "Short replacement abstract mentioning quokkas."
    assert_store_matches(settings, [corpus])

    # And back to a long abstract: the chunks grow again, with the new text.
    long_abstract = " ".join(f"Sentence {i} about wombat cohorts and their imaging." for i in range(80))
    edited[target] = (papers[target][0], long_abstract)
    write_listing(corpus, edited)
    summary = run(settings, [corpus])
    assert (summary.papers_updated, summary.papers_unchanged) == (1, N - 1)
    texts = store_chunk_texts(settings)[target_id]
    assert len(texts) >= 3 and all("wombat" in t for t in texts)
    assert_store_matches(settings, [corpus])


def test_changing_optional_metadata_updates_the_paper(settings, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"title": "Metadata Paper", "abstract": "Same abstract."},
        {"title": "Other Paper", "abstract": "Other abstract."},
    ])
    run(settings, [path])
    write_jsonl(path, [
        {"title": "Metadata Paper", "abstract": "Same abstract.", "url": "https://example.org/m",
         "year": 2025},
        {"title": "Other Paper", "abstract": "Other abstract."},
    ])
    summary = run(settings, [path])
    assert (summary.papers_updated, summary.papers_unchanged) == (1, 1)
    record = PaperStore(settings).get_papers([paper_id("Metadata Paper")])[paper_id("Metadata Paper")]
    assert (record.url, record.year) == ("https://example.org/m", "2025")


def test_papers_missing_from_the_inputs_stay_unless_pruned(settings, papers, tmp_path):
    full = write_listing(tmp_path / "full.txt", papers)
    run(settings, [full])
    fewer = write_listing(tmp_path / "fewer.txt", papers[3:])
    gone = {paper_id(t) for t, _ in papers[:3]}

    kept = run(settings, [fewer])
    assert (kept.papers_removed, kept.papers_unchanged, kept.papers_total) == (0, N - 3, N)
    assert gone <= set(PaperStore(settings).paper_hashes())

    pruned = run(settings, [fewer], prune=True)
    assert (pruned.papers_removed, pruned.papers_unchanged, pruned.papers_total) == (3, N - 3, N - 3)
    store = PaperStore(settings)
    assert not gone & set(store.paper_hashes())
    assert not gone & store.chunk_paper_ids()
    assert_store_matches(settings, [fewer])
    assert not store.dirty


def test_renamed_title_is_a_new_paper(settings, papers, tmp_path):
    corpus = write_listing(tmp_path / "c.txt", papers)
    run(settings, [corpus])
    renamed = [(f"{papers[0][0]} (extended)", papers[0][1]), *papers[1:]]
    write_listing(corpus, renamed)
    summary = run(settings, [corpus], prune=True)
    assert (summary.papers_added, summary.papers_removed, summary.papers_unchanged) == (1, 1, N - 1)
    assert_store_matches(settings, [corpus])


def test_rebuild_starts_fresh(settings, papers, tmp_path):
    first = write_listing(tmp_path / "first.txt", papers[:8])
    second = write_listing(tmp_path / "second.txt", papers[5:])
    run(settings, [first])
    run(settings, [second])
    assert PaperStore(settings).generation == 2
    summary = run(settings, [second], rebuild=True)
    assert (summary.papers_added, summary.papers_unchanged, summary.papers_total) == (
        N - 5, 0, N - 5)
    store = PaperStore(settings)
    assert store.generation == 1
    assert_store_matches(settings, [second])
    assert lexical.index_is_fresh(settings, store)


def test_rebuilding_one_store_keeps_another_stores_open_client_current(tmp_path, papers):
    """A long-lived client (the app's) on store X must keep seeing X's new chunks in vector
    search after an unrelated store Y was rebuilt in the same process."""
    x = make_settings(tmp_path / "x", embed_backend="hash")
    y = make_settings(tmp_path / "y", embed_backend="hash")
    small = write_listing(tmp_path / "small.txt", papers[:4])
    full = write_listing(tmp_path / "full.txt", papers)
    run(x, [small])
    app_store = PaperStore(x)
    run(y, [small], rebuild=True)
    run(x, [full])
    total = app_store.count_chunks()
    assert total == sum(len(c) for c in expected_chunks([full], x).values())
    query = HashEmbedder().embed(["segmentation"])[0].tolist()
    found = app_store.chunks.query(query_embeddings=[query], n_results=total)["ids"][0]
    assert len(found) == total


class Killed(BaseException):
    """Stands in for the process dying at that point."""


def test_a_reset_cut_short_never_leaves_papers_without_chunks(settings, papers, tmp_path,
                                                               monkeypatch):
    """The server-mode rebuild (PaperStore.reset) interrupted between its two deletions: the next
    ingest must still end with every paper's chunks, and nothing of papers no longer wanted."""
    run(settings, [write_listing(tmp_path / "all.txt", papers)])
    store = PaperStore(settings)
    real_delete = store.client.delete_collection

    def delete_then_die(name):
        real_delete(name)
        raise Killed

    monkeypatch.setattr(store.client, "delete_collection", delete_then_die)
    with pytest.raises(Killed):
        store.reset()
    monkeypatch.undo()

    fewer = write_listing(tmp_path / "fewer.txt", papers[:5])
    run(settings, [fewer])
    assert_store_matches(settings, [fewer])


def test_a_rebuild_outlasts_a_reader_that_writes_its_lock_file_meanwhile(tmp_path, monkeypatch):
    """A reader of the index elsewhere (tantivy's reload watcher) may put a lock file into the
    index directory while it is being removed: the removal goes on, not the ingest with a trace."""
    index = tmp_path / "lexical"
    index.mkdir()
    (index / "meta.json").write_text("{}")
    (tmp_path / "chroma.sqlite3").write_text("")
    real, calls = shutil.rmtree, []

    def racing(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            (Path(path) / ".tantivy-meta.lock").write_text("")
            raise OSError(errno.ENOTEMPTY, "Directory not empty", str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(store.shutil, "rmtree", racing)
    store.wipe_local_store(tmp_path)
    assert len(calls) == 2 and not index.exists() and not (tmp_path / "chroma.sqlite3").exists()


def test_rebuild_refuses_a_directory_that_is_not_a_store(tmp_path, corpus):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    settings = make_settings(precious, embed_backend="hash")
    with pytest.raises(StoreError, match="refusing to delete"):
        run(settings, [corpus], rebuild=True)
    assert (precious / "thesis.tex").read_text() == "do not delete"


# --- compatibility ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [({"chunk_size": 96}, "chunk_size"), ({"chunk_overlap": 8}, "chunk_overlap")],
)
def test_other_chunking_on_an_existing_store_asks_for_rebuild(settings, corpus, override, key):
    run(settings, [corpus])
    before = snapshot(settings)
    other = make_settings(settings.store_dir, embed_backend="hash", **override)
    with pytest.raises(StoreError) as caught:
        run(other, [corpus])
    assert "--rebuild" in str(caught.value) and key in str(caught.value)
    assert snapshot(settings) == before

    summary = run(other, [corpus], rebuild=True)
    assert summary.papers_added == N
    assert PaperStore(other).manifest[key] == override[key]
    assert_store_matches(other, [corpus])


def test_other_embedding_model_on_an_existing_store_asks_for_rebuild(settings, corpus, monkeypatch):
    run(settings, [corpus])
    before = snapshot(settings)
    other = make_settings(settings.store_dir)  # the default sentence-transformers model

    def no_model(_settings):
        raise AssertionError("the model must not be loaded for a store it cannot write to")

    monkeypatch.setattr("assistant.ingest.get_embedder", no_model)
    with pytest.raises(StoreError) as caught:
        run(other, [corpus])
    message = str(caught.value)
    assert "--rebuild" in message
    assert "embed_model" in message and "hash-256" in message and "all-MiniLM-L6-v2" in message
    assert snapshot(settings) == before


# --- chunks ----------------------------------------------------------------------------------


def test_chunk_ids_are_deterministic_across_stores(tmp_path, corpus):
    a = make_settings(tmp_path / "a", embed_backend="hash")
    b = make_settings(tmp_path / "b", embed_backend="hash", ingest_batch_papers=1)
    run(a, [corpus])
    run(b, [corpus])
    chunks_a, chunks_b = store_chunks(a), store_chunks(b)
    assert chunks_a == chunks_b
    got_a = PaperStore(a).chunks.get(include=["embeddings"])
    got_b = PaperStore(b).chunks.get(include=["embeddings"])
    vectors_b = dict(zip(got_b["ids"], got_b["embeddings"], strict=True))
    for cid, vector in zip(got_a["ids"], got_a["embeddings"], strict=True):
        assert list(vector) == pytest.approx(list(vectors_b[cid]))


def test_chunks_carry_paper_id_and_title(settings, corpus):
    run(settings, [corpus])
    papers = {p.id: p for p in load_papers([corpus]).papers}
    store = PaperStore(settings)
    for pid, chunks in store_chunks(settings).items():
        paper = papers[pid]
        for index, cid in enumerate(sorted(chunks)):
            text, meta = chunks[cid]
            assert cid == f"{pid}-{index:04d}"
            assert meta["paper_id"] == pid
            assert meta["title"] == paper.title
            assert meta["chunk_index"] == index
            assert meta["n_chunks"] == len(chunks)
            assert meta["paper_hash"] == paper.content_hash
            assert text in paper.abstract
    # Read back as llama-index nodes: the paper is each chunk's source document.
    nodes = store.all_chunk_nodes()
    assert len(nodes) == store.count_chunks()
    for node in nodes:
        assert node.ref_doc_id == node.metadata["paper_id"]
        assert node.node_id.startswith(node.metadata["paper_id"] + "-")


def test_chunk_vectors_embed_the_title_with_the_text(settings, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"title": "Pangolin Radiomics",
                                               "abstract": "Unrelated words only."}])
    run(settings, [path])
    got = PaperStore(settings).chunks.get(include=["embeddings"])
    expected = HashEmbedder().embed([embed_text("Pangolin Radiomics", "Unrelated words only.")])[0]
    assert list(got["embeddings"][0]) == pytest.approx(expected.tolist(), abs=1e-6)


def test_every_real_embedded_text_fits_the_model_window(corpus_store):
    embedder = get_embedder(corpus_store)
    assert embedder.max_tokens == 256
    store = PaperStore(corpus_store)
    assert store.count_papers() == 215
    assert store.manifest["embed_model"] == "all-MiniLM-L6-v2"
    nodes = store.all_chunk_nodes()
    assert len(nodes) == store.count_chunks() > 215
    counts = {n.node_id: embedder.count_tokens(embed_text(n.metadata["title"], n.get_content()))
              for n in nodes}
    too_long = {cid: c for cid, c in counts.items() if c > embedder.max_tokens}
    assert not too_long
    # The chunks are the ones the settings produce for the bundled corpus.
    papers = load_papers([bundled_corpus()]).papers
    assert sum(len(chunk_paper(p, corpus_store.chunk_size, corpus_store.chunk_overlap))
               for p in papers) == len(nodes)


# --- the lexical index (BM25) in step ------------------------------------------------------------


def _hits(settings: Settings, query: str) -> list[str]:
    return [h.node.node_id for h in lexical.LexicalIndex(settings.lexical_path).bm25(query, 5)]


def _open(settings: Settings) -> bool:
    """Open the index as the app does (repairing it if stale); whether it matched the store."""
    return lexical.open_index(settings, PaperStore(settings))[1]


def _count_rebuilds(monkeypatch) -> list[int]:
    builds: list[int] = []
    real = lexical.rebuild
    monkeypatch.setattr(lexical, "rebuild", lambda *a: builds.append(1) or real(*a))
    monkeypatch.setattr("assistant.ingest.rebuild_lexical", lexical.rebuild)
    return builds


def test_index_stamp_follows_every_ingest_that_changes_the_store(settings, corpus, papers):
    run(settings, [corpus])
    store = PaperStore(settings)
    stamp = lexical.LexicalIndex(settings.lexical_path).stamp()
    assert stamp == lexical.store_stamp(store, store.paper_hashes()) and stamp["generation"] == 1
    assert lexical.index_is_fresh(settings, store)

    edited = [(papers[0][0], "Completely new abstract about axolotl regeneration."), *papers[1:]]
    write_listing(corpus, edited)
    run(settings, [corpus])
    store = PaperStore(settings)
    stamp = lexical.LexicalIndex(settings.lexical_path).stamp()
    assert stamp["generation"] == 2 and stamp == lexical.store_stamp(store, store.paper_hashes())
    assert _hits(settings, "axolotl")[:1] == [chunk_id(paper_id(papers[0][0]), 0)]
    # The old text of the edited paper is gone from the index, not only outranked.
    old_words = set(papers[0][1].lower().split()) - {w for _, a in papers[1:] for w in a.lower().split()}
    for word in old_words:
        assert not _hits(settings, word.strip(".")), word


def test_an_ingest_writes_only_the_papers_it_changes(settings, corpus, papers, monkeypatch):
    """Incremental: adding a paper adds its documents to the index; nothing is rebuilt."""
    run(settings, [corpus])
    builds = _count_rebuilds(monkeypatch)
    added: list[str] = []
    real_add = lexical.LexicalUpdate.add_papers

    def add_papers(self, records):
        records = list(records)
        added.extend(r.paper_id for r in records)
        return real_add(self, records)

    monkeypatch.setattr(lexical.LexicalUpdate, "add_papers", add_papers)
    extra = write_listing(corpus.with_name("extra.txt"), [("Tapir Telemetry", "Tapir gait sensors.")])
    summary = run(settings, [corpus, extra])
    assert summary.papers_added == 1 and builds == []
    assert added == [paper_id("Tapir Telemetry")]
    assert _hits(settings, "tapir")[:1] == [chunk_id(paper_id("Tapir Telemetry"), 0)]
    assert lexical.index_is_fresh(settings, PaperStore(settings))
    assert lexical.LexicalIndex(settings.lexical_path).count_chunks() == PaperStore(settings).count_chunks()


def test_a_first_ingest_writes_the_index_as_it_goes(settings, corpus, monkeypatch):
    builds = _count_rebuilds(monkeypatch)
    run(settings, [corpus])
    assert builds == []  # no second pass reading the store back
    assert lexical.index_is_fresh(settings, PaperStore(settings))


def test_rebuild_replaces_an_index_of_an_earlier_version_kept_outside_the_store(tmp_path, corpus):
    """--rebuild wipes a local store's folder; an index elsewhere (ASSISTANT_LEXICAL_DIR) written
    with other fields is built anew instead of being cleared in place."""
    import tantivy

    outside = tmp_path / "shared-lexical"
    outside.mkdir()
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True)
    tantivy.Index(builder.build(), path=str(outside))
    settings = make_settings(tmp_path / "store", embed_backend="hash", lexical_dir=outside)
    run(settings, [corpus], rebuild=True)
    assert lexical.index_is_fresh(settings, PaperStore(settings))
    assert _hits(settings, "segmentation")


def _sneak_in(settings: Settings, paper: Paper) -> list[str]:
    """Write a paper straight into the store, as a bug or another tool might, bypassing ingest."""
    store = PaperStore(settings)
    nodes = chunk_paper(paper, settings.chunk_size, settings.chunk_overlap)
    vectors = HashEmbedder().embed([embed_text(paper.title, n.text) for n in nodes])
    store.write_papers([(paper, nodes, vectors)])
    return [n.node_id for n in nodes]


def _paper(title: str, abstract: str) -> Paper:
    return Paper(id=paper_id(title), title=title, abstract=abstract, source="test")


def test_the_index_detects_a_write_behind_its_back_and_rebuilds(settings, corpus, monkeypatch):
    run(settings, [corpus])
    ids = _sneak_in(settings, _paper("Sneaky Paper", "Capybara telemetry in intensive care."))
    store = PaperStore(settings)
    assert not lexical.index_is_fresh(settings, store)
    builds = _count_rebuilds(monkeypatch)
    assert _open(settings) and builds == [1]
    assert _hits(settings, "capybara telemetry")[:1] == ids
    assert lexical.index_is_fresh(settings, store)  # the rebuilt index was committed
    # ...and a later open uses it as it is.
    assert _open(settings) and builds == [1]
    assert _hits(settings, "capybara")[:1] == ids


def test_a_same_size_rewrite_behind_its_back_is_caught_by_the_next_ingest(settings, corpus, monkeypatch):
    """A one-chunk paper rewritten as another one-chunk paper changes neither the generation nor
    the chunk count. Opening the store does not read every paper record, so it cannot tell; the
    next ingest, which reads them anyway, does, and rebuilds the index."""
    run(settings, [corpus])
    single = next(p for p in load_papers([corpus]).papers
                  if len(store_chunk_texts(settings)[p.id]) == 1)
    ids = _sneak_in(settings, _paper(single.title, "Okapi gait analysis with wearable sensors."))
    assert ids == [chunk_id(single.id, 0)]
    store = PaperStore(settings)
    stamp = lexical.LexicalIndex(settings.lexical_path).stamp()
    assert (store.count_chunks(), store.generation) == (stamp["chunks"], stamp["generation"])
    assert not lexical.index_is_fresh(settings, store)
    builds = _count_rebuilds(monkeypatch)
    extra = write_listing(corpus.with_name("extra.txt"), [("Tapir Telemetry", "Tapir gait sensors.")])
    run(settings, [corpus, extra])
    assert builds == [1]
    store = PaperStore(settings)
    assert lexical.index_is_fresh(settings, store)
    assert not _hits(settings, "okapi")  # the corpus's own text is back, in the store and the index
    assert _hits(settings, "tapir")


def test_the_index_is_rebuilt_when_its_stamp_does_not_match(settings, corpus, monkeypatch):
    run(settings, [corpus])
    store = PaperStore(settings)
    good = lexical.LexicalIndex(settings.lexical_path).stamp()
    builds = _count_rebuilds(monkeypatch)
    assert _open(settings) and builds == []  # a fresh index is opened, not rebuilt

    update = lexical.LexicalUpdate(settings)
    update.commit({**good, "generation": good["generation"] + 5})
    assert _open(settings) and builds == [1]
    assert lexical.LexicalIndex(settings.lexical_path).stamp() == good
    assert _hits(settings, "segmentation")

    # No stamp at all (an index written by something else): rebuilt too.
    update = lexical.LexicalUpdate(settings)
    update.writer.delete_documents_by_term("kind", lexical.STAMP_KIND)
    update.writer.commit()
    update.close()
    assert lexical.LexicalIndex(settings.lexical_path).stamp() == {}
    assert _open(settings) and builds == [1, 1]
    assert lexical.LexicalIndex(settings.lexical_path).stamp() == good
    assert store.count_chunks() == lexical.LexicalIndex(settings.lexical_path).count_chunks()

    # Stamped by an earlier version (other analyzers): rebuilt.
    update = lexical.LexicalUpdate(settings)
    update.commit({**good, "schema": lexical.SCHEMA_VERSION - 1})
    assert _open(settings) and builds == [1, 1, 1]
    assert lexical.LexicalIndex(settings.lexical_path).stamp() == good


def test_an_index_with_other_fields_is_built_anew_beside_it(settings, corpus, monkeypatch):
    """An index written by an earlier version with other fields cannot take this version's
    documents: it reads as missing, and is built anew beside it and swapped in."""
    import shutil

    import tantivy

    run(settings, [corpus])
    shutil.rmtree(settings.lexical_path)
    settings.lexical_path.mkdir()
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True)
    old = tantivy.Index(builder.build(), path=str(settings.lexical_path))
    writer = old.writer()
    writer.add_document(tantivy.Document(chunk_id="x"))
    writer.commit()
    writer.wait_merging_threads()
    assert not lexical.LexicalIndex(settings.lexical_path).exists
    beside: list[int] = []
    real_beside = lexical._rebuild_beside
    monkeypatch.setattr(lexical, "_rebuild_beside", lambda *a: beside.append(1) or real_beside(*a))
    assert _open(settings) and beside == [1]
    assert _hits(settings, "segmentation")


def _damage(settings: Settings) -> None:
    """Delete the index's segment files, leaving its metadata naming them."""
    for entry in settings.lexical_path.iterdir():
        if entry.is_file() and re.fullmatch(r"[0-9a-f]{32}\..*", entry.name):
            entry.unlink()


def test_an_index_opened_on_an_empty_store_takes_the_first_ingest(settings, corpus):
    """An app started before the first ingest stamps an empty index; the ingest then adds to it."""
    assert _open(settings)
    assert lexical.LexicalIndex(settings.lexical_path).stamp()["chunks"] == 0
    run(settings, [corpus])
    assert lexical.index_is_fresh(settings, PaperStore(settings))
    assert _hits(settings, "segmentation")


def test_a_damaged_index_is_rebuilt(settings, corpus):
    run(settings, [corpus])
    _damage(settings)
    assert not lexical.LexicalIndex(settings.lexical_path).exists  # unreadable
    assert _open(settings)
    assert _hits(settings, "segmentation")


def test_ingest_repairs_a_stale_index_even_when_no_paper_changed(settings, corpus):
    run(settings, [corpus])
    ids = _sneak_in(settings, _paper("Sneaky Paper", "Capybara telemetry in intensive care."))
    summary = run(settings, [corpus])
    assert summary.papers_unchanged == N and summary.papers_added == 0
    store = PaperStore(settings)
    assert store.generation == 2
    assert lexical.index_is_fresh(settings, store)
    assert _hits(settings, "capybara")[:1] == ids


def test_a_damaged_index_is_rebuilt_beside_a_leftover_old_folder(settings, corpus):
    """A crash while swapping in an index built anew can leave `lexical.old` behind; the next swap
    must not fail on it."""
    run(settings, [corpus])
    leftover = settings.lexical_path.with_name(settings.lexical_path.name + ".old")
    leftover.mkdir()
    (leftover / "stale-file").write_text("x")
    _damage(settings)
    assert _open(settings)
    assert _hits(settings, "segmentation")
    assert not leftover.exists()


def test_an_index_folder_holding_other_files_is_never_replaced(settings, corpus):
    run(settings, [corpus])
    _damage(settings)
    (settings.lexical_path / "thesis.tex").write_text("do not delete")
    with pytest.raises(StoreError, match="refusing"):
        _open(settings)
    assert (settings.lexical_path / "thesis.tex").read_text() == "do not delete"


# --- concurrency -----------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from assistant.store import ingest_lock
    from assistant.testing import make_settings
    settings = make_settings(Path(sys.argv[1]))
    with ingest_lock(settings):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_ingest_fails_cleanly_while_another_process_holds_the_lock(settings, corpus, papers,
                                                                    tmp_path):
    run(settings, [corpus])
    before = snapshot(settings)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(settings.store_dir), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        write_listing(corpus, [(papers[0][0], "Changed while locked."), *papers[1:]])
        locked = make_settings(settings.store_dir, embed_backend="hash", ingest_lock_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            run(locked, [corpus])
        assert 0.25 <= time.monotonic() - started < 10
        assert caught.value.status == 409
        assert "another ingest" in str(caught.value)
        assert snapshot(settings) == before
    finally:
        holder.kill()
        holder.wait()
    summary = run(locked, [corpus])  # the lock died with its holder
    assert summary.papers_updated == 1
    assert_store_matches(settings, [corpus])


def test_concurrent_ingests_wait_for_each_other(settings, corpus):
    """Thread A holds the lock mid-write; B with a short timeout fails, C waits and then finds
    everything already ingested. Nothing is written twice."""
    inside = threading.Event()
    release = threading.Event()
    results: dict[str, object] = {}

    def slow_progress(done, total):
        inside.set()
        release.wait(20)

    def ingest_a():
        results["a"] = ingest(settings, [corpus], progress=False, on_progress=slow_progress)

    def ingest_c():
        waiting = make_settings(settings.store_dir, embed_backend="hash", ingest_lock_timeout=30)
        try:
            results["c"] = run(waiting, [corpus])
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            results["c"] = exc

    a = threading.Thread(target=ingest_a)
    a.start()
    try:
        assert inside.wait(20)
        impatient = make_settings(settings.store_dir, embed_backend="hash", ingest_lock_timeout=0.2)
        with pytest.raises(StoreError, match="another ingest"):
            run(impatient, [corpus])
        c = threading.Thread(target=ingest_c)
        c.start()
        time.sleep(0.5)
        assert "c" not in results  # still waiting for A
    finally:
        release.set()
        a.join(30)
    c.join(30)
    assert results["a"].papers_added == N
    assert not isinstance(results["c"], Exception), results["c"]
    assert results["c"].papers_unchanged == N and results["c"].papers_added == 0
    assert_store_matches(settings, [corpus])
    assert PaperStore(settings).generation == 1


def test_paper_records_carry_no_vector_and_maps_read_the_chunks(settings, corpus):
    """A paper record's vector would sit in every app's memory (Chroma loads a collection's index
    on any read); the topic map's per-paper vectors come from the chunks instead."""
    import numpy as np

    from assistant.store import PAPER_VECTOR

    run(settings, [corpus])
    store = PaperStore(settings)
    got = store.papers.get(limit=3, include=["embeddings"])
    assert [list(v) for v in got["embeddings"]] == [PAPER_VECTOR] * 3
    ids = got["ids"]
    vectors = store.paper_vectors([*ids, "no-such-paper"])
    chunks = store.chunks.get(where={"paper_id": ids[0]}, include=["embeddings"])
    mean = np.asarray(chunks["embeddings"], dtype=np.float32).mean(axis=0)
    assert np.allclose(vectors[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert vectors.shape == (4, len(mean)) and not vectors[3].any()


def test_a_store_whose_papers_carry_vectors_keeps_taking_papers(settings, corpus, tmp_path):
    """Stores written before paper records lost their vectors (Chroma fixes a collection's
    width) still take new papers, with the vectors they were built with, until dropped."""
    from assistant.store import PAPER_VECTOR

    store = PaperStore(settings)
    store.papers.add(ids=["old"], documents=["an older record"], metadatas=[{"title": "Old"}],
                     embeddings=[[0.5] * 256])
    run(settings, [corpus])
    store = PaperStore(settings)
    got = store.papers.get(limit=2, include=["embeddings"])
    assert all(len(v) == 256 for v in got["embeddings"])
    assert store.count_papers() == N + 1
    # Dropping the vectors keeps every record and the index in step with the store.
    before = {p.id: p for p in store.all_papers()}
    assert store.drop_paper_vectors() == N + 1 and store.drop_paper_vectors() == 0
    store = PaperStore(settings)
    assert {p.id: p for p in store.all_papers()} == before and not store.dirty
    got = store.papers.get(limit=2, include=["embeddings"])
    assert [list(v) for v in got["embeddings"]] == [PAPER_VECTOR] * 2
    assert lexical.index_is_fresh(settings, store)
    summary = run(settings, [corpus], drop_paper_vectors=True)  # `ingest --drop-paper-vectors`
    assert summary.papers_added == 0 and "carry no vectors already" in " ".join(summary.warnings)


def test_full_reads_page_through_every_record(settings, corpus, monkeypatch):
    import assistant.store as store_module

    run(settings, [corpus])
    store = PaperStore(settings)
    every = {p.id for p in store.all_papers()}
    monkeypatch.setattr(store_module, "PAGE", 3)  # several pages, the last one short
    assert len(every) == N and N % 3
    assert {p.id for p in store.all_papers()} == every == set(store.paper_keys())
    assert set(store.paper_hashes()) == every
