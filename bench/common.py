"""Shared helpers of the benchmarks: isolated settings, percentiles, process memory, disk use,
loopback servers. Nothing here times anything by itself."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEV_QUESTIONS = ROOT / "tests" / "data" / "dev_questions.jsonl"
PYTHON = sys.executable

# Benchmarks never reach a hub, a real LLM, or the user's configuration.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(_var, None)
for _var in [v for v in os.environ if v.startswith("ASSISTANT_")]:
    os.environ.pop(_var)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.stats import percentile  # noqa: E402  (one rule for every percentile in the docs)


def make_settings(store_dir: Path, **overrides: Any) -> Any:
    """Settings isolated from the environment and any .env file (as in the tests; importing
    assistant.testing also registers the `hash` embedder the smoke runs use)."""
    from assistant.testing import make_settings as isolated

    return isolated(store_dir, **overrides)


def settings_env(store_dir: Path, **overrides: Any) -> dict[str, str]:
    """The environment of a subprocess that should see these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_STORE_DIR"] = str(store_dir)
    for key, value in overrides.items():
        env[f"ASSISTANT_{key.upper()}"] = str(value)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- statistics ---------------------------------------------------------------------------------
def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/mean/max of a list of durations, in milliseconds."""
    if not seconds:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "mean": 0.0, "max": 0.0}
    return {
        "n": len(seconds),
        "p50": round(percentile(seconds, 0.5) * 1e3, 2),
        "p95": round(percentile(seconds, 0.95) * 1e3, 2),
        "mean": round(statistics.fmean(seconds) * 1e3, 2),
        "max": round(max(seconds) * 1e3, 2),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# --- questions ----------------------------------------------------------------------------------
def load_dev_questions(limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    if limit is not None and limit < len(rows):
        # An even spread over the file, so every kind of question stays represented.
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def warmup_questions(limit: int = 30) -> list[dict[str, Any]]:
    """Questions that are not measured, to bring a store to its steady state first: the held-out
    set where it exists, else the bundled papers' titles."""
    path = ROOT / "tests" / "data" / "heldout_questions.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        return rows[:limit]
    from assistant.corpus import load_papers
    from assistant.resources import bundled_corpus

    return [{"question": p.title} for p in load_papers([bundled_corpus()]).papers[:limit]]


# --- memory and disk ----------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and RSS split into anonymous memory and mapped files (RssAnon,
    RssFile: the lexical index's memory-mapped segments, shared and reclaimable page cache) of a
    process in bytes, from /proc (psutil is not a dependency)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants, in bytes."""
    total = proc_status(pid).get("VmRSS", 0)
    for child in _children(pid):
        total += tree_rss(child)
    return total


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text().split()
            kids.extend(int(x) for x in text)
    except OSError:
        pass
    return kids


def self_rss() -> int:
    return proc_status(os.getpid()).get("VmRSS", 0)


def du(path: Path) -> int:
    """Bytes on disk under a path."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def mb(n: float) -> float:
    return round(n / 2**20, 1)


# --- loopback servers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except OSError:
        return False


def wait_answers_ready(base: str, proc: Any, started: float, timeout: float = 600) -> float:
    """Seconds from `started` until the app's /health says ok: the engine is loaded and a
    question gets an answer (the page is served earlier: the app loads its models in the
    background)."""
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return round(time.perf_counter() - started, 2)
        except (OSError, ValueError):
            pass
        if proc.poll() is not None or time.perf_counter() - started > timeout:
            raise RuntimeError(f"the app at {base} did not load its engine")
        time.sleep(0.1)


def chroma_executable() -> str | None:
    beside = Path(PYTHON).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `chroma run` server on 127.0.0.1 for the duration of the block; yields its URL and
    process."""
    exe = chroma_executable()
    if exe is None:
        raise RuntimeError("the `chroma` executable (chromadb's CLI) is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not http_ok(f"{url}/api/v2/heartbeat", 1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url, proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# --- machine and results ------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    mem_total = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import torch

        torch_threads = torch.get_num_threads()
        gpu = torch.cuda.is_available()
    except ImportError:
        torch_threads, gpu = 0, False
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch_threads,
        "gpu": gpu,
        "memory_gb": round(mem_total / 2**30, 1),
        "load_avg_1m": round(load[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, payload: dict[str, Any], directory: Path = RESULTS) -> Path:
    """Atomically write bench/results/<name>.json."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
