"""One process, one app: the web UI (Gradio Blocks mounted at `/`) and the HTTP API (`/v1/...`,
`/health`) on a single FastAPI app served by uvicorn, sharing one Engine (models load once).

On an empty store with `auto_ingest`, the app starts serving at once and builds the index in the
background; the UI shows the progress and the API answers 503 until the engine is ready.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant import tracing
from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.web.api import (
    ApiAuth,
    Limiter,
    build_router,
    error_body,
    install_error_handlers,
    install_openapi,
)
from assistant.web.holder import EngineHolder
from assistant.web.mcp import MCP_PATH, build_mcp, mount_mcp
from assistant.web.ui import CSS, HEAD, build_ui, theme

log = logging.getLogger(__name__)

DOCS_ASSETS = "/api/docs/assets"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def is_api_path(path: str) -> bool:
    """The API's paths, MCP's included (the rest belongs to the UI mounted at `/`)."""
    return (path in ("/health", "/v1", MCP_PATH)
            or path.startswith(("/v1/", "/api/", MCP_PATH + "/")))


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, message: str, *,
                  hint: str | None = None, headers: dict[str, str] | None = None) -> None:
    response = JSONResponse(error_body(message, status, hint=hint), status_code=status,
                            headers=headers)
    await response(scope, receive, send)


# --- request bodies: size and time ---------------------------------------------------------------
class BodyTooLarge(HTTPException):
    # fastapi's HTTPException: FastAPI re-raises it while reading a body instead of turning it into 400.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes "
                              "(setting ASSISTANT_MAX_BODY_BYTES)")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} seconds "
                              "(setting ASSISTANT_BODY_TIMEOUT)", headers={"Connection": "close"})


UPLOAD_PATH = "/gradio_api/upload"


class RequestBodyMiddleware:
    """Reject bodies over the size limit: by Content-Length up front, and by counting the bytes
    actually received (chunked uploads, lying headers); and cut off a body that does not arrive
    within the timeout (uvicorn has no such limit: a client announcing 50 kB and sending a byte
    would hold its connection forever). Pure ASGI, so streaming responses pass untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float, upload_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        # Gradio's upload route takes the corpus files of the Corpus tab: their own, larger limit.
        self.upload_bytes = max(upload_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope.get("path", "").startswith(UPLOAD_PATH) else self.max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > limit:
                await self._reject(scope, receive, send, 413 if declared > 0 else 400)
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        received = 0
        body_done = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body: waiting for a disconnect is not a slow upload
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send, 413)
        except BodyTimeout:
            if not started:
                await self._reject(scope, receive, send, 408)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        message = {413: BodyTooLarge(self.max_bytes).detail,
                   408: BodyTimeout(self.timeout).detail}.get(status, "invalid Content-Length header")
        await _answer(scope, receive, send, status, message, headers={"Connection": "close"})


