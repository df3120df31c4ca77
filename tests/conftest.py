"""Shared fixtures. Every test gets its own store path; the real-corpus store is built once per
session (with the real offline embedder) and only read by the tests that use it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.settings import BUNDLED_CORPUS, Settings

# Tests never reach a hub, a real LLM, or the user's configuration.
os.environ["HF_HUB_OFFLINE"] = "1"
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(var, None)
for var in [v for v in os.environ if v.startswith("ASSISTANT_")]:
    os.environ.pop(var)

DATA = Path(__file__).parent / "data"

# Unanswerable questions the retriever still takes as covered: a condition the corpus never names,
# asked in a setting it knows well (LLM chatbots), that the Disease Ontology's names do not include
# ("depression" is "major depressive disorder" there), so the unknown-disease signal cannot see it
# (see docs/RETRIEVAL.md, "What remains weak").
KNOWN_MISSED_ABSTENTIONS = {
    "Which LLM chatbot offers counselling to patients with depression, and how did clinicians rate "
    "it?",
}


def make_settings(store_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the environment and any .env file. Starlette's TestClient sends
    `Host: testserver`, which the app must accept in tests."""
    overrides.setdefault("allowed_hosts", ["testserver"])
    return Settings(_env_file=None, store_dir=store_dir, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def hash_settings(tmp_path: Path) -> Settings:
    """A fresh store with the fast deterministic fake embedder."""
    return make_settings(tmp_path / "store", embed_backend="hash")


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The bundled corpus ingested with the real embedding model; read-only for tests."""
    from assistant.ingest import ingest

    settings = make_settings(tmp_path_factory.mktemp("corpus") / "store")
    ingest(settings, [BUNDLED_CORPUS], progress=False)
    return settings


@pytest.fixture(scope="session")
def engine(corpus_store: Settings):
    """The answer engine over the real corpus store, offline (extractive) mode."""
    from assistant.engine import Engine

    return Engine(corpus_store)
