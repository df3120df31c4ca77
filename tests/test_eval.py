"""`assistant eval`: the report's shape and the targets it measures on the dev set, through the real
command line (one subprocess over the whole dev set), plus the question-file parser."""

from __future__ import annotations

import json

import pytest
from conftest import DATA, cli

from assistant.errors import AssistantError
from assistant.evaluation import contains_all, load_questions

ROW_KEYS = {"question", "kind", "retrieved_titles", "cited_titles", "abstained", "answer", "seconds"}
METRICS = {"questions", "recall@5", "recall@10", "mrr", "cites_all_gold", "cited_precision",
           "must_contain", "abstention_accuracy", "false_abstention", "latency_p50", "latency_p95"}


@pytest.fixture(scope="module")
def report(corpus_store, tmp_path_factory) -> dict:
    run = cli("eval", "--qa", str(DATA / "dev_questions.jsonl"), "--store", str(corpus_store.store_dir),
              "--json", cwd=tmp_path_factory.mktemp("eval"))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_report_has_overall_and_per_kind_metrics(report):
    assert report["overall"].keys() >= METRICS
    assert set(report["by_kind"]) == {"factual", "paraphrase", "list", "comparative", "unanswerable"}
    for summary in report["by_kind"].values():
        assert summary.keys() >= METRICS
    assert report["overall"]["questions"] == len(load_questions(DATA / "dev_questions.jsonl"))
    assert report["mode"] == "extractive"


def test_every_question_row_has_the_required_keys(report):
    rows = report["questions"]
    assert len(rows) == len(load_questions(DATA / "dev_questions.jsonl"))
    for row in rows:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert len(row["retrieved_titles"]) >= 10
        assert isinstance(row["cited_titles"], list) and isinstance(row["abstained"], bool)
        assert isinstance(row["answer"], str) and row["answer"]
        assert isinstance(row["seconds"], float) and row["seconds"] >= 0


# --- the question file ----------------------------------------------------------------------------

def test_question_files_load(tmp_path):
    questions = load_questions(DATA / "heldout_questions.jsonl")
    assert len(questions) >= 25
    assert all(q.gold_titles == [] for q in questions if q.kind == "unanswerable")


@pytest.mark.parametrize(("content", "message"), [
    ('{"question": "a"}\nnot json\n', ":2: not valid JSON"),
    ('{"question": 3}\n', ":1: expected an object"),
    ('{"question": "a", "gold_titles": "x"}\n', "'gold_titles' must be a list"),
    ("\n\n", "no questions"),
])
def test_a_bad_question_file_names_the_line(tmp_path, content, message):
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(AssistantError, match=message):
        load_questions(path)


def test_contains_all_ignores_thousands_separators_and_case():
    assert contains_all("trained on 1052730 images", ["1,052,730"])
    assert contains_all("Reaches 90\\% ACCURACY", ["90%", "accuracy"])
    assert not contains_all("reaches 90%", ["90%", "72.6%"])
