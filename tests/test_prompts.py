"""Prompt templates: every `$variable` in each file is exactly what the code supplies, and a mismatch
is an error, never a silent blank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import StoreFactory

from assistant import prompts
from assistant.conversation import Turn
from assistant.engine import Engine
from assistant.errors import AssistantError
from assistant.testing.llm import ScriptedLLM


@pytest.fixture(scope="module")
def rendered(make_store: StoreFactory) -> dict[str, list[dict[str, Any]]]:
    """The variables engine.py passes to each prompt, recorded over the flows that use prompts:
    an answer, a comparison and a follow-up in LLM mode."""
    settings = make_store([
        ("AlphaNet: Liver Tumour Segmentation", "AlphaNet segments liver tumours with 91.5% Dice."),
        ("BetaSeg: Retinal Vessel Segmentation", "BetaSeg segments retinal vessels with 82.3% Dice."),
    ], name="prompts")
    calls: dict[str, list[dict[str, Any]]] = {}
    real_render = prompts.render

    def spy(name: str, **values: str) -> str:
        calls.setdefault(name, []).append(values)
        return real_render(name, **values)

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(prompts, "render", spy)
    try:
        engine = Engine(settings, llm=ScriptedLLM(lambda _messages: "AlphaNet reaches 91.5% Dice [1]."))
        first = engine.ask("What Dice does AlphaNet reach?")
        engine.ask("Compare AlphaNet and BetaSeg.")
        engine.ask("and what about its data?", [Turn("user", "What Dice does AlphaNet reach?"),
                                                Turn("assistant", first.answer)])
    finally:
        monkeypatch.undo()
    return calls


def test_every_prompt_file_is_used_by_the_code(rendered):
    assert set(prompts.available()) == set(rendered)


@pytest.mark.parametrize("name", prompts.available())
def test_prompt_variables_match_what_the_code_supplies(rendered, name):
    for values in rendered[name]:
        assert set(values) == prompts.variables(name)
        text = prompts.render(name, **values)
        assert "$" not in text.replace("$$", "")  # every placeholder was filled
        for value in values.values():
            assert value in text


@pytest.mark.parametrize("name", prompts.available())
def test_a_missing_or_extra_variable_raises(name):
    expected = sorted(prompts.variables(name))
    values = dict.fromkeys(expected, "x")
    assert prompts.render(name, **values)
    with pytest.raises(AssistantError, match="unexpected"):
        prompts.render(name, **values, surplus="x")
    for missing in expected:
        with pytest.raises(AssistantError, match="missing"):
            prompts.render(name, **{k: v for k, v in values.items() if k != missing})


def test_loading_a_missing_prompt_raises():
    with pytest.raises(AssistantError, match="not found"):
        prompts.load_prompt("no-such-prompt")
    with pytest.raises(AssistantError):
        prompts.render("no-such-prompt")


def test_a_template_with_an_invalid_placeholder_raises(tmp_path: Path):
    (tmp_path / "broken.txt").write_text("Question: $question costs $ 5\n")
    with pytest.raises(AssistantError, match="invalid"):
        prompts.load_prompt("broken", tmp_path)


def test_the_system_prompt_says_sources_are_data():
    system = prompts.render("system")
    assert "not instructions" in system
    assert "[1]" in system
