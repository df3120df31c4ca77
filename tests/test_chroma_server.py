"""Ingest into a real Chroma server (`chroma run`) instead of the local store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings
from fixtures_corpus import expected_chunks, make_papers, store_chunks, write_jsonl, write_listing

from assistant import lexical
from assistant.errors import StoreError
from assistant.ingest import ingest
from assistant.store import PaperStore

pytestmark = pytest.mark.slow

N = 12


def _chroma_executable() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Server:
    def __init__(self, exe: str, path: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = path
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not _heartbeat(self.url):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited ({self.proc.returncode}): {log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run gave no heartbeat in 60s: {log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[Server]:
    exe = _chroma_executable()
    if exe is None:
        pytest.skip("the `chroma` executable (chromadb's CLI) is not installed")
    server = None
    try:
        server = Server(exe, tmp_path / "server-data", tmp_path / "chroma.log")
        yield server
    finally:
        if server is not None:
            server.stop()


def test_ingest_into_a_chroma_server(chroma_server, tmp_path):
    settings = make_settings(tmp_path / "local", embed_backend="hash", chroma_url=chroma_server.url,
                             ingest_batch_papers=4)
    papers = make_papers(N, seed=3)
    listing = write_listing(tmp_path / "a.txt", papers[:8])
    jsonl = write_jsonl(tmp_path / "b.jsonl", [
        {"title": t, "abstract": a, "url": f"https://example.org/{i}", "authors": ["A", "B"]}
        for i, (t, a) in enumerate(papers[8:])
    ])
    files = [listing, jsonl]
    expected = expected_chunks(files, settings)
    n_chunks = sum(len(c) for c in expected.values())

    first = ingest(settings, files, progress=False)
    assert (first.papers_added, first.papers_total, first.chunks_total) == (N, N, n_chunks)

    # The records live on the server; locally there is only the lexical index and the lock.
    assert not (settings.store_dir / "chroma.sqlite3").exists()
    assert (chroma_server.path / "chroma.sqlite3").exists()
    store = PaperStore(settings)
    assert store.label == chroma_server.url
    assert (store.count_papers(), store.count_chunks()) == (N, n_chunks)
    chunks = store_chunks(settings)
    assert {pid: [chunks[pid][cid][0] for cid in sorted(chunks[pid])] for pid in chunks} == expected
    assert lexical.index_is_fresh(settings, store)

    # Idempotent: nothing rewritten, same chunk ids, same generation.
    second = ingest(settings, files, progress=False)
    assert (second.papers_added, second.papers_updated, second.papers_unchanged) == (0, 0, N)
    assert store_chunks(settings) == chunks
    assert PaperStore(settings).generation == 1

    # Dense search against the server returns this store's chunks with their metadata.
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    collection = client.get_collection("papers_chunks")
    assert collection.count() == n_chunks
    assert client.get_collection("papers_papers").count() == N
    query = store.chunks.get(ids=[sorted(chunks[next(iter(chunks))])[0]], include=["embeddings"])
    hits = collection.query(query_embeddings=[list(query["embeddings"][0])], n_results=3,
                            include=["metadatas", "distances"])
    assert hits["ids"][0][0] == query["ids"][0]
    assert hits["distances"][0][0] == pytest.approx(0, abs=1e-4)
    assert hits["metadatas"][0][0]["paper_id"] in expected

    # An edit and a prune reach the server too.
    write_listing(listing, [(papers[0][0], "Rewritten abstract."), *papers[1:7]])
    third = ingest(settings, files, prune=True, progress=False)
    assert (third.papers_updated, third.papers_removed, third.papers_total) == (1, 1, N - 1)
    assert (collection.count(), client.get_collection("papers_papers").count()) == (
        sum(len(c) for c in expected_chunks(files, settings).values()), N - 1)

    # Other chunking asks for --rebuild; --rebuild resets the server's collections.
    other = make_settings(settings.store_dir, embed_backend="hash", chroma_url=chroma_server.url,
                          chunk_size=64)
    with pytest.raises(StoreError, match="--rebuild"):
        ingest(other, files, progress=False)
    rebuilt = ingest(other, files, progress=False, rebuild=True)
    assert (rebuilt.papers_added, rebuilt.papers_total) == (N - 1, N - 1)
    assert PaperStore(other).manifest["chunk_size"] == 64
    assert rebuilt.chunks_total == sum(len(c) for c in expected_chunks(files, other).values())


def test_an_unreachable_server_is_a_store_error(chroma_server, tmp_path):
    settings = make_settings(tmp_path / "local", embed_backend="hash", chroma_url=chroma_server.url)
    chroma_server.stop()
    corpus = write_listing(tmp_path / "c.txt", make_papers(2))
    with pytest.raises(StoreError) as caught:
        ingest(settings, [corpus], progress=False)
    assert caught.value.status == 503
    assert chroma_server.url in str(caught.value)


def test_replicas_share_one_lexical_index_read_only(chroma_server, tmp_path):
    """One writer (the ingest host) and a replica app on the same server and the same lexical
    index directory: the replica opens the index without building anything, never writes it (not
    even when it finds it behind the store), and sees a later ingest without a restart."""
    from assistant.engine import Engine

    shared = tmp_path / "shared-lexical"
    writer = make_settings(tmp_path / "writer", embed_backend="hash", chroma_url=chroma_server.url,
                           lexical_dir=shared)
    replica = make_settings(tmp_path / "replica", embed_backend="hash", chroma_url=chroma_server.url,
                            lexical_dir=shared, lexical_read_only=True, sentence_cache_max_papers=0)
    papers = make_papers(N, seed=5)
    ingest(writer, [write_listing(tmp_path / "a.txt", papers)], progress=False)

    def files() -> dict[str, float]:
        return {p.name: p.stat().st_mtime_ns for p in shared.iterdir() if not p.name.startswith(".")}

    before = files()
    engine = Engine(replica)
    assert engine.retriever.generation == PaperStore(replica).generation == 1
    own = Engine(writer.model_copy(update={"sentence_cache_max_papers": 0}))
    for title, _ in papers[:4]:  # the replica answers as the writer's own app does
        assert [h.paper_id for h in engine.search(title).papers] == \
            [h.paper_id for h in own.search(title).papers]
    assert files() == before
    assert not (tmp_path / "replica" / "lexical").exists()

    # The writer adds a paper: the replica's next question sees it, in BM25 and by name.
    new = ("Quorvexal-7: wombat telemetry", "Quorvexal-7 tracks wombats with collars.")
    ingest(writer, [write_jsonl(tmp_path / "b.jsonl", [{"title": new[0], "abstract": new[1]}])],
           progress=False)
    result = engine.search("What does Quorvexal-7 track?")
    assert result.papers[0].title == new[0] and [e.title for e in result.entities] == [new[0]]
    assert engine.retriever.generation == 2

    # A store written behind the index's back: the replica uses the index as it is, writes nothing,
    # and looks again at its next question.
    after = files()
    sneaky = PaperStore(writer)
    sneaky.set_manifest(generation=sneaky.generation + 1, dirty=False)
    engine.search("anything")
    assert engine.retriever.generation == -1 and files() == after
    assert engine.search("What does Quorvexal-7 track?").papers[0].title == new[0]
    # The writer's next ingest brings the index in step, and the replica follows.
    ingest(writer, [write_jsonl(tmp_path / "b.jsonl", [{"title": new[0], "abstract": new[1]}])],
           progress=False)
    engine.search("anything")
    assert engine.retriever.generation == PaperStore(replica).generation == 4
