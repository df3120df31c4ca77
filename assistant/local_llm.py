"""A local OpenAI-compatible LLM: llama.cpp's own HTTP server for one GGUF file, run by the prebuilt
`xllamacpp` wheel (no compiler needed, unlike llama-cpp-python) in a child process.

    with LocalLlamaServer(Path("model.gguf")) as server:
        client = OpenAI(base_url=server.base_url, api_key="local")

Why a child process: xllamacpp runs the server on C++ threads of the process that creates it and
has no stop method; freeing it joins those threads while holding the GIL, which hangs on requests
in flight from the same process. In a child, stopping is `terminate()`: the OS frees the port, the
threads and the memory at once, and requests in flight end with a connection error. The child also
loads OpenMP itself, so its wait policy (OMP_WAIT_POLICY, see `omp_passive`) always applies,
whatever the app process loaded before.

The child (`python -m assistant.local_llm PARAMS_JSON`) loads the model, waits until the server
answers /health, writes one line `{"port": N}` (or `{"error": ..., "hint": ...}`) to its stdout, and
then waits: it exits on SIGTERM, or when its stdin closes because the app process has gone.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install .[local]"
# llama.cpp log threshold: 0 silent, 1 errors (why a model failed to load), 3 info.
DEFAULT_VERBOSITY = 1
# Seconds the child gets to exit on SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

# Servers started and not yet stopped; stopped at interpreter exit (their children would also
# exit on their own once this process's end closes their stdin, but not before it has exited).
_live: weakref.WeakSet[LocalLlamaServer] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_installed = False


def _stop_all_at_exit() -> None:
    for server in list(_live):
        try:
            server.stop()
        except Exception:  # exiting anyway; one failure must not keep the others running
            log.exception("stopping the local LLM server at exit failed")


def _install_atexit() -> None:
    # Registered on the first start, not at import: importing this module has no side effects.
    global _atexit_installed
    with _atexit_lock:
        if not _atexit_installed:
            atexit.register(_stop_all_at_exit)
            _atexit_installed = True


def check_gguf(path: Path) -> Path:
    """The resolved path of a readable GGUF file, or an AssistantError saying what is wrong."""
    path = Path(path).expanduser()
    hint = "set ASSISTANT_LOCAL_MODEL to the path of a .gguf file"
    if not path.exists():
        raise AssistantError(f"Local model file not found: {path}", hint=hint, status=503)
    if not path.is_file():
        raise AssistantError(f"Local model path is not a file: {path}", hint=hint, status=503)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise AssistantError(f"Cannot read local model file {path}: {exc}", status=503) from exc
    if magic != GGUF_MAGIC:
        raise AssistantError(
            f"Local model file is not a GGUF file: {path} (starts with {magic!r}, expected {GGUF_MAGIC!r})",
            hint="llama.cpp needs a .gguf model; convert or download a GGUF build of the model",
            status=503,
        )
    return path.resolve()


def _missing_backend() -> AssistantError:
    return AssistantError(
        "The local LLM backend needs the optional package xllamacpp, which is not installed.",
        hint=INSTALL_HINT,
        status=503,
    )


def _client_host(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    # xllamacpp reports a busy port only as "Failed to init server"; say it plainly instead.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise AssistantError(
                f"Cannot start the local LLM server on {host}:{port}: {exc.strerror or exc}",
                hint="choose another port, or port 0 for any free one",
                status=503,
            ) from exc


class LocalLlamaServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, in a child process.

    Use it as a context manager, or call start() and stop() (stop is idempotent; servers still
    running at interpreter exit are stopped then).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        ctx_size: int = 4096,
        alias: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 120.0,
        parallel: int = 1,
        verbosity: int = DEFAULT_VERBOSITY,
        omp_passive: bool = True,
    ) -> None:
        if threads < 1:
            raise AssistantError(f"threads must be at least 1, not {threads}")
        if ctx_size < 1:
            raise AssistantError(f"ctx_size must be positive, not {ctx_size}")
        if not 0 <= port <= 65535:
            raise AssistantError(f"port must be between 0 and 65535, not {port}")
        self.model_path = Path(model_path).expanduser()
        self.threads = threads
        self.ctx_size = ctx_size
        self.alias = alias
        self.host = host
        self.requested_port = port  # 0: the OS picks a free port when the server binds
        self.start_timeout = start_timeout
        # Slots decoded together; llama.cpp splits ctx_size between them (each gets ctx/parallel).
        self.parallel = parallel
        self.verbosity = verbosity
        # OMP_WAIT_POLICY=PASSIVE in the child unless the environment sets a policy: spinning
        # llama.cpp threads slowed generation up to 10x on a busy machine (docs/LOCAL_LLM_NOTES.md).
        self.omp_passive = omp_passive
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._lock = threading.RLock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalLlamaServer:
        """Start the child, which loads the model; returns once the server answers requests."""
        with self._lock:
            if self.running:
                return self
            self.stop()  # a child that died on its own: reap it, then start afresh
            began = time.monotonic()
            model = check_gguf(self.model_path)
            if importlib.util.find_spec("xllamacpp") is None:
                raise _missing_backend()
            if self.requested_port:
                _check_port_free(self.host, self.requested_port)
            log.info("starting llama.cpp server for %s", model)
            proc = subprocess.Popen(
                [sys.executable, "-m", "assistant.local_llm", json.dumps(self._params(model))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self._child_env(),
            )
            try:
                self._port = self._await_port(proc, model, began)
            except BaseException:
                _end(proc)
                raise
            self._proc = proc
            _live.add(self)
            _install_atexit()
            log.info("llama.cpp server for %s ready at %s in %.1f s", model.name, self.base_url,
                     time.monotonic() - began)
            return self

    def stop(self) -> None:
        """Shut the server down and free its port and memory. Safe to call more than once.

        Requests still in flight end with a connection error."""
        with self._lock:
            if self._proc is None:
                return
            _end(self._proc)
            self._proc = None
            self._port = None
            _live.discard(self)
            log.info("llama.cpp server for %s stopped", self.model_path.name)

    def __enter__(self) -> LocalLlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- state -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def port(self) -> int:
        if self._port is None:
            raise AssistantError("The local LLM server is not running.", status=503)
        return self._port

    @property
    def root_url(self) -> str:
        """The server itself, e.g. http://127.0.0.1:PORT (for /health, /tokenize)."""
        return f"http://{_client_host(self.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API, for `OpenAI(base_url=...)`: http://127.0.0.1:PORT/v1."""
        return f"{self.root_url}/v1"

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"LocalLlamaServer({self.model_path.name!r}, {where})"

    # --- internals ---------------------------------------------------------------------------
    def _params(self, model: Path) -> dict[str, Any]:
        return {"model": str(model), "ctx_size": self.ctx_size, "parallel": self.parallel,
                "threads": self.threads, "host": self.host, "port": self.requested_port,
                "alias": self.alias, "verbosity": self.verbosity}

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.omp_passive:
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # The child imports this same copy of the package (a checkout is not on its default path).
        if PACKAGE_ROOT.name not in ("site-packages", "dist-packages"):
            env["PYTHONPATH"] = os.pathsep.join(
                [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def _await_port(self, proc: subprocess.Popen[str], model: Path, began: float) -> int:
        """The port the child reports, or an AssistantError for its failure or silence."""
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()),  # type: ignore[union-attr]
                         name="local-llm-start", daemon=True).start()
        try:
            line = lines.get(timeout=max(began + self.start_timeout - time.monotonic(), 0.1))
        except queue.Empty:
            raise AssistantError(
                f"The local LLM server for {model.name} did not become ready within "
                f"{self.start_timeout:g} s.",
                hint="raise ASSISTANT_LOCAL_START_TIMEOUT, or use a smaller model",
                status=503,
            ) from None
        try:
            report = json.loads(line)
        except ValueError:
            report = {"error": f"llama.cpp could not load {model} or start its server (the child "
                               f"process exited with status {proc.wait()})"}
        if "port" not in report:
            raise AssistantError(
                str(report.get("error")),
                hint=report.get("hint") or "see the llama.cpp errors above; check the file, ctx_size "
                "and free memory",
                status=503,
            )
        return int(report["port"])


