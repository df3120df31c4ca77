"""`assistant eval`: retrieval and answer metrics on a JSONL question set.

Each line: {"question": str, "gold_titles": [str], "kind": str?, "must_contain": [str]?}; an empty
gold list means the corpus cannot answer and the right behaviour is to abstain.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.corpus import normalize_title
from assistant.engine import Answer, Engine
from assistant.errors import AssistantError
from assistant.stats import percentile


class EvalQuestion(BaseModel):
    """One line of a question file; other keys are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    question: str
    gold_titles: list[str] = Field(default_factory=list)
    kind: str = "unspecified"
    must_contain: list[str] = Field(default_factory=list)

    @field_validator("kind", mode="before")
    @classmethod
    def _any_kind(cls, value: object) -> str:
        return str(value or "unspecified")


def load_questions(path: Path) -> list[EvalQuestion]:
    if not path.is_file():
        raise AssistantError(f"{path}: no such question file")
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
    questions = []
    for number, line in ((n, text) for n, text in lines if text.strip()):
        try:
            questions.append(EvalQuestion.model_validate_json(line))
        except ValidationError as exc:
            raise AssistantError(f"{path}:{number}: {_problem(exc)}") from None
    if not questions:
        raise AssistantError(f"{path}: no questions")
    return questions


def _problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field_name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "json_invalid":
        return f"not valid JSON ({error['msg']})"
    if field_name in ("gold_titles", "must_contain"):
        return f"'{field_name}' must be a list of strings"
    return "expected an object with a 'question' string"


def _norm_number_text(text: str) -> str:
    # "1,052,730" == "1052730"; case-insensitive
    return re.sub(r"(?<=\d),(?=\d{3})", "", text).lower()


def contains_all(answer: str, needles: list[str]) -> bool:
    hay = _norm_number_text(answer).replace("\\%", "%")
    return all(_norm_number_text(n).replace("\\%", "%") in hay for n in needles)


def cited_in_order(answer: Answer) -> list[str]:
    """Cited titles in the order the answer first cites them."""
    by_n = {c.n: c.title for c in answer.citations}
    order = dict.fromkeys(int(m) for m in re.findall(r"\[(\d+)\??\]", answer.answer)
                          if int(m) in by_n)
    return [by_n[n] for n in order] + [t for n, t in by_n.items() if n not in order]


def evaluate(engine: Engine, questions: list[EvalQuestion], *, k: int = 10,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i, q in enumerate(questions):
        started = time.perf_counter()
        retrieval = engine.search(q.question, k=max(k, 10))
        answer = engine.ask(q.question)
        seconds = time.perf_counter() - started
        retrieved = [h.title for h in retrieval.papers]
        gold = {normalize_title(t) for t in q.gold_titles}
        ranked = [normalize_title(t) for t in retrieved]
        cited = [normalize_title(t) for t in cited_in_order(answer)]
        row: dict[str, Any] = {
            "question": q.question, "kind": q.kind, "gold_titles": q.gold_titles,
            "retrieved_titles": retrieved, "cited_titles": answer.cited_titles,
            "abstained": answer.abstained, "answer": answer.answer, "mode": answer.mode,
            "seconds": round(seconds, 4),
        }
        if gold:
            row["recall@5"] = len(gold & set(ranked[:5])) / len(gold)
            row["recall@10"] = len(gold & set(ranked[:10])) / len(gold)
            first = next((r for r, t in enumerate(ranked, start=1) if t in gold), None)
            row["mrr"] = 1.0 / first if first else 0.0
            row["cites_all_gold"] = gold <= set(cited)
            row["gold_cited"] = len(gold & set(cited)) / len(gold)
            if len(gold) == 1:
                row["first_cited_correct"] = bool(cited) and cited[0] in gold
            row["cited_precision"] = (len([c for c in cited if c in gold]) / len(cited)) if cited else 0.0
            if q.must_contain:
                row["contains_all"] = contains_all(answer.answer, q.must_contain)
            row["abstained_wrongly"] = answer.abstained
        else:
            row["abstained_correctly"] = answer.abstained
        rows.append(row)
        if on_progress:
            on_progress(i + 1, len(questions))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["kind"]].append(row)
    report: dict[str, Any] = {"overall": _summarise(rows), "by_kind": {
        kind: _summarise(items) for kind, items in sorted(groups.items())}}
    report["mode"] = engine.mode
    report["questions"] = rows
    return report


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if key in r]
    return round(statistics.fmean(values), 4) if values else None


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in rows]
    answerable = [r for r in rows if "recall@5" in r]
    return {
        "questions": len(rows),
        "recall@5": _mean(answerable, "recall@5"),
        "recall@10": _mean(answerable, "recall@10"),
        "mrr": _mean(answerable, "mrr"),
        "cites_all_gold": _mean(answerable, "cites_all_gold"),
        "gold_cited": _mean(answerable, "gold_cited"),
        "first_cited_correct": _mean(answerable, "first_cited_correct"),
        "cited_precision": _mean(answerable, "cited_precision"),
        "must_contain": _mean(rows, "contains_all"),
        "abstention_accuracy": _mean(rows, "abstained_correctly"),
        "false_abstention": _mean(answerable, "abstained_wrongly"),
        "latency_p50": round(percentile(seconds, 0.5), 4),
        "latency_p95": round(percentile(seconds, 0.95), 4),
    }


def format_report(report: dict[str, Any]) -> str:
    columns = ["questions", "recall@5", "recall@10", "mrr", "cites_all_gold", "gold_cited",
               "first_cited_correct", "cited_precision",
               "must_contain", "abstention_accuracy", "false_abstention", "latency_p50",
               "latency_p95"]
    lines = [f"answer mode: {report['mode']}", "| kind | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, summary in [("overall", report["overall"]), *report["by_kind"].items()]:
        cells = ["–" if summary[c] is None else str(summary[c]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_floors(path: Path) -> dict[str, Any]:
    """A floors file: {"tolerance": 0.03, "floors": {"overall" | kind: {metric: value}}}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AssistantError(f"{path}: not a readable floors file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("floors"), dict):
        raise AssistantError(f"{path}: expected an object with 'floors' and 'tolerance'")
    return data


def check_report(report: dict[str, Any], floors: dict[str, Any]) -> list[str]:
    """Metrics that fell below their floor by more than the tolerance (for false abstention,
    which should stay low, rose above it)."""
    tolerance = float(floors.get("tolerance", 0.03))
    drops = []
    for group, metrics in floors["floors"].items():
        summary = report["overall"] if group == "overall" else report["by_kind"].get(group, {})
        for metric, floor in metrics.items():
            value = summary.get(metric)
            if value is None:
                drops.append(f"{group} {metric}: not measured")
            elif metric == "false_abstention" and value > floor + tolerance:
                drops.append(f"{group} {metric}: {value} > {floor} + {tolerance}")
            elif metric != "false_abstention" and value < floor - tolerance:
                drops.append(f"{group} {metric}: {value} < {floor} - {tolerance}")
    return drops
