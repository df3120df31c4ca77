"""LLM backends behind one Protocol: any OpenAI-compatible endpoint through the official `openai`
client, including the local llama.cpp server (local_llm.py) started for a GGUF model. Test doubles
live in assistant.testing.

One retry policy, set here once: `llm_max_retries` retries of a failed attempt, with a per-attempt
timeout, all inside one hard deadline of `llm_timeout` per call (`local_timeout` and no retries for a
local model: its server is on this machine and busy with us, so a retry only waits twice). Nothing
else retries. The deadline is enforced by reading the stream on a worker thread, so no server
behaviour can hold a request past it: not a Retry-After of minutes (the openai client honours
those, so its own retries are off), not a stream that drips keep-alive comments forever, not one
that stalls mid-answer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from assistant.errors import AssistantError
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.local_llm import LocalLlamaServer

log = logging.getLogger(__name__)

Message = dict[str, str]


class LLMError(AssistantError):
    """The LLM could not produce an answer (down, slow, overloaded, malformed reply)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


class LLM(Protocol):
    name: str

    def stream(self, messages: list[Message]) -> Iterator[str]:
        """Yield text deltas; raise LLMError on any failure."""
        ...


class OpenAICompatibleLLM:
    def __init__(self, settings: Settings, *, base_url: str | None = None,
                 model: str | None = None, timeout: float | None = None,
                 retries: int | None = None, prompt_chars: int | None = None) -> None:
        import httpx
        from openai import OpenAI

        self.settings = settings
        self.name = model or settings.llm_model
        self.base_url = base_url or settings.openai_base_url
        self.timeout = timeout or settings.llm_timeout
        self.attempts = (settings.llm_max_retries if retries is None else retries) + 1
        # Most characters of prompt (all messages) that leave room for the answer in the model's
        # context; None: unknown (a remote model), only llm_context_chars limits the prompt.
        self.prompt_chars = prompt_chars
        self.server: LocalLlamaServer | None = None  # a local server this LLM owns (make_llm)
        per_attempt = self.timeout / self.attempts
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        self.client = OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=httpx.Timeout(per_attempt, connect=min(5.0, per_attempt)),
            max_retries=0,  # retried in _attempts, within the deadline
        )

    def stream(self, messages: list[Message]) -> Iterator[str]:
        timeout = self.timeout
        deadline = time.monotonic() + timeout
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(messages, deadline, events, stop),
                                  name="llm-stream", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    kind, value = events.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    raise LLMError(f"the LLM did not finish within {timeout:g}s") from None
                if kind == "text":
                    yield str(value)
                elif kind == "error":
                    assert isinstance(value, LLMError)
                    raise value
                else:
                    return
        finally:
            # The worker stops at its next event; one blocked in a read ends with its timeout.
            stop.set()

    def close(self) -> None:
        """Stop the local server this LLM owns, if any (it is also stopped at exit)."""
        if self.server is not None:
            self.server.stop()

    def _produce(self, messages: list[Message], deadline: float,
                 events: queue.Queue[tuple[str, object]], stop: threading.Event) -> None:
        try:
            for text in self._attempts(messages, deadline, stop):
                events.put(("text", text))
            events.put(("done", None))
        except Exception as exc:
            events.put(("error", exc if isinstance(exc, LLMError) else self._error(exc)))

    def _attempts(self, messages: list[Message], deadline: float, stop: threading.Event
                  ) -> Iterator[str]:
        import openai

        for attempt in range(self.attempts):
            produced = [False]
            try:
                yield from self._once(messages, stop, produced)
                return
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError,
                    openai.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                retryable = status is None or status in (408, 409, 429) or status >= 500
                if produced[0] or not retryable or attempt + 1 >= self.attempts:
                    raise
                wait = _retry_after(exc) or 0.5 * 2**attempt
                # Not worth it if the wait leaves no time for the attempt itself.
                if time.monotonic() + wait + 0.5 > deadline:
                    raise
                log.info("LLM attempt %d failed (%s); retrying in %.1fs", attempt + 1, exc, wait)
                if stop.wait(wait):
                    return

    def _once(self, messages: list[Message], stop: threading.Event, produced: list[bool]
              ) -> Iterator[str]:
        response = self.client.chat.completions.create(
            model=self.name,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
        )
        finished = False
        try:
            for chunk in response:
                if stop.is_set():
                    return
                if not getattr(chunk, "choices", None):
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                text = getattr(delta, "content", None) if delta is not None else None
                if text:
                    produced[0] = True
                    yield text
                finished = finished or bool(choice.finish_reason)
        finally:
            response.close()
        if not produced[0]:
            raise LLMError("the LLM returned an empty answer")
        if not finished:
            # A connection cut mid-answer ends the stream quietly; half an answer is not one.
            raise LLMError("the LLM's answer was cut off (the stream ended without finishing)")

    def _error(self, exc: Exception) -> LLMError:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return LLMError(f"the LLM did not answer within {self.timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"cannot reach the LLM at {self.base_url or 'api.openai.com'} ({exc})")
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"the LLM answered HTTP {exc.status_code}")
        # Malformed streams surface as decoding/validation errors.
        return LLMError(f"the LLM reply could not be read ({type(exc).__name__}: {exc})")


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:  # an HTTP date: treat as "long"
        return 3600.0


def complete(llm: LLM, messages: list[Message]) -> str:
    return "".join(llm.stream(messages))


def local_prompt_chars(settings: Settings) -> int:
    """Most characters of prompt (system and user messages together) that fit the local model's
    context with room left for the answer: tokens not needed by the answer (llm_max_tokens) or the
    chat template, times a deliberately low characters-per-token ratio. An AssistantError when the
    context leaves almost no room for a prompt."""
    tokens = settings.local_ctx_size - settings.llm_max_tokens - settings.local_template_tokens
    chars = int(tokens * settings.local_chars_per_token)
    if tokens < 256:
        raise AssistantError(
            f"local_ctx_size {settings.local_ctx_size} leaves {max(tokens, 0)} tokens for the prompt "
            f"after llm_max_tokens {settings.llm_max_tokens} (and "
            f"{settings.local_template_tokens} for the chat template)",
            hint="raise ASSISTANT_LOCAL_CTX_SIZE or lower ASSISTANT_LLM_MAX_TOKENS",
        )
    return chars


def configured_model(settings: Settings) -> str | None:
    """The name of the model answers come from, by precedence: a local GGUF model, then any
    OpenAI-compatible endpoint; None means offline (extractive) answers. Reads settings only:
    nothing is started or contacted."""
    if settings.answer_mode == "extractive":
        return None
    if settings.local_model:
        return settings.local_alias
    if settings.openai_api_key or settings.openai_base_url:
        return settings.llm_model
    return None


def make_llm(settings: Settings) -> LLM | None:
    """The configured LLM (see configured_model); a local model's llama.cpp server is started
    here. None means offline (extractive) answers."""
    if configured_model(settings) is None:
        return None
    if settings.local_model:
        from assistant.local_llm import from_settings

        prompt_chars = local_prompt_chars(settings)  # fails before a model is loaded for nothing
        server = from_settings(settings)
        assert server is not None
        server.start()  # a child process; stopped by llm.close(), or at exit by local_llm
        llm = OpenAICompatibleLLM(settings, base_url=server.base_url, model=settings.local_alias,
                                  timeout=settings.local_timeout, retries=0,
                                  prompt_chars=prompt_chars)
        llm.server = server  # keeps it alive with the LLM
        return llm
    return OpenAICompatibleLLM(settings)
