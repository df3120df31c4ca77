"""One scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks: real HTTP, so
the real `openai` client and the app's whole LLM path are exercised. Each request is answered by a
`Script` (request -> `Reply`): a reply text, an HTTP error, a delay, or one of the byte-level
`FAULTS` (a stream cut mid-answer, an HTML page, binary junk, keep-alive comments forever, ...).

    with FakeLLMServer(lambda request: Reply(text="Swin SMT reaches 91.04% [1].")) as server:
        settings = make_settings(..., openai_base_url=server.base_url)
    with FakeLLMServer.faulty("truncate") as server: ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What FakeLLMServer.faulty() answers when it answers at all.
ANSWER = "The segmentation model reached 91.0% Dice [1]. It was trained on a retinal cohort [1]."

# fault -> what it does (the reliability report's table uses these descriptions)
FAULTS: dict[str, str] = {
    "slow": "no byte for longer than the timeout",
    "http500": "HTTP 500 on every attempt",
    "http429": "HTTP 429 on every attempt",
    "retry_after": "HTTP 429 with Retry-After: 60",
    "http503_html": "HTTP 503 with an HTML error page",
    "html200": "HTTP 200 with an HTML page instead of a stream",
    "garbage": "HTTP 200 event stream of binary junk",
    "malformed": "events that are not JSON",
    "schema": "JSON events without choices",
    "error_event": "an error event in the middle of the stream",
    "truncate": "connection cut after half the answer (no finish, no [DONE])",
    "stall": "first tokens, then silence beyond the timeout",
    "drip": "one token every 0.4 s, forever",
    "comments": "SSE keep-alive comments only, forever",
    "drop": "connection closed without a response",
    "reset": "connection reset (RST) on accept",
}


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the first byte (cut short when the server closes)
    fault: str | None = None  # one of FAULTS instead of a well-formed answer
    chunk_chars: int = 8


Script = Callable[[dict[str, Any]], Reply]


def closed_port() -> int:
    """A port nothing listens on (bound, then released): an endpoint that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompt_text(request: dict[str, Any]) -> str:
    """All message contents of a request, for scripts that react to what they were sent."""
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))


class FakeLLMServer:
    def __init__(self, script: Script, model: str = "fake-model") -> None:
        if not callable(script):
            raise TypeError("script must be a function of the request returning a Reply")
        self.script = script
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    server._json(self, 200, {"object": "list", "data": [
                        {"id": server.model, "object": "model", "owned_by": "fake"}]})
                elif self.path.endswith("/health"):
                    server._json(self, 200, {"status": "ok"})
                else:
                    server._json(self, 404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    server._answer(self, server.script(body), bool(body.get("stream")))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @classmethod
    def faulty(cls, fault: str, *, delay: float = 30.0) -> FakeLLMServer:
        """A server that misbehaves the same way on every request (`ok`: answers ANSWER);
        `delay` is how long `slow` and `stall` stay silent."""
        if fault not in FAULTS and fault != "ok":
            raise ValueError(fault)
        reply = Reply(text=ANSWER, chunk_chars=12, fault=None if fault == "ok" else fault,
                      delay=delay if fault in ("slow", "stall") else 0.0)
        return cls(lambda _request: reply)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()  # ends the waits of requests still being answered
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- answering ---------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, reply: Reply, stream: bool) -> None:
        # `stall` spends its delay after the first tokens; everything else before the first byte.
        if reply.fault != "stall" and reply.delay and self._stop.wait(reply.delay):
            return
        if reply.fault not in (None, "slow"):
            self._fault(h, reply)
        elif reply.status != 200:
            self._json(h, reply.status, {"error": {"message": f"scripted {reply.status}",
                                                   "type": "server_error"}})
        elif stream:
            self._stream(h, reply)
        else:
            self._json(h, 200, _completion(self.model, reply.text))

    def _fault(self, h: BaseHTTPRequestHandler, reply: Reply) -> None:
        f, w = reply.fault, h.wfile
        if f == "http500":
            return self._json(h, 500, {"error": {"message": "boom", "type": "server_error"}})
        if f == "http429":
            return self._json(h, 429, {"error": {"message": "slow down", "type": "rate_limit"}})
        if f == "retry_after":
            return self._json(h, 429, {"error": {"message": "slow down"}}, {"Retry-After": "60"})
        if f in ("http503_html", "html200"):
            page = (b"<html><body><h1>503 Service Unavailable</h1></body></html>" if f == "http503_html"
                    else b"<!doctype html><html><body>Welcome to nginx!</body></html>")
            self._headers(h, 503 if f == "http503_html" else 200, "text/html", length=len(page))
            return w.write(page)
        if f in ("drop", "reset"):
            if f == "reset":
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
            h.close_connection = True
            h.connection.close()
            return None
        self._headers(h, 200, "text/event-stream")
        if f == "garbage":
            w.write(b"data: \x00\xff\xfe\x9c junk \x01\x02\n\n\xff\xff\n\ndata: [DONE]\n\n")
        elif f == "malformed":
            w.write(b"data: {not json\n\ndata: [DONE]\n\n")
        elif f == "schema":
            w.write(b'data: {"unexpected": true}\n\ndata: {"choices": "nope"}\n\ndata: [DONE]\n\n')
        elif f == "error_event":
            w.write(self._event("The model "))
            # The error text is the server's: it must not reach the user as markup.
            w.write(b'data: {"error": {"message": "upstream overloaded, see https://evil.example/s '
                    b'![x](https://evil.example/p.png) <b>now</b>", "type": "server_error"}}\n\n')
        elif f == "truncate":
            w.write(self._event(reply.text[: len(reply.text) // 2]))
            w.flush()
        elif f == "stall":
            w.write(self._event(reply.text[:17]))
            w.flush()
            self._stop.wait(reply.delay)
        elif f in ("drip", "comments"):
            pieces = [self._event(c) for c in (reply.text + " ") * 50] if f == "drip" else [
                b": keep-alive\n\n"] * 200
            for piece in pieces:
                w.write(piece)
                w.flush()
                if self._stop.wait(0.4 if f == "drip" else 0.3):
                    break
        else:
            raise ValueError(f"unknown fault {f!r}")
        return None

    def _stream(self, h: BaseHTTPRequestHandler, reply: Reply) -> None:
        self._headers(h, 200, "text/event-stream")
        text = reply.text
        for i in range(0, len(text), reply.chunk_chars):
            h.wfile.write(self._event(text[i : i + reply.chunk_chars]))
            h.wfile.flush()
        h.wfile.write(self._event(None, finish="stop") + b"data: [DONE]\n\n")

    def _event(self, text: str | None, finish: str | None = None) -> bytes:
        delta = {"content": text} if text is not None else {}
        event = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(event)}\n\n".encode()

    @staticmethod
    def _headers(h: BaseHTTPRequestHandler, status: int, ctype: str,
                 extra: dict[str, str] | None = None, length: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        if length is not None:
            h.send_header("Content-Length", str(length))
        else:  # a stream: its end is the connection's end
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()

    def _json(self, h: BaseHTTPRequestHandler, status: int, payload: Any,
              extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._headers(h, status, "application/json", extra, len(data))
        h.wfile.write(data)


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
