"""Saved conversations of the web UI: one SQLite file in the store directory (standard library
`sqlite3`), each conversation a row owned by one user, its exchanges as JSON.

The owner is the UI login name when UI auth is on; without it everyone who reaches the page is the
same anonymous user (the default setup serves 127.0.0.1 only). A conversation is read, listed and
deleted only through its owner, so one user never sees another's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "conversations.sqlite3"
SCHEMA_VERSION = 1
MAX_LISTED = 100  # conversations shown in the sidebar, newest first
MAX_KEPT_PER_OWNER = 500  # older ones are deleted when a save goes over this
TITLE_CHARS = 80
BUSY_TIMEOUT_S = 10.0


@dataclass
class Exchange:
    """A question and its answer: the engine's full text (with its source list, which is what
    follow-up questions resolve against) and what the page needs to draw it again."""

    id: str
    question: str
    answer: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversation:
    id: str = ""  # empty until first saved
    title: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0


@dataclass
class Summary:
    id: str
    title: str
    updated: float
    exchanges: int


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def title_for(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


class ConversationStore:
    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._ready = False

    @contextmanager
    def _db(self, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        if not create and not self.path.exists():
            yield None  # nothing saved yet: reading must not create the store directory
            return
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                    try:
                        self._migrate(db)
                    finally:
                        db.close()
                    self._ready = True
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            with db:
                yield db
        finally:
            db.close()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"""
            CREATE TABLE IF NOT EXISTS conversations (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                title TEXT NOT NULL,
                created REAL NOT NULL,
                updated REAL NOT NULL,
                exchanges TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
            PRAGMA user_version = {SCHEMA_VERSION};
        """)

    # --- reading ------------------------------------------------------------------------------
    def list(self, owner: str, limit: int = MAX_LISTED) -> list[Summary]:
        with self._db(create=False) as db:
            if db is None:
                return []
            rows = db.execute(
                "SELECT id, title, updated, json_array_length(exchanges) FROM conversations "
                "WHERE owner = ? ORDER BY updated DESC LIMIT ?", (owner, limit)).fetchall()
        return [Summary(*row) for row in rows]

    def get(self, owner: str, conversation_id: str) -> Conversation | None:
        if not conversation_id:
            return None
        with self._db(create=False) as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT id, title, created, updated, exchanges FROM conversations "
                "WHERE owner = ? AND id = ?", (owner, conversation_id)).fetchone()
        if row is None:
            return None
        exchanges = [Exchange(**e) for e in json.loads(row[4])]
        return Conversation(id=row[0], title=row[1], exchanges=exchanges, created=row[2],
                            updated=row[3])

    # --- writing ------------------------------------------------------------------------------
    def save(self, owner: str, conversation: Conversation) -> Conversation:
        """Insert or update; gives a new conversation its id and title."""
        now = time.time()
        if not conversation.id:
            conversation.id = new_id()
            conversation.created = now
        if not conversation.title and conversation.exchanges:
            conversation.title = title_for(conversation.exchanges[0].question)
        conversation.updated = now
        payload = json.dumps([asdict(e) for e in conversation.exchanges], ensure_ascii=False)
        with self._db(create=True) as db:
            assert db is not None
            # The owner is part of the key's check: a guessed id of someone else's conversation
            # updates nothing (and the insert fails on the primary key).
            updated = db.execute(
                "UPDATE conversations SET title = ?, updated = ?, exchanges = ? "
                "WHERE id = ? AND owner = ?",
                (conversation.title, now, payload, conversation.id, owner)).rowcount
            if not updated:
                try:
                    db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                               (conversation.id, owner, conversation.title,
                                conversation.created or now, now, payload))
                except sqlite3.IntegrityError:  # the id belongs to another owner: start a new one
                    conversation.id = new_id()
                    db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                               (conversation.id, owner, conversation.title, now, now, payload))
            db.execute(
                "DELETE FROM conversations WHERE owner = ? AND id NOT IN (SELECT id FROM "
                "conversations WHERE owner = ? ORDER BY updated DESC LIMIT ?)",
                (owner, owner, MAX_KEPT_PER_OWNER))
        return conversation

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self._db(create=False) as db:
            if db is None:
                return False
            return db.execute("DELETE FROM conversations WHERE owner = ? AND id = ?",
                              (owner, conversation_id)).rowcount > 0
