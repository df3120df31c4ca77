"""Shared fixtures. Every test gets its own store path; the real-corpus store is built once per
session (with the real offline embedder) and only read by the tests that use it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from assistant.resources import bundled_corpus
from assistant.settings import Settings
from assistant.testing import make_settings  # also registers the `hash` embedder backend

# Tests never reach a hub, a real LLM, or the user's configuration.
os.environ["HF_HUB_OFFLINE"] = "1"
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(var, None)
for var in [v for v in os.environ if v.startswith("ASSISTANT_")]:
    os.environ.pop(var)
# The onnx embedder's one-time export goes to a directory of this test session (and of the apps
# and CLIs it starts), never to the user's cache.
os.environ["ASSISTANT_EMBED_ONNX_DIR"] = tempfile.mkdtemp(prefix="assistant-onnx-")
atexit.register(shutil.rmtree, os.environ["ASSISTANT_EMBED_ONNX_DIR"], True)

DATA = Path(__file__).parent / "data"

# Fixtures that embed the bundled corpus with the real model (a minute or two on 2 busy cores, once
# per session): tests using them are marked `corpus`, which `make test-fast` leaves out.
CORPUS_FIXTURES = {"corpus_store", "engine"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)

def cli(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 900,
        env: dict[str, str] | None = None, doubles: bool = False) -> subprocess.CompletedProcess[str]:
    """The `assistant` command line in a subprocess; `env` adds to the environment. doubles=True
    runs it with the test doubles registered (assistant.testing.cli), for ASSISTANT_EMBED_BACKEND=hash."""
    module = "assistant.testing.cli" if doubles else "assistant.cli"
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def hash_settings(tmp_path: Path) -> Settings:
    """A fresh store with the fast deterministic fake embedder."""
    return make_settings(tmp_path / "store", embed_backend="hash")


Papers = Sequence[tuple[str, str] | Mapping[str, str]] | Path
StoreFactory = Callable[..., Settings]


def build_store(root: Path, papers: Papers, **overrides: object) -> Settings:
    """A small store at root/store with the hash embedder, ingested from `papers`: (title, abstract)
    pairs or JSONL records (written to root/papers.jsonl), or an existing corpus file. The settings
    name that file in corpus_paths; `overrides` are further settings."""
    from assistant.ingest import ingest

    if isinstance(papers, Path):
        corpus = papers
    else:
        corpus = root / "papers.jsonl"
        records = [r if isinstance(r, Mapping) else {"title": r[0], "abstract": r[1]} for r in papers]
        corpus.write_text("".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records),
                          encoding="utf-8")
    settings = make_settings(root / "store", **{"embed_backend": "hash", "corpus_paths": [corpus],
                                                 **overrides})
    ingest(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def make_store(tmp_path_factory: pytest.TempPathFactory) -> StoreFactory:
    """Factory of small hash-embedder stores, each in its own temporary folder:
    `make_store(papers, name="llm", **settings)` (see build_store)."""

    def make(papers: Papers, *, name: str = "store", **overrides: object) -> Settings:
        return build_store(tmp_path_factory.mktemp(name), papers, **overrides)

    return make


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The bundled corpus ingested with the real embedding model; read-only for tests."""
    from assistant.ingest import ingest

    settings = make_settings(tmp_path_factory.mktemp("corpus") / "store")
    ingest(settings, [bundled_corpus()], progress=False)
    return settings


@pytest.fixture(scope="session")
def engine(corpus_store: Settings):
    """The answer engine over the real corpus store, offline (extractive) mode."""
    from assistant.engine import Engine

    return Engine(corpus_store)
