"""Misbehaving OpenAI-compatible endpoints on 127.0.0.1, beyond what FakeLLMServer scripts: byte-level
faults (a stream cut mid-answer, an HTML page, binary junk, keep-alive comments forever, a stall
after the first token, Retry-After delays), plus a closed port for "down".

    with FaultLLMServer("truncate") as server:
        settings = make_settings(..., openai_base_url=server.base_url)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "The segmentation model reached 91.0% Dice [1]. It was trained on a retinal cohort [1]."

# fault -> what it does (the report's table uses these descriptions)
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


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    event = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fault",
        "choices": [
            {"index": 0, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}
        ],
    }
    return f"data: {json.dumps(event)}\n\n".encode()


class FaultLLMServer:
    def __init__(self, fault: str, *, delay: float = 30.0) -> None:
        if fault not in FAULTS and fault != "ok":
            raise ValueError(fault)
        self.fault = fault
        self.delay = delay
        self.requests = 0
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                server.requests += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    server._answer(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the server is closing; True when it is."""
        return self._stop.wait(seconds)

    def _headers(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        ctype: str,
        extra: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        if length is not None:
            h.send_header("Content-Length", str(length))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()

    def _json(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self._headers(h, status, "application/json", extra, len(data))
        h.wfile.write(data)

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        f = self.fault
        w = h.wfile
        if f == "slow":
            self._wait(self.delay)
            return self._stream(h, ANSWER)
        if f == "http500":
            return self._json(h, 500, {"error": {"message": "boom", "type": "server_error"}})
        if f == "http429":
            return self._json(h, 429, {"error": {"message": "slow down", "type": "rate_limit"}})
        if f == "retry_after":
            return self._json(h, 429, {"error": {"message": "slow down"}}, {"Retry-After": "60"})
        if f == "http503_html":
            page = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
            self._headers(h, 503, "text/html", length=len(page))
            return w.write(page)
        if f == "html200":
            page = b"<!doctype html><html><body>Welcome to nginx!</body></html>"
            self._headers(h, 200, "text/html", length=len(page))
            return w.write(page)
        if f in ("drop", "reset"):
            if f == "reset":
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
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
            w.write(_chunk("The model "))
            # The error text is the server's: it must not reach the user as markup.
            w.write(
                b'data: {"error": {"message": "upstream overloaded, see https://evil.example/s '
                b'![x](https://evil.example/p.png) <b>now</b>", "type": "server_error"}}\n\n'
            )
        elif f == "truncate":
            w.write(_chunk(ANSWER[: len(ANSWER) // 2]))
            w.flush()
        elif f == "stall":
            w.write(_chunk("The segmentation "))
            w.flush()
            self._wait(self.delay)
        elif f == "drip":
            for word in (ANSWER + " ") * 50:
                w.write(_chunk(word))
                w.flush()
                if self._wait(0.4):
                    break
        elif f == "comments":
            for _ in range(200):
                w.write(b": keep-alive\n\n")
                w.flush()
                if self._wait(0.3):
                    break
        elif f == "ok":
            return self._stream(h, ANSWER)
        return None

    def _stream(self, h: BaseHTTPRequestHandler, text: str) -> None:
        if h.command != "POST" or self._stop.is_set():
            return
        self._headers(h, 200, "text/event-stream")
        for i in range(0, len(text), 12):
            h.wfile.write(_chunk(text[i : i + 12]))
        h.wfile.write(_chunk(None, "stop") + b"data: [DONE]\n\n")

    def __enter__(self) -> FaultLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
