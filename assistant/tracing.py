"""OpenTelemetry spans for each question (retrieval and its retrievers, the LLM call, the citation
check, the offline fallback): off by default, on with the standard OpenTelemetry settings, e.g.

    OTEL_TRACES_EXPORTER=console              # spans printed as JSON on stdout
    OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318

`otlp` sends OTLP over HTTP/protobuf, or gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc; the exporters
read their own OTEL_EXPORTER_OTLP_* settings (endpoint, headers, timeout). OTEL_SERVICE_NAME names
the service (default `paper-assistant`); OTEL_SDK_DISABLED=true turns tracing off again.

`span(name, **attrs)` is the only thing the rest of the code calls. When tracing is off it does
nothing but one check, and the OpenTelemetry SDK is not even imported. Each span also writes its
duration onto its parent as the attribute `<name>.ms`, so the retrieval span reads as a table of
per-retriever timings.

Spans nest through a context variable of this module rather than OpenTelemetry's attached context:
the engine yields inside its spans (a streamed answer), and a consumer may resume it from another
thread or context (Gradio does), where detaching an OpenTelemetry context token fails. A span that
ends sets its parent back as the current span, which keeps nesting right across such resumptions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

SERVICE_NAME = "paper-assistant"
ATTRIBUTE_TYPES = (str, bool, int, float)


class NoSpan:
    """What `span` yields when tracing is off: accepts attributes and drops them."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NO_SPAN = NoSpan()
_current: ContextVar[Any] = ContextVar("assistant_span", default=None)
_lock = threading.Lock()
_tracer: Any = None  # an OpenTelemetry Tracer while tracing is on
_configured = False


def enabled_by_env() -> bool:
    """Tracing is on when OTEL_TRACES_EXPORTER names an exporter (and the SDK is not disabled)."""
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return bool(exporters) and exporters != "none" and not disabled


def configure(exporter: Any = None) -> bool:
    """Start tracing: into `exporter` (a SpanExporter, e.g. the SDK's InMemorySpanExporter in tests;
    spans are exported as they end), or else into the exporters the OTEL_* settings name (batched,
    and also installed as the global tracer provider when none is, so that libraries' spans such
    as the MCP SDK's go to the same place). Returns whether tracing is on."""
    global _tracer, _configured
    with _lock:
        _configured = True
        if exporter is None and not enabled_by_env():
            _tracer = None
            return False
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself.
        resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME")
                                   else {"service.name": SERVICE_NAME})
        provider = TracerProvider(resource=resource)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            for made in env_exporters():
                provider.add_span_processor(BatchSpanProcessor(made))
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(provider)
        _tracer = provider.get_tracer("assistant")
        return True


def reset() -> None:
    """Tracing off, and the OTEL_* settings read again at the next span (for tests)."""
    global _tracer, _configured
    with _lock:
        _tracer, _configured = None, False


def env_exporters() -> list[Any]:
    """The exporters OTEL_TRACES_EXPORTER names (comma-separated), from the exporter packages'
    own entry points, as the SDK's auto-configuration finds them."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").lower().split(",")]
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    made = []
    for name in dict.fromkeys(n for n in names if n and n != "none"):
        if name == "otlp":
            name = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            log.warning("OTEL_TRACES_EXPORTER: no exporter %r is installed; its spans are dropped", name)
            continue
        made.append(found[0].load()())
    return made


def _get_tracer() -> Any:
    if not _configured:
        configure()
    return _tracer


@contextmanager
def span(name: str, **attrs: Any) -> Iterator[Any]:
    """A span around the block, child of the current one; yields it (or NO_SPAN when tracing is
    off) for attributes known only inside. None-valued attributes are left out; other values that
    OpenTelemetry does not take are recorded as text."""
    tracer = _tracer if _configured else _get_tracer()
    if tracer is None:
        yield NO_SPAN
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    parent = _current.get()
    context = trace.set_span_in_context(parent) if parent is not None else None
    current = tracer.start_span(name, context=context, attributes=_clean(attrs))
    _current.set(current)
    started = time.perf_counter()
    try:
        yield current
    except GeneratorExit:  # the consumer stopped reading (a client left mid-stream)
        current.set_attribute("cancelled", True)
        raise
    except BaseException as exc:
        current.record_exception(exc)
        current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
        raise
    finally:
        current.end()
        _current.set(parent)
        if parent is not None and parent.is_recording():
            parent.set_attribute(f"{name}.ms", round((time.perf_counter() - started) * 1000, 3))


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, ATTRIBUTE_TYPES) else str(value)
            for key, value in attrs.items() if value is not None}
