"""The engine over the Model Context Protocol (the official `mcp` SDK's MCPServer): on stdio for
desktop clients (`assistant mcp`), and on streamable HTTP at `/mcp` of the app, behind the same
credentials as the HTTP API.

Tools: search_papers, ask, get_paper, compare_papers, corpus_stats; resources: paper://{paper_id}.
A tool's failure comes back as a tool error (`isError: true`) whose text is the message the CLI
prints (AssistantError.message, then "hint: ..." when there is one); arguments that do not fit a
tool's input schema get the SDK's validation error the same way, and a resource that does not
exist is a protocol error (invalid params) with the same message. Nothing a client sends stops the
server.

Filters: `{year_from, year_to, authors, venue, paper_ids}` are validated, but only `paper_ids` is
applied so far; a result says which filters were not (its `notice`).
TODO(filters): pass the whole filter to the engine once Engine.ask/search take metadata filters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant import tracing
from assistant.corpus import paper_id as title_id
from assistant.engine import Answer, Engine, clean_question
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store import PaperRecord
from assistant.web.api import ApiAuth, Limiter, error_body, question_text, validate
from assistant.web.holder import EngineHolder
from assistant.web.records import AskResult, SearchRecord, ask_result, search_record

P = ParamSpec("P")
R = TypeVar("R")
MCP_PATH = "/mcp"
MAX_COMPARED = 4  # the comparison table has one column (or row) per paper, four at most
MAX_ASPECTS = 8
INSTRUCTIONS = (
    "A research assistant over a collection of paper abstracts. search_papers finds papers; ask "
    "answers a question from them with checked citations (each with the claim it supports and the "
    "paper's evidence sentence); compare_papers builds a side-by-side table; get_paper and the "
    "paper://{paper_id} resource give a paper's abstract. Cite papers by their exact titles.")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)


# --- arguments and results --------------------------------------------------------------------
class PaperFilters(BaseModel):
    """Restrict the papers used. Only paper_ids is applied so far; the others are validated and
    reported as not applied."""

    model_config = ConfigDict(extra="forbid")
    year_from: int | None = Field(None, ge=1000, le=3000, description="Earliest publication year.")
    year_to: int | None = Field(None, ge=1000, le=3000, description="Latest publication year.")
    authors: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=20, description="Papers by any of these authors.")
    venue: str | None = Field(None, min_length=1, max_length=200, description="Journal or venue.")
    paper_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        description="Only these papers (ids from search_papers; at most ASSISTANT_MCP_MAX_PAPERS).")

    @model_validator(mode="after")
    def years_in_order(self) -> PaperFilters:
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise ValueError(f"year_from ({self.year_from}) is after year_to ({self.year_to})")
        return self

    def unapplied(self) -> list[str]:
        return [name for name in ("year_from", "year_to", "authors", "venue") if getattr(self, name)]


class SearchResult(SearchRecord):
    notice: str = Field("", description="Filters that were not applied, if any.")


class PaperInfo(BaseModel):
    paper_id: str
    title: str = Field(description="The exact title in the corpus.")
    url: str
    authors: str
    year: str
    abstract: str
    links: list[str] = Field(description="Links found in the abstract (code, data).")


class PaperRef(BaseModel):
    n: int | None = Field(description="The paper's source number in the answer, as in [n].")
    paper_id: str
    title: str


class CompareResult(AskResult):
    papers: list[PaperRef] = Field(description="The compared papers.")
    aspects: list[str] = Field(description="The aspects asked for (empty: all).")
    header: list[str] = Field(description="The comparison table's header cells.")
    rows: list[list[str]] = Field(
        description="The table's rows, cells as markdown with their citations [n]. Offline, a row "
                    "per aspect and a column per paper; an LLM writes a row per paper.")


class CorpusStats(BaseModel):
    papers: int
    chunks: int
    embedding_model: str
    answer_mode: Literal["llm", "extractive"]
    mode_label: str
    llm_model: str | None


# --- errors -----------------------------------------------------------------------------------
def error_text(exc: AssistantError) -> str:
    """The CLI's wording: the message, then the hint on its own line."""
    return f"{exc.message}\nhint: {exc.hint}" if exc.hint else exc.message


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | CallToolResult]]:
    """A tool's AssistantError becomes a tool error result carrying its message, word for word
    (the SDK's own ToolError would prefix "Error executing tool ...")."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except AssistantError as exc:
            return CallToolResult(content=[TextContent(type="text", text=error_text(exc))],
                                  is_error=True)

    return wrapper


# --- the server -------------------------------------------------------------------------------
def build_mcp(holder: EngineHolder, settings: Settings, limiter: Limiter | None = None, *,
              lifespan: Callable[[MCPServer[Any]], AbstractAsyncContextManager[Any]] | None = None,
              ) -> MCPServer[Any]:
    """The MCP server over the holder's engine; `limiter` is shared with the HTTP API so that both
    together answer at most `concurrency` requests at once."""
    limiter = limiter or Limiter(settings.concurrency, settings.queue_size,
                                 settings.busy_retry_after)
    mcp: MCPServer[Any] = MCPServer("paper-assistant", title="Paper assistant",
                                    instructions=INSTRUCTIONS, log_level="WARNING",
                                    lifespan=lifespan)

    async def engine() -> Engine:
        if not holder.ready:  # starting: wait a while rather than fail the client's first call
            await anyio.to_thread.run_sync(holder.wait, settings.mcp_start_wait)
        return holder.get()

    async def run(fn: Callable[[], R]) -> R:
        # In a worker thread holding a Limiter slot until fn returns (see Limiter).
        return await limiter.run(fn)

    def filter_ids(found: Engine, filters: PaperFilters | None) -> list[PaperRecord]:
        if filters is None or not filters.paper_ids:
            return []
        ids = list(dict.fromkeys(filters.paper_ids))
        if len(ids) > settings.mcp_max_papers:
            raise AssistantError(f"filters.paper_ids names {len(ids)} papers; the limit is "
                                 f"{settings.mcp_max_papers}",
                                 hint="setting ASSISTANT_MCP_MAX_PAPERS")
        return [resolve_paper(found, ref, fuzzy=False) for ref in ids]

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def search_papers(
        query: Annotated[str, Field(description="What to look for, in words.")],
        k: Annotated[int | None, Field(ge=1, le=50, description="How many papers (default: the "
                                                                "server's top_k).")] = None,
        filters: PaperFilters | None = None,
    ) -> SearchResult:
        """Find the papers of the collection most relevant to a query (hybrid dense + keyword
        search), each with its best passages and score. Titles are exact corpus titles; use
        paper_id with get_paper or ask's filters."""
        found = await engine()
        query = clean_question(query, settings.max_question_chars)
        papers = filter_ids(found, filters)
        if papers:
            ids = [p.id for p in papers]

            def restricted() -> Any:
                found.refresh_if_stale()
                return found.retriever.retrieve(query, len(ids), extra_paper_ids=ids)

            result = await run(restricted)
            record = search_record(result, keep=set(ids))
        else:
            record = search_record(await run(lambda: found.search(query, k)))
        return SearchResult(**dict(record), notice=unapplied_notice(filters))

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def ask(
        question: Annotated[str, Field(description="A question about the papers.")],
        mode: Annotated[Literal["auto", "llm", "extractive"], Field(
            description="llm: written by the language model; extractive: quoting the papers, no "
                        "text generated; auto: the server's default.")] = "auto",
        filters: PaperFilters | None = None,
    ) -> Annotated[CallToolResult, AskResult]:
        """Answer a question from the collection with checked citations. The text is markdown
        ending with the numbered sources; the structured result lists `citations` (exact title,
        paper_id, support, and each claim of the answer with the paper's evidence sentence) and
        the retrieved `sources`. Abstains when the collection does not cover the question. A
        question naming two papers ("Compare X and Y") gets a comparison table."""
        found = await engine()
        use_mode = None if mode == "auto" else mode
        question = question_text(question, settings.max_question_chars)
        validate(found, use_mode)
        papers = filter_ids(found, filters)
        options: dict[str, Any] = {"mode": use_mode}
        if papers:  # named papers are always retrieved, and k keeps only them
            options |= {"compare_titles": [p.title for p in papers], "k": len(papers)}
        answer: Answer = await run(lambda: found.ask(question, **options))
        result = ask_result(answer)
        result.notice = join_notes(result.notice, unapplied_notice(filters))
        return answer_result(answer.answer, result)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_paper(
        paper_id: Annotated[str, Field(min_length=1, max_length=2_000, description=(
            "The paper's id (from search_papers or a citation), or its exact title."))],
    ) -> PaperInfo:
        """A paper's metadata (exact title, authors, year, link, links found in the abstract) and
        its full abstract, by id or exact title."""
        found = await engine()
        record = await run(lambda: resolve_paper(found, paper_id, fuzzy=False))
        return paper_info(record)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def compare_papers(
        papers: Annotated[list[Annotated[str, Field(min_length=1, max_length=2_000)]], Field(
            min_length=2, max_length=MAX_COMPARED,
            description="The papers to compare: ids, exact titles or names (\"SegMamba\").")],
        aspects: Annotated[list[Annotated[str, Field(min_length=1, max_length=60)]], Field(
            max_length=MAX_ASPECTS,
            description="What to compare (e.g. method, data, results); default: task, method, "
                        "data, results and code.")] = [],  # noqa: B006 (a schema default, never mutated)
    ) -> Annotated[CallToolResult, CompareResult]:
        """Compare papers side by side: a table of their task, method, data and results, each
        cell a cited sentence of the paper (offline) or the model's cited summary (LLM mode), as
        rows, plus the cited answer and its records."""
        found = await engine()
        records = await run(lambda: [resolve_paper(found, ref, fuzzy=True) for ref in papers])
        records = list({r.id: r for r in records}.values())
        if len(records) < 2:
            raise AssistantError("these names all point to the same paper: name two different ones")
        question = "Compare " + " and ".join(r.title for r in records)
        if aspects:
            question += " in terms of " + ", ".join(aspects)
        question = clean_question(question[: settings.max_question_chars], settings.max_question_chars)
        answer: Answer = await run(lambda: found.ask(question, compare_titles=[r.title for r in records]))
        header, rows = select_aspects(*markdown_table(answer.answer), aspects)
        numbers = {s.paper_id: s.n for s in answer.sources}
        result = CompareResult(
            **dict(ask_result(answer)), aspects=list(aspects), header=header, rows=rows,
            papers=[PaperRef(n=numbers.get(r.id), paper_id=r.id, title=r.title) for r in records])
        return answer_result(answer.answer, result)

    @mcp.tool(annotations=READ_ONLY)
    @tool_errors
    async def corpus_stats() -> CorpusStats:
        """What the collection holds (papers, chunks) and how answers are made (models, mode)."""
        found = await engine()
        info = await run(found.status)
        return CorpusStats(**{k: info[k] for k in CorpusStats.model_fields})

    @mcp.resource("paper://{paper_id}", name="paper", mime_type="text/markdown",
                  description="A paper of the collection: title, authors, year, link and abstract.")
    async def paper_resource(paper_id: str) -> str:
        try:
            found = await engine()
            record = await run(lambda: resolve_paper(found, paper_id, fuzzy=False))
        except AssistantError as exc:
            raise ResourceNotFoundError(error_text(exc)) from None
        return paper_markdown(record)

    return mcp


