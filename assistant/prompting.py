"""What the LLM is sent: the system prompt and the answer or comparison template (prompts/) with
the sources that fit the model's context, numbered as the answer cites them; and the follow-up
rewritten as a standalone question."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from assistant import prompts
from assistant.citations import SourceDoc
from assistant.conversation import Turn, history_text
from assistant.llm import LLM, LLMError, complete
from assistant.retrieval import RetrievalResult
from assistant.settings import Settings

log = logging.getLogger(__name__)


class Prompter:
    def __init__(self, settings: Settings, llm: LLM | None) -> None:
        self.settings = settings
        self.llm = llm

    def messages(self, question: str, result: RetrievalResult, sources: list[SourceDoc],
                  history: Sequence[Turn]) -> list[dict[str, str]]:
        system = prompts.render("system")
        if result.kind == "comparative":
            named = [s for s in sources if s.paper_id in {e.paper_id for e in result.entities}]
            names = ", ".join(f"[{s.n}] {s.title}" for s in (named or sources[:2]))

            def user(block: str) -> str:
                return prompts.render("compare", sources=block, question=question, papers=names)
        else:
            def user(block: str) -> str:
                return prompts.render("answer", sources=block, question=question)
        # The sources get what the rest of the prompt leaves of the model's context: the papers
        # judged to answer (named ones always), keeping their numbers.
        budget = self.budget(len(system) + len(user("")))
        chosen = [s for s in sources if s.verdict == "answers"] or sources
        return [{"role": "system", "content": system},
                {"role": "user", "content": user(self.source_block(chosen, budget))}]

    def budget(self, fixed_chars: int) -> int:
        """Characters of sources one prompt may hold: llm_context_chars, and for a model whose
        context is known (a local one), what its context leaves after the prompt's fixed part and
        room for the answer (llm.local_prompt_chars)."""
        budget = self.settings.llm_context_chars
        prompt_chars = getattr(self.llm, "prompt_chars", None)
        if prompt_chars is not None:
            budget = min(budget, prompt_chars - fixed_chars)
        return max(budget, 0)

    def source_block(self, sources: list[SourceDoc], budget: int | None = None) -> str:
        """Numbered, delimited sources within `budget` characters in all (llm_context_chars by
        default): whole abstracts while they fit, then the retrieved passages, cut to fit."""
        budget = self.settings.llm_context_chars if budget is None else budget
        parts = []
        for s in sources:
            head, tail = f"<source {s.n}>\nTitle: {s.title}\nText: ", f"\n</source {s.n}>"
            room = budget - len(head) - len(tail) - 2  # 2: the blank line between sources
            if room < 200:
                break  # not worth a source cut to a few words
            body = s.abstract if len(s.abstract) <= room else " … ".join(s.passages)
            body = body[:room]
            if not body:
                break
            parts.append(f"{head}{body}{tail}")
            budget -= len(parts[-1]) + 2
        return "\n\n".join(parts)

    def condense(self, question: str, history: Sequence[Turn]) -> tuple[str | None, LLMError | None]:
        """The follow-up rewritten as a standalone question, or the LLM's failure."""
        assert self.llm is not None
        # The conversation gets what the model's context leaves (local models), newest kept.
        room = self.budget(len(prompts.render("condense", history="", question=question)))
        try:
            text = complete(self.llm, [
                {"role": "user", "content": prompts.render(
                    "condense", history=history_text(history, min(4_000, room)) if room else "",
                    question=question)},
            ]).strip().splitlines()
        except LLMError as exc:
            log.warning("condensing the follow-up failed: %s", exc)
            return None, exc
        candidate = text[0].strip() if text else ""
        return (candidate if 3 <= len(candidate) <= self.settings.max_question_chars else None), None
