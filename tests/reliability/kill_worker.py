"""Ingests to be killed, forked from one warm process: `python kill_worker.py`.

Start-up (imports, NLTK's punkt) takes seconds, longer than the ingest being killed, so this process
pays it once and then forks one child per ingest. It opens no Chroma client before forking, so the
children start clean. Protocol, one line each way:

    stdin:  STORE<TAB>CORPUS<TAB>BATCH     stdout: go PID / progress DONE TOTAL / done ... / exit PID CODE

The parent test sends SIGKILL to PID at a random moment after `go`; `exit` follows once the child is
gone (CODE -9 when the kill landed, 0 when the ingest had already finished).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def warm_up() -> None:
    import chromadb  # noqa: F401
    from llama_index.vector_stores.chroma import ChromaVectorStore  # noqa: F401

    from assistant.chunks import chunk_paper
    from assistant.corpus import Paper

    # Long enough to be split by sentence, which loads NLTK's punkt.
    text = " ".join(f"Sepsis triage sentence {i} reports 90.{i}% accuracy." for i in range(60))
    chunk_paper(Paper(id="warm", title="Warm-up", abstract=text, source="-"), 160, 32)


def child(store: Path, corpus: Path, batch: int) -> None:
    import faulthandler

    from assistant.ingest import ingest
    from assistant.testing import make_settings

    # An ingest here takes seconds; one still running after a minute is stuck (a lock held by a
    # thread of the parent when it forked): its stacks go to the parent, which reports them.
    faulthandler.dump_traceback_later(60, file=sys.stdout)

    settings = make_settings(store, embed_backend="hash", ingest_batch_papers=batch)
    started = time.perf_counter()
    summary = ingest(
        settings,
        [corpus],
        prune=True,
        progress=False,
        on_progress=lambda done, total: print(f"progress {done} {total}", flush=True),
    )
    print(
        f"done {time.perf_counter() - started:.3f} {summary.papers_total} {summary.chunks_total}", flush=True
    )


def main() -> None:
    warm_up()
    print("ready", flush=True)
    for line in sys.stdin:
        store, corpus, batch = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                print(f"go {os.getpid()}", flush=True)
                child(Path(store), Path(corpus), int(batch))
            except BaseException as exc:  # reported, so the parent's check explains it
                print(f"error {type(exc).__name__}: {exc}", flush=True)
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", flush=True)


if __name__ == "__main__":
    main()