# --- helpers ----------------------------------------------------------------------------------
def resolve_paper(engine: Engine, ref: str, *, fuzzy: bool) -> PaperRecord:
    """A paper by id or exact title, or (`fuzzy`) by a name the title index resolves."""
    ref = ref.strip()
    records = engine.store.get_papers(list(dict.fromkeys([ref, title_id(ref)])))
    if records:
        return next(iter(records.values()))
    if fuzzy:
        for match in engine.retriever.resolve_names(ref):
            found = engine.store.get_papers([match.paper_id])
            if found:
                return found[match.paper_id]
    raise AssistantError(f"no paper {ref[:200]!r} in the collection",
                         hint="search_papers finds papers with their ids and exact titles")


def paper_info(record: PaperRecord) -> PaperInfo:
    return PaperInfo(paper_id=record.id, title=record.title, url=record.url, authors=record.authors,
                     year=record.year, abstract=record.abstract, links=list(record.links))


def paper_markdown(record: PaperRecord) -> str:
    meta = " · ".join(x for x in (record.authors, record.year, record.url) if x)
    return f"# {record.title}\n\n" + (f"{meta}\n\n" if meta else "") + record.abstract + "\n"


def unapplied_notice(filters: PaperFilters | None) -> str:
    names = filters.unapplied() if filters else []
    if not names:
        return ""
    return (f"Filters not applied yet: {', '.join(names)} (only paper_ids is); the result is not "
            "restricted by them.")


