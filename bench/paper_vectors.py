"""What dropping the paper records' vectors saves (issue 18): on a store written before
PAPER_VECTOR (assistant/store.py), e.g. the largest store of a bench/run.py run, time the rewrite
(`assistant ingest --drop-paper-vectors`), then start the app on it as bench/app_bench.py does and
compare its memory with the same run's figures before the rewrite.

    .venv/bin/python bench/paper_vectors.py build/bench/scale [--results bench/results/full.json]

Writes bench/results/paper-vectors.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import app_bench  # noqa: E402
from bench.common import load_dev_questions, log, make_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "full.json",
                        help="the run whose largest size this store is (for the figures before)")
    parser.add_argument("--ingest", type=int, default=0,
                        help="then time an ingest of this many new synthetic papers (real model)")
    args = parser.parse_args()
    from assistant.store import PaperStore, ingest_lock

    settings = make_settings(args.store)
    with ingest_lock(settings):
        store = PaperStore(settings)
        papers = store.count_papers()
        started = time.perf_counter()
        rewritten = store.drop_paper_vectors()
        seconds = time.perf_counter() - started
    log(f"{rewritten} paper records rewritten in {seconds:.1f}s")
    run = json.loads(args.results.read_text(encoding="utf-8"))
    before = run["sizes"][-1]  # measured before the run's last parts added `new_papers` papers
    questions = load_dev_questions(run["plan"].get("app_questions") or 10)
    after = app_bench.run_app(args.store, questions, log_path=args.store.parent / "app-slim.log")
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "papers": papers, "rewritten": rewritten,
           "rewrite_s": round(seconds, 1), "app_after": after,
           "app_before": before["app"], "papers_before": before["papers"],
           "before_from": f"{args.results.name} of {run['date']}"}
    if args.ingest:
        from bench import large_store, synthetic

        bank = synthetic.sentence_bank(args.store.parent, settings)
        # Papers after the run's own `new_papers` (which followed its largest size).
        start = before["synthetic"] + run["plan"].get("new_papers", 0)
        out["ingest_after"] = large_store.ingest_new_papers(args.store, bank, start, args.ingest,
                                                            args.store.parent)
    path = ROOT / "bench" / "results" / "paper-vectors.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