# --- browser headers and hosts -------------------------------------------------------------------
class SecurityHeadersMiddleware:
    """Headers every response carries (unless it set its own): the Content-Security-Policy,
    X-Frame-Options, no MIME sniffing, no referrer."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items() if v]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def security_headers(settings: Settings) -> dict[str, str]:
    return {"Content-Security-Policy": settings.content_security_policy,
            "X-Frame-Options": settings.frame_options,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def allowed_hosts(settings: Settings) -> list[str]:
    """Host header values the app answers: the loopback names, the bind host and
    `allowed_hosts`; any, for a wildcard bind with nothing configured (names unknown)."""
    extra = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in settings.allowed_hosts]
    if "*" in extra or (settings.host in WILDCARD_HOSTS and not extra):
        return ["*"]
    hosts = [*LOOPBACK_HOSTS, *extra]
    if settings.host not in WILDCARD_HOSTS:
        hosts.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    return list(dict.fromkeys(h.lower() for h in hosts))


# --- failed logins and bad credentials -----------------------------------------------------------
@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)
    pending: int = 0
    locked_until: float = 0.0


class AuthThrottle:
    """Failed logins and bad API credentials, per client address. Each failure is answered after
    `auth_failure_delay`; `auth_max_failures` within `auth_failure_window` lock the client out for
    `auth_lockout` (429 on the login and the API, even with the right credentials). Attempts in
    flight count toward the limit too, so parallel guesses cannot outrun it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = settings.auth_failure_delay
        self.max_failures = settings.auth_max_failures
        self.window = settings.auth_failure_window
        self.lockout = settings.auth_lockout
        self.capacity = settings.auth_tracked_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _record(self, client: str) -> _Client:
        record = self._clients.get(client)
        if record is None:
            record = self._clients[client] = _Client()
        self._clients.move_to_end(client)
        while len(self._clients) > self.capacity:
            self._clients.popitem(last=False)
        return record

    def admit(self, client: str) -> float:
        """0 when an attempt may go ahead (then call done()), else the seconds to wait."""
        now = self.clock()
        record = self._record(client)
        if record.locked_until > now:
            return record.locked_until - now
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        if len(record.failures) + record.pending >= self.max_failures:
            return self.delay + 1.0  # the attempts in flight decide; ask again after them
        record.pending += 1
        return 0.0

    def done(self, client: str, *, failed: bool) -> None:
        now = self.clock()
        record = self._record(client)
        record.pending = max(record.pending - 1, 0)
        if not failed:
            record.failures.clear()
            return
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.locked_until = now + self.lockout
            record.failures.clear()

    async def pause(self) -> None:
        await asyncio.sleep(self.delay)


def credential_attempt(scope: Scope) -> str | None:
    """'login' for a sign-in to the UI, 'api' for an API request carrying credentials."""
    path = scope["path"]
    if scope["method"] == "POST" and path.rstrip("/") == "/login":
        return "login"
    if is_api_path(path) and any(k == b"authorization" for k, _ in scope["headers"]):
        return "api"
    return None


class AuthThrottleMiddleware:
    def __init__(self, app: ASGIApp, throttle: AuthThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = credential_attempt(scope) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.admit(client)
        if wait:
            await _answer(scope, receive, send, 429,
                          "too many failed sign-ins or bad credentials from this address",
                          hint="wait, then try again (settings ASSISTANT_AUTH_MAX_FAILURES, "
                               "ASSISTANT_AUTH_LOCKOUT)",
                          headers={"Retry-After": str(math.ceil(wait))})
            return
        failed = False

        async def watch(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                status = message["status"]
                failed = status == 401 or (kind == "login" and status >= 400)
                if failed:
                    await self.throttle.pause()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.throttle.done(client, failed=failed)


# --- the UI's own routes behind its login ----------------------------------------------------------
# What the login page itself needs before anyone signs in; everything else Gradio serves (its
# queue, heartbeats, files, uploads, API info) asks for a signed-in session.
UI_PUBLIC_PATHS = frozenset({
    "/", "/login", "/login/", "/logout", "/favicon.ico", "/robots.txt", "/manifest.json",
    "/theme.css", "/gradio_api/theme.css", "/gradio_api/login_check", "/gradio_api/login_check/",
})
UI_PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/gradio_api/static/")


class UiSession:
    """Whether a request carries a signed-in Gradio session: the cookie Gradio's /login sets,
    checked against the tokens of the Gradio app mounted at `/`."""

    def __init__(self) -> None:
        self.gradio: Any = None

    def bind(self, app: FastAPI) -> None:
        self.gradio = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "")

    def signed_in(self, request: Request) -> bool:
        gradio = self.gradio
        if gradio is None or not getattr(gradio, "auth", None):
            return False
        cookie = gradio.cookie_id
        token = (request.cookies.get(f"access-token-{cookie}")
                 or request.cookies.get(f"access-token-unsecure-{cookie}"))
        return token is not None and token in gradio.tokens


class UiSessionGate:
    """With UI auth on, Gradio's routes answer 401 until the client has signed in, except what
    the login page needs (some of Gradio's routes check nothing themselves)."""

    def __init__(self, app: ASGIApp, session: UiSession) -> None:
        self.app = app
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] in ("http", "websocket") and not is_api_path(path)
                and path not in UI_PUBLIC_PATHS and not path.startswith(UI_PUBLIC_PREFIXES)
                and not self.session.signed_in(Request(scope))):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _answer(scope, receive, send, 401, "not signed in",
                          hint="sign in on the app's page first")
            return
        await self.app(scope, receive, send)


