"""An ingest killed with SIGKILL at any point leaves a store the next ingest completes exactly.

A child process runs assistant.ingest.ingest (hash embedder, batches of 8 papers) and reports each
written batch on stdout; the test kills it at random points between and inside batch writes, and at
points made certain by fault injection in the child: after a batch's chunks are written but before
its paper records (orphan chunks), and after the store is marked clean but before the BM25 index is
saved (a stale BM25 index). A normal ingest afterwards must leave exactly the corpus: every paper,
every chunk, no duplicates, no leftovers, BM25 in step.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_settings
from fixtures_corpus import expected_chunks, make_papers, store_chunk_texts, write_listing

from assistant import lexical
from assistant.chunks import chunk_id
from assistant.corpus import paper_id
from assistant.ingest import ingest
from assistant.store import PaperStore

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import assistant.ingest as ingest_mod
    from assistant.testing import make_settings

    store_dir, corpus, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    settings = make_settings(store_dir, embed_backend="hash", ingest_batch_papers=8)

    def say(line):
        print(line, flush=True)

    if mode.startswith("after-chunks:"):
        # Fault injection: stop (until killed) right after batch N's chunks are written, before
        # its paper records are.
        from llama_index.vector_stores.chroma import ChromaVectorStore
        target, calls, real_add = int(mode.split(":")[1]), [0], ChromaVectorStore.add
        def add(self, nodes, **kwargs):
            ids = real_add(self, nodes, **kwargs)
            calls[0] += 1
            if calls[0] == target:
                say("chunks-written")
                time.sleep(60)
            return ids
        ChromaVectorStore.add = add
    if mode == "before-bm25":
        def persist(*args, **kwargs):
            say("before-bm25")
            time.sleep(60)
        ingest_mod.persist_bm25 = persist

    say("started")
    ingest_mod.ingest(settings, [corpus], prune=True, progress=False,
                      on_progress=lambda done, total: say(f"progress {done} {total}"))
    say("done")
""")


class Child:
    def __init__(self, store_dir: Path, corpus: Path, mode: str = "plain") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(store_dir), str(corpus), mode],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=store_dir.parent,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        self.lines: list[str] = []
        # A child that hangs without output would block readline() forever.
        self._watchdog = threading.Timer(90, self.proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def wait_for(self, prefix: str, timeout: float = 45) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"child ended before {prefix!r}; said {self.lines}")
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no {prefix!r} within {timeout}s; said {self.lines}")

    def kill(self) -> bool:
        """SIGKILL; True when the child was still running (the kill interrupted it)."""
        self._watchdog.cancel()
        running = self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()
        return running and self.proc.returncode == -signal.SIGKILL


def _orphans(settings) -> set[str]:
    store = PaperStore(settings)
    return store.chunk_paper_ids() - set(store.paper_hashes())


def assert_store_is_exactly(settings, corpus: Path) -> None:
    expected = expected_chunks([corpus], settings)
    store = PaperStore(settings)
    ids = store.chunks.get(include=[])["ids"]
    assert not [cid for cid, n in Counter(ids).items() if n > 1]
    assert store.count_papers() == len(expected)
    assert set(store.paper_hashes()) == set(expected)
    assert store.count_chunks() == len(ids) == sum(len(c) for c in expected.values())
    assert sorted(ids) == sorted(chunk_id(pid, i) for pid, c in expected.items()
                                 for i in range(len(c)))
    assert store_chunk_texts(settings) == expected  # every paper's chunks complete and current
    assert not store.dirty
    assert lexical.bm25_is_fresh(store, settings.bm25_dir)
    retriever = lexical.BM25Retriever.from_persist_dir(str(settings.bm25_dir))
    assert len(retriever.corpus) == len(ids)


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_sigkilled_ingests_are_completed_exactly_by_the_next_one(tmp_path):
    seed = os.environ.get("KILL_SEED") or str(time.time_ns())
    print(f"KILL_SEED={seed}")  # shown on failure, to replay the same kill points
    rng = random.Random(seed)
    settings = make_settings(tmp_path / "store", embed_backend="hash", ingest_batch_papers=8)
    papers = make_papers(300, seed=11)
    corpus = write_listing(tmp_path / "corpus.txt", papers)
    interrupted = 0

    # 1. A random kill during the first ingest, after a few batches plus a fraction of one.
    child = Child(settings.store_dir, corpus)
    child.wait_for("progress")  # the first batch is written
    for _ in range(rng.randint(1, 10)):
        child.wait_for("progress")
    time.sleep(rng.uniform(0, 0.05))
    interrupted += child.kill()
    store = PaperStore(settings)
    assert 0 < store.count_papers() < len(papers), "the kill did not land mid-ingest"
    assert store.dirty

    # 2. Certainly mid-write: chunks of a batch written, its paper records not.
    child = Child(settings.store_dir, corpus, f"after-chunks:{rng.randint(2, 6)}")
    child.wait_for("chunks-written")
    interrupted += child.kill()
    orphaned = _orphans(settings)
    assert orphaned, "expected chunks without paper records"
    assert PaperStore(settings).dirty

    # 3. The corpus changes (edited, shortened, removed and new papers) and the resumed,
    #    pruning ingest is killed at a random point in its writes.
    edited = list(papers)
    for i in rng.sample(range(len(papers)), 40):
        title, abstract = edited[i]
        edited[i] = (title, abstract[: len(abstract) // 3] + " Revised.")
    # Papers whose write was cut short leave the corpus: their orphan chunks must go too.
    edited = [p for p in edited[10:] if paper_id(p[0]) not in orphaned]
    edited += make_papers(10, seed=12, prefix="Fresh")
    write_listing(corpus, edited)
    child = Child(settings.store_dir, corpus)
    child.wait_for("progress")
    for _ in range(rng.randint(0, 3)):
        child.wait_for("progress")
    time.sleep(rng.uniform(0, 0.05))
    interrupted += child.kill()

    # 4. Killed after the store is written and marked clean, before the BM25 index is saved.
    child = Child(settings.store_dir, corpus, "before-bm25")
    child.wait_for("before-bm25")
    interrupted += child.kill()
    store = PaperStore(settings)
    assert not store.dirty
    assert not lexical.bm25_is_fresh(store, settings.bm25_dir)

    # 5. One more random kill anywhere in a run that has (at most) the BM25 index left to do.
    child = Child(settings.store_dir, corpus)
    child.wait_for("started")
    time.sleep(rng.uniform(0, 1.0))
    child.kill()

    assert interrupted == 4
    summary = ingest(settings, [corpus], prune=True, progress=False)
    assert summary.papers_total == len(edited)
    assert_store_is_exactly(settings, corpus)
