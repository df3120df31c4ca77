"""Test doubles, kept out of the product: nothing in `assistant` imports this package, and the
wheel leaves it out (it serves the tests and benchmarks of a checkout).

Importing it registers the `hash` embedder backend (testing/embedder.py), so `embed_backend="hash"`
(or ASSISTANT_EMBED_BACKEND=hash) works only in a process that imported `assistant.testing`: the
tests (conftest), the benchmarks, and subprocesses started through `python -m assistant.testing.cli`
(the `assistant` command with the doubles registered). A production configuration naming `hash`
fails with "unknown embedder backend".

- `make_settings`: Settings isolated from the environment and any .env file.
- `embedder.HashEmbedder`; `llm.ScriptedLLM`, `llm.bundled_smollm2_path`;
  `fake_openai.FakeLLMServer` (scripted replies and byte-level faults).
"""

from __future__ import annotations

from pathlib import Path

from assistant.embedding import Backend, register_backend
from assistant.settings import Settings
from assistant.testing.embedder import HashEmbedder

HASH_DIM = 256
register_backend("hash", Backend(make=lambda _settings: HashEmbedder(HASH_DIM),
                                 store_id=lambda _settings: f"hash-{HASH_DIM}"))


def make_settings(store_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the environment and any .env file. Starlette's TestClient sends
    `Host: testserver`, which the app must accept in tests."""
    overrides.setdefault("allowed_hosts", ["testserver"])
    return Settings(_env_file=None, store_dir=store_dir, **overrides)  # type: ignore[call-arg]
