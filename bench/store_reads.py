"""What the web page's corpus list and an ingest's full read of the store cost on a large store
(issue 18), each part in a fresh process (memory is the process's own, RssAnon, before and after):

- `papers`: every paper with its abstract, as the corpus list read them before;
- `heads`: titles and metadata from the lexical index, what it reads now;
- `keys-2000`, `keys-10000`: every paper's hash and ids (an ingest's first read) in pages of 2k
  (the store's page) and 10k records.

    .venv/bin/python bench/store_reads.py STORE_DIR

Writes bench/results/store-reads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PYTHON, make_settings  # noqa: E402

PARTS = ("papers", "heads", "keys-2000", "keys-10000")


def _anon_mb() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(store: Path, part: str) -> dict[str, float]:
    import assistant.store as store_module
    from assistant.engine import Engine

    engine = Engine(make_settings(store, sentence_cache_max_papers=0))
    engine.store.get_papers(engine.store.papers.get(limit=1, include=[])["ids"])  # as a running app
    before = _anon_mb()
    started = time.perf_counter()
    if part == "papers":
        n = len(engine.papers())
    elif part == "heads":
        n = len(engine.papers(abstracts=False))
    else:
        store_module.PAGE = int(part.split("-")[1])
        n = len(engine.store.paper_keys())
    return {"records": n, "seconds": round(time.perf_counter() - started, 2),
            "anon_mb_added": round(_anon_mb() - before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(measure(args.store, args.part)))
        return
    out: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "store": args.store.name}
    for part in PARTS:
        done = subprocess.run([PYTHON, __file__, str(args.store), "--part", part], check=True,
                              capture_output=True, text=True)
        out[part] = json.loads(done.stdout.strip().splitlines()[-1])
        print(part, out[part], flush=True)
    path = ROOT / "bench" / "results" / "store-reads.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
