"""Prompt templates live as files in `prompts/` (shipped in the wheel, see resources.py) and are
rendered strictly: a variable the template uses but the caller does not supply (or the reverse) is
an error, never a silent blank."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Template

from assistant.errors import AssistantError
from assistant.resources import prompts_dir


@lru_cache(maxsize=32)
def load_prompt(name: str, directory: Path | None = None) -> Template:
    path = (directory or prompts_dir()) / f"{name}.txt"
    if not path.is_file():
        raise AssistantError(f"prompt template {name!r} not found at {path}")
    template = Template(path.read_text(encoding="utf-8"))
    if not template.is_valid():
        raise AssistantError(f"prompt template {path} has an invalid $placeholder")
    return template


def variables(name: str) -> set[str]:
    return set(load_prompt(name).get_identifiers())


def render(name: str, **values: str) -> str:
    template = load_prompt(name)
    expected = set(template.get_identifiers())
    missing = expected - values.keys()
    extra = values.keys() - expected
    if missing or extra:
        raise AssistantError(
            f"prompt {name!r}: missing variables {sorted(missing)}, unexpected {sorted(extra)}"
        )
    return template.substitute(values)


def available() -> list[str]:
    return sorted(p.stem for p in prompts_dir().glob("*.txt"))
