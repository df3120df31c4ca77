"""What capping glibc's malloc arenas (setting `malloc_arena_max`) saves: the app on the embedded
store and two replicas on one Chroma server, with the cap (2) and without it (0: glibc's default),
alternated A B B A on the same store and questions.

    .venv/bin/python bench/malloc_arenas.py build/bench100k/scale

Writes bench/results/malloc-arenas.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import app_bench, large_store  # noqa: E402
from bench.common import load_dev_questions, log, machine, settings_env  # noqa: E402

KEYS = ("ready_s", "rss_ready_mb", "peak_rss_mb", "rss_anon_after_mb", "rss_file_after_mb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    args = parser.parse_args()
    questions = load_dev_questions(10)
    work = args.store.parent
    runs: list[dict[str, Any]] = []
    try:
        for arenas in (0, 2, 2, 0):
            app = app_bench.run_app(args.store, questions, log_path=work / "arenas-app.log",
                                    extra_env={"malloc_arena_max": arenas})
            large_store.settings_env = (  # the replicas' environment, with the cap under test
                lambda d, n=arenas, **o: settings_env(d, **o, malloc_arena_max=n))
            reps = large_store.replicas(args.store, work, questions)["apps"]
            runs.append({"malloc_arena_max": arenas, "app": {k: app[k] for k in KEYS},
                         "replicas": [{k: a[k] for k in KEYS} for a in reps]})
            log(json.dumps(runs[-1]))
    finally:
        large_store.settings_env = settings_env
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "store": str(args.store),
           "runs": runs}
    path = ROOT / "bench" / "results" / "malloc-arenas.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