def join_notes(*notes: str) -> str:
    return " ".join(n for n in notes if n)


def answer_result(text: str, result: AskResult) -> CallToolResult:
    """The markdown answer for the model to read; the records as structured content."""
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=result.model_dump(mode="json"))


EMPHASIS = re.compile(r"\*{1,2}([^*]+?)\*{1,2}")  # "*SegMamba* [2]", "**Method**"


def markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table of an answer: header cells and body rows."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("|"):
            lines.append(line.strip())
        elif lines:
            break
    cells = [[_cell(c) for c in line.strip("|").split("|")] for line in lines]
    body = [row for row in cells[1:] if not all(re.fullmatch(r":?-{2,}:?", c) for c in row if c)]
    return (cells[0] if cells else []), body


def _cell(text: str) -> str:
    return EMPHASIS.sub(r"\1", text).strip()


def select_aspects(header: list[str], rows: list[list[str]], aspects: Sequence[str]
                   ) -> tuple[list[str], list[list[str]]]:
    """Keep the rows (offline tables: a row per aspect) or else the columns (LLM tables: a column
    per aspect) named like an asked aspect; everything when none is."""
    wanted = [a.strip().lower() for a in aspects if a.strip()]
    if not wanted:
        return header, rows

    def named(label: str) -> bool:
        label = re.sub(r"\[\d+\]", "", label).strip(" *_").lower()
        return bool(label) and any(w in label or label in w for w in wanted)

    kept_rows = [row for row in rows if row and named(row[0])]
    if kept_rows:
        return header, kept_rows
    columns = [0] + [i for i, h in enumerate(header) if i and named(h)]
    if len(columns) > 1:
        return ([header[i] for i in columns],
                [[row[i] for i in columns if i < len(row)] for row in rows])
    return header, rows


