"""The HTTP API: OpenAI-compatible chat completions (streaming and not), the model list, a health
check and a JSON search endpoint. Mounted beside the web UI by server.py.

Answers carry their citations in the message text (a numbered source list at the end) and the
structured sources in extra top-level fields (`sources`, `citations`, `mode`, `abstained`, ...),
which the official `openai` client exposes as `response.model_extra`.

Streaming: the engine yields a growing draft (LLM mode) and then the checked answer, whose
citations may have been corrected and which ends with the source list. Deltas can only append, so
the stream sends the draft up to its last whitespace (a half-written tag or link is held back) as
long as each draft extends what was sent; the final event's delta completes the message with the
checked answer's remaining text. If the checked answer does not continue the streamed draft (a
citation was corrected, the LLM failed mid-way), the stream appends the checked answer in full
under a "Checked answer" rule, so what a client shows never hides a correction. The last chunk also
carries `answer` (the checked text, complete) with the structured fields. A request may send
`"drafts": false` to receive only the checked answer. In offline mode the answer is the first and
only text, so the stream is simply that answer.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.conversation import Turn
from assistant.engine import Answer, Engine, clean_question
from assistant.errors import AssistantError
from assistant.feedback import FLAGS, FeedbackStore
from assistant.settings import Settings
from assistant.web.holder import EngineHolder
from assistant.web.records import (
    ChatCompletion,
    ChatCompletionChunk,
    SearchRecord,
    answer_fields,
    search_record,
)

log = logging.getLogger(__name__)

MODEL_ID = "paper-assistant"
KEEPALIVE_SECONDS = 10.0
CHECKED_RULE = "\n\n---\n\n**Checked answer** (the draft above was corrected):\n\n"
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error",
    503: "service_unavailable", 500: "server_error",
}


# --- errors -----------------------------------------------------------------------------------
def error_body(message: str, status: int, *, hint: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": ERROR_TYPES.get(status, "api_error"),
                             "param": None, "code": code or str(status)}
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(exc: AssistantError) -> JSONResponse:
    return JSONResponse(error_body(str(exc), exc.status, hint=exc.hint), status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    """Every API failure is OpenAI-shaped JSON: {"error": {"message", "type", "code"}}."""

    @app.exception_handler(AssistantError)
    async def assistant_error(_: Request, exc: AssistantError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            if err.get("type") == "json_invalid":
                problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
                continue
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse(error_body("invalid request: " + "; ".join(problems), 400,
                                       code="invalid_request"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), exc.status_code),
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug must still answer in the protocol's shape, without leaking a traceback.
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); see the server log",
                                       500, code="internal_error"), status_code=500)


# --- auth -------------------------------------------------------------------------------------
def make_auth(settings: Settings) -> Any:
    """A dependency: the bearer token when `api_token` is set; when only the UI has a password,
    the API is closed too (HTTP Basic with the UI's credentials), so protecting the UI never leaves
    the same data open next door."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    basic = settings.ui_auth or None

    def check(request: Request) -> None:
        if not token and not basic:
            return
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if token and scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), token.encode()):
            return
        if basic and scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except Exception:
                decoded = ""
            if hmac.compare_digest(decoded.encode(), basic.encode()):
                return
        how = "an `Authorization: Bearer <ASSISTANT_API_TOKEN>` header" if token else \
            "HTTP Basic authentication with the UI's user:password"
        raise StarletteHTTPException(401, f"missing or invalid credentials: send {how}",
                                     headers={"WWW-Authenticate": "Bearer" if token else "Basic"})

    return check


# --- concurrency ------------------------------------------------------------------------------
class Limiter:
    """At most `concurrency` engine calls at once, `queue_size` more waiting; beyond that, 429."""

    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.active = 0
        self.waiting = 0
        self._semaphore: asyncio.Semaphore | None = None

    def check(self) -> None:
        if self.active + self.waiting >= self.concurrency + self.queue_size:
            raise AssistantError(
                f"the server is busy ({self.active} requests being answered, {self.waiting} "
                "waiting)", hint="try again shortly (settings ASSISTANT_CONCURRENCY, "
                                 "ASSISTANT_QUEUE_SIZE)", status=429)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()


