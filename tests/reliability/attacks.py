"""Two attacks of the outside probe (issue 17) as bounded drivers on loopback, all clients released
at once from one asyncio loop:

- dropped streams: ask for a streamed answer, read its first event, reset the connection;
- slow bodies: announce a 50 kB body, send one byte, wait for whatever the server does.

Plus samplers for what the server does meanwhile: its thread count and /health's latency."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Outcome:
    status: int | None = None  # None: no HTTP answer at all
    retry_after: str | None = None
    seconds: float = 0.0  # from sending to the end (reset, or closed by the server)
    closed_by_server: bool = False
    error: str | None = None


def _head(data: bytes) -> tuple[int, dict[str, str]]:
    lines = data.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def _request(port: int, path: str, body: bytes, length: int | None = None) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length if length is not None else len(body)}\r\n\r\n").encode() + body


async def _dropped_stream(port: int, body: bytes, start: asyncio.Event, timeout: float) -> Outcome:
    await start.wait()
    began = time.perf_counter()
    outcome = Outcome()
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(port, "/v1/chat/completions", body))
        await writer.drain()
        outcome.status, headers = _head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout))
        outcome.retry_after = headers.get("retry-after")
        if outcome.status == 200:
            await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout)  # the first event
    except Exception as exc:  # a refused or dropped connection is a result
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close with a reset, as the probe's clients did
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        outcome.seconds = time.perf_counter() - began
    return outcome


async def _slow_body(port: int, start: asyncio.Event, timeout: float) -> Outcome:
    await start.wait()
    began = time.perf_counter()
    outcome = Outcome()
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(port, "/v1/chat/completions", b"{", length=50_000))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout)  # until the server closes
        outcome.closed_by_server = True
        if answer:
            outcome.status, headers = _head(answer.split(b"\r\n\r\n")[0])
            outcome.retry_after = headers.get("retry-after")
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.transport.abort()
        outcome.seconds = time.perf_counter() - began
    return outcome


def _all_at_once(make: Any, n: int) -> tuple[list[Outcome], float]:
    async def main() -> tuple[list[Outcome], float]:
        start = asyncio.Event()
        tasks = [asyncio.create_task(make(start)) for _ in range(n)]
        await asyncio.sleep(0.1)  # every task waiting on the event
        began = time.perf_counter()
        start.set()
        results = await asyncio.gather(*tasks)
        return list(results), time.perf_counter() - began

    return asyncio.run(main())


def dropped_streams(port: int, n: int, question: str, timeout: float = 120.0) -> tuple[list[Outcome], float]:
    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": question}]}).encode()
    return _all_at_once(lambda start: _dropped_stream(port, body, start, timeout), n)


def slow_bodies(port: int, n: int, timeout: float = 120.0) -> tuple[list[Outcome], float]:
    return _all_at_once(lambda start: _slow_body(port, start, timeout), n)


@dataclass
class Sampler:
    """While running: the process's thread count every 50 ms, and /health's latency every 200 ms."""

    url: str
    threads: list[int] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    health_errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._count, daemon=True),
                         threading.Thread(target=self._probe, daemon=True)]

    def _count(self) -> None:
        while not self._stop.wait(0.05):
            self.threads.append(threading.active_count())

    def _probe(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(0.2):
                began = time.perf_counter()
                try:
                    client.get(self.url + "health").raise_for_status()
                    self.health.append(time.perf_counter() - began)
                except httpx.HTTPError:
                    self.health_errors += 1

    def __enter__(self) -> Sampler:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=35)
