"""Fit the comparison table's cell model (extractive.py, `cell_features`) on the TUNE half of the
sentence-role labels, score it once on the LOCKED half beside the row rules it replaces, and write
its coefficients to assistant/fitted_params.json (key "cells"; the other keys are kept).

Labels: tests/data/cells/labels.jsonl (see the README there): every sentence of every bundled
abstract with its role, and per paper the sentence annotators would put in each row's cell; the
annotators saw only the abstracts. The papers were split once, at random, into halves.

    .venv/bin/python bench/fit_cells.py            # fit on tune, report on locked, write params
    .venv/bin/python bench/fit_cells.py --report   # report only (the fitted params in use)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import fitted  # noqa: E402
from assistant.citations import SourceDoc  # noqa: E402
from assistant.embedding import get_embedder  # noqa: E402
from assistant.extractive import (  # noqa: E402
    CELL_FEATURES,
    ROWS,
    ExtractiveAnswerer,
    best_per_row,
    cell_features,
    linear_score,
    one_row_per_sentence,
)
from assistant.sentences import SentenceVectors, split_sentences  # noqa: E402
from assistant.settings import Settings  # noqa: E402

LABELS = ROOT / "tests" / "data" / "cells" / "labels.jsonl"
OUT = ROOT / "assistant" / fitted.FILE
RESULTS = ROOT / "bench" / "results" / "cells.json"
# The roles a reader accepts in each row's cell (a "Task" cell that states this paper's method
# still names what it does; one that states the field's background does not).
ACCEPTED = {"Task": {"task"}, "Method": {"method"}, "Data": {"data"}, "Results": {"result"}}


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line]


def source_of(paper: dict[str, Any]) -> SourceDoc:
    return SourceDoc(n=1, paper_id=paper["paper_id"], title=paper["title"], url="",
                     abstract=" ".join(paper["sentences"]))


def rows_of(paper: dict[str, Any], answerer: ExtractiveAnswerer) -> dict[str, list[dict[str, float]]]:
    sentences = paper["sentences"]
    sims = answerer.vectors(sentences) @ answerer._row_vectors().T
    return cell_features(sentences, sims, answerer.short_name(source_of(paper)))


def cross_validate(papers: list[dict[str, Any]], answerer: ExtractiveAnswerer, folds: int = 5
                   ) -> dict[str, float]:
    """Share of cells agreeing with the annotators, out of fold on the tune half, for each way of
    picking cells from the model's scores: what chose per-row picks over one row per sentence."""
    features = {p["paper_id"]: rows_of(p, answerer) for p in papers}
    agree: dict[str, list[bool]] = {"best_per_row": [], "one_row_per_sentence": []}
    for train, test in KFold(folds, shuffle=True, random_state=0).split(papers):
        params = fit([papers[i] for i in train], answerer)
        for i in test:
            paper, rows = papers[i], features[papers[i]["paper_id"]]
            scored = [(linear_score(f, params[row]["coefficients"], CELL_FEATURES), row, j)
                      for row in ROWS for j, f in enumerate(rows[row])]
            for name, pick in (("best_per_row", best_per_row),
                               ("one_row_per_sentence", one_row_per_sentence)):
                picked = pick(scored)
                agree[name] += [picked.get(row) == paper["best"][row] for row in ROWS
                                if paper["best"].get(row) is not None]
    return {name: round(float(np.mean(v)), 3) for name, v in agree.items()}


def fit(papers: list[dict[str, Any]], answerer: ExtractiveAnswerer) -> dict[str, Any]:
    X: dict[str, list[list[float]]] = {row: [] for row in ROWS}
    y: dict[str, list[bool]] = {row: [] for row in ROWS}
    for paper in papers:
        features = rows_of(paper, answerer)
        for row in ROWS:
            best = paper["best"].get(row)
            if best is None:
                continue  # no sentence fits: nothing to learn about this row here
            for i, f in enumerate(features[row]):
                X[row].append([f[n] for n in CELL_FEATURES])
                y[row].append(i == best)
    out = {}
    for row in ROWS:
        model = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced")
        model.fit(np.array(X[row]), np.array(y[row]))
        coefficients = dict(zip(CELL_FEATURES, model.coef_[0].tolist(), strict=True))
        coefficients["bias"] += float(model.intercept_[0])
        out[row] = {"coefficients": {k: round(v, 4) for k, v in coefficients.items()}}
    return out


def score(papers: list[dict[str, Any]], answerer: ExtractiveAnswerer, params: dict[str, Any] | None
          ) -> dict[str, Any]:
    """Per row: how often the picked cell is the annotators' sentence, and how often its role is
    one a reader accepts in that row."""
    exact = {row: [] for row in ROWS}
    accepted = {row: [] for row in ROWS}
    for paper in papers:
        sentences = paper["sentences"]
        if split_sentences(" ".join(sentences)) != sentences:
            continue
        picked = answerer.assign_rows(source_of(paper), params)
        index = {s: i for i, s in enumerate(sentences)}
        for row in ROWS:
            best = paper["best"].get(row)
            if best is None or row not in picked or picked[row] not in index:
                continue
            i = index[picked[row]]
            exact[row].append(i == best)
            accepted[row].append(paper["roles"][i] in ACCEPTED[row])
    report = {row: {"cells": len(exact[row]),
                    "exact": round(float(np.mean(exact[row])), 3) if exact[row] else None,
                    "accepted_role": round(float(np.mean(accepted[row])), 3) if accepted[row] else None}
              for row in ROWS}
    # Papers whose abstract, rejoined, splits into other sentences are left out of every row.
    report["papers_skipped"] = sum(1 for p in papers if split_sentences(" ".join(p["sentences"]))
                                   != p["sentences"])
    every = [x for row in ROWS for x in accepted[row]]
    report["all rows"] = {"cells": len(every), "exact": round(float(np.mean(
        [x for row in ROWS for x in exact[row]])), 3), "accepted_role": round(float(np.mean(every)), 3)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", action="store_true", help="report only; write nothing")
    args = parser.parse_args()
    papers = load()
    tune = [p for p in papers if p["split"] == "tune"]
    locked = [p for p in papers if p["split"] == "locked"]
    answerer = ExtractiveAnswerer(SentenceVectors(get_embedder(Settings())))
    params = fitted.fitted_params().get("cells") if args.report else {"rows": fit(tune, answerer)}
    results = {"tune_papers": len(tune), "locked_papers": len(locked),
               "tune_cross_validation": cross_validate(tune, answerer),
               "rules_on_locked": score(locked, answerer, None),
               "model_on_locked": score(locked, answerer, params),
               "model_on_tune": score(tune, answerer, params)}
    print(json.dumps(results, indent=1))
    if args.report:
        return
    # The record of earlier versions' scores (`looks_at_locked`, `note`) is kept.
    earlier = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    history = {k: earlier[k] for k in ("looks_at_locked", "note") if k in earlier}
    RESULTS.write_text(json.dumps({**results, **history}, indent=1) + "\n", encoding="utf-8")
    current = json.loads(OUT.read_text(encoding="utf-8"))
    current["cells"] = {"source": "bench/fit_cells.py on the tune half of tests/data/cells/labels.jsonl",
                        "tune_papers": len(tune), **params}
    OUT.write_text(json.dumps(current, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
