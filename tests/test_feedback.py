"""Feedback on answers: stored in SQLite in the store directory, validated, and exported as the
evaluation questions `assistant eval` reads, with gold titles nobody disputed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import make_settings

from assistant.errors import AssistantError
from assistant.evaluation import load_questions
from assistant.feedback import FeedbackStore

A, B, C = "Paper A: one", "Paper B: two", "Paper C: three"


def cites(*titles: str, wrong: str = "") -> list[dict]:
    return [{"n": n, "title": t, "paper_id": f"id{n}", "wrong": t == wrong} if wrong else
            {"n": n, "title": t, "paper_id": f"id{n}"} for n, t in enumerate(titles, start=1)]


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(make_settings(tmp_path / "store", embed_backend="hash"))


def exported(store: FeedbackStore, tmp_path: Path) -> tuple[list[dict], list[str]]:
    out = io.StringIO()
    summary = store.export(out)
    path = tmp_path / "feedback.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.written == len(lines)
    if lines:  # `assistant eval` reads the file as it is
        assert [q.question for q in load_questions(path)] == [line["question"] for line in lines]
    return lines, summary.skipped


def test_feedback_is_stored_in_the_store_directory(store: FeedbackStore, tmp_path: Path) -> None:
    first = store.add(question="What does A do?", answer="A does x [1].", rating="up",
                      citations=cites(A), sources=[{"n": 1, "title": A}])
    second = store.add(question="What does B do?", rating="down", flags=["wrong_citation"],
                       comment="  the citation is wrong ")
    assert store.path == tmp_path / "store" / "feedback.sqlite3" and store.path.exists()
    assert (first.id, second.id) == (1, 2)
    items = store.list()
    assert [i.question for i in items] == ["What does A do?", "What does B do?"]
    assert items[0].citations == cites(A) and items[0].sources == [{"n": 1, "title": A}]
    assert items[1].flags == ["wrong_citation"] and items[1].comment == "the citation is wrong"
    assert [i.id for i in store.list(negative_only=True)] == [2]
    assert [i.id for i in FeedbackStore(make_settings(tmp_path / "store")).list(limit=1)] == [2]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"question": " ", "rating": "up"}, "feedback needs the question"),
    ({"question": "q", "rating": "meh"}, "rating must be 'up' or 'down'"),
    ({"question": "q", "flags": ["boring"]}, "unknown flag(s) 'boring'"),
    ({"question": "q"}, "feedback needs a rating, a flag or a comment"),
    ({"question": "q", "comment": "x" * 5000}, "the comment is 5,000 characters long"),
])
def test_bad_feedback_is_a_clear_error(store: FeedbackStore, kwargs: dict, message: str) -> None:
    with pytest.raises(AssistantError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.add(**kwargs)
    assert store.list() == []


def test_export_turns_negative_feedback_into_eval_questions(store: FeedbackStore,
                                                            tmp_path: Path) -> None:
    store.add(question="Liked it", rating="up", citations=cites(A))
    store.add(question="Thumbs down", rating="down", citations=cites(A, B))
    store.add(question="One wrong", flags=["wrong_citation"], citations=cites(A, B, wrong=B))
    store.add(question="Some wrong", flags=["wrong_citation"], citations=cites(A, B))
    store.add(question="Missing one", rating="down", flags=["missing_paper"], citations=cites(A),
              expected_titles=[C], comment="C answers it")
    store.add(question="Abstained", rating="down", citations=[])
    lines, skipped = exported(store, tmp_path)
    by_question = {line["question"]: line for line in lines}
    assert list(by_question) == ["Thumbs down", "One wrong", "Missing one"]
    assert by_question["Thumbs down"]["gold_titles"] == [A, B]
    assert by_question["One wrong"]["gold_titles"] == [A]  # the wrong one left out
    assert by_question["Missing one"]["gold_titles"] == [C, A]
    assert all(line["kind"] == "feedback" and line["must_contain"] == [] for line in lines)
    assert "check them" in by_question["Thumbs down"]["review"]
    assert "C answers it" in by_question["Missing one"]["review"]
    # No gold title left: not written (an empty list would test for an abstention).
    assert len(skipped) == 2
    assert any("Some wrong" in s for s in skipped) and any("Abstained" in s for s in skipped)


def test_export_of_no_feedback_writes_nothing(store: FeedbackStore, tmp_path: Path) -> None:
    assert exported(store, tmp_path) == ([], [])
    assert not store.path.exists()  # reading does not create the database
