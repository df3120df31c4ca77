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

Corpus text is data: titles, passages and search results in the JSON fields are the abstracts' raw
text, markup included, for the client to escape (docs/SECURITY.md); only the answer text is
sanitised. Answers are computed in worker threads under the Limiter: a slot is freed when the work
ends, not when the response does, so a client that drops a stream cannot start more work.
"""

# No `from __future__ import annotations` here: the routes' request models are built per server
# (its limits, its answer modes) and FastAPI must see their types, not names.
import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.conversation import Turn
from assistant.engine import Answer, Engine, clean_question
from assistant.errors import AssistantError
from assistant.export import EXPORT_FORMATS, EXTENSIONS, MEDIA_TYPES, export_answer
from assistant.feedback import FLAGS, FeedbackStore
from assistant.filters import Filters
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
T = TypeVar("T")

MODEL_ID = "paper-assistant"
KEEPALIVE_SECONDS = 10.0
CHECKED_RULE = "\n\n---\n\n**Checked answer** (the draft above was corrected):\n\n"
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    405: "method_not_allowed", 408: "request_timeout", 409: "conflict_error",
    413: "request_too_large", 429: "rate_limit_error", 503: "service_unavailable",
    500: "server_error",
}


# --- errors -----------------------------------------------------------------------------------
class Busy(AssistantError):
    """More requests than the limits allow (HTTP 429); `retry_after` seconds go in Retry-After."""

    def __init__(self, message: str, *, hint: str, retry_after: int) -> None:
        super().__init__(message, hint=hint, status=429)
        self.retry_after = retry_after


def error_body(message: str, status: int, *, hint: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": ERROR_TYPES.get(status, "api_error"),
                             "param": None, "code": code or str(status)}
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(exc: AssistantError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
    return JSONResponse(error_body(str(exc), exc.status, hint=exc.hint), status_code=exc.status,
                        headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every API failure is OpenAI-shaped JSON: {"error": {"message", "type", "code"}}."""

    @app.exception_handler(AssistantError)
    async def assistant_error(_: Request, exc: AssistantError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # 400 as OpenAI answers (and as the schema documents), not FastAPI's 422.
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


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str
    hint: str | None = Field(None, description="What to do about it, when there is something.")


class ErrorBody(BaseModel):
    """Every API error, in OpenAI's shape."""

    error: ErrorDetail


def _error_doc(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description, **extra}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("Invalid request: malformed JSON, a value outside the schema, or a question "
                    "the assistant cannot take; the message says which."),
    401: _error_doc("Missing or invalid credentials (ASSISTANT_API_TOKEN, or ASSISTANT_UI_AUTH "
                    "as HTTP Basic when no token is set)."),
    408: _error_doc("The request body did not arrive within ASSISTANT_BODY_TIMEOUT seconds."),
    413: _error_doc("The request body is larger than ASSISTANT_MAX_BODY_BYTES."),
    429: _error_doc(
        "Too many requests: the answer queue is full, or this client sent too many bad "
        "credentials.",
        headers={"Retry-After": {"description": "Seconds to wait before trying again.",
                                 "schema": {"type": "integer"}}}),
    503: _error_doc("The assistant is starting, or the store is unavailable."),
    "4XX": _error_doc("Any other client error (404, 405, ...), in the same shape."),
}


