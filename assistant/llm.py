"""LLM backends behind one Protocol: any OpenAI-compatible endpoint through the official `openai`
client, and a scripted fake for tests.

One retry policy, set here once: the openai client's own retries (`llm_max_retries`) with a
per-attempt timeout that keeps the whole call within `llm_timeout`. Nothing else retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from assistant.errors import AssistantError
from assistant.settings import Settings

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
                 model: str | None = None) -> None:
        import httpx
        from openai import OpenAI

        self.settings = settings
        self.name = model or settings.llm_model
        self.base_url = base_url or settings.openai_base_url
        attempts = settings.llm_max_retries + 1
        per_attempt = settings.llm_timeout / attempts
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        self.client = OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=httpx.Timeout(per_attempt, connect=min(5.0, per_attempt)),
            max_retries=settings.llm_max_retries,
        )

    def stream(self, messages: list[Message]) -> Iterator[str]:
        import openai

        deadline = time.monotonic() + self.settings.llm_timeout + 2.0
        try:
            response = self.client.chat.completions.create(
                model=self.name,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                max_tokens=self.settings.llm_max_tokens,
                temperature=self.settings.llm_temperature,
            )
            produced = False
            for chunk in response:
                if time.monotonic() > deadline:
                    response.close()
                    raise LLMError(f"the LLM took longer than {self.settings.llm_timeout:g}s")
                if not getattr(chunk, "choices", None):
                    continue
                delta = chunk.choices[0].delta
                text = getattr(delta, "content", None) if delta is not None else None
                if text:
                    produced = True
                    yield text
            if not produced:
                raise LLMError("the LLM returned an empty answer")
        except LLMError:
            raise
        except openai.APITimeoutError:
            raise LLMError(f"the LLM did not answer within {self.settings.llm_timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach the LLM at {self.base_url or 'api.openai.com'} ({exc})") from None
        except openai.APIStatusError as exc:
            raise LLMError(f"the LLM answered HTTP {exc.status_code}") from None
        except Exception as exc:  # malformed streams surface as decoding/validation errors
            raise LLMError(f"the LLM reply could not be read ({type(exc).__name__}: {exc})") from None


class ScriptedLLM:
    """Deterministic fake: replies from a function of the messages. For tests."""

    def __init__(self, reply: Callable[[list[Message]], str], name: str = "scripted") -> None:
        self.reply = reply
        self.name = name
        self.calls: list[list[Message]] = []

    def stream(self, messages: list[Message]) -> Iterator[str]:
        self.calls.append(messages)
        text = self.reply(messages)
        for i in range(0, len(text), 12):
            yield text[i : i + 12]


def complete(llm: LLM, messages: list[Message]) -> str:
    return "".join(llm.stream(messages))


def make_llm(settings: Settings) -> LLM | None:
    """The configured LLM, by precedence: a local GGUF model (a llama.cpp server started here),
    then any OpenAI-compatible endpoint; None means offline (extractive) answers."""
    if settings.answer_mode == "extractive":
        return None
    if settings.local_model:
        from assistant.local_llm import from_settings

        server = from_settings(settings)
        assert server is not None
        server.start()  # stopped at exit by local_llm
        llm = OpenAICompatibleLLM(settings, base_url=server.base_url, model=settings.local_alias)
        llm.server = server  # type: ignore[attr-defined]  # keep it alive with the LLM
        return llm
    if settings.openai_api_key or settings.openai_base_url:
        return OpenAICompatibleLLM(settings)
    return None
