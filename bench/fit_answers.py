"""Fit the answer layer's parameters on the TUNE split of the blind question set, and write them to
assistant/fitted_params.json:

1. per-kind fusion weights (dense, BM25, verbatim terms, phrases), by grid search on retrieval
   recall of the tune questions of each kind the classifier assigns;
2. the relevance model (relevance.py): one logistic regression per answer shape on the features of
   every retrieved paper, labelled by the gold titles; thresholds chosen on out-of-fold
   probabilities (5 folds by question), never on the in-sample fit;
3. the quote model (extractive.py): a logistic regression over sentence features, labelled by
   whether the sentence holds the question's must-contain value;
4. with --scale-store, per-kind fusion weights for large stores (fit_large_fusion), on a store of
   the bundled corpus among synthetic distractors; --large-only fits just those.

The locked split is never read here.

    .venv/bin/python bench/fit_answers.py [--store vectorstore]
    .venv/bin/python bench/fit_answers.py --scale-store build/bench/scale --large-only
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from llama_index.core.schema import QueryBundle
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import fitted  # noqa: E402
from assistant.corpus import normalize_title  # noqa: E402
from assistant.engine import Engine  # noqa: E402
from assistant.evaluation import contains_all  # noqa: E402
from assistant.extractive import QUOTE_FEATURES, quote_features  # noqa: E402
from assistant.relevance import (  # noqa: E402
    FEATURES,
    QUESTION_FEATURES,
    answer_shape,
    features,
    probability,
    question_features,
)
from assistant.retrieval import Candidates, HybridRetriever, classify  # noqa: E402
from assistant.sentences import split_sentences  # noqa: E402
from assistant.settings import load_settings  # noqa: E402

TUNE = ROOT / "tests" / "data" / "blind" / "tune.jsonl"
# The project's earlier question sets (dev, held-out): extra examples for the abstention model
# only, which has few unanswerable questions to learn from in the tune half.
EXTRA = [ROOT / "tests" / "data" / "dev_questions.jsonl", ROOT / "tests" / "data" / "heldout_questions.jsonl"]
OUT = ROOT / "assistant" / fitted.FILE
GRID = {"dense": [0.0, 0.5, 1.0, 2.0], "bm25": [0.0, 0.5, 1.0, 2.0],
        "literal": [0.0, 1.0, 2.0, 3.0], "phrase": [0.0, 1.0, 2.0, 3.0]}
DEFAULT = {"dense": 1.0, "bm25": 1.0, "literal": 2.0, "phrase": 2.0}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit_fusion(engine: Engine, questions: list[dict]) -> dict[str, dict[str, float]]:
    """Weights per classified kind that maximise mean recall (R@5 for single-paper questions,
    R@10 for lists and comparisons) on the engine's store. Ties go to the weights closest to
    equal fusion."""
    retriever = engine.retriever
    per_kind: dict[str, list[tuple[dict, Candidates, list[str]]]] = defaultdict(list)
    for q in questions:
        if not q["gold_titles"]:
            continue
        entities = retriever.resolve_names(q["question"])
        kind = classify(q["question"], len(entities))
        vector = engine.embedder.embed([q["question"]])[0]
        bundle = QueryBundle(query_str=q["question"], embedding=vector.tolist())
        found = retriever.candidates(q["question"], bundle, vector)
        per_kind[kind].append((q, found, [e.paper_id for e in entities]))
    chosen: dict[str, dict[str, float]] = {}
    for kind, items in sorted(per_kind.items()):
        scored = []
        for values in itertools.product(*GRID.values()):
            weights = dict(zip(GRID, values, strict=True))
            if not any(weights[n] for n in ("dense", "bm25")):
                continue
            distance = sum(abs(weights[n] - DEFAULT[n]) for n in weights)
            scored.append((round(_recall(retriever, items, weights), 6), -distance, weights))
        best = max(scored, key=lambda x: (x[0], x[1]))
        default_score = next(s for s, _, w in scored if w == DEFAULT)
        print(f"fusion {kind} ({engine.store.count_papers():,} papers): {len(items)} questions, "
              f"default {default_score:.3f} -> {best[0]:.3f} with {best[2]}")
        chosen[kind] = best[2]
    return chosen


def fit_large_fusion(store: Path, questions: list[dict]) -> dict:
    """Fusion weights for large stores, fitted on one that holds the bundled corpus among
    synthetic distractors (the largest store of a bench/run.py run), on the tune questions whose
    gold papers no distractor borrows from (bench/synthetic.py: the others' sentences recur word
    for word in distractors, so a question about them is about its distractors as much). The
    retriever uses them on stores nearer this one's size than the bundled corpus's."""
    from bench.synthetic import protected_titles

    protected = protected_titles()
    kept = [q for q in questions if q["gold_titles"]
            and {normalize_title(t) for t in q["gold_titles"]} <= protected]
    engine = Engine(load_settings(store, answer_mode="extractive", sentence_cache_max_papers=0))
    return {"papers": engine.store.count_papers(), "questions": len(kept),
            "weights": fit_fusion(engine, kept)}


def _recall(retriever: HybridRetriever, items: list[tuple[dict, Candidates, list[str]]],
            weights: dict[str, float]) -> float:
    total = 0.0
    for q, found, named in items:
        papers = retriever.fuse(found, weights)
        ranked = sorted(papers.values(), key=lambda h: h.score, reverse=True)
        order = list(dict.fromkeys(named + [h.paper_id for h in ranked]))
        titles = {h.paper_id: normalize_title(h.title) for h in ranked}
        gold = {normalize_title(t) for t in q["gold_titles"]}
        k = 5 if q["kind"] in ("factual", "paraphrase") else 10
        top = {titles.get(pid, "") for pid in order[:k]}
        total += len(gold & top) / len(gold)
    return total / len(items)


def collect(engine: Engine, questions: list[dict]) -> tuple[list, list, list]:
    """Relevance rows (question index, shape, features, label, ...), quote rows, and per question
    what the abstention model needs."""
    rel_rows = []
    quote_rows = []
    per_question = []
    for i, q in enumerate(questions):
        result = engine.retriever.retrieve(q["question"])
        records = engine.store.get_papers([h.paper_id for h in result.papers])
        abstracts = {pid: r.abstract for pid, r in records.items()}
        gold = {normalize_title(t) for t in q["gold_titles"]}
        shape = answer_shape(q["question"], result.kind)
        rows = features(q["question"], result, abstracts, engine.vectors)
        per_question.append((q, result, rows, abstracts, shape))
        for hit, row in zip(result.papers, rows, strict=True):
            rel_rows.append((i, shape, row, normalize_title(hit.title) in gold, result.covered,
                             bool(gold), hit.named))
        if q.get("must_contain") and len(gold) == 1:
            for hit in result.papers:
                if normalize_title(hit.title) in gold:
                    sentences = split_sentences(abstracts.get(hit.paper_id, ""))
                    for row, sentence in zip(quote_features(q["question"], sentences,
                                                            engine.vectors, result.query_vector),
                                             sentences, strict=True):
                        quote_rows.append((i, row, contains_all(sentence, q["must_contain"][:1])))
    return rel_rows, quote_rows, per_question


def _matrix(rows: list[dict[str, float]], names: tuple[str, ...]) -> np.ndarray:
    return np.array([[r[n] for n in names if n != "bias"] for r in rows], dtype=np.float64)


def _coefficients(model: LogisticRegression, names: tuple[str, ...]) -> dict[str, float]:
    rest = [n for n in names if n != "bias"]
    coef = {n: round(float(c), 5) for n, c in zip(rest, model.coef_[0], strict=True)}
    return {"bias": round(float(model.intercept_[0]), 5), **coef}


def fit_relevance(rel_rows: list) -> dict:
    shapes = {}
    for shape in ("single", "many", "comparative"):
        rows = [r for r in rel_rows if r[1] == shape and r[5]]  # answerable questions
        if len({r[3] for r in rows}) < 2:
            continue
        X = _matrix([r[2] for r in rows], FEATURES)
        y = np.array([r[3] for r in rows])
        groups = np.array([r[0] for r in rows])
        out_of_fold = np.zeros(len(rows))
        for train, test in GroupKFold(n_splits=5).split(X, y, groups):
            model = LogisticRegression(C=1.0, max_iter=2000).fit(X[train], y[train])
            out_of_fold[test] = model.predict_proba(X[test])[:, 1]
        model = LogisticRegression(C=1.0, max_iter=2000).fit(X, y)
        named = np.array([r[6] for r in rows])
        answers = _best_threshold(out_of_fold, y, named, groups)
        # "related": close enough to list by title; the threshold that keeps 97% of gold papers
        # within answers + related.
        gold_p = np.sort(out_of_fold[y & ~named])
        related = float(gold_p[int(0.03 * len(gold_p))]) if len(gold_p) else answers / 2
        related = min(related, answers * 0.75)
        shapes[shape] = {"coefficients": _coefficients(model, FEATURES), "answers": round(answers, 4),
                         "related": round(related, 4), "rows": len(rows), "positives": int(y.sum())}
        print(f"relevance {shape}: {len(rows)} rows, answers >= {answers:.3f}, related >= "
              f"{related:.3f}")
    return {"shapes": shapes}


def _best_threshold(p: np.ndarray, y: np.ndarray, named: np.ndarray, groups: np.ndarray) -> float:
    """The threshold maximising the mean per-question F1 of the cited set (named papers are
    always cited), on out-of-fold probabilities."""
    best = (-1.0, 0.5)
    for t in np.linspace(0.05, 0.95, 91):
        cited = (p >= t) | named
        f1s = []
        for g in np.unique(groups):
            m = groups == g
            tp = float((cited[m] & y[m]).sum())
            if not y[m].any():
                continue
            precision = tp / cited[m].sum() if cited[m].any() else 0.0
            recall = tp / y[m].sum()
            f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        score = float(np.mean(f1s)) if f1s else 0.0
        if score > best[0] + 1e-9:
            best = (score, float(t))
    return best[1]


def fit_abstention(per_question: list, relevance: dict, max_false: float = 0.01) -> dict:
    """P(no paper answers) from question-level features; the threshold keeps false abstention on
    answerable questions at or under `max_false`, on out-of-fold probabilities."""
    X_rows, y, named = [], [], []
    for q, result, rows, abstracts, shape in per_question:
        if not rows:
            continue
        coefficients = relevance["shapes"][shape]["coefficients"]
        probabilities = [probability(r, coefficients) for r in rows]
        X_rows.append(question_features(q["question"], result, rows, probabilities, abstracts))
        y.append(not q["gold_titles"])
        named.append(any(h.named for h in result.papers))
    X = _matrix(X_rows, QUESTION_FEATURES)
    y = np.array(y)
    out_of_fold = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=5).split(X, y, np.arange(len(y))):
        model = LogisticRegression(C=0.5, max_iter=5000, class_weight="balanced").fit(X[train], y[train])
        out_of_fold[test] = model.predict_proba(X[test])[:, 1]
    model = LogisticRegression(C=0.5, max_iter=5000, class_weight="balanced").fit(X, y)
    answerable = np.sort(out_of_fold[~y])
    threshold = float(answerable[min(len(answerable) - 1, int((1 - max_false) * len(answerable)))]) + 1e-6
    caught = float((out_of_fold[y] >= threshold).mean())
    print(f"abstention: {len(y)} questions ({int(y.sum())} unanswerable), threshold {threshold:.3f}: "
          f"out-of-fold {caught:.2f} of unanswerable abstain, "
          f"{float((out_of_fold[~y] >= threshold).mean()):.3f} of answerable")
    return {"coefficients": _coefficients(model, QUESTION_FEATURES), "threshold": round(threshold, 4),
            "questions": len(y), "unanswerable": int(y.sum())}


def fit_quotes(quote_rows: list) -> dict:
    X = _matrix([r[1] for r in quote_rows], QUOTE_FEATURES)
    y = np.array([r[2] for r in quote_rows])
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(X, y)
    print(f"quotes: {len(quote_rows)} sentences, {int(y.sum())} hold the value")
    return {"coefficients": _coefficients(model, QUOTE_FEATURES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=ROOT / "vectorstore")
    parser.add_argument("--scale-store", type=Path, default=None,
                        help="a store holding the bundled corpus among synthetic distractors (the "
                        "largest store of a bench/run.py run): fusion weights for large stores are "
                        "fitted on it too (fit_large_fusion)")
    parser.add_argument("--large-only", action="store_true",
                        help="with --scale-store: fit and write only the large stores' fusion "
                        "weights, keeping every other fitted parameter as it is")
    args = parser.parse_args()
    started = time.perf_counter()
    questions = load(TUNE)
    if args.large_only:
        if not args.scale_store:
            parser.error("--large-only needs --scale-store")
        from assistant.store import PaperStore

        params = {"fusion_papers": PaperStore(load_settings(args.store)).count_papers(),
                  "fusion_large": fit_large_fusion(args.scale_store, questions)}
        current = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
        OUT.write_text(json.dumps({**current, **params}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote the large stores' fusion weights to {OUT.relative_to(ROOT)}")
        return
    engine = Engine(load_settings(args.store, answer_mode="extractive"))
    params: dict = {"source": "bench/fit_answers.py on tests/data/blind/tune.jsonl",
                    "tune_questions": len(questions)}
    params["fusion"] = fit_fusion(engine, questions)
    params["fusion_papers"] = engine.store.count_papers()
    if args.scale_store:
        params["fusion_large"] = fit_large_fusion(args.scale_store, questions)
    engine.retriever.fusion_weights = lambda kind: params["fusion"].get(kind, DEFAULT)
    rel_rows, quote_rows, per_question = collect(engine, questions)
    params["relevance"] = fit_relevance(rel_rows)
    params["quotes"] = fit_quotes(quote_rows)
    extra = [q for path in EXTRA for q in load(path)]
    per_question += collect(engine, extra)[2]
    params["abstention"] = fit_abstention(per_question, params["relevance"])
    # Other fits' keys (bench/fit_cells.py's "cells") are kept.
    current = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    OUT.write_text(json.dumps({**current, **params}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
