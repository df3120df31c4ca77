"""The HTTP API against its own OpenAPI schema: schemathesis (its command line, run against the
app serving on loopback) generates requests from /api/openapi.json (valid and invalid bodies and
query strings, methods the schema does not list, requests without credentials, the stateful
phase's sequences) and runs all its checks on every response: no 5xx, documented status codes,
content types and headers, bodies and stream events that match the schema, schema-valid input
accepted and schema-invalid input rejected, 405 for unlisted methods, credentials enforced.

Offline, a bounded number of examples per operation, deterministic generation (a run is
repeatable). Two runs: ASCII strings with every check, then any Unicode without the
negative-data check, because the schema's `\\w` pattern (a question needs a word character) reads
as ASCII-only to a JSON Schema validator (ECMA-262) while the server, like Python, counts any
letter: "¿Qué?" is a question the server takes and a validator calls schema-invalid."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings
from fixtures_corpus import make_papers, write_jsonl
from pydantic import SecretStr

from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.web.server import BackgroundServer, create_app

pytest.importorskip("schemathesis")
pytestmark = pytest.mark.slow

TOKEN = "contract-token"
EXAMPLES = 50  # per operation and phase


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    root: Path = tmp_path_factory.mktemp("contract")
    corpus = write_jsonl(root / "papers.jsonl",
                         [{"title": t, "abstract": a} for t, a in make_papers(20, seed=7)])
    # Thousands of generated requests, some without credentials: the lockout would only get in
    # the way here (tests/test_security.py covers it).
    settings = make_settings(root / "store", embed_backend="hash", corpus_paths=[corpus],
                             api_token=SecretStr(TOKEN), auth_failure_delay=0,
                             auth_max_failures=1_000_000, max_turns=8)
    ingest(settings, progress=False)
    with BackgroundServer(create_app(settings, Engine(settings))) as running:
        yield running


@pytest.mark.parametrize("extra", [
    ["--generation-codec", "ascii"],
    ["--exclude-checks", "negative_data_rejection"],
], ids=["ascii-all-checks", "unicode"])
def test_api_keeps_its_schema(server: BackgroundServer, extra: list[str], tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", server.url + "api/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}", "--checks", "all",
        "--max-examples", str(EXAMPLES), "--generation-deterministic", "--workers", "1",
        "--request-timeout", "60", "--no-color", *extra,
    ]
    # cwd: a folder without a schemathesis.toml, so only these options apply.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1]
