"""Ingest into a large store reads only the records of the papers it brings (issue 18: adding N
papers costs in proportion to N). "Large" is `ingest_verify_max_papers`, set to 0 here so that a
14-paper store takes the path a 250k one does; the kept fingerprint must stay the one every
record gives, duplicates by identifier must still be caught, and an older store must upgrade
without a rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl, write_listing

from assistant import lexical
from assistant.chunks import chunk_paper, embed_text
from assistant.corpus import Paper, paper_id
from assistant.ingest import ingest
from assistant.settings import Settings
from assistant.store import FINGERPRINT_KEY, PaperStore
from assistant.testing.embedder import HashEmbedder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "store", embed_backend="hash", ingest_batch_papers=4,
                         ingest_verify_max_papers=0)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_listing(tmp_path / "corpus.txt", make_papers(14, seed=11))


def run(settings: Settings, paths: list[Path], **kwargs):
    return ingest(settings, paths, progress=False, **kwargs)


@pytest.fixture
def full_reads(monkeypatch) -> list[int]:
    """One entry per read of every paper record."""
    reads: list[int] = []
    real = PaperStore.paper_keys

    def paper_keys(self, ids=None, **kwargs):
        if ids is None:
            reads.append(1)
        return real(self, ids, **kwargs)

    monkeypatch.setattr(PaperStore, "paper_keys", paper_keys)
    return reads


@pytest.fixture
def rebuilds(monkeypatch) -> list[int]:
    builds: list[int] = []
    real = lexical.rebuild
    monkeypatch.setattr("assistant.ingest.rebuild_lexical", lambda *a: builds.append(1) or real(*a))
    return builds


def kept_fingerprint_is_true(settings: Settings) -> bool:
    """The manifest's and the index's fingerprint are the one every record gives."""
    store = PaperStore(settings)
    actual = lexical.fingerprint(store.paper_hashes())
    return store.papers_fingerprint == actual and lexical.index_is_fresh(settings, store)


def test_adding_and_editing_papers_reads_only_their_records(settings, corpus, tmp_path, full_reads,
                                                            rebuilds):
    run(settings, [corpus])
    assert full_reads == [1]  # a new store: nothing kept yet
    extra = write_listing(tmp_path / "extra.txt", [("Tapir Telemetry", "Tapir gait sensors."),
                                                   ("Okapi Oximetry", "Okapi pulse oximetry.")])
    summary = run(settings, [extra])
    assert (summary.papers_added, summary.papers_unchanged) == (2, 0)
    assert summary.papers_total == 16 and full_reads == [1] and rebuilds == []
    assert kept_fingerprint_is_true(settings)

    edited = write_listing(tmp_path / "extra.txt", [("Tapir Telemetry", "Tapir heart rate."),
                                                    ("Okapi Oximetry", "Okapi pulse oximetry.")])
    summary = run(settings, [edited])
    assert (summary.papers_added, summary.papers_updated, summary.papers_unchanged) == (0, 1, 1)
    assert full_reads == [1] and rebuilds == []
    assert kept_fingerprint_is_true(settings)
    index = lexical.LexicalIndex(settings.lexical_path)
    assert not index.papers_with_words("tapir gait", 10)
    assert index.papers_with_words("tapir heart", 10) == [paper_id("Tapir Telemetry")]


def test_prune_and_verify_read_every_record(settings, corpus, tmp_path, full_reads):
    run(settings, [corpus])
    run(settings, [corpus], verify=True)
    run(settings, [corpus], prune=True)
    assert full_reads == [1, 1, 1]
    small = settings.model_copy(update={"ingest_verify_max_papers": 100})
    run(small, [corpus])  # a store within the limit is always checked in full
    assert full_reads == [1, 1, 1, 1]


def test_identifier_duplicates_are_found_without_reading_every_record(settings, corpus, tmp_path,
                                                                     full_reads):
    run(settings, [corpus])
    first = write_jsonl(tmp_path / "a.jsonl", [
        {"title": "Capybara Cardiology", "abstract": "Capybara echocardiograms.",
         "doi": "10.1234/Capy.2024.1"},
        {"title": "Wombat Wound Care", "abstract": "Wombat wound photographs.", "pmid": "31415926"},
        {"title": "Quokka Quantification", "abstract": "Quokka cell counting.",
         "arxiv_id": "2401.01234"}])
    assert run(settings, [first]).papers_added == 3
    again = write_jsonl(tmp_path / "b.jsonl", [
        {"title": "Capybara cardiology, the preprint", "abstract": "Capybara echo, earlier text.",
         "doi": "10.1234/CAPY.2024.1"},
        {"title": "Wombat wounds (journal version)", "abstract": "Wombat wounds.", "pmid": "31415926"},
        {"title": "Quokka counting", "abstract": "Quokka cells.", "arxiv_id": "arXiv:2401.01234"},
        {"title": "Numbat Neurology", "abstract": "Numbat EEG.", "doi": "10.1234/numbat"}])
    summary = run(settings, [again])
    assert full_reads == [1]
    assert summary.papers_added == 1 and len(summary.duplicates) == 3
    for kind, title in (("DOI", "Capybara Cardiology"), ("PMID", "Wombat Wound Care"),
                        ("arXiv id", "Quokka Quantification")):
        assert any(f"already stored as {title!r} (same {kind}" in d for d in summary.duplicates)
    assert kept_fingerprint_is_true(settings)


def test_a_store_from_before_the_kept_fingerprint_is_stamped_without_a_rebuild(settings, corpus,
                                                                              tmp_path, full_reads,
                                                                              rebuilds):
    """A store and index written by the previous version: no fingerprint in the manifest, the
    index stamped with the legacy one. The first ingest reads every record, accepts the legacy
    stamp, and stamps both anew; the next reads only its own papers."""
    run(settings, [corpus])
    store = PaperStore(settings)
    hashes = store.paper_hashes()
    old_manifest = {k: v for k, v in store.manifest.items() if k != FINGERPRINT_KEY}
    store.chunks.modify(metadata=old_manifest)
    update = lexical.LexicalUpdate(settings)
    update.commit(lexical.store_stamp(store, papers=lexical.legacy_fingerprint(hashes)))
    assert PaperStore(settings).papers_fingerprint is None

    assert run(settings, [corpus]).papers_unchanged == 14
    assert full_reads == [1, 1] and rebuilds == []
    assert kept_fingerprint_is_true(settings)
    extra = write_listing(tmp_path / "extra.txt", [("Tapir Telemetry", "Tapir gait sensors.")])
    assert run(settings, [extra]).papers_added == 1
    assert full_reads == [1, 1] and rebuilds == []
    assert kept_fingerprint_is_true(settings)


def test_a_write_behind_the_ingests_back_is_caught_by_verify(settings, corpus, rebuilds):
    """A paper rewritten outside an ingest, with as many chunks and no new generation: a large
    store's ingest trusts what the last ingest kept and cannot tell; --verify reads every record,
    sees it, and rebuilds the index."""
    run(settings, [corpus])
    store = PaperStore(settings)
    got = store.papers.get(include=["metadatas"])
    pid, title = next((i, m["title"]) for i, m in zip(got["ids"], got["metadatas"], strict=True)
                      if m["n_chunks"] == 1)
    sneaky = Paper(id=pid, title=title, abstract="Pangolin gait analysis.", source="test")
    nodes = chunk_paper(sneaky, settings.chunk_size, settings.chunk_overlap)
    store.write_papers([(sneaky, nodes, HashEmbedder().embed(
        [embed_text(title, n.text) for n in nodes]))])
    assert not lexical.index_is_fresh(settings, PaperStore(settings))

    extra = write_listing(corpus.with_name("extra.txt"), [("Tapir Telemetry", "Tapir gait sensors.")])
    run(settings, [extra])
    assert rebuilds == [] and not lexical.index_is_fresh(settings, PaperStore(settings))
    run(settings, [extra], verify=True)
    assert rebuilds == [1] and lexical.index_is_fresh(settings, PaperStore(settings))
    assert lexical.LexicalIndex(settings.lexical_path).papers_with_words("pangolin", 10) == [pid]
    assert kept_fingerprint_is_true(settings)


def test_fingerprint_update_equals_the_fingerprint_of_the_result():
    before = {f"p{i}": f"h{i}" for i in range(50)}
    after = {k: v for k, v in before.items() if k not in {"p3", "p7"}} | {"p9": "h9b", "n1": "x"}
    fp = lexical.fingerprint_update(lexical.fingerprint(before),
                                    {"p3": "h3", "p7": "h7", "p9": "h9"}, {"p9": "h9b", "n1": "x"})
    assert fp == lexical.fingerprint(after) != lexical.fingerprint(before)
    assert lexical.fingerprint(dict(reversed(list(after.items())))) == fp
