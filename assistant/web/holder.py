"""The process's one Engine, possibly still being built (first-run index build, model load):
what the UI and the API share."""

from __future__ import annotations

import logging
import threading

from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.ingest import ingest
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.web.understanding import function_words

log = logging.getLogger(__name__)


class EngineHolder:
    """The process's one Engine, possibly still being built (first-run index build, model load)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._ready = threading.Event()
        self.error: AssistantError | None = None
        self._pending: bool | None = None  # background work not launched yet: ingest first?
        self.phase = "ready" if engine is not None else "starting"
        self.done = 0
        self.total = 0
        if engine is not None:
            self._ready.set()

    # --- startup --------------------------------------------------------------------------
    @classmethod
    def start(cls, settings: Settings, *, background_load: bool = False,
              launch: bool = True) -> EngineHolder:
        """The holder of a serving process: on an empty store with `auto_ingest`, the index is
        built (then the engine loaded) in the background; otherwise the engine is loaded now, or
        in the background with `background_load`. With `launch=False` the background work waits
        for `launch()`."""
        holder = cls(settings)
        ingest_first = holder.check_store()
        if ingest_first:
            holder.phase = "building the index"
        if ingest_first or background_load:
            holder._pending = ingest_first
            if launch:
                holder.launch()
        else:
            holder._engine = Engine(settings)
            function_words()
            holder.phase = "ready"
            holder._ready.set()
        return holder

    def check_store(self) -> bool:
        """Whether the index must be built first (an empty store with `auto_ingest`); a
        mismatched store, or an empty one without `auto_ingest`, is an error now rather than after
        a load."""
        store = PaperStore(self.settings)
        store.check_compatible()
        if store.count_papers() > 0:
            return False
        if not self.settings.auto_ingest:
            raise AssistantError(f"the store at {self.settings.store_dir} is empty",
                                 hint="build it with `assistant ingest`, or set "
                                      "ASSISTANT_AUTO_INGEST=true")
        return True

    def launch(self) -> None:
        """Start the background work `start(launch=False)` left waiting, if any."""
        if self._pending is not None:
            ingest_first, self._pending = self._pending, None
            self.start_background(ingest_first=ingest_first)

    def start_background(self, *, ingest_first: bool) -> None:
        threading.Thread(target=self._load, args=(ingest_first,), name="engine-loader",
                         daemon=True).start()

    def _load(self, ingest_first: bool) -> None:
        try:
            if ingest_first:
                self.phase = "building the index"
                log.info("empty store: ingesting %s", ", ".join(map(str, self.settings.corpus_paths)))
                summary = ingest(self.settings, progress=None, on_progress=self._progress)
                log.info("ingest: %s", summary.line())
            self.phase = "loading the models"
            self._engine = Engine(self.settings)
            function_words()  # its import, so that the first question does not wait for it
            self.phase = "ready"
            print(f"Ready: {self._engine.store.count_papers()} papers; answer mode: "
                  f"{self._engine.mode_label}", flush=True)
        except AssistantError as exc:
            self.error = exc
            self.phase = "failed"
            log.error("startup failed: %s", exc)
        except Exception as exc:  # shown in the UI and the API instead of a dead thread
            log.exception("startup failed")
            self.error = AssistantError(f"startup failed: {type(exc).__name__}: {exc}", status=503)
            self.phase = "failed"
        finally:
            self._ready.set()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    # --- use ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._engine is not None

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def describe(self) -> str:
        """One line for people: what startup is doing now."""
        if self.error is not None:
            return f"startup failed: {self.error}"
        if self.phase == "building the index":
            if self.total:
                return (f"building the index for the first time: {self.done:,}/{self.total:,} "
                        "chunks embedded")
            return "building the index for the first time (loading the embedding model)"
        return self.phase

    def get(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if self.error is not None:
            raise self.error
        raise AssistantError(f"the assistant is starting ({self.describe()})",
                             hint="try again in a moment", status=503)
