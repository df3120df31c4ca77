"""A bounded load driver for the OpenAI-compatible API on loopback: N requests released at once
from N threads, each with a timeout; per-request latency, status and answer mode."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .common import percentiles


@dataclass
class Result:
    status: int
    seconds: float
    first_byte: float | None = None
    mode: str | None = None
    error: str | None = None
    answer_chars: int = 0


def _one(client: Any, url: str, body: dict[str, Any], start: threading.Barrier) -> Result:
    start.wait()
    began = time.perf_counter()
    try:
        if body.get("stream"):
            first = None
            final: dict[str, Any] = {}
            text = ""
            with client.stream("POST", url, json=body) as response:
                for line in response.iter_lines():
                    if first is None:
                        first = time.perf_counter() - began
                    if line.startswith("data: ") and line != "data: [DONE]":
                        event = json.loads(line[6:])
                        if "error" in event:
                            return Result(
                                500, time.perf_counter() - began, first, error=event["error"].get("message")
                            )
                        text += event["choices"][0]["delta"].get("content") or ""
                        final = event
                return Result(
                    response.status_code,
                    time.perf_counter() - began,
                    first,
                    final.get("mode"),
                    None if response.status_code == 200 else text[:200],
                    len(text),
                )
        response = client.post(url, json=body)
        data = response.json()
        if response.status_code != 200:
            return Result(
                response.status_code,
                time.perf_counter() - began,
                error=str(data.get("error", {}).get("message")),
            )
        return Result(
            200,
            time.perf_counter() - began,
            mode=data.get("mode"),
            answer_chars=len(data["choices"][0]["message"]["content"]),
        )
    except Exception as exc:  # a timeout or a dropped connection is a result, not a crash
        return Result(0, time.perf_counter() - began, error=f"{type(exc).__name__}: {exc}")


def fire(base_url: str, bodies: list[dict[str, Any]], timeout: float = 120.0) -> tuple[list[Result], float]:
    """All requests at once; returns the results and the wall time."""
    import httpx

    url = base_url.rstrip("/") + "/v1/chat/completions"
    start = threading.Barrier(len(bodies) + 1)
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    with httpx.Client(timeout=timeout, limits=limits) as client, ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(_one, client, url, body, start) for body in bodies]
        start.wait()
        began = time.perf_counter()
        results = [f.result(timeout=timeout + 30) for f in futures]
        wall = time.perf_counter() - began
    return results, wall


def summary(results: list[Result], wall: float) -> dict[str, Any]:
    ok = [r for r in results if r.status == 200 and not r.error]
    firsts = [r.first_byte for r in ok if r.first_byte is not None]
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "error_samples": sorted({f"{r.status}: {r.error}" for r in results if r not in ok})[:5],
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(ok) / wall, 2) if wall else 0.0,
        "latency_s": percentiles([r.seconds for r in ok]),
        "first_byte_s": percentiles(firsts) if firsts else None,
        "modes": {m: sum(1 for r in ok if r.mode == m) for m in {r.mode for r in ok}},
    }