def _end(proc: subprocess.Popen[str]) -> None:
    """Terminate the child (SIGTERM, then SIGKILL after STOP_TIMEOUT) and reap it."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def from_settings(settings: Settings) -> LocalLlamaServer | None:
    """The configured local server (not yet started), or None when no local model is set."""
    if settings.local_model is None:
        return None
    return LocalLlamaServer(
        settings.local_model,
        threads=settings.local_threads,
        ctx_size=settings.local_ctx_size,
        alias=settings.local_alias,
        start_timeout=settings.local_start_timeout,
        omp_passive=settings.local_omp_passive,
    )


# --- the child process ----------------------------------------------------------------------
def _serve(params: dict[str, Any]) -> None:
    """Run in the child: load the model, report the port on the original stdout, wait for the end."""
    # Ctrl-C in a terminal reaches the whole process group: the app decides when this one stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever llama.cpp prints goes to stderr; stdout carries only the report

    def say(message: dict[str, Any]) -> None:
        report.write(json.dumps(message) + "\n")
        report.flush()

    try:
        import xllamacpp as xlc
    except ImportError as exc:  # missing, or its native library cannot load here
        error = _missing_backend()
        say({"error": f"{error.message} ({exc})", "hint": error.hint})
        os._exit(1)
    p = xlc.CommonParams()
    p.model.path = params["model"]
    p.n_ctx = params["ctx_size"]
    p.n_parallel = params["parallel"]
    # Generation and prompt processing both use `threads`; llama.cpp's default is all cores.
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = params["threads"]
    p.hostnames = [params["host"]]
    p.port = params["port"]
    # model_alias is a set of names in current xllamacpp, a plain string in older releases.
    p.model_alias = {params["alias"]} if isinstance(p.model_alias, set | list) else params["alias"]
    p.verbosity = params["verbosity"]
    try:
        server = xlc.Server(p)  # returns once the model is loaded and the HTTP server listens
        address = str(server.listening_address)  # e.g. http://127.0.0.1:41234
        port = int(address.rsplit(":", 1)[1].split("/")[0])
    except Exception as exc:
        say({"error": f"llama.cpp could not load {params['model']} or start its server: {exc}"})
        os._exit(1)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    while True:
        try:
            with opener.open(f"http://{_client_host(params['host'])}:{port}/health", timeout=10) as r:
                if r.status == 200:
                    break
        except (OSError, ValueError):  # 503 (an HTTPError) while the model is still loading
            pass
        time.sleep(0.05)
    say({"port": port})
    sys.stdin.read()  # returns when the app process closes the pipe or exits
    # Not a normal exit: freeing the server would join llama.cpp's threads and wait for requests.
    os._exit(0)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