# --- transports -------------------------------------------------------------------------------
class RequireAuth:
    """The API's credentials check in front of the MCP endpoint (an ASGI app)."""

    def __init__(self, app: ASGIApp, auth: ApiAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.auth.accepts(Request(scope)):
            exc: StarletteHTTPException = self.auth.refusal()
            response = JSONResponse(error_body(str(exc.detail), exc.status_code),
                                    status_code=exc.status_code, headers=exc.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount_mcp(app: FastAPI, mcp: MCPServer[Any], auth: ApiAuth, settings: Settings) -> None:
    """Serve MCP over streamable HTTP at /mcp (stateless, JSON responses: no session to keep, so
    any worker answers any call). The app's lifespan must run `mcp.session_manager.run()`."""
    inner = mcp.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True,
                                    json_response=True, host=settings.host,
                                    max_request_body_size=settings.max_body_bytes)
    app.router.add_route(MCP_PATH, RequireAuth(inner, auth), methods=["GET", "POST", "DELETE"],
                         include_in_schema=False)


def serve_stdio(settings: Settings) -> None:
    """`assistant mcp`: serve over stdin/stdout until the client closes them. Store problems are
    reported before serving; the engine loads (or the index is first built) in the background once
    the SDK has taken stdout for the protocol, so the client's handshake is answered at once."""
    tracing.configure()
    holder = EngineHolder(settings)
    ingest_first = holder.check_store()

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        holder.start_background(ingest_first=ingest_first)
        yield

    build_mcp(holder, settings, lifespan=lifespan).run("stdio")
