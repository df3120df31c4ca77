"""The app as users start it: `python app.py` on an existing store, in its own process.

Measures the time from launch to a UI that answers (`GET /` returns the page), the resident memory
after start, and the peak resident memory (VmHWM) after answering questions through the HTTP API
(`POST /v1/chat/completions`), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    free_port,
    http_ok,
    log,
    mb,
    proc_status,
    settings_env,
    stop,
    summary_ms,
    tree_rss,
    wait_answers_ready,
)


def _post_json(url: str, payload: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def run_app(store_dir: Path, questions: list[dict[str, Any]], *, log_path: Path,
            timeout: float = 300, extra_env: dict[str, Any] | None = None,
            root: Path = ROOT) -> dict[str, Any]:
    """`root`: the checkout whose app.py runs (another one for a before/after comparison)."""
    port = free_port()
    env = settings_env(store_dir, port=port, auto_ingest="false", **(extra_env or {}))
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([PYTHON, str(root / "app.py")], cwd=root, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            while not http_ok(f"{base}/", 2):
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited ({proc.returncode}): "
                                       f"{log_path.read_text()[-3000:]}")
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"app.py not ready in {timeout}s")
                time.sleep(0.1)
            ready_s = time.perf_counter() - started
            answers_s = wait_answers_ready(base, proc, started, timeout)
            rss_ready = tree_rss(proc.pid)
            times: list[float] = []
            errors = 0
            for row in questions:
                t = time.perf_counter()
                try:
                    body = _post_json(f"{base}/v1/chat/completions", {
                        "model": "paper-assistant",
                        "messages": [{"role": "user", "content": row["question"]}]})
                    if not body.get("choices"):
                        errors += 1
                except OSError:
                    errors += 1
                times.append(time.perf_counter() - t)
            status = proc_status(proc.pid)
            rss_after = tree_rss(proc.pid)
        finally:
            stop(proc)
    result = {
        "ready_s": round(ready_s, 2),
        "answers_ready_s": answers_s,
        "rss_ready_mb": mb(rss_ready),
        "rss_after_questions_mb": mb(rss_after),
        "peak_rss_mb": mb(status.get("VmHWM", 0)),
        # Of the RSS after the questions: the process's own memory, and mapped files (the
        # lexical index's segments: page cache that other processes share and the kernel reclaims).
        "rss_anon_after_mb": mb(status.get("RssAnon", 0)),
        "rss_file_after_mb": mb(status.get("RssFile", 0)),
        "questions": len(questions),
        "api_answer_ms": summary_ms(times),
        "api_errors": errors,
    }
    log(f"app on {store_dir.name}: page in {result['ready_s']}s, answers in "
        f"{result['answers_ready_s']}s, peak RSS {result['peak_rss_mb']} MB")
    return result
