"""Feedback on answers (thumbs up/down, "wrong citation" / "missing paper" flags, a comment), kept
with the question, the answer, its citations and sources in SQLite in the store directory, and
exported as evaluation questions (the JSONL `assistant eval` reads), so that a user's corrections
become regression tests.

    store = FeedbackStore(settings)
    store.add(question=answer.question, answer=answer.answer, rating="down",
              flags=["wrong_citation"], citations=answer.to_json()["citations"])
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO

from assistant.errors import AssistantError
from assistant.settings import Settings

Rating = Literal["up", "down"]
RATINGS = ("up", "down")
FLAGS = ("wrong_citation", "missing_paper")
EXPORT_KIND = "feedback"  # the `kind` of exported questions: `assistant eval` reports them apart
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    rating TEXT,
    flags TEXT NOT NULL,
    comment TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    sources TEXT NOT NULL,
    expected_titles TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL
)
"""
JSON_COLUMNS = ("flags", "citations", "sources", "expected_titles")


@dataclass
class Feedback:
    id: int
    created: float
    rating: str | None
    flags: list[str]
    comment: str
    question: str
    answer: str
    citations: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    expected_titles: list[str] = field(default_factory=list)
    kind: str = ""
    mode: str = ""

    @property
    def negative(self) -> bool:
        """A thumbs-down or any flag: worth a regression test."""
        return self.rating == "down" or bool(self.flags)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExportSummary:
    written: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per feedback left out, saying why

    def line(self) -> str:
        text = f"{self.written} evaluation question(s) written"
        if self.skipped:
            text += f"; {len(self.skipped)} left out"
        return text


class FeedbackStore:
    """Feedback in `<store_dir>/feedback.sqlite3` (standard-library sqlite3, one connection per
    call: safe from the UI's and the API's threads, and from several processes)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.feedback_path
        self.max_comment_chars = settings.feedback_max_chars

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
                db.execute(SCHEMA)
                yield db
        except sqlite3.Error as exc:
            raise AssistantError(f"the feedback store at {self.path} cannot be used: {exc}",
                                 status=503) from None
        except OSError as exc:
            raise AssistantError(f"the feedback store at {self.path} cannot be used: {exc.strerror}",
                                 status=503) from None

    def add(self, *, question: str, answer: str = "", rating: Rating | None = None,
            flags: Sequence[str] = (), comment: str = "",
            citations: Sequence[Mapping[str, Any]] = (), sources: Sequence[Mapping[str, Any]] = (),
            expected_titles: Sequence[str] = (), kind: str = "", mode: str = "") -> Feedback:
        """Store one piece of feedback and return it with its id. `citations` and `sources` are
        the answer's records (`Answer.to_json()["citations"]`, or the API's); a citation record
        may carry `"wrong": true` to say which one was wrong. `expected_titles` names the papers
        the answer should have used (for "missing paper"). Raises AssistantError on bad input."""
        question = question.strip() if isinstance(question, str) else ""
        if not question:
            raise AssistantError("feedback needs the question it is about")
        if rating is not None and rating not in RATINGS:
            raise AssistantError(f"rating must be 'up' or 'down', not {rating!r}")
        unknown = [f for f in flags if f not in FLAGS]
        if unknown:
            raise AssistantError(f"unknown flag(s) {', '.join(map(repr, unknown))}; the flags are "
                                 + ", ".join(FLAGS))
        if len(comment) > self.max_comment_chars:
            raise AssistantError(f"the comment is {len(comment):,} characters long; the limit is "
                                 f"{self.max_comment_chars:,}",
                                 hint="shorten it (setting ASSISTANT_FEEDBACK_MAX_CHARS)")
        if rating is None and not flags and not comment.strip():
            raise AssistantError("feedback needs a rating, a flag or a comment")
        record = {
            "created": time.time(), "rating": rating, "flags": list(dict.fromkeys(flags)),
            "comment": comment.strip(), "question": question, "answer": answer,
            "citations": [dict(c) for c in citations], "sources": [dict(s) for s in sources],
            "expected_titles": [t.strip() for t in expected_titles if t.strip()],
            "kind": kind, "mode": mode,
        }
        row = {k: json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS else v
               for k, v in record.items()}
        with self._db() as db:
            cursor = db.execute(
                f"INSERT INTO feedback ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()))
            new_id = int(cursor.lastrowid or 0)
        return Feedback(id=new_id, **record)  # type: ignore[arg-type]

    def list(self, *, limit: int | None = None, negative_only: bool = False) -> list[Feedback]:
        """Feedback, oldest first."""
        if not self.path.exists():
            return []
        with self._db() as db:
            cursor = db.execute("SELECT * FROM feedback ORDER BY id")
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        items = [Feedback(**{k: json.loads(v) if k in JSON_COLUMNS else v
                             for k, v in zip(columns, row, strict=True)}) for row in rows]
        if negative_only:
            items = [f for f in items if f.negative]
        return items[-limit:] if limit else items

    def export(self, out: TextIO) -> ExportSummary:
        """Write each thumbs-down or flagged answer as an evaluation question (one JSON line, the
        format `assistant eval --qa` reads). The gold titles are the papers the feedback names as
        expected, plus the cited papers nobody disputed: with a "wrong citation" flag that does not
        say which citation, no cited paper is trusted. Feedback left with no gold title is not
        written (an empty gold list would test for an abstention); the summary says why."""
        summary = ExportSummary()
        for item in self.list(negative_only=True):
            gold = gold_titles(item)
            if not gold:
                summary.skipped.append(
                    f"feedback #{item.id} ({item.question[:60]!r}): no gold title (the answer cited "
                    "no undisputed paper and the feedback names none in expected_titles)")
                continue
            cited = [str(c.get("title", "")) for c in item.citations if c.get("title")]
            record = {
                "question": item.question, "gold_titles": gold, "kind": EXPORT_KIND,
                "must_contain": [], "feedback_id": item.id, "rating": item.rating,
                "flags": item.flags, "comment": item.comment, "answer_kind": item.kind,
                "cited_titles": cited, "review": review_note(item),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            summary.written += 1
        return summary


def gold_titles(item: Feedback) -> list[str]:
    marked = any(c.get("wrong") for c in item.citations)
    if "wrong_citation" in item.flags and not marked:
        trusted: list[str] = []
    else:
        trusted = [str(c["title"]) for c in item.citations if c.get("title") and not c.get("wrong")]
    return list(dict.fromkeys(item.expected_titles + trusted))


def review_note(item: Feedback) -> str:
    """What a maintainer should check before keeping the question in an evaluation set."""
    said = [f"thumbs {item.rating}"] if item.rating else []
    said += [f.replace("_", " ") for f in item.flags]
    note = "user feedback: " + ", ".join(said)
    if item.comment:
        note += f" ({item.comment[:200]})"
    if not item.expected_titles:
        note += "; gold titles are the answer's own undisputed citations: check them"
    return note
