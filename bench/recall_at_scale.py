"""Recall@10 of the development questions on a large store, with the fusion weights fitted for
large stores (what the retriever uses there) against those fitted on the bundled corpus alone:
the retrieval's own order (hybrid) and the search's (ordered by the relevance decision).

    .venv/bin/python bench/recall_at_scale.py build/bench/scale [--name recall-at-scale]
        [--questions tests/data/blind/tune.jsonl [--protected-only]]

--questions: another question set (issue 18's target is on the blind set's tune half);
--protected-only keeps the questions whose gold papers no synthetic distractor borrows sentences
from (bench/synthetic.py), as bench/fit_answers.py does when it fits the large-store weights.

Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load_dev_questions, log, make_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--name", default="recall-at-scale")
    parser.add_argument("--questions", type=Path, default=None,
                        help="a JSONL question set (default: the development questions)")
    parser.add_argument("--protected-only", action="store_true",
                        help="only questions whose gold papers lend no sentence to a distractor")
    args = parser.parse_args()
    from assistant.corpus import normalize_title
    from assistant.engine import Engine
    from assistant.fitted import fitted_params

    engine = Engine(make_settings(args.store, sentence_cache_max_papers=0))
    retriever = engine.retriever
    in_effect = retriever.fusion_weights
    small = fitted_params().get("fusion", {})
    rows = load_dev_questions() if args.questions is None else [
        json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines()
        if line.strip()]
    questions = [q for q in rows if q.get("gold_titles")]
    if args.protected_only:
        from bench.synthetic import protected_titles

        protected = protected_titles()
        questions = [q for q in questions
                     if {normalize_title(t) for t in q["gold_titles"]} <= protected]
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "papers": engine.store.count_papers(),
                 "questions": len(questions), "weights": {},
                 "question_set": str(args.questions or "development questions"),
                 "protected_only": args.protected_only}
    for name, weights in (("large-store weights", in_effect),
                          ("bundled-corpus weights", lambda kind: small.get(kind) or in_effect(kind))):
        retriever.fusion_weights = weights  # type: ignore[method-assign]
        hybrid, search = [], []
        for q in questions:
            gold = {normalize_title(t) for t in q["gold_titles"]}
            retriever._names.clear()
            got = {normalize_title(h.title) for h in retriever.retrieve(q["question"], 10).papers[:10]}
            hybrid.append(len(gold & got) / len(gold))
            got = {normalize_title(h.title) for h in engine.search(q["question"], k=10).papers[:10]}
            search.append(len(gold & got) / len(gold))
        out["weights"][name] = {"fusion": {k: weights(k) for k in ("factual", "list", "comparative")},
                                "recall@10_hybrid": round(float(np.mean(hybrid)), 4),
                                "recall@10_search": round(float(np.mean(search)), 4)}
        log(f"{name}: {out['weights'][name]}")
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
