"""What the product finds and offers, as opposed to what only the tests get: run-time files from
the checkout (tests/test_wheel.py checks an installed wheel), the default store, and the hash
embedder, which only a process that imported assistant.testing can select."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from assistant import resources
from assistant.embedding import BACKENDS
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_run_time_files_come_from_the_checkout_folders() -> None:
    assert resources.checkout_root() == ROOT
    assert resources.prompts_dir() == ROOT / "prompts"
    assert resources.bundled_corpus() == ROOT / "data" / "medical-ai-papers.txt"
    assert resources.disease_names() == ROOT / "data" / "disease-names.txt"
    assert {p.name for p in resources.prompts_dir().glob("*.txt")} >= {"system.txt", "answer.txt"}


def test_the_default_store_is_the_checkouts_vectorstore() -> None:
    assert resources.default_store_dir() == ROOT / "vectorstore"
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.store_dir == ROOT / "vectorstore"
    assert defaults.corpus_paths == [resources.bundled_corpus()]


def test_the_hash_embedder_is_registered_by_the_test_doubles_only() -> None:
    assert "hash" in BACKENDS  # conftest imported assistant.testing
    code = ("from assistant.embedding import get_embedder\nfrom assistant.errors import AssistantError\n"
            "from assistant.settings import Settings\n"
            "try:\n    get_embedder(Settings(_env_file=None, embed_backend='hash'))\n"
            "except AssistantError as exc:\n    print(exc.message)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True)
    assert "unknown embedder backend 'hash'" in done.stdout
