"""The app's memory and start on an existing store, with the current code and settings: the app on
the embedded store, then two replicas on one Chroma server serving the same store (as
bench/run.py measures them at its largest size), in one run, for each embedder backend asked for
(the onnx default and torch's sentence-transformers, side by side).

    .venv/bin/python bench/app_memory.py build/bench100k/scale [--name app-memory-100k]
        [--backends onnx,sentence-transformers]

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
    parser.add_argument("--backends", default="onnx,sentence-transformers",
                        help="embedder backends to measure, comma-separated")
    args = parser.parse_args()
    from assistant.store import PaperStore

    settings = make_settings(args.store)
    questions = load_dev_questions(args.questions)
    work = args.store.parent
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
           "papers": PaperStore(settings).count_papers(),
           "malloc_arena_max": settings.malloc_arena_max}
    from assistant.embedding import get_embedder

    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        # The onnx backend's export is made once per machine: not part of any start measured here.
        get_embedder(make_settings(args.store, embed_backend=backend))
        env = {"embed_backend": backend}
        result = {"app": app_bench.run_app(args.store, questions, log_path=work / "app-memory.log",
                                           extra_env=env),
                  "replicas": large_store.replicas(args.store, work, questions, extra_env=env)}
        log(f"{backend}: {result}")
        out.setdefault("backends", {})[backend] = result
        out.setdefault("embed_backend", backend)  # the first asked for: what the report shows
    out.update(out["backends"][out["embed_backend"]])
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
