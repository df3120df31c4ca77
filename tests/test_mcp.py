"""The MCP server driven by the official SDK's client, over stdio (`python -m assistant.cli mcp` in a
subprocess) and over streamable HTTP (/mcp of the app, behind the API token): the tools are listed
with schemas, each is called, citations resolve to exact corpus titles, a comparison through `ask`
cites every compared paper, and bad arguments get errors without stopping the server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from conftest import make_settings
from fixtures_corpus import write_jsonl
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from assistant.corpus import load_papers
from assistant.corpus import paper_id as title_id
from assistant.engine import Engine
from assistant.ingest import ingest
from assistant.resources import bundled_corpus
from assistant.settings import Settings
from assistant.web.mcp import markdown_table, select_aspects
from assistant.web.records import AskResult, CitationRecord
from assistant.web.server import BackgroundServer, create_app

pytestmark = pytest.mark.slow

TOKEN = "mcp-token-123"
SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
NAILFOLD = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"
TOOLS = {"search_papers", "ask", "get_paper", "compare_papers", "corpus_stats"}
PROJECT = Path(__file__).resolve().parent.parent


def small_store(root: Path, n: int = 25) -> tuple[Settings, list[str]]:
    """A store of real papers (the three above and the first `n` of the bundled corpus) with the
    fast hash embedder; returns its settings and titles."""
    papers = load_papers([bundled_corpus()]).papers
    wanted = [p for p in papers if p.title in (SEGMAMBA, SWIN_SMT, NAILFOLD)] + papers[:n]
    chosen = list({p.title: p for p in wanted}.values())
    corpus = write_jsonl(root / "papers.jsonl",
                         [{"title": p.title, "abstract": p.abstract} for p in chosen])
    settings = make_settings(root / "store", embed_backend="hash", corpus_paths=[corpus])
    ingest(settings, [corpus], progress=False)
    return settings, [p.title for p in chosen]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[str]]:
    return small_store(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def http_url(store: tuple[Settings, list[str]]) -> Iterator[str]:
    settings = store[0].model_copy(update={"api_token": SecretStr(TOKEN)})
    with BackgroundServer(create_app(settings, Engine(settings))) as server:
        yield server.url


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def exercise(client: Client, titles: list[str]) -> None:
    """Every tool called once with good arguments and with bad ones, and a resource read."""
    corpus = set(titles)
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.input_schema["type"] == "object" and tool.output_schema, tool.name
    assert "filters" in listed["ask"].input_schema["properties"]
    assert {"claims", "claim", "evidence"} <= set(
        listed["ask"].output_schema["$defs"]["CitationRecord"]["properties"])

    stats = await client.call_tool("corpus_stats", {})
    assert not stats.is_error and stats.structured_content["papers"] == len(titles)

    found = await client.call_tool("search_papers", {"query": "Mamba 3D medical image segmentation",
                                                     "k": 3})
    assert not found.is_error, text_of(found)
    papers = found.structured_content["papers"]
    assert 1 <= len(papers) <= 3 and {p["title"] for p in papers} <= corpus
    assert all(p["passages"] for p in papers)

    paper = await client.call_tool("get_paper", {"paper_id": title_id(NAILFOLD)})
    assert not paper.is_error and paper.structured_content["title"] == NAILFOLD
    assert "nailfold" in paper.structured_content["abstract"].lower()

    # A comparison through `ask` cites every compared paper, by its exact title.
    answer = await client.call_tool("ask", {"question": "Compare SegMamba and Swin SMT"})
    assert not answer.is_error, text_of(answer)
    record = AskResult.model_validate(answer.structured_content)
    cited = {c.title for c in record.citations}
    assert {SEGMAMBA, SWIN_SMT} <= cited <= corpus
    assert record.kind == "comparative" and not record.abstained
    assert SEGMAMBA in text_of(answer) and SWIN_SMT in text_of(answer)
    for citation in record.citations:
        assert citation.title == next(s.title for s in record.sources if s.n == citation.n)
        assert citation.paper_id == title_id(citation.title)

    # paper_ids restricts the answer to those papers.
    only = await client.call_tool("ask", {
        "question": "How accurate is the pipeline at predicting abnormality?",
        "filters": {"paper_ids": [title_id(NAILFOLD)], "year_from": 2020}})
    assert not only.is_error, text_of(only)
    restricted = only.structured_content
    assert [s["title"] for s in restricted["sources"]] == [NAILFOLD]
    assert {c["title"] for c in restricted["citations"]} == {NAILFOLD}
    assert "year_from" in restricted["notice"]  # accepted, said not to be applied yet

    table = await client.call_tool("compare_papers", {"papers": ["SegMamba", SWIN_SMT],
                                                      "aspects": ["method", "data"]})
    assert not table.is_error, text_of(table)
    compared = table.structured_content
    assert {p["title"] for p in compared["papers"]} == {SEGMAMBA, SWIN_SMT}
    assert [row[0] for row in compared["rows"]] == ["Method", "Data"]
    assert len(compared["header"]) == 3 and all(len(row) == 3 for row in compared["rows"])
    numbers = {p["n"] for p in compared["papers"]}
    assert all(any(f"[{n}]" in cell for n in numbers) for row in compared["rows"] for cell in row[1:])
    assert {c["title"] for c in compared["citations"]} >= {SEGMAMBA, SWIN_SMT}

    resource = await client.read_resource(f"paper://{title_id(SWIN_SMT)}")
    assert resource.contents[0].text.startswith(f"# {SWIN_SMT}\n")
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["paper://{paper_id}"]

    # Errors: the CLI's messages, as tool errors; the server keeps serving.
    empty = await client.call_tool("ask", {"question": "  "})
    assert empty.is_error and text_of(empty) == "the question is empty: type a question about the papers"
    missing = await client.call_tool("get_paper", {"paper_id": "nope"})
    assert missing.is_error and text_of(missing).startswith("no paper 'nope' in the collection\nhint: ")
    unknown = await client.call_tool("ask", {"question": "What is it?", "filters": {"paper_ids": ["x1"]}})
    assert unknown.is_error and "no paper 'x1'" in text_of(unknown)
    bad_k = await client.call_tool("search_papers", {"query": "segmentation", "k": "many"})
    assert bad_k.is_error and "k" in text_of(bad_k)
    years = await client.call_tool("search_papers", {"query": "segmentation",
                                                     "filters": {"year_from": 2024, "year_to": 2020}})
    assert years.is_error and "year_from (2024) is after year_to (2020)" in text_of(years)
    extra = await client.call_tool("ask", {"question": "x?", "filters": {"colour": "red"}})
    assert extra.is_error and "colour" in text_of(extra)
    one = await client.call_tool("compare_papers", {"papers": ["SegMamba"]})
    assert one.is_error
    mode = await client.call_tool("ask", {"question": "What is SegMamba?", "mode": "llm"})
    assert mode.is_error and text_of(mode).startswith("mode 'llm' was asked for but no LLM is configured")
    no_tool = await client.call_tool("delete_everything", {})
    assert no_tool.is_error
    with pytest.raises(MCPError, match="no paper 'nope' in the collection"):
        await client.read_resource("paper://nope")
    again = await client.call_tool("corpus_stats", {})
    assert not again.is_error


def test_http_transport_behind_the_api_token(store: tuple[Settings, list[str]], http_url: str) -> None:
    async def main() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient(headers=headers, timeout=120) as http, \
                Client(streamable_http_client(http_url + "mcp", http_client=http)) as client:
            await exercise(client, store[1])

    asyncio.run(main())


def test_http_transport_refuses_missing_or_wrong_credentials(http_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(http_url + "mcp", json=body, headers=headers)
        assert response.status_code == 401
        assert "ASSISTANT_API_TOKEN" in response.json()["error"]["message"]

    async def main() -> None:
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong"}) as http, \
                Client(streamable_http_client(http_url + "mcp", http_client=http)) as client:
            await client.list_tools()

    with pytest.raises(BaseException):  # noqa: B017 (the SDK raises an exception group)
        asyncio.run(main())


def test_stdio_transport_in_a_subprocess(store: tuple[Settings, list[str]], tmp_path: Path) -> None:
    settings, titles = store
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ASSISTANT_EMBED_BACKEND": "hash",
           "HF_HUB_OFFLINE": "1"}
    server = StdioServerParameters(command=sys.executable, cwd=str(tmp_path), env=env,
                                   args=["-m", "assistant.testing.cli", "mcp", "--store",
                                         str(settings.store_dir)])

    async def main() -> None:
        async with Client(server, read_timeout_seconds=300) as client:
            await exercise(client, titles)

    asyncio.run(main())


def test_stdio_server_reports_a_bad_store_like_the_cli(tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ASSISTANT_EMBED_BACKEND": "hash",
           "ASSISTANT_AUTO_INGEST": "false"}
    run = subprocess.run([sys.executable, "-m", "assistant.testing.cli", "mcp", "--store",
                          str(tmp_path / "none")], env=env, capture_output=True, text=True,
                         timeout=300, input="", check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert "is empty" in run.stderr and "Traceback" not in run.stderr


def test_table_rows_and_aspects() -> None:
    answer = ("| | *A* [1] | *B* [2] |\n|---|---|---|\n| **Task** | t1 [1] | t2 [2] |\n"
              "| **Method** | m1 [1] | m2 [2] |\n\nIn short: ...")
    header, rows = markdown_table(answer)
    assert header == ["", "A [1]", "B [2]"]
    assert rows == [["Task", "t1 [1]", "t2 [2]"], ["Method", "m1 [1]", "m2 [2]"]]
    assert select_aspects(header, rows, ["method"])[1] == [["Method", "m1 [1]", "m2 [2]"]]
    # An LLM's table: a row per paper, a column per aspect.
    llm = "| Paper | Task | Method |\n|---|---|---|\n| A [1] | t [1] | m [1] |"
    assert select_aspects(*markdown_table(llm), ["Method"]) == (["Paper", "Method"], [["A [1]", "m [1]"]])
    assert select_aspects(header, rows, ["colour"]) == (header, rows)
    assert markdown_table("no table here") == ([], [])


def test_citation_records_carry_the_checkers_claims() -> None:
    from dataclasses import dataclass

    from assistant.citations import Citation
    from assistant.web.records import citation_record

    @dataclass
    class Claim:  # the checker's per-claim record (assistant/citations.py), as it will be
        text: str
        evidence: str
        support: float

    citation = Citation(n=1, paper_id="p1", title="T", url="", support=0.9)
    assert citation_record(citation).claims == []  # a checker that keeps no claims
    citation.claims = [Claim("SegMamba is fast [1].", "SegMamba runs fast.", 0.812345)]  # type: ignore[attr-defined]
    record = CitationRecord.model_validate(citation_record(citation).model_dump())
    assert record.claim == "SegMamba is fast [1]." and record.evidence == "SegMamba runs fast."
    assert record.claims[0].support == 0.8123
