"""At the largest store of a run (issue 18): what growing and sharing it costs.

- **Ingest of new papers.** Synthetic abstracts the store does not hold yet, written to a JSONL file
  and ingested by `assistant.ingest.ingest` with the real model; the embedding inside the ingest is
  timed, and raw embedding of the same chunk texts runs once afterwards in the same process. The
  lexical index takes only the new papers' documents (timed apart), so the ingest should cost their
  embedding plus a little, whatever the store's size.
- **A full lexical rebuild** from the store: what a crash between the store's writes and the index's
  commit costs the next ingest (or a copied store without its index costs the first start).
- **The same app before this change** (`--baseline DIR`, a checkout of an earlier commit) on the
  same store, in the same run: its first start rebuilds BM25 from the store (what it did after every
  ingest), its second loads it and rebuilds the verbatim and title indexes in memory.
- **Replicas on one Chroma server.** `chroma run` serves the same store directory; two `python
  app.py` processes reach it by URL and share the store's lexical index read-only
  (`ASSISTANT_LEXICAL_DIR`, `ASSISTANT_LEXICAL_READ_ONLY`), started one after the other: time to a
  ready UI, memory of each app and of the server, a search through each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    chroma_server,
    du,
    free_port,
    http_ok,
    log,
    make_settings,
    mb,
    proc_status,
    ratio,
    settings_env,
    stop,
    summary_ms,
    tree_rss,
    wait_answers_ready,
)


def ingest_new_papers(store_dir: Path, bank: Any, start: int, n: int, work: Path) -> dict[str, Any]:
    """Ingest synthetic papers [start, start + n) into the store with the real model."""
    from assistant import lexical
    from assistant.chunks import chunk_paper, embed_text
    from assistant.corpus import load_papers
    from assistant.embedding import get_embedder
    from assistant.ingest import ingest
    from bench.ingest_bench import TimedEmbedder
    from bench.synthetic import write_corpus

    settings = make_settings(store_dir)
    corpus = write_corpus(bank, start, start + n, work / f"new-{start}-{n}.jsonl")
    papers = load_papers([corpus]).papers
    texts = [embed_text(p.title, node.text) for p in papers
             for node in chunk_paper(p, settings.chunk_size, settings.chunk_overlap)]
    embedder = get_embedder(settings)
    embedder.embed(["warm-up"])
    timers = {"add": 0.0, "commit": 0.0, "hashes": 0.0, "records": 0.0}
    real_add, real_commit = lexical.LexicalUpdate.add_papers, lexical.LexicalUpdate.commit
    from assistant.store import PaperStore

    real_keys = PaperStore.paper_keys
    full_reads: list[bool] = []

    def keys(self: Any, ids: Any = None, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_keys(self, ids, **kwargs)
        finally:
            timers["records"] += time.perf_counter() - t
            full_reads.append(ids is None)

    def add(self: Any, records: Any) -> None:
        t = time.perf_counter()
        try:
            real_add(self, records)
        finally:
            timers["add"] += time.perf_counter() - t

    def commit(self: Any, stamp: Any) -> None:
        t = time.perf_counter()
        try:
            real_commit(self, stamp)
        finally:
            timers["commit"] += time.perf_counter() - t

    t = time.perf_counter()
    # What an ingest that checks every record reads first (`--verify`, or a store within
    # ingest_verify_max_papers); this one reads only its own papers' records (timed apart).
    PaperStore(settings).paper_hashes()
    timers["hashes"] = time.perf_counter() - t

    def raw() -> float:
        t = time.perf_counter()
        embedder.embed(texts)
        return time.perf_counter() - t

    timed = TimedEmbedder(embedder)
    lexical.LexicalUpdate.add_papers, lexical.LexicalUpdate.commit = add, commit
    PaperStore.paper_keys = keys  # type: ignore[method-assign]
    try:
        t = time.perf_counter()
        summary = ingest(settings, [corpus], progress=False, embedder=timed)
        ingest_s = time.perf_counter() - t
    finally:
        lexical.LexicalUpdate.add_papers, lexical.LexicalUpdate.commit = real_add, real_commit
        PaperStore.paper_keys = real_keys  # type: ignore[method-assign]
    raw_s = raw()  # once, after: the ingest's own embedding time is the figure that matters
    result = {
        "papers": summary.papers_added,
        "chunks": len(texts),
        "store_papers_after": summary.papers_total,
        "ingest_s": round(ingest_s, 2),
        "ingest_embed_s": round(timed.seconds, 2),
        "raw_embed_s": round(raw_s, 2),
        "ratio_vs_raw": ratio(ingest_s, raw_s),
        "ratio_in_run": ratio(ingest_s, timed.seconds),
        "lexical_add_s": round(timers["add"], 2),
        "lexical_commit_s": round(timers["commit"], 2),
        "read_paper_hashes_s": round(timers["hashes"], 2),
        "ingest_read_records_s": round(timers["records"], 2),
        "ingest_read_every_record": any(full_reads),
        "other_s": round(ingest_s - timed.seconds - timers["add"] - timers["commit"]
                         - timers["records"], 2),
    }
    log(f"ingest of {n} new papers into {summary.papers_total - n:,}: {result}")
    return result


def baseline_app(store_dir: Path, root: Path, questions: list[dict[str, Any]], work: Path
                 ) -> dict[str, Any]:
    """The app of an earlier checkout on this store: started twice (the first start rebuilds its
    BM25 index, the second loads it), then its files removed from the store."""
    from bench.app_bench import run_app

    out: dict[str, Any] = {"root": str(root)}
    try:
        for key in ("first_start", "second_start"):
            out[key] = run_app(store_dir, questions, log_path=work / f"baseline-{key}.log",
                               timeout=1800, root=root)
    finally:
        shutil.rmtree(store_dir / "bm25", ignore_errors=True)
        shutil.rmtree(store_dir / "bm25.old", ignore_errors=True)
    log(f"baseline app: {out}")
    return out


def time_rebuild(store_dir: Path) -> dict[str, Any]:
    """The lexical index rebuilt whole from the store (what a crash before its commit costs)."""
    from assistant.lexical import index_is_fresh, rebuild
    from assistant.store import PaperStore, ingest_lock

    settings = make_settings(store_dir)
    store = PaperStore(settings)
    with ingest_lock(settings):
        t = time.perf_counter()
        rebuild(settings, store)
        seconds = time.perf_counter() - t
    result = {"seconds": round(seconds, 2), "fresh_after": index_is_fresh(settings, store),
              "index_mb": mb(du(settings.lexical_path))}
    log(f"lexical rebuild: {result}")
    return result


def _search(port: int, question: str) -> dict[str, Any]:
    q = urllib.parse.quote(question)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/search?q={q}&k=10", timeout=120) as r:
        return json.loads(r.read())


def replicas(store_dir: Path, work: Path, questions: list[dict[str, Any]],
             extra_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Two app processes on a Chroma server serving the store, sharing its lexical index read-only,
    started one after the other. `extra_env`: more settings for both apps."""
    result: dict[str, Any] = {}
    lexical_dir = store_dir / "lexical"
    with chroma_server(store_dir, work / "replicas-chroma.log") as (url, server):
        apps = []
        try:
            for name in ("replica-a", "replica-b"):
                home = work / name
                shutil.rmtree(home, ignore_errors=True)
                port = free_port()
                env = settings_env(home, chroma_url=url, port=port, auto_ingest="false",
                                   sentence_cache_max_papers=0, lexical_dir=lexical_dir,
                                   lexical_read_only="true", **(extra_env or {}))
                log_file = (work / f"{name}.log").open("w")
                t = time.perf_counter()
                proc = subprocess.Popen([PYTHON, str(ROOT / "app.py")], env=env, cwd=ROOT,
                                        stdout=log_file, stderr=subprocess.STDOUT)
                app = {"name": name, "proc": proc, "port": port, "log": log_file}
                apps.append(app)
                while not http_ok(f"http://127.0.0.1:{port}/", 2):
                    if proc.poll() is not None or time.perf_counter() - t > 600:
                        raise RuntimeError(f"{name} did not start: "
                                           f"{(work / (name + '.log')).read_text()[-2000:]}")
                    time.sleep(0.1)
                app["ready_s"] = round(time.perf_counter() - t, 2)
                app["answers_ready_s"] = wait_answers_ready(f"http://127.0.0.1:{port}", proc, t)
                app["rss_ready_mb"] = mb(tree_rss(proc.pid))
                log(f"{name} page in {app['ready_s']}s, answers in {app['answers_ready_s']}s")
            for app in apps:
                times = []
                for row in questions:
                    t = time.perf_counter()
                    _search(app["port"], row["question"])
                    times.append(time.perf_counter() - t)
                app["search_ms"] = summary_ms(times)
                status = proc_status(app["proc"].pid)
                app["peak_rss_mb"] = mb(status.get("VmHWM", 0))
                # The app's own memory, and mapped files (lexical index pages: shared page cache).
                app["rss_anon_after_mb"] = mb(status.get("RssAnon", 0))
                app["rss_file_after_mb"] = mb(status.get("RssFile", 0))
            result = {
                "apps": [{k: a[k] for k in ("name", "ready_s", "answers_ready_s", "rss_ready_mb",
                                            "peak_rss_mb", "rss_anon_after_mb", "rss_file_after_mb",
                                            "search_ms")} for a in apps],
                "chroma_server_rss_mb": mb(tree_rss(server.pid)),
                "same_first_paper": _search(apps[0]["port"], questions[0]["question"])["papers"][0]
                == _search(apps[1]["port"], questions[0]["question"])["papers"][0],
            }
        finally:
            for app in apps:
                stop(app["proc"])
                app["log"].close()
    log(f"replicas: {result}")
    return result
