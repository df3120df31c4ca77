"""Driving kill_worker.py: start one warm process, fork an ingest per run, SIGKILL it on cue."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

WORKER = Path(__file__).with_name("kill_worker.py")


@dataclass
class Run:
    code: int  # -9: killed mid-run; 0: finished before the kill
    killed_at: float | None  # seconds after the child said `go`
    progress: int = 0  # batches the child reported written before it died
    lines: list[str] = field(default_factory=list)


class Zygote:
    def __init__(self, start_timeout: float = 180.0) -> None:
        project = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=project,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready", start_timeout)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"kill worker silent for {timeout:g}s") from None
        if line is None:
            raise AssertionError("kill worker exited")
        return line

    def _expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(max(deadline - time.monotonic(), 0.01))
            if line.startswith(prefix):
                return line

    def run(
        self, store: Path, corpus: Path, batch: int, kill_after: float | None, timeout: float = 120.0
    ) -> Run:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{store}\t{corpus}\t{batch}\n")
        self.proc.stdin.flush()
        pid = int(self._expect("go ", timeout).split()[1])
        started = time.perf_counter()
        killed_at = None
        if kill_after is not None:
            time.sleep(max(kill_after - (time.perf_counter() - started), 0))
            killed_at = time.perf_counter() - started
            with contextlib.suppress(ProcessLookupError):  # already finished and reaped
                os.kill(pid, signal.SIGKILL)
        result = Run(code=0, killed_at=killed_at)
        while True:
            line = self._next(timeout)
            result.lines.append(line)
            if line.startswith("progress"):
                result.progress += 1
            if line.startswith(f"exit {pid} "):
                result.code = int(line.split()[2])
                return result

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
