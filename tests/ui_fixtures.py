"""Helpers for the web UI tests: a small store of real abstracts (the first papers of the bundled
corpus, hash embedder: built in seconds) and a scripted LLM that quotes its sources, can be slow
on request, and records whether its stream was closed (the Stop button's effect)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import make_settings
from fixtures_corpus import write_jsonl

from assistant.corpus import load_papers
from assistant.ingest import ingest
from assistant.resources import bundled_corpus
from assistant.settings import Settings

SMALL_CORPUS = 40  # the first 40 bundled papers: the nailfold, SegMamba and Swin SMT papers among them
NAILFOLD = "A Comprehensive Dataset and Automated Pipeline for Nailfold Capillary Analysis"
SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image Segmentation"
SWIN_SMT = "Swin SMT: Global Sequential Modeling in 3D Medical Image Segmentation"
SLOW_WORDS = "take your time"  # a question with these words is answered one word a second
SOURCE = re.compile(r"<source (\d+)>\nTitle: (.*?)\nText: (.*?)\n</source \1>", re.S)


def small_store(directory: Path, extra: list[dict] | None = None, **overrides: object) -> Settings:
    papers = load_papers([bundled_corpus()]).papers[:SMALL_CORPUS]
    corpus = write_jsonl(directory / "papers.jsonl", [
        {"title": p.title, "abstract": p.abstract, "url": p.url} for p in papers] + (extra or []))
    settings = make_settings(directory / "store", embed_backend="hash", corpus_paths=[corpus],
                             **overrides)
    ingest(settings, progress=False)
    return settings


class QuotingLLM:
    """Answers by quoting the first sentence of the first two sources, cited; condense requests
    get no rewrite. Records every request and how many streams were closed before their end."""

    name = "quoting-test-llm"
    prompt_chars = None

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.closed_early = threading.Event()

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        prompt = messages[-1]["content"]
        self.requests.append(prompt)
        sources = SOURCE.findall(prompt)
        if not sources:
            return  # the condense prompt: no rewrite
        reply = " ".join(f"{re.split(r'(?<=[.!?]) ', text.strip())[0]} [{n}]" for n, _, text in sources[:2])
        slow = SLOW_WORDS in prompt
        finished = False
        try:
            for word in reply.split(" "):
                if slow:
                    time.sleep(1.0)
                yield word + " "
            finished = True
        finally:
            if not finished:
                self.closed_early.set()
