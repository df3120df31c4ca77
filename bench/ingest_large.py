"""Adding papers to a large store (issue 18: adding 1,000 papers ≤ 1.5× their embedding), on a
store an earlier bench/run.py built, e.g. build/bench/scale:

1. one ingest that brings nothing new (the bundled corpus, already stored): on a store written
   before the kept fingerprint (assistant/store.py) it reads every paper record once and stamps
   the store and its lexical index with it; on a stamped store it reads only its own papers;
2. an ingest of `--papers` new synthetic abstracts with the real model, against raw embedding of
   the same texts (bench/large_store.py: the ingest's own record reads timed apart).

    .venv/bin/python bench/ingest_large.py build/bench/scale [--papers 1000]

Writes bench/results/ingest-large.json. Run it alone on the machine: it times CPU work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import log, machine, make_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--papers", type=int, default=1000)
    args = parser.parse_args()
    from assistant.ingest import ingest
    from assistant.store import PaperStore
    from bench import large_store, synthetic

    settings = make_settings(args.store)
    store = PaperStore(settings)
    before = {"papers": store.count_papers(), "fingerprint_kept": store.papers_fingerprint is not None}
    started = time.perf_counter()
    summary = ingest(settings, progress=False)
    first = {"seconds": round(time.perf_counter() - started, 2),
             "papers_unchanged": summary.papers_unchanged, "papers_added": summary.papers_added,
             "fingerprint_kept_after": PaperStore(settings).papers_fingerprint is not None}
    log(f"ingest of the bundled corpus (nothing new) into {before['papers']:,}: {first}")
    bank = synthetic.sentence_bank(args.store.parent, settings)
    # Synthetic papers are numbered from 0; the store holds the bundled corpus and the first n.
    start = before["papers"] - first["papers_unchanged"]
    new = large_store.ingest_new_papers(args.store, bank, start, args.papers, args.store.parent)
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "store": before,
           "first_ingest": first, "ingest_new": new}
    path = ROOT / "bench" / "results" / "ingest-large.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
