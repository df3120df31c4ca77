"""The process's one Engine, possibly still being built (first-run index build, model load):
what the UI and the API share."""

from __future__ import annotations

import logging
import threading

from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.ingest import ingest
from assistant.settings import Settings

log = logging.getLogger(__name__)


class EngineHolder:
    """The process's one Engine, possibly still being built (first-run index build, model load)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._ready = threading.Event()
        self.error: AssistantError | None = None
        self.phase = "ready" if engine is not None else "starting"
        self.done = 0
        self.total = 0
        if engine is not None:
            self._ready.set()

    # --- startup --------------------------------------------------------------------------
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