# --- API methods and paths ----------------------------------------------------------------------
class ApiRouteGuard:
    """An API path asked with a method it does not have answers 405 (with Allow), and an unknown
    /v1 path the API's JSON 404, instead of falling through to the UI mounted at `/`."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's live list: routes added later count too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_api_path(scope["path"]):
            # Every route but the UI's catch-all mount at `/`.
            routes = [r for r in self.routes if not (isinstance(r, Mount) and r.path == "")]

            def served(method: str) -> bool:
                probe = {**scope, "method": method}
                return any(r.matches(probe)[0] is Match.FULL for r in routes)

            if not served(scope["method"]):
                allowed = [m for m in HTTP_METHODS if served(m)]
                if allowed:
                    await _answer(scope, receive, send, 405,
                                  "this method is not allowed here",
                                  headers={"Allow": ", ".join(allowed)})
                    return
                if scope["path"].startswith("/v1"):
                    # The path is not echoed back: nothing the client sent comes back in errors.
                    await _answer(scope, receive, send, 404, "no such API path",
                                  hint="see /api/docs")
                    return
        await self.app(scope, receive, send)


# --- API docs ----------------------------------------------------------------------------------
def add_api_docs(app: FastAPI, settings: Settings, auth: ApiAuth, session: UiSession) -> None:
    """/api/openapi.json, and /api/docs with Swagger UI's files from the swagger-ui-bundle wheel
    (nothing from the internet); both need the API's credentials or a signed-in UI session."""

    async def allowed(request: Request) -> None:
        if not (auth.accepts(request) or session.signed_in(request)):
            raise auth.refusal()

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=[Depends(allowed)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    if not settings.api_docs:
        return
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(allowed)])
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/api/openapi.json", title="Paper assistant API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png")