# --- auth -------------------------------------------------------------------------------------
class _DeclaredBasic(HTTPBasic):
    """HTTP Basic as the OpenAPI schema declares it; ApiAuth checks the header itself (UTF-8
    passwords included)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


BEARER = HTTPBearer(auto_error=False, description="ASSISTANT_API_TOKEN")
BASIC = _DeclaredBasic(description="The UI's user:password (ASSISTANT_UI_AUTH), accepted only "
                                   "while no ASSISTANT_API_TOKEN is set.")


class ApiAuth:
    """Who may call the API. With `api_token`, only `Authorization: Bearer <token>`. With only
    `ui_auth`, HTTP Basic with the UI's user:password, so that protecting the UI never leaves the
    same data open next door. With neither, anyone."""

    def __init__(self, settings: Settings) -> None:
        self.token = settings.api_token.get_secret_value() if settings.api_token else None
        self.basic = None if self.token else (settings.ui_auth or None)

    @property
    def required(self) -> bool:
        return bool(self.token or self.basic)

    def accepts(self, request: Request) -> bool:
        if not self.required:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if self.token:
            return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(),
                                                                      self.token.encode())
        assert self.basic is not None
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(decoded.encode(), self.basic.encode())

    def refusal(self) -> StarletteHTTPException:
        how = ("an `Authorization: Bearer <ASSISTANT_API_TOKEN>` header" if self.token
               else "HTTP Basic authentication with the UI's user:password")
        return StarletteHTTPException(401, f"missing or invalid credentials: send {how}",
                                      headers={"WWW-Authenticate": "Bearer" if self.token
                                               else 'Basic realm="paper-assistant"'})

    def dependency(self) -> Callable[..., Awaitable[None]]:
        """The FastAPI dependency; it declares the accepted scheme in the OpenAPI schema. Async:
        a header check needs no worker thread."""
        if self.token:
            async def bearer(request: Request, _: Annotated[Any, Security(BEARER)] = None) -> None:
                if not self.accepts(request):
                    raise self.refusal()

            return bearer
        if self.basic:
            async def basic(request: Request, _: Annotated[Any, Security(BASIC)] = None) -> None:
                if not self.accepts(request):
                    raise self.refusal()

            return basic

        async def open_to_all() -> None:
            return None

        return open_to_all


# --- concurrency ------------------------------------------------------------------------------
def _in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
        loop.call_soon_threadsafe(fn, *args)


class Limiter:
    """At most `concurrency` answers computed at once, `queue_size` more requests waiting; beyond
    that, 429 with Retry-After. A slot belongs to the worker thread computing the answer and is
    freed when that work ends, not when the response ends: a client that drops its connection
    does not stop the thread, so freeing the slot then would let dropped streams pile up threads
    without limit."""

    def __init__(self, concurrency: int, queue_size: int, retry_after: int = 2) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.retry_after = retry_after
        self.active = 0
        self.waiting = 0
        self.peak = 0  # most answers computed at once since the start
        self._semaphore: asyncio.Semaphore | None = None

    def check(self) -> None:
        if self.active + self.waiting >= self.concurrency + self.queue_size:
            raise Busy(
                f"the server is busy ({self.active} requests being answered, {self.waiting} "
                "waiting)", hint="try again shortly (settings ASSISTANT_CONCURRENCY, "
                                 "ASSISTANT_QUEUE_SIZE)", retry_after=self.retry_after)

    async def acquire(self) -> None:
        """Wait for a slot (429 when the queue is full). Pair with release()."""
        self.check()
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        self.peak = max(self.peak, self.active)

    def release(self) -> None:
        assert self._semaphore is not None
        self.active -= 1
        self._semaphore.release()

    async def start(self, work: Callable[[], None], done: Callable[[], None] | None = None,
                    name: str = "api-answer") -> None:
        """Wait for a slot, then run `work` in a new thread that holds the slot until it returns.
        `done` runs on the event loop after the slot is freed, in the same callback, so whoever
        waits for it never sees the work end before the slot is free again."""
        await self.acquire()
        loop = asyncio.get_running_loop()

        def finish() -> None:
            self.release()
            if done is not None:
                done()

        def run() -> None:
            try:
                work()
            finally:
                _in_loop(loop, finish)

        try:
            threading.Thread(target=run, name=name, daemon=True).start()
        except BaseException:
            self.release()
            raise

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in a worker thread under a slot; the slot is freed when fn returns,
        even if the request awaiting it was cancelled meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = fn(*args, **kwargs)
            except BaseException as exc:
                outcome["error"] = exc

        def settle() -> None:
            if future.done():  # the caller went away
                return
            if "error" in outcome:
                future.set_exception(outcome["error"])
            else:
                future.set_result(outcome["result"])

        await self.start(work, settle)
        return await future


# --- request models ---------------------------------------------------------------------------
class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class OtherMessage(BaseModel):
    """A system, developer, assistant or tool message: assistant messages before the question are
    the conversation's history; the others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class UserMessageBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user"]


def _number(value: Any) -> Any:
    # Pydantic's lax mode would take "7" and true for an integer; the schema says a JSON number.
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


PaperCount = Annotated[int, Field(ge=1, le=50), BeforeValidator(_number)]


