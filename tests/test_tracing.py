"""OpenTelemetry spans per question, read back from the SDK's in-memory exporter: retrieval with
per-retriever timings, the LLM call, the citation check, the offline fallback; nesting that holds
when a streamed answer is resumed from other contexts (as Gradio does); off by default."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from test_mcp import NAILFOLD, SEGMAMBA, SWIN_SMT, small_store

from assistant import tracing
from assistant.engine import Answer, Engine
from assistant.llm import LLMError
from assistant.settings import Settings
from assistant.testing.llm import ScriptedLLM

RETRIEVERS = ("retrieval.embed", "retrieval.dense", "retrieval.bm25", "retrieval.literal",
              "retrieval.phrases", "retrieval.named")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_store(tmp_path_factory.mktemp("tracing"), n=10)[0]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter)
    yield exporter
    tracing.reset()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list]:
    found: dict[str, list] = {}
    for s in exporter.get_finished_spans():
        found.setdefault(s.name, []).append(s)
    return found


def parent_name(exporter: InMemorySpanExporter, span) -> str | None:
    ids = {s.context.span_id: s.name for s in exporter.get_finished_spans()}
    return ids.get(span.parent.span_id) if span.parent else None


def test_tracing_is_off_without_otel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    tracing.reset()
    with tracing.span("question", k=3) as current:
        assert current is tracing.NO_SPAN
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.enabled_by_env()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.enabled_by_env()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.enabled_by_env()
    tracing.reset()


def test_exporters_come_from_the_standard_settings(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp,nosuch")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    made = tracing.env_exporters()
    assert [type(e) for e in made] == [ConsoleSpanExporter, OTLPSpanExporter]
    assert "no exporter 'nosuch' is installed" in caplog.text
    for exporter in made:
        exporter.shutdown()


def test_a_question_has_retrieval_citation_check_and_answer_spans(
        store: Settings, spans: InMemorySpanExporter) -> None:
    engine = Engine(store)
    answer = engine.ask("Compare SegMamba and Swin SMT")
    assert {SEGMAMBA, SWIN_SMT} <= set(answer.cited_titles)
    found = by_name(spans)
    [question] = found["question"]
    [retrieval] = found["retrieval"]
    assert parent_name(spans, retrieval) == "question"
    assert question.attributes["mode"] == "extractive" and question.attributes["compared"] == 0
    for name in RETRIEVERS:  # each retriever: a child span, and its time on the retrieval span
        assert parent_name(spans, found[name][0]) == "retrieval", name
        assert retrieval.attributes[f"{name}.ms"] >= 0, name
    assert retrieval.attributes["retrieval.named.ms"] >= 0
    assert parent_name(spans, found["citations.check"][0]) == "question"
    assert parent_name(spans, found["extractive"][0]) == "question"
    for name in ("retrieval", "extractive", "citations.check"):
        assert question.attributes[f"{name}.ms"] >= 0
    assert "llm" not in found and "fallback" not in found


def test_a_failed_llm_call_and_the_fallback_are_spans(store: Settings,
                                                      spans: InMemorySpanExporter) -> None:
    def down(_: list) -> str:
        raise LLMError("the LLM server is down")

    engine = Engine(store, llm=ScriptedLLM(down, name="scripted-down"))
    answer = engine.ask("How accurate is the nailfold capillary pipeline?")
    assert answer.mode == "extractive" and answer.llm_error
    found = by_name(spans)
    [llm] = found["llm"]
    assert llm.attributes["model"] == "scripted-down"
    assert llm.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in llm.events)
    [fallback] = found["fallback"]
    assert fallback.attributes["reason"] == "the LLM server is down"
    assert parent_name(spans, fallback) == "question"


def test_nesting_survives_a_stream_resumed_from_other_contexts(
        store: Settings, spans: InMemorySpanExporter) -> None:
    """Gradio runs each step of a generator in a fresh copy of the context: later spans still
    nest under the question, and no context error is raised."""
    nailfold_n = "[1]"
    engine = Engine(store, llm=ScriptedLLM(
        lambda _: f"The pipeline predicts abnormality with 84% accuracy {nailfold_n}. It uses "
                  f"capillary images {nailfold_n}.", name="scripted"))
    stream = engine.stream("How accurate is the nailfold capillary pipeline?")
    events = []
    while True:
        try:
            events.append(contextvars.Context().run(next, stream))
        except StopIteration:
            break
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.mode == "llm" and NAILFOLD in answer.cited_titles
    found = by_name(spans)
    assert len(events) > 3  # drafts were streamed from inside the llm span
    assert parent_name(spans, found["llm"][0]) == "question"
    assert parent_name(spans, found["citations.check"][0]) == "question"
    assert found["question"][0].parent is None


def test_spans_record_errors_and_drop_empty_attributes(spans: InMemorySpanExporter,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ValueError), tracing.span("outer", empty=None, path=tmp_path), \
            tracing.span("inner", n=2):
        raise ValueError("boom")
    found = by_name(spans)
    assert found["inner"][0].status.status_code == StatusCode.ERROR
    assert dict(found["outer"][0].attributes) == {"path": str(tmp_path),
                                                  "inner.ms": found["outer"][0].attributes["inner.ms"]}
