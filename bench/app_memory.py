"""The app's memory and start on an existing store, with the current code and settings: the app on
the embedded store, then two replicas on one Chroma server serving the same store (as
bench/run.py measures them at its largest size), in one run.

    .venv/bin/python bench/app_memory.py build/bench100k/scale [--name app-memory-100k]

Writes bench/results/<name>.json. Run it alone on the machine: start times are CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import app_bench, large_store  # noqa: E402
from bench.common import load_dev_questions, log, machine, make_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--name", default="app-memory")
    parser.add_argument("--questions", type=int, default=10)
    args = parser.parse_args()
    from assistant.store import PaperStore

    settings = make_settings(args.store)
    questions = load_dev_questions(args.questions)
    work = args.store.parent
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
           "papers": PaperStore(settings).count_papers(),
           "malloc_arena_max": settings.malloc_arena_max}
    out["app"] = app_bench.run_app(args.store, questions, log_path=work / "app-memory.log")
    log(f"app: {out['app']}")
    out["replicas"] = large_store.replicas(args.store, work, questions)
    log(f"replicas: {out['replicas']}")
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
