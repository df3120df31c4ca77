"""Driving kill_worker.py: start one warm process, fork an ingest per run, SIGKILL it on cue; and
the campaign the suite (20 points) and bench/soak.py (more) run: kill, then check the next run."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            try:
                line = self._next(timeout)
            except AssertionError as exc:  # with what the child said (a hang prints its stack)
                raise AssertionError(
                    f"{exc} (pid {pid}, killed at {killed_at}); child {_proc_state(pid)}; "
                    f"worker {_proc_state(self.proc.pid)}; it said:\n"
                    + "\n".join(result.lines[-60:])) from None
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


def _proc_state(pid: int) -> str:
    """A process's state and where in the kernel it waits, for a failure message."""
    try:
        state = next(line.split(":", 1)[1].strip() for line in
                     Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
        return f"{state}, waiting in {wchan}"
    except (OSError, StopIteration):
        return "gone"


def _phase(run_code: int, settings: Any, start_generation: int) -> str:
    """Where a kill landed, read from the store it left."""
    from assistant.lexical import index_is_fresh
    from assistant.store import PaperStore

    if run_code == 0:
        return "after the ingest finished"
    store = PaperStore(settings)
    if store.dirty:
        return "while writing papers"
    if store.generation == start_generation:
        return "before the first write"
    if not index_is_fresh(settings, store):
        return "after the writes, before the lexical index"
    return "after the lexical index, before exit"


def kill_campaign(root: Path, points: int = 20, seed: int = 20, batch: int = 2) -> dict[str, Any]:
    """SIGKILL an ingest at `points` seeded moments, spread (stratified) over its measured duration,
    alternately on an empty store and on a copy of a store holding an older corpus (edits, papers
    to prune, new papers). After each kill, the next run (an ordinary ingest) must leave exactly
    the corpus: the same paper ids, chunk ids and chunk texts, nothing else, the lexical index in step."""
    from assistant.corpus import load_papers
    from assistant.ingest import ingest
    from assistant.store import PaperStore
    from assistant.testing import make_settings

    from .common import Snapshot, chunk_texts, differences, expected_after, expected_texts, papers, snapshot
    from .corpus_cases import listing

    def settings_for(store: Path) -> Any:
        return make_settings(store, embed_backend="hash", ingest_batch_papers=batch)

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    new = papers(random.Random(1), 60, "Kill")
    # The older corpus a store may already hold: 35 current papers, 15 edited ones, 10 since removed.
    edited = [(t, a[: len(a) // 2] + " Earlier version.") for t, a in new[35:50]]
    old = new[:35] + edited + papers(random.Random(2), 10, "Gone")
    corpus, old_corpus = root / "corpus.txt", root / "old.txt"
    corpus.write_text(listing(new), encoding="utf-8")
    old_corpus.write_text(listing(old), encoding="utf-8")
    accepted = load_papers([corpus]).papers
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    zygote = Zygote()
    try:
        # The older store, built once and copied for every "update" run; then calibration runs.
        base = root / "base-store"
        assert zygote.run(base, old_corpus, batch, None).code == 0
        base_generation = PaperStore(settings_for(base)).generation
        durations: dict[str, float] = {}
        for state in ("empty", "update"):
            for attempt in range(2):  # the faster of two: a busy machine only makes runs slower
                store = root / f"calibrate-{state}-{attempt}"
                if state == "update":
                    shutil.copytree(base, store)
                run = zygote.run(store, corpus, batch, None)
                assert run.code == 0, run.lines
                took = float(next(x for x in run.lines if x.startswith("done")).split()[1])
                durations[state] = min(durations.get(state, took), took)

        half = max(points // 2, 1)
        for i in range(points):
            state = ("empty", "update")[i % 2]
            kill_after = (i // 2 + rng.random()) / half * durations[state]  # stratified
            store = root / f"kill-{i}"
            if state == "update":
                shutil.copytree(base, store)
            settings = settings_for(store)
            run = zygote.run(store, corpus, batch, kill_after)
            phase = _phase(run.code, settings, 0 if state == "empty" else base_generation)
            done = [x for x in run.lines if x.startswith("done")]
            if done:  # finished before the kill: the machine got faster; aim the next points better
                durations[state] = min(durations[state], float(done[0].split()[1]))
            at_kill = PaperStore(settings).count_papers()

            started = time.perf_counter()
            summary = ingest(settings, [corpus], prune=True, progress=False)  # the next run
            resume = time.perf_counter() - started
            want = expected_after(Snapshot({}, {}, frozenset(), False, True), accepted, settings)
            got = snapshot(settings)
            problems = differences(got, want)
            if chunk_texts(settings) != expected_texts(accepted, settings):
                problems.append("chunk texts differ from the corpus")
            if (summary.papers_total, summary.chunks_total) != (len(want.papers), want.n_chunks):
                problems.append("the next run's summary disagrees with the corpus")
            rows.append(
                {
                    "point": i,
                    "start": state,
                    "kill_after_s": round(run.killed_at or 0, 3),
                    "phase": phase,
                    "batches_written_before_kill": run.progress,
                    "papers_at_kill": at_kill,
                    "next_run_s": round(resume, 2),
                    "papers": len(got.papers),
                    "chunks": got.n_chunks,
                    "problems": problems,
                }
            )
            if problems:
                failures.append(f"point {i} ({state}, {phase}): {problems}")
            if store.exists():  # keep the disk bounded on long soaks
                shutil.rmtree(store, ignore_errors=True)
    finally:
        zygote.close()
    return {
        "seed": seed,
        "points": points,
        "papers": len(accepted),
        "batch_papers": batch,
        "chunks": rows[0]["chunks"] if rows else 0,
        "durations_s": {k: round(v, 3) for k, v in durations.items()},
        "phases": dict(Counter(r["phase"] for r in rows)),
        "rows": rows,
        "failures": failures,
    }
