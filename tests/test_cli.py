"""The command line as a user runs it (subprocesses): `ask --json`, errors as one message and exit
status 2, `ingest --json`, and a piped two-turn `chat` with a follow-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli
from test_answers import check_schema

INGEST_KEYS = {"papers_added", "papers_updated", "papers_unchanged", "papers_removed", "papers_total",
               "chunks_total", "seconds"}


def assert_clean_error(run, message: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert message in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_ask_json(corpus_store, tmp_path):
    run = cli("ask", "What Dice score does Swin SMT reach on TotalSegmentator?", "--json",
              "--store", str(corpus_store.store_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    check_schema(data)
    assert data["mode"] == "extractive" and not data["abstained"]
    assert "85.09%" in data["answer"]
    assert data["citations"][0]["title"].startswith("Swin SMT:")


def test_an_empty_question_is_a_clean_error(corpus_store, tmp_path):
    run = cli("ask", "   ", "--store", str(corpus_store.store_dir), cwd=tmp_path)
    assert_clean_error(run, "the question is empty")


def test_a_missing_store_is_a_clean_error(tmp_path):
    run = cli("ask", "What is SegMamba?", "--store", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert_clean_error(run, "no store at")
    assert "assistant ingest" in run.stderr  # the hint says what to do


def test_eval_with_a_missing_question_file_is_a_clean_error(corpus_store, tmp_path):
    run = cli("eval", "--qa", str(tmp_path / "none.jsonl"), "--store", str(corpus_store.store_dir),
              cwd=tmp_path)
    assert_clean_error(run, "no such question file")


@pytest.mark.slow  # seconds, not milliseconds: left out of `make test-fast`
def test_ingest_json_prints_the_summary(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_EMBED_BACKEND", "hash")  # a fast store is enough here
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text("".join(json.dumps({"title": f"Study {i}: topic {i}", "abstract":
                                          f"Abstract number {i} about segmentation."}) + "\n"
                              for i in range(3)))
    store = tmp_path / "store"
    first = cli("ingest", str(corpus), "--store", str(store), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary.keys() >= INGEST_KEYS
    assert (summary["papers_added"], summary["papers_total"]) == (3, 3)
    assert summary["chunks_total"] >= 3
    again = json.loads(cli("ingest", str(corpus), "--store", str(store), "--json", cwd=tmp_path).stdout)
    assert (again["papers_added"], again["papers_unchanged"]) == (0, 3)


def test_chat_answers_two_turns_with_a_follow_up(corpus_store, tmp_path):
    turns = "Compare SegMamba and Swin SMT.\nand what dataset did the second one use?\n"
    run = cli("chat", "--store", str(corpus_store.store_dir), cwd=tmp_path, stdin=turns)
    assert run.returncode == 0, run.stderr
    # [first answer] Sources [first sources + second answer] Sources [second sources]
    first, middle, last = run.stdout.split("**Sources**")
    assert "| **Method** |" in first  # the comparison table
    assert "TotalSegmentator" in middle  # the follow-up quotes the dataset
    # The follow-up is answered from Swin SMT (the second paper), not SegMamba.
    assert "[1] Swin SMT: Global Sequential Modeling" in last
    assert "SegMamba" not in last
    assert "Traceback" not in run.stderr