class ChatRequestBase(BaseModel):
    """OpenAI's chat request; unknown fields (temperature, top_p, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(MODEL_ID, max_length=200,
                       description="Accepted for compatibility and ignored: the answer always "
                                   f"comes from this server's assistant, named {MODEL_ID!r} in "
                                   "the response.")
    stream: StrictBool = False
    # Extensions (the openai client sends them with `extra_body={...}`).
    k: PaperCount | None = Field(None, description="Papers to retrieve.")
    compare_titles: list[str] = Field(default_factory=list, max_length=6,
                                      description="Titles of papers to compare side by side.")
    drafts: StrictBool = Field(True, description="Stream the LLM's draft before the checked "
                                                 "answer.")
    # Left out of the OpenAPI document (its rules live in Filters.from_json: a schema-valid object
    # could still be refused); documented in docs/LIBRARY.md.
    filters: SkipJsonSchema[dict[str, Any] | None] = Field(
        None, description="Restrict the answer to papers by metadata: {\"year\": \"2023-2025\", "
        "\"year_from\", \"year_to\", \"authors\": [...], \"venues\": [...], \"paper_ids\": [...], "
        "\"collection\"}. Absent: filter words in the question (\"since 2023\") apply; {} turns "
        "them off.")


def question_schema(limit: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": limit, "pattern": r"\w"}


# A character that is not blank, for JSON Schema (ECMA-262 \s) and Python's str.strip() alike.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"


class FeedbackRequest(BaseModel):
    """Feedback on one answer; the records are those the answer came with. The schema states the
    store's rules (FeedbackStore.add), so that a schema-valid request is accepted."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["rating"], "properties": {"rating": {"enum": ["up", "down"]}}},
        {"required": ["flags"], "properties": {"flags": {"minItems": 1}}},
        {"required": ["comment"], "properties": {"comment": {"pattern": NOT_BLANK}}},
    ]})
    question: str = Field(pattern=NOT_BLANK, description="The question that was answered.")
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

    @model_validator(mode="after")
    def says_something(self) -> "FeedbackRequest":
        if self.rating is None and not self.flags and not re.search(NOT_BLANK, self.comment):
            raise ValueError("feedback needs a rating, a flag or a comment")
        return self


def feedback_model(settings: Settings) -> type[FeedbackRequest]:
    """FeedbackRequest with this server's comment limit in the schema."""
    return create_model(
        "FeedbackRequest", __base__=FeedbackRequest,
        comment=(str, Field("", max_length=settings.feedback_max_chars,
                            description="Free text (setting ASSISTANT_FEEDBACK_MAX_CHARS).")))


class FeedbackCreated(BaseModel):
    object: Literal["feedback"] = "feedback"
    id: int
    created: float


def request_models(settings: Settings, modes: tuple[str, ...]) -> tuple[type[BaseModel],
                                                                         type[BaseModel]]:
    """The chat and search request models of this server: its question length, conversation
    length and answer modes are in the schema. The question rules (1 to max_question_chars
    characters, at least one word character) are checked by question_text() with clear messages,
    so the schema only describes them."""
    limit = settings.max_question_chars
    question = Annotated[str, WithJsonSchema(question_schema(limit))]
    part = create_model("UserTextPart", __base__=TextPart, text=(question, ...))
    user = create_model(
        "UserMessage", __base__=UserMessageBase,
        content=(question | Annotated[list[part], Field(min_length=1)], Field(  # type: ignore
            ..., description="A question; the last user message is the one answered. As parts, "
                             f"their joined text is limited to {limit:,} characters too.")))
    message = Annotated[user | OtherMessage, Field(discriminator="role")]  # type: ignore[operator]
    chat = create_model(
        "ChatRequest", __base__=ChatRequestBase,
        messages=(list[message], Field(  # type: ignore[valid-type]
            ..., min_length=1,
            description="The conversation: the last user message is the question, the user and "
                        "assistant messages before it the history; other roles, and messages "
                        "after the question, are ignored. Every message counts toward the limit "
                        "(ASSISTANT_MAX_TURNS).",
            json_schema_extra={"maxItems": settings.max_turns,
                               "contains": {"type": "object", "required": ["role"],
                                            "properties": {"role": {"const": "user"}}}})),
        mode=(Literal[modes] | None, Field(  # type: ignore[valid-type]
            None, description="Answer mode; `llm` only where the server has an LLM.")),
    )
    search = create_model(
        "SearchRequest",
        q=(question, Field(validation_alias=AliasChoices("q", "query"), description="The query.")),
        k=(PaperCount | None, Field(None, description="Papers to return.")),
        filters=(SkipJsonSchema[dict[str, Any] | None], Field(None)),
    )
    return chat, search


def question_text(raw: str, limit: int) -> str:
    """A question as the schema describes it (1 to `limit` characters, a word character among
    them), cleaned; anything else is a clear 400."""
    if len(raw) > limit:
        raise AssistantError(f"the question is {len(raw):,} characters long; the limit is {limit:,}",
                             hint="shorten it (setting ASSISTANT_MAX_QUESTION_CHARS)")
    return clean_question(raw, limit)


