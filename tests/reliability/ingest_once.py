"""One ingest in its own process, started on cue: `python ingest_once.py STORE CORPUS LOCK_TIMEOUT GO`.

Says `ready` once imported, waits until the file GO exists (so two of these start their ingests at
the same moment), ingests, and prints one JSON line: the summary, or the error and its status.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    store, corpus, lock_timeout, go = sys.argv[1:5]
    from assistant.errors import AssistantError
    from assistant.ingest import ingest
    from assistant.testing import make_settings

    settings = make_settings(Path(store), embed_backend="hash", ingest_batch_papers=4,
                             ingest_lock_timeout=float(lock_timeout))
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    started = time.perf_counter()
    try:
        summary = ingest(settings, [Path(corpus)], progress=False)
    except AssistantError as exc:
        print(
            json.dumps(
                {
                    "error": exc.message,
                    "hint": exc.hint,
                    "status": exc.status,
                    "seconds": time.perf_counter() - started,
                }
            ),
            flush=True,
        )
        sys.exit(2)
    print(
        json.dumps(
            {
                "added": summary.papers_added,
                "total": summary.papers_total,
                "chunks": summary.chunks_total,
                "seconds": time.perf_counter() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
