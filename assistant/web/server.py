"""One process, one app: the web UI (Gradio Blocks mounted at `/`) and the HTTP API (`/v1/...`,
`/health`) on a single FastAPI app served by uvicorn, sharing one Engine (models load once).

On an empty store with `auto_ingest`, the app starts serving at once and builds the index in the
background; the UI shows the progress and the API answers 503 until the engine is ready.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant import tracing
from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.web.api import Limiter, build_router, error_body, install_error_handlers, install_openapi
from assistant.web.holder import EngineHolder
from assistant.web.mcp import build_mcp, mount_mcp
from assistant.web.ui import CSS, HEAD, build_ui, theme

log = logging.getLogger(__name__)


# --- request body limit ------------------------------------------------------------------------
class BodyTooLarge(HTTPException):
    # fastapi's HTTPException: FastAPI re-raises it while reading a body instead of turning it into 400.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes "
                              "(setting ASSISTANT_MAX_BODY_BYTES)")


class BodyLimitMiddleware:
    """Reject bodies over the limit: by Content-Length up front, and by counting the bytes actually
    received (chunked uploads, lying headers). Pure ASGI, so streaming responses pass untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > self.max_bytes:
                await self._reject(scope, receive, send, 413 if declared > 0 else 400)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send, 413)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        message = (BodyTooLarge(self.max_bytes).detail if status == 413
                   else "invalid Content-Length header")
        response = JSONResponse(error_body(message, status), status_code=status,
                                headers={"Connection": "close"})
        await response(scope, receive, send)


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
    holder = EngineHolder(settings, engine) if engine is not None else EngineHolder.start(settings)
    if not holder.ready:
        print(f"First start: building the index of {len(settings.corpus_paths)} corpus "
              "file(s) in the background; the page shows the progress.", flush=True)
    limiter = Limiter(settings.concurrency, settings.queue_size)  # API and MCP calls together
    mcp = build_mcp(holder, settings, limiter) if settings.mcp_http else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.session_manager.run())
            yield

    app = FastAPI(title="Paper assistant", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.holder = holder
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(build_router(holder, settings, limiter))
    if mcp is not None:
        mount_mcp(app, mcp, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    blocks = build_ui(holder, settings)
    blocks.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    gr.mount_gradio_app(
        app, blocks, path="/", auth=auth, auth_message="Paper assistant: please sign in.",
        server_name=settings.host, server_port=settings.port, show_error=True,
        max_file_size=settings.max_body_bytes, footer_links=["api"], run_history=False,
        ssr_mode=False, mcp_server=False, theme=theme(), css=CSS, head=HEAD,
    )
    return app


def display_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/"


def serve(settings: Settings) -> None:
    """Serve the UI and the API until interrupted (`assistant serve`, `python app.py`)."""
    _quiet_logs()
    app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the app is reachable from other machines%s", settings.host,
                    "" if settings.ui_auth or settings.api_token else " and has no authentication")
    print(f"Paper assistant: {display_url(settings)}  (API: {display_url(settings)}v1, "
          "Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                timeout_graceful_shutdown=5)


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
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port,
                                                    log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=1))
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