# --- request models ---------------------------------------------------------------------------
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """OpenAI's chat request; unknown fields (temperature, top_p, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    # Extensions (the openai client sends them with `extra_body={...}`).
    k: int | None = Field(None, ge=1, le=50, description="Papers to retrieve.")
    mode: Literal["llm", "extractive"] | None = Field(None, description="Answer mode.")
    compare_titles: list[str] = Field(default_factory=list, max_length=6)
    drafts: bool = Field(True, description="Stream the LLM's draft before the checked answer.")


class FeedbackRequest(BaseModel):
    """Feedback on one answer; the records are those the answer came with."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="The question that was answered.")
    answer: str = Field("", description="The answer's text as shown.")
    rating: Literal["up", "down"] | None = Field(None, description="Thumbs up or down.")
    flags: list[Literal[FLAGS]] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(FLAGS),
        description="wrong_citation: a citation does not support its claim; missing_paper: a "
                    "paper that answers the question was not used.")
    comment: str = Field("", description="Free text (setting ASSISTANT_FEEDBACK_MAX_CHARS).")
    citations: list[dict[str, Any]] = Field(
        default_factory=list, max_length=100,
        description="The answer's `citations` records; add \"wrong\": true to the wrong ones.")
    sources: list[dict[str, Any]] = Field(default_factory=list, max_length=100,
                                          description="The answer's `sources` records.")
    expected_titles: list[str] = Field(
        default_factory=list, max_length=20,
        description="Titles of the papers the answer should have used (for missing_paper).")
    kind: str = Field("", description="The answer's `kind`.")
    mode: str = Field("", description="The answer's `mode`.")


class FeedbackCreated(BaseModel):
    object: Literal["feedback"] = "feedback"
    id: int
    created: float


class SearchRequest(BaseModel):
    q: str = Field(validation_alias=AliasChoices("q", "query"), description="The query.")
    k: int | None = Field(None, ge=1, le=50)


def _text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    parts = []
    for part in message.content:
        if part.type != "text":
            raise AssistantError(f"only text messages are supported (got a {part.type!r} part)")
        parts.append(part.text or "")
    return "\n".join(parts)


def conversation(request: ChatRequest) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant turns are the history."""
    messages = [m for m in request.messages if m.role in ("user", "assistant")]
    if not messages or messages[-1].role != "user":
        raise AssistantError("the last message must be the user's question")
    history = [Turn(m.role, _text(m)) for m in messages[:-1]]
    return _text(messages[-1]), history


def validate(settings: Settings, engine: Engine, question: str, history: list[Turn],
             mode: str | None) -> str:
    """The engine's input checks with this app's limits, run before a stream starts so that they
    answer 400 rather than an error event."""
    question = clean_question(question, settings.max_question_chars)
    if len(history) > settings.max_turns:
        raise AssistantError(
            f"the conversation has {len(history)} messages; the limit is {settings.max_turns}",
            hint="start a new conversation (setting ASSISTANT_MAX_TURNS)")
    if mode == "llm" and engine.llm is None:
        raise AssistantError("mode 'llm' was asked for but no LLM is configured",
                             hint="leave mode out, or configure an LLM on the server")
    return question


# --- streaming --------------------------------------------------------------------------------
class DeltaTracker:
    """What the client was sent so far; deltas only ever extend it (see the module doc)."""

    def __init__(self, drafts: bool) -> None:
        self.drafts = drafts
        self.sent = ""
        self.diverged = False

    def draft(self, text: str) -> str:
        if not self.drafts or self.diverged:
            return ""
        text = text.lstrip()
        cut = re.search(r"\s+\S*$", text)
        safe = text[: cut.start()] if cut else ""
        if not safe.startswith(self.sent):
            self.diverged = True
            return ""
        delta, self.sent = safe[len(self.sent):], safe
        return delta

    def final(self, text: str) -> str:
        delta = text[len(self.sent):] if text.startswith(self.sent) else CHECKED_RULE + text
        self.sent += delta
        return delta


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any],
           finish: str | None = None, **extra: Any) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def stream_events(engine: Engine, limiter: Limiter, question: str, history: list[Turn],
                        options: dict[str, Any], model: str, drafts: bool) -> AsyncIterator[str]:
    """SSE events of one answer: the engine runs in a thread; events cross over through a queue,
    with keep-alive comments while a slow LLM thinks."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        try:
            for event in engine.stream(question, history, **options):
                if stop.is_set():  # the client left: stop at the next event
                    break
                put("event", event)
        except AssistantError as exc:
            put("error", exc)
        except Exception as exc:
            log.exception("answering failed")
            put("error", AssistantError(f"internal error: {type(exc).__name__}", status=500))
        finally:
            put("end", None)

    async with limiter.slot():
        threading.Thread(target=produce, name="api-stream", daemon=True).start()
        tracker = DeltaTracker(drafts)
        try:
            yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
            while True:
                try:
                    kind, value = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if kind == "end":
                    break
                if kind == "error":
                    exc: AssistantError = value
                    yield f"data: {json.dumps(error_body(str(exc), exc.status, hint=exc.hint))}\n\n"
                    break
                if isinstance(value, Answer):
                    delta = tracker.final(value.answer)
                    if delta:
                        yield _chunk(cid, created, model, {"content": delta})
                    yield _chunk(cid, created, model, {}, "stop", answer=value.answer,
                                 **answer_fields(value))
                elif delta := tracker.draft(value):
                    yield _chunk(cid, created, model, {"content": delta})
            yield "data: [DONE]\n\n"
        finally:
            stop.set()