def _text(content: str | list[Any] | None, check: Callable[[str], str] | None = None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(check(part.text) if check else part.text for part in content)


def conversation(messages: list[Any], settings: Settings) -> tuple[str, list[Turn]]:
    """The last user message is the question; the user and assistant messages before it are the
    history. Every message counts toward max_turns."""
    if len(messages) > settings.max_turns:
        raise AssistantError(
            f"the conversation has {len(messages)} messages; the limit is {settings.max_turns}",
            hint="start a new conversation (setting ASSISTANT_MAX_TURNS)")
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise AssistantError("the messages hold no user message: the last user message is the "
                             "question")
    limit = settings.max_question_chars
    turns = []
    for message in messages[: users[-1] + 1]:
        if message.role == "user":
            parts = _text(message.content, lambda text: question_text(text, limit))
            turns.append(Turn("user", question_text(parts, limit)))
        elif message.role == "assistant":
            turns.append(Turn("assistant", _text(message.content)))
    return turns[-1].content, turns[:-1]


def validate(engine: Engine, mode: str | None) -> None:
    """Checks run before a stream starts, so that they answer 400 rather than an error event."""
    if mode == "llm" and engine.llm is None:
        raise AssistantError("mode 'llm' was asked for but no LLM is configured",
                             hint="leave mode out, or configure an LLM on the server")


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


async def start_answer(engine: Engine, limiter: Limiter, question: str, history: list[Turn],
                       options: dict[str, Any]) -> tuple[asyncio.Queue[tuple[str, Any]],
                                                         threading.Event]:
    """Wait for a Limiter slot, then compute the answer in a worker thread holding it; the
    engine's events cross over through the returned queue. Setting the returned event stops the
    worker at its next event."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: Any) -> None:
        _in_loop(loop, events.put_nowait, (kind, value))

    def produce() -> None:
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

    # "end" is queued with the slot's release: the stream ends only once its slot is free.
    await limiter.start(produce, lambda: events.put_nowait(("end", None)), "api-stream")
    return events, stop


async def stream_events(events: asyncio.Queue[tuple[str, Any]], stop: threading.Event,
                        drafts: bool) -> AsyncIterator[str]:
    """SSE events of one answer, with keep-alive comments while a slow LLM thinks."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    tracker = DeltaTracker(drafts)
    try:
        yield _chunk(cid, created, MODEL_ID, {"role": "assistant", "content": ""})
        while True:
            try:
                kind, value = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if kind == "end":
                break
            if kind == "error":  # then "end" follows (with the slot's release)
                exc: AssistantError = value
                yield f"data: {json.dumps(error_body(str(exc), exc.status, hint=exc.hint))}\n\n"
                continue
            if isinstance(value, Answer):
                delta = tracker.final(value.answer)
                if delta:
                    yield _chunk(cid, created, MODEL_ID, {"content": delta})
                yield _chunk(cid, created, MODEL_ID, {}, "stop", answer=value.answer,
                             **answer_fields(value))
            elif delta := tracker.draft(value):
                yield _chunk(cid, created, MODEL_ID, {"content": delta})
        yield "data: [DONE]\n\n"
    finally:
        stop.set()


# --- routes -----------------------------------------------------------------------------------
STREAM_DOC = ("With `stream: true`, a `text/event-stream` of `data: {chat.completion.chunk}` events "
              "(schema ChatCompletionChunk) ending with `data: [DONE]`; the last chunk carries the "
              "answer's records.")
CHAT_OK: dict[int | str, dict[str, Any]] = {200: {
    "model": ChatCompletion, "description": STREAM_DOC,
    # Each event as a client reads it (OpenAPI 3.2's itemSchema, which schemathesis checks every
    # event against; a stream-wide `schema` would describe the events as one array): a `data`
    # line holding a JSON ChatCompletionChunk (or an error), then `[DONE]`.
    "content": {"text/event-stream": {
        "itemSchema": {
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "string", "description": STREAM_DOC, "anyOf": [
                {"contentMediaType": "application/json", "contentSchema": {"anyOf": [
                    {"$ref": "#/components/schemas/ChatCompletionChunk"},
                    {"$ref": "#/components/schemas/ErrorBody"}]}},
                {"const": "[DONE]"}]},
                           "event": {"type": "string"}}}}}}}


def install_openapi(app: FastAPI) -> None:
    """The OpenAPI document also describes a streamed answer's chunks (ChatCompletionChunk), which
    no route returns as JSON. Served behind the API's credentials by server.add_api_docs()."""

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


