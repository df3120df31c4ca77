"""Per-claim evidence through the OpenAI-compatible API (the official `openai` client reads each
citation's claims from a streamed and a non-streamed answer), the records' schemas in the OpenAPI
document, and feedback: POST /v1/feedback, then `assistant feedback export`, whose file
`assistant eval` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr
from test_mcp import NAILFOLD, PROJECT, SEGMAMBA, SWIN_SMT, small_store

from assistant.engine import Engine
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.web.records import CitationRecord, SourceRecord
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

TOKEN = "evidence-token"
COMPARE = [{"role": "user", "content": "Compare SegMamba and Swin SMT"}]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_store(tmp_path_factory.mktemp("evidence"))[0]


@pytest.fixture(scope="module")
def api(store: Settings) -> Iterator[str]:
    settings = store.model_copy(update={"api_token": SecretStr(TOKEN)})
    with BackgroundServer(create_app(settings, Engine(settings))) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(api: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=api + "v1", api_key=TOKEN, max_retries=0, timeout=120)


def check_citations(raw: list[dict], answer: str, store: Settings) -> list[CitationRecord]:
    """The schema of every citation; where the checker kept claims, each claim is a sentence of
    the answer citing that paper, and its evidence a sentence of that paper's abstract."""
    citations = [CitationRecord.model_validate(c) for c in raw]
    abstracts = {pid: p.abstract for pid, p in
                 PaperStore(store).get_papers([c.paper_id for c in citations]).items()}
    for citation in citations:
        assert set(raw[0]) >= {"claims", "claim", "evidence"}
        for claim in citation.claims:
            assert f"[{citation.n}]" in claim.claim or claim.claim.strip() in answer
            assert claim.evidence.strip() and claim.evidence.strip() in abstracts[citation.paper_id]
            assert 0 <= claim.support <= 1
        if citation.claims:
            assert (citation.claim, citation.evidence) == (citation.claims[0].claim,
                                                           citation.claims[0].evidence)
        else:
            assert citation.claim is None and citation.evidence is None
    return citations


def test_non_streamed_answer_carries_per_claim_evidence(client: openai.OpenAI, store: Settings) -> None:
    response = client.chat.completions.create(model="paper-assistant", messages=COMPARE)
    text = response.choices[0].message.content or ""
    extra = response.model_extra or {}
    citations = check_citations(extra["citations"], text, store)
    assert {SEGMAMBA, SWIN_SMT} <= {c.title for c in citations}
    assert all(SourceRecord.model_validate(s).passages for s in extra["sources"])


def test_streamed_answer_carries_the_same_records(client: openai.OpenAI, store: Settings) -> None:
    chunks = list(client.chat.completions.create(model="paper-assistant", messages=COMPARE,
                                                 stream=True))
    final = chunks[-1].model_extra or {}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert final["answer"] == text
    streamed = check_citations(final["citations"], text, store)
    plain = client.chat.completions.create(model="paper-assistant", messages=COMPARE)
    assert streamed == [CitationRecord.model_validate(c) for c in plain.model_extra["citations"]]


def test_openapi_document_publishes_the_records(api: str) -> None:
    assert httpx.get(api + "api/openapi.json").status_code == 401  # behind the API's token
    doc = httpx.get(api + "api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    schemas = doc["components"]["schemas"]
    assert {"claim", "evidence", "support"} <= set(schemas["ClaimRecord"]["properties"])
    citation = schemas["CitationRecord"]["properties"]
    assert citation["claims"]["items"]["$ref"] == "#/components/schemas/ClaimRecord"
    assert {"sources", "citations"} <= set(schemas["ChatCompletion"]["properties"])
    assert {"answer", "sources", "citations"} <= set(schemas["ChatCompletionChunk"]["properties"])
    ok = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"] == "#/components/schemas/ChatCompletion"
    event = ok["text/event-stream"]["itemSchema"]["properties"]["data"]["anyOf"][0]
    assert event["contentSchema"]["anyOf"][0]["$ref"] == "#/components/schemas/ChatCompletionChunk"
    assert "/v1/feedback" in doc["paths"]


def test_feedback_from_the_api_becomes_an_eval_question(api: str, client: openai.OpenAI,
                                                        store: Settings, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.chat.completions.create(model="paper-assistant", messages=[
        {"role": "user", "content": "How accurate is the nailfold capillary pipeline?"}])
    extra = response.model_extra or {}
    body = {"question": "How accurate is the nailfold capillary pipeline?",
            "answer": response.choices[0].message.content, "rating": "down",
            "flags": ["missing_paper"], "comment": "the accuracy figure is missing",
            "citations": extra["citations"], "sources": extra["sources"],
            "expected_titles": [NAILFOLD]}
    created = httpx.post(api + "v1/feedback", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["object"] == "feedback" and created.json()["id"] >= 1
    assert httpx.post(api + "v1/feedback", json=body).status_code == 401
    for bad, message in (({**body, "rating": "meh"}, "rating"), ({**body, "flags": ["nice"]}, "flags"),
                         ({"rating": "up"}, "question"), ({**body, "question": " "}, "question")):
        refused = httpx.post(api + "v1/feedback", json=bad, headers=auth)
        assert refused.status_code == 400 and message in refused.json()["error"]["message"]

    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ASSISTANT_EMBED_BACKEND": "hash"}
    out = tmp_path / "feedback.jsonl"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "assistant.testing.cli", *args, "--store",
                               str(store.store_dir)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, check=False)

    export = cli("feedback", "export", "--out", str(out))
    assert export.returncode == 0, export.stderr
    assert "1 evaluation question(s) written" in export.stderr
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["question"] == body["question"] and line["gold_titles"][0] == NAILFOLD
    evaluation = cli("eval", "--qa", str(out), "--json")
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    assert report["by_kind"]["feedback"]["questions"] == 1
    assert report["questions"][0]["gold_titles"] == line["gold_titles"]