# --- routes -----------------------------------------------------------------------------------
STREAM_DOC = ("With `stream: true`, a `text/event-stream` of `data: {chat.completion.chunk}` events "
              "ending with `data: [DONE]`; the last chunk carries the answer's records.")


def install_openapi(app: FastAPI) -> None:
    """The OpenAPI document also describes a streamed answer's chunks (ChatCompletionChunk), which
    no route returns as JSON."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(chunk.pop("$defs", {}))
            schemas["ChatCompletionChunk"] = chunk
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_router(holder: EngineHolder, settings: Settings, limiter: Limiter | None = None
                 ) -> APIRouter:
    router = APIRouter(dependencies=[Depends(make_auth(settings))])
    limiter = limiter or Limiter(settings.concurrency, settings.queue_size)
    feedback = FeedbackStore(settings)

    @router.get("/health")
    def health() -> dict[str, Any]:
        if not holder.ready:
            status = "failed" if holder.error else "starting"
            return {"status": status, "detail": holder.describe(), "papers": None, "chunks": None,
                    "mode": None}
        engine = holder.get()
        info = engine.status()
        return {"status": "ok", "papers": info["papers"], "chunks": info["chunks"],
                "mode": info["answer_mode"], "mode_label": info["mode_label"],
                "embedding_model": info["embedding_model"], "llm_model": info["llm_model"]}

    @router.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "paper-assistant"}]}

    @router.get("/v1/models/{model_id}")
    def model(model_id: str) -> dict[str, Any]:
        if model_id != MODEL_ID:
            raise AssistantError(f"no model {model_id!r}; this server has {MODEL_ID!r}", status=404)
        return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "paper-assistant"}

    @router.post("/v1/chat/completions", response_model=None, responses={200: {
        "model": ChatCompletion, "description": STREAM_DOC,
        "content": {"text/event-stream": {
            "schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}}}})
    async def chat_completions(request: ChatRequest) -> Any:
        engine = holder.get()
        question, history = conversation(request)
        question = validate(settings, engine, question, history, request.mode)
        options = {"mode": request.mode, "k": request.k, "compare_titles": request.compare_titles}
        if request.stream:
            limiter.check()
            return StreamingResponse(
                stream_events(engine, limiter, question, history, options, request.model,
                              request.drafts),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        async with limiter.slot():
            answer: Answer = await run_in_threadpool(engine.ask, question, history, **options)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "finish_reason": "stop", "logprobs": None}],
            **answer_fields(answer),
        }

    async def _search(q: str, k: int | None) -> SearchRecord:
        engine = holder.get()
        async with limiter.slot():
            result = await run_in_threadpool(engine.search, q, k)
        return search_record(result)

    @router.get("/v1/search")
    async def search_get(q: str = Query(..., description="The query."),
                         k: int | None = Query(None, ge=1, le=50)) -> SearchRecord:
        return await _search(q, k)

    @router.post("/v1/search")
    async def search_post(request: SearchRequest) -> SearchRecord:
        return await _search(request.q, request.k)

    @router.post("/v1/feedback", status_code=201)
    async def post_feedback(request: FeedbackRequest) -> FeedbackCreated:
        """Thumbs up/down and flags on an answer, stored in the store directory; `assistant
        feedback export` turns the negative ones into evaluation questions."""
        item = await run_in_threadpool(lambda: feedback.add(**request.model_dump()))
        return FeedbackCreated(id=item.id, created=item.created)

    return router