# --- the app --------------------------------------------------------------------------------
def parse_ui_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise AssistantError("ASSISTANT_UI_AUTH must look like user:password")
    return user, password


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The FastAPI app: API routes first, then the Gradio UI mounted at `/`."""
    auth = parse_ui_auth(settings.ui_auth)
    tracing.configure()  # on only with the OTEL_* settings
    holder = (EngineHolder(settings, engine) if engine is not None
              else EngineHolder.start(settings, background_load=settings.background_load,
                                      launch=False))
    if holder.phase == "building the index":
        print(f"First start: building the index of {len(settings.corpus_paths)} corpus "
              "file(s) in the background; the page shows the progress.", flush=True)
    api_auth = ApiAuth(settings)  # the HTTP API's and MCP's credentials
    # API and MCP calls together.
    limiter = Limiter(settings.concurrency, settings.queue_size, settings.busy_retry_after)
    mcp = build_mcp(holder, settings, limiter) if settings.mcp_http else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.session_manager.run())
            yield

    # The docs and the schema are served by add_api_docs(), behind the API's credentials.
    app = FastAPI(title="Paper assistant", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.holder = holder
    app.state.settings = settings
    install_error_handlers(app)
    app.state.limiter = limiter
    install_openapi(app)  # app.openapi(): the routes' schema plus the streamed chunk's
    app.include_router(build_router(holder, settings, api_auth, limiter))
    if mcp is not None:
        mount_mcp(app, mcp, api_auth, settings)
    session = UiSession()
    add_api_docs(app, settings, api_auth, session)

    blocks = build_ui(holder, settings)
    blocks.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    gr.mount_gradio_app(
        app, blocks, path="/", auth=auth, auth_message="Paper assistant: please sign in.",
        server_name=settings.host, server_port=settings.port, show_error=True,
        max_file_size=settings.max_upload_bytes, footer_links=["api"], run_history=False,
        ssr_mode=False, mcp_server=False, theme=theme(), css=CSS, head=HEAD,
    )
    session.bind(app)

    # Middleware, innermost first (each add_middleware wraps the ones before it).
    app.add_middleware(ApiRouteGuard, routes=app.router.routes)
    if auth:
        app.add_middleware(UiSessionGate, session=session)
    if auth or settings.api_token:
        app.state.auth_throttle = AuthThrottle(settings)
        app.add_middleware(AuthThrottleMiddleware, throttle=app.state.auth_throttle)
    app.add_middleware(RequestBodyMiddleware, max_bytes=settings.max_body_bytes,
                       timeout=settings.body_timeout, upload_bytes=settings.max_upload_bytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))
    app.add_middleware(SecurityHeadersMiddleware, headers=security_headers(settings))
    # Only now: the model and index load would otherwise share the CPU (and the GIL) with building
    # the page, which people wait for first (at 100k papers: page 2 s later, answers no sooner).
    holder.launch()
    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own limits, from the settings."""
    return {"timeout_keep_alive": settings.keep_alive_timeout,
            "limit_concurrency": settings.max_connections, "proxy_headers": True,
            "forwarded_allow_ips": settings.forwarded_allow_ips}


def display_url(settings: Settings) -> str:
    host = settings.host
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/"


def serve(settings: Settings) -> None:
    """Serve the UI and the API until interrupted (`assistant serve`, `python app.py`)."""
    limit_malloc_arenas(settings.malloc_arena_max)  # before the threads that would make arenas
    _quiet_logs()
    app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the app is reachable from other machines%s", settings.host,
                    "" if settings.ui_auth or settings.api_token else " and has no authentication")
    if allowed_hosts(settings) == ["*"]:
        log.warning("any Host header is accepted: set ASSISTANT_ALLOWED_HOSTS to the names clients "
                    "use (see docs/SECURITY.md)")
    print(f"Paper assistant: {display_url(settings)}  (API: {display_url(settings)}v1, "
          "Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                timeout_graceful_shutdown=5, **uvicorn_options(settings))


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (mallopt M_ARENA_MAX); True when set. Written by hand: no
    library wraps mallopt, and the environment variable (MALLOC_ARENA_MAX) is read only when a
    process starts, which `python app.py` does not control."""
    if arenas <= 0 or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_arena_max = -8  # from glibc's malloc.h
    return bool(mallopt(m_arena_max, arenas))


class BackgroundServer:
    """The app served by uvicorn in a thread on a free local port: for tests and benchmarks.

        with BackgroundServer(create_app(settings, engine)) as server:
            httpx.get(server.url + "health")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        with socket.socket() as sock:
            sock.bind((host, 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/"
        # Open event streams (Gradio's queue) would hold a graceful shutdown; a second is plenty.
        settings: Settings | None = getattr(app.state, "settings", None)
        options = uvicorn_options(settings) if settings is not None else {}
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port,
                                                    log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=1, **options))
        self.thread = threading.Thread(target=self.server.run, name="app-server", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _quiet_logs() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Startup progress (ingest, model load) is worth seeing even without -v.
    for name in ("assistant.web.holder", "assistant.ingest"):
        logging.getLogger(name).setLevel(min(logging.getLogger(name).getEffectiveLevel(), logging.INFO))
    for noisy in ("httpx", "chromadb", "sentence_transformers", "bm25s", "urllib3", "gradio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
