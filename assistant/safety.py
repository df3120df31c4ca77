"""Text that addresses the assistant instead of the reader: sentences of an abstract that must
never be chosen as a quote (a poisoned abstract's "Ignore previous instructions ..." or a fake
"Sources:" block). They stay visible as the abstract's text in the sources panel."""

from __future__ import annotations

import re

INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|context|above)\b"
    r"|\b(system prompt|developer message|you are (an? )?(ai|assistant|language model|chatbot))\b"
    r"|\b(as an ai|assistant must|the assistant should|language models? (must|should))\b"
    r"|\b(respond|reply|answer|output|print|say|write)\s+(only|exactly|with)\b",
    re.I,
)
FAKE_SOURCES = re.compile(r"(^|\s)(\*\*)?(sources|references)(\*\*)?\s*:\s*(\[\d+\]|\d+\.)", re.I)


def is_instruction_like(sentence: str) -> bool:
    """A sentence written to instruct a model, or a fake source list."""
    return bool(INSTRUCTION.search(sentence) or FAKE_SOURCES.search(sentence))
