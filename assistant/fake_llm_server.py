"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks: real HTTP, so
the real `openai` client and the app's whole LLM path are exercised. Each request is answered by a
`Script`: a reply text, an HTTP error, a delay, a malformed stream, or a closed connection.

    with FakeLLMServer(lambda request: Reply(text="Swin SMT reaches 91.04% [1].")) as server:
        settings = Settings(openai_base_url=server.base_url, ...)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the first byte
    malformed: bool = False  # a stream whose events are not JSON
    drop: bool = False  # close the connection without answering
    chunk_chars: int = 8


Script = Callable[[dict[str, Any]], Reply]


class FakeLLMServer:
    def __init__(self, script: Script, model: str = "fake-model") -> None:
        self.script = script
        self.model = model
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [
                        {"id": server.model, "object": "model", "owned_by": "fake"}]})
                elif self.path.endswith("/health"):
                    self._json(200, {"status": "ok"})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                reply = server.script(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": f"scripted {reply.status}",
                                                        "type": "server_error"}})
                    return
                if body.get("stream"):
                    self._stream(reply)
                else:
                    self._json(200, _completion(server.model, reply.text))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if reply.malformed:
                    self.wfile.write(b"data: {not json\n\n")
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                text = reply.text
                for i in range(0, len(text), reply.chunk_chars):
                    event = _chunk(server.model, text[i : i + reply.chunk_chars])
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                done = _chunk(server.model, None, finish="stop")
                self.wfile.write(f"data: {json.dumps(done)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _chunk(model: str, text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def prompt_text(request: dict[str, Any]) -> str:
    """All message contents of a request, for scripts that react to what they were sent."""
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
