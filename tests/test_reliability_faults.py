"""Faults (issue 6): a misbehaving LLM endpoint, a Chroma server that goes away and comes back,
SIGKILL at 20 random points of an ingest, two ingests at once, and missing or damaged stores.

Timings are recorded for docs/RELIABILITY.md and asserted only loosely (no flaky timing asserts)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import StoreFactory, make_settings
from reliability.common import (
    Snapshot,
    differences,
    expected_after,
    papers,
    snapshot,
    write_result,
)
from reliability.corpus_cases import base_corpus, listing
from reliability.injection import inspect
from reliability.killing import kill_campaign

from assistant.conversation import Turn
from assistant.corpus import load_papers
from assistant.engine import OFFLINE_NOTE, Engine
from assistant.errors import AssistantError, StoreError
from assistant.ingest import ingest
from assistant.testing.fake_openai import FAULTS, FakeLLMServer, closed_port

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Base paper 0: Segmentation in clinical practice — what does it report?"
FOLLOW_UP = "and what accuracy did it reach?"
LLM_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def small_store(make_store: StoreFactory, tmp_path_factory: pytest.TempPathFactory):
    corpus = tmp_path_factory.mktemp("faults-corpus") / "base.txt"
    corpus.write_text(base_corpus(), encoding="utf-8")
    return make_store(corpus, name="faults"), corpus


# --- LLM endpoint faults ------------------------------------------------------------------------
def _ask_through(settings, base_url: str, history: list[Turn]) -> tuple[float, object]:
    engine = Engine(settings.model_copy(update={"openai_base_url": base_url, "llm_timeout": LLM_TIMEOUT}))
    assert engine.mode == "llm"
    started = time.perf_counter()
    answer = engine.ask(FOLLOW_UP if history else QUESTION, history)
    return time.perf_counter() - started, answer


@pytest.mark.slow
def test_every_llm_fault_gets_the_offline_answer_within_the_timeout(small_store):
    settings, _ = small_store
    baseline = Engine(settings).ask(QUESTION)
    history = [Turn("user", QUESTION), Turn("assistant", baseline.answer)]
    rows = []
    failures = []
    for fault in ["down", *FAULTS]:
        for follow_up in (False, True):
            if fault == "down":
                elapsed, answer = _ask_through(
                    settings, f"http://127.0.0.1:{closed_port()}/v1", history if follow_up else []
                )
                requests = None
            else:
                with FakeLLMServer.faulty(fault) as server:
                    elapsed, answer = _ask_through(settings, server.base_url, history if follow_up else [])
                    requests = len(server.requests)
            row = {
                "fault": fault,
                "what": FAULTS.get(fault, "nothing listening on the port"),
                "follow_up": follow_up,
                "seconds": round(elapsed, 2),
                "mode": answer.mode,
                "llm_error": answer.llm_error,
                "requests": requests,
            }
            rows.append(row)
            marked = OFFLINE_NOTE in answer.answer and "language model was unavailable" in answer.answer
            if answer.mode != "extractive" or not answer.llm_error or not marked or answer.abstained:
                failures.append(f"{fault} (follow-up={follow_up}): not the marked offline answer: {row}")
            if not answer.citations:
                failures.append(f"{fault}: the offline answer cites nothing")
            unsafe = inspect(
                answer.answer, {s.url for s in answer.sources if s.url}, {s.n for s in answer.sources}
            )
            if unsafe.any():  # the notice quotes the server's error text
                failures.append(f"{fault}: unsafe text in the offline answer: {unsafe.as_dict()}")
            if elapsed > LLM_TIMEOUT + 10:  # loose: the report carries the real numbers
                failures.append(f"{fault}: took {elapsed:.1f}s with a {LLM_TIMEOUT:g}s timeout")
    # A healthy endpoint still answers in LLM mode (the harness is not failing everything).
    with FakeLLMServer.faulty("ok") as server:
        _, healthy = _ask_through(settings, server.base_url, [])
    write_result("llm_faults", {"timeout": LLM_TIMEOUT, "rows": rows, "healthy_mode": healthy.mode})
    assert healthy.mode == "llm" and healthy.llm_error is None
    assert not failures, "\n".join(failures)


# --- Chroma server goes away and comes back ------------------------------------------------------
def _chroma() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


class ChromaServer:
    def __init__(self, exe: str, path: Path, port: int, log: Path) -> None:
        self.exe, self.path, self.port, self.log = exe, path, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def start(self) -> float:
        started = time.perf_counter()
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [self.exe, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while not self.up():
            if self.proc.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError(f"chroma run did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        return time.perf_counter() - started

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.mark.slow
def test_chroma_server_outage_is_a_clear_503_and_the_same_engine_recovers(tmp_path):
    exe = _chroma()
    if exe is None:
        pytest.skip("the `chroma` executable is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ChromaServer(exe, tmp_path / "server-data", port, tmp_path / "chroma.log")
    server.start()
    try:
        corpus = tmp_path / "base.txt"
        corpus.write_text(base_corpus(), encoding="utf-8")
        settings = make_settings(
            tmp_path / "local", embed_backend="hash", chroma_url=server.url, chroma_timeout=2.0
        )
        ingest(settings, [corpus], progress=False)
        engine = Engine(settings)
        before = engine.ask(QUESTION)
        assert before.sources and not before.abstained

        server.kill()
        outage = []
        for call in (
            lambda: engine.ask(QUESTION),
            lambda: engine.search(QUESTION),
            engine.status,
            engine.papers,
            lambda: list(engine.stream(QUESTION)),
        ):
            started = time.perf_counter()
            with pytest.raises(StoreError) as caught:
                call()
            outage.append(
                {
                    "seconds": round(time.perf_counter() - started, 3),
                    "status": caught.value.status,
                    "message": caught.value.message,
                    "hint": caught.value.hint,
                }
            )
            assert caught.value.status == 503
            assert server.url in caught.value.message and "not answering" in caught.value.message
            assert "chroma run" in (caught.value.hint or "")

        restart = server.start()  # same port, same data
        after = engine.ask(QUESTION)  # the same Engine object, not recreated
        assert [s.paper_id for s in after.sources] == [s.paper_id for s in before.sources]
        assert after.answer == before.answer
        assert engine.status()["papers"] == 6

        # A hung server (stopped, or a network black hole) answers nothing at all: a timeout.
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        hung = []
        try:
            for call in (lambda: engine.ask(QUESTION), lambda: Engine(settings)):
                started = time.perf_counter()
                with pytest.raises(StoreError) as caught:
                    call()
                hung.append(
                    {
                        "seconds": round(time.perf_counter() - started, 2),
                        "status": caught.value.status,
                        "message": caught.value.message,
                    }
                )
                assert caught.value.status == 503
                assert time.perf_counter() - started < settings.chroma_timeout + 10
        finally:
            server.proc.send_signal(signal.SIGCONT)
        resumed = engine.ask(QUESTION)
        assert resumed.answer == before.answer
        write_result(
            "chroma_outage",
            {
                "calls_during_outage": outage,
                "restart_seconds": round(restart, 2),
                "recovered": True,
                "papers_after": engine.status()["papers"],
                "hung_server": hung,
                "chroma_timeout": settings.chroma_timeout,
            },
        )
    finally:
        server.kill()


# --- SIGKILL during ingestion at 20 random points -----------------------------------------------
KILL_POINTS = 20
KILL_SEED = 20


@pytest.mark.slow
def test_sigkill_at_20_random_points_then_the_next_run_is_exact(tmp_path):
    result = kill_campaign(tmp_path, points=KILL_POINTS, seed=KILL_SEED)
    write_result("kill_ingest", result)
    assert not result["failures"], "\n".join(result["failures"])
    assert len(result["rows"]) == KILL_POINTS
    # The points must really interrupt writes, not just land before or after them.
    assert result["phases"].get("while writing papers", 0) >= KILL_POINTS // 3, result["phases"]


# --- two ingests at once --------------------------------------------------------------------------
def _two_ingests(tmp_path: Path, name: str, lock_timeout: float) -> tuple[list[dict], Path, list[Path]]:
    store = tmp_path / name / "store"
    go = tmp_path / name / "go"
    corpora = []
    for k in range(2):
        path = tmp_path / name / f"corpus{k}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(listing(papers(random.Random(100 + k), 80, f"{name}{k}")), encoding="utf-8")
        corpora.append(path)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/reliability/ingest_once.py"),
                str(store),
                str(c),
                str(lock_timeout),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for c in corpora
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert "Traceback" not in err, err
        result = json.loads(out.strip().splitlines()[-1])
        result["exit"] = proc.returncode
        results.append(result)
    return results, store, corpora


def _store_matches(store: Path, corpora: list[Path]) -> list[str]:
    settings = make_settings(store, embed_backend="hash", ingest_batch_papers=4)
    accepted = load_papers(corpora).papers
    want = expected_after(Snapshot({}, {}, frozenset(), False, True), accepted, settings)
    return differences(snapshot(settings), want)


@pytest.mark.slow
def test_two_ingests_at_once_wait_or_are_refused_and_the_store_stays_exact(tmp_path):
    waited, store, corpora = _two_ingests(tmp_path, "wait", 60)
    assert [r["exit"] for r in waited] == [0, 0], waited
    assert sorted(r["added"] for r in waited) == [80, 80]
    assert max(r["total"] for r in waited) == 160  # the second saw the first's papers
    waited_problems = _store_matches(store, corpora)

    refused, store2, corpora2 = _two_ingests(tmp_path, "refuse", 0)
    outcomes = sorted(r["exit"] for r in refused)
    losers = [r for r in refused if r["exit"] != 0]
    winners = [r for r in refused if r["exit"] == 0]
    for loser in losers:
        assert loser["status"] == 409 and "another ingest is writing" in loser["error"], loser
    ok = [c for c, r in zip(corpora2, refused, strict=True) if r["exit"] == 0]
    refused_problems = _store_matches(store2, ok)
    write_result(
        "concurrent_ingest",
        {
            "wait": {"results": waited, "store_problems": waited_problems},
            "refuse": {"results": refused, "store_problems": refused_problems},
        },
    )
    assert not waited_problems and not refused_problems
    # Both started within milliseconds on an 80-paper ingest: one must have been refused.
    assert outcomes == [0, 2] and len(winners) == 1, refused


# --- missing or damaged store directory -----------------------------------------------------------
def _damage(kind: str, store: Path) -> None:
    segments = [p for p in store.iterdir() if p.is_dir() and p.name not in ("bm25",)]
    sqlite = store / "chroma.sqlite3"
    if kind == "missing directory":
        shutil.rmtree(store)
    elif kind == "empty directory":
        shutil.rmtree(store)
        store.mkdir()
    elif kind == "zero-byte chroma.sqlite3":
        sqlite.write_bytes(b"")
    elif kind == "garbage chroma.sqlite3":
        sqlite.write_bytes(random.Random(3).randbytes(64_000))
    elif kind == "truncated chroma.sqlite3":
        sqlite.write_bytes(sqlite.read_bytes()[: sqlite.stat().st_size // 3])
    elif kind == "deleted chroma.sqlite3":
        sqlite.unlink()
    elif kind == "deleted collection folders":
        for folder in segments:
            shutil.rmtree(folder)
    elif kind == "garbled collection files":
        for folder in segments:
            for f in folder.iterdir():
                f.write_bytes(random.Random(4).randbytes(max(f.stat().st_size, 64)))
    elif kind == "deleted BM25 index":
        shutil.rmtree(store / "bm25")
    elif kind == "garbled BM25 index":
        for f in (store / "bm25").iterdir():
            if f.is_file():
                f.write_bytes(b"\x00junk")
    elif kind == "stale lock file":
        (store / ".ingest.lock").write_text("12345")
    else:
        raise ValueError(kind)


DAMAGE = [
    "missing directory",
    "empty directory",
    "zero-byte chroma.sqlite3",
    "garbage chroma.sqlite3",
    "truncated chroma.sqlite3",
    "deleted chroma.sqlite3",
    "deleted collection folders",
    "garbled collection files",
    "deleted BM25 index",
    "garbled BM25 index",
    "stale lock file",
]


@pytest.mark.slow
def test_missing_or_damaged_stores_give_a_clear_message_and_rebuild(small_store, tmp_path):
    good_settings, corpus = small_store
    reference = Engine(good_settings).ask(QUESTION)
    want = snapshot(good_settings)
    rows = []
    failures = []
    for kind in DAMAGE:
        store = tmp_path / kind.replace(" ", "-")
        shutil.copytree(good_settings.store_dir, store)
        _damage(kind, store)
        settings = make_settings(store, embed_backend="hash")
        row: dict[str, object] = {"damage": kind}
        try:
            answer = Engine(settings).ask(QUESTION)
            row["user_sees"] = "a normal answer"
            if [s.paper_id for s in answer.sources] != [s.paper_id for s in reference.sources]:
                failures.append(f"{kind}: answered from a damaged store with other sources")
        except AssistantError as exc:
            row["user_sees"] = f"{exc.message} — {exc.hint}"
            row["status"] = exc.status
            if "rebuild" not in (exc.hint or "") and "assistant ingest" not in (exc.hint or ""):
                failures.append(f"{kind}: no rebuild hint: {exc}")
        except Exception as exc:
            failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            row["user_sees"] = f"UNEXPECTED {type(exc).__name__}"
        # Recovery: a plain ingest where it suffices, else the documented --rebuild.
        try:
            ingest(settings, [corpus], progress=False)
            row["recovered_by"] = "assistant ingest"
        except AssistantError as exc:
            assert "--rebuild" in (exc.hint or ""), exc
            ingest(settings, [corpus], progress=False, rebuild=True)
            row["recovered_by"] = "assistant ingest --rebuild"
        problems = differences(snapshot(settings), want)
        after = Engine(settings).ask(QUESTION)
        if [s.paper_id for s in after.sources] != [s.paper_id for s in reference.sources]:
            problems.append("answers differ after recovery")
        row["problems"] = problems
        if problems:
            failures.append(f"{kind}: after recovery: {problems}")
        rows.append(row)
    write_result("damaged_store", {"rows": rows})
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_cli_reports_a_damaged_store_and_rebuild_recovers(small_store, tmp_path):
    """The documented recovery, through the real command line."""
    good_settings, corpus = small_store
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))},
        "ASSISTANT_EMBED_BACKEND": "hash",
        "HF_HUB_OFFLINE": "1",
    }
    store = tmp_path / "cli-store"
    shutil.copytree(good_settings.store_dir, store)
    _damage("garbage chroma.sqlite3", store)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            # The `assistant` command with the test doubles registered (the hash embedder).
            [sys.executable, "-m", "assistant.testing.cli", *args], capture_output=True, text=True,
            env=env, cwd=tmp_path, timeout=180
        )

    broken = cli("ask", QUESTION, "--store", str(store))
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "cannot be opened" in broken.stderr and "assistant ingest --rebuild" in broken.stderr
    rebuilt = cli("ingest", str(corpus), "--store", str(store), "--rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["papers_total"] == 6
    fixed = cli("ask", QUESTION, "--store", str(store), "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["sources"]
    missing = cli("ask", QUESTION, "--store", str(tmp_path / "nowhere"))
    assert (
        missing.returncode == 2 and "no store at" in missing.stderr and "assistant ingest" in missing.stderr
    )
    write_result(
        "damaged_store_cli",
        {
            "broken": broken.stderr.strip(),
            "rebuild": json.loads(rebuilt.stdout),
            "missing": missing.stderr.strip(),
        },
    )