def build_router(holder: EngineHolder, settings: Settings, auth: ApiAuth | None = None,
                 limiter: Limiter | None = None) -> APIRouter:
    auth = auth or ApiAuth(settings)
    limiter = limiter or Limiter(settings.concurrency, settings.queue_size,
                                 settings.busy_retry_after)
    feedback = FeedbackStore(settings)
    feedback_request = feedback_model(settings)
    has_llm = (holder.get().llm is not None if holder.ready
               else settings.llm_configured and settings.answer_mode != "extractive")
    chat_model, search_model = request_models(
        settings, ("llm", "extractive") if has_llm else ("extractive",))
    limit = settings.max_question_chars
    router = APIRouter(dependencies=[Depends(auth.dependency())], responses=ERROR_RESPONSES)

    async def engine_now() -> Engine:
        """The engine; a call made while it loads waits for it (start_wait) rather than fail."""
        if not holder.ready and holder.error is None:
            await run_in_threadpool(holder.wait, settings.start_wait)
        return holder.get()

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
            raise AssistantError(f"no such model; this server has {MODEL_ID!r}", status=404)
        return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "paper-assistant"}

    @router.post("/v1/chat/completions", response_model=None, responses=CHAT_OK)
    async def chat_completions(request: chat_model) -> Any:  # type: ignore[valid-type]
        engine = await engine_now()
        question, history = conversation(request.messages, settings)
        validate(engine, request.mode)
        options = {"mode": request.mode, "k": request.k, "compare_titles": request.compare_titles,
                   "filters": None if request.filters is None else Filters.from_json(request.filters)}
        if request.stream:
            events, stop = await start_answer(engine, limiter, question, history, options)
            return StreamingResponse(
                stream_events(events, stop, request.drafts), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        answer: Answer = await limiter.run(engine.ask, question, history, **options)
        return {
            # The model is always ours: the request's value is never echoed back.
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": MODEL_ID,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "finish_reason": "stop", "logprobs": None}],
            **answer_fields(answer),
        }

    async def _search(q: str, k: int | None, filters: dict[str, Any] | None = None) -> SearchRecord:
        engine = await engine_now()
        chosen = None if filters is None else Filters.from_json(filters)
        result = await limiter.run(engine.search, question_text(q, limit), k, filters=chosen)
        return search_record(result)

    @router.get("/v1/search")
    async def search_get(
            q: Annotated[str, Query(description="The query.",
                                    json_schema_extra=question_schema(limit))],
            k: Annotated[int | None, Query(ge=1, le=50, description="Papers to return.")] = None,
    ) -> SearchRecord:
        return await _search(q, k)

    @router.post("/v1/search")
    async def search_post(request: search_model) -> SearchRecord:  # type: ignore[valid-type]
        return await _search(request.q, request.k, request.filters)

    # Outside the OpenAPI document like `filters` (documented in docs/LIBRARY.md): the answer is
    # a file (BibTeX, RIS, CSL-JSON, Markdown or CSV), not JSON.
    @router.post("/v1/export", include_in_schema=False)
    async def export(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise AssistantError("the body must be a JSON object") from None
        if not isinstance(body, dict) or not isinstance(body.get("question"), str):
            raise AssistantError("expected {\"question\": \"...\", \"format\": \"bibtex\"}")
        fmt = str(body.get("format", "markdown")).lower()
        if fmt not in EXPORT_FORMATS:
            raise AssistantError(f"unknown format; choose one of {', '.join(EXPORT_FORMATS)}")
        chosen = None if body.get("filters") is None else Filters.from_json(body.get("filters"))
        engine = await engine_now()
        answer = await limiter.run(engine.ask, question_text(body["question"], limit), [],
                                   filters=chosen)
        text = await run_in_threadpool(export_answer, engine, answer, fmt,
                                       [str(c) for c in body.get("columns") or []][:8])
        return Response(text, media_type=MEDIA_TYPES[fmt], headers={
            "Content-Disposition": f'attachment; filename="answer{EXTENSIONS[fmt]}"'})

    @router.post("/v1/feedback", status_code=201)
    async def post_feedback(request: feedback_request) -> FeedbackCreated:  # type: ignore[valid-type]
        """Thumbs up/down and flags on an answer, stored in the store directory; `assistant
        feedback export` turns the negative ones into evaluation questions."""
        item = await run_in_threadpool(lambda: feedback.add(**request.model_dump()))
        return FeedbackCreated(id=item.id, created=item.created)

    return router
