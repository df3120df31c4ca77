"""The structured records of an answer and of a search, as the HTTP API and the MCP server publish
them (pydantic models: their JSON schemas are in the OpenAPI document and the MCP tools' output
schemas). Built from the engine's objects, never by parsing rendered markdown.

Per-claim evidence: each citation lists the answer's sentences it supports (`claim`) with the
paper's sentence that supports each (`evidence`), read from the citation checker's per-claim
records (`Citation.claims`); the list is empty where the checker keeps none.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.citations import Citation, SourceDoc
from assistant.engine import Answer
from assistant.retrieval import RetrievalResult


class ClaimRecord(BaseModel):
    claim: str = Field(description="The sentence (or table cell) of the answer that cites the paper.")
    evidence: str = Field(description="The paper's sentence that supports it.")
    support: float = Field(description="How well the evidence supports the claim (0 to 1).")


class CitationRecord(BaseModel):
    n: int = Field(description="The number the answer cites the paper by, as in [n].")
    title: str = Field(description="The paper's exact title in the corpus.")
    paper_id: str = Field(description="The paper's id (get_paper, paper://{id}).")
    url: str = Field(description="The paper's link, when the corpus has one.")
    support: float = Field(description="The checker's support score of the citation (0 to 1).")
    flagged: bool = Field(description="Shown, but its sentence is not well supported by the paper.")
    claims: list[ClaimRecord] = Field(
        default_factory=list, description="Each claim of the answer citing this paper, with its evidence.")
    claim: str | None = Field(None, description="The first claim (claims[0].claim), if any.")
    evidence: str | None = Field(None, description="The first claim's evidence (claims[0].evidence).")


class SourceRecord(BaseModel):
    n: int = Field(description="The source's number; a citation [n] refers to it.")
    title: str = Field(description="The paper's exact title in the corpus.")
    paper_id: str
    url: str
    score: float = Field(description="Retrieval score (fused rank score; higher is better).")
    passages: list[str] = Field(description="The retrieved passages of the paper.")


class AnswerRecord(BaseModel):
    """The structured part of an answer: what `sources` and `citations` mean."""

    mode: Literal["llm", "extractive"] = Field(
        description="llm: written by the language model; extractive: quoting the papers.")
    abstained: bool = Field(description="The corpus does not cover the question; nothing is claimed.")
    kind: str = Field(description="Question kind: factual, list or comparative.")
    notice: str = Field(description="Why the answer is not what was asked for (e.g. the LLM failed).")
    checks: dict[str, int] = Field(description="What the citation check changed (counts).")
    sources: list[SourceRecord] = Field(description="The retrieved papers, numbered.")
    citations: list[CitationRecord] = Field(description="The papers the answer cites, checked.")


class AskResult(AnswerRecord):
    answer: str = Field(description="The answer in markdown, ending with its numbered source list.")


def claim_records(citation: Citation) -> list[ClaimRecord]:
    # The checker's per-claim records (Claim(text, evidence, support)); absent in older checkers.
    return [ClaimRecord(claim=str(c.text), evidence=str(c.evidence), support=round(float(c.support), 4))
            for c in getattr(citation, "claims", None) or []]


def citation_record(citation: Citation) -> CitationRecord:
    claims = claim_records(citation)
    return CitationRecord(n=citation.n, title=citation.title, paper_id=citation.paper_id,
                          url=citation.url, support=round(float(citation.support), 4),
                          flagged=citation.flagged, claims=claims,
                          claim=claims[0].claim if claims else None,
                          evidence=claims[0].evidence if claims else None)


def source_record(source: SourceDoc) -> SourceRecord:
    return SourceRecord(n=source.n, title=source.title, paper_id=source.paper_id, url=source.url,
                        score=round(source.score, 5), passages=list(source.passages))


def answer_record(answer: Answer) -> AnswerRecord:
    return AnswerRecord(mode=answer.mode, abstained=answer.abstained, kind=answer.kind,
                        notice=answer.notice, checks=dict(answer.checks),
                        sources=[source_record(s) for s in answer.sources],
                        citations=[citation_record(c) for c in answer.citations])


def ask_result(answer: Answer) -> AskResult:
    return AskResult(answer=answer.answer, **dict(answer_record(answer)))


def answer_fields(answer: Answer) -> dict[str, Any]:
    """The extra top-level fields of a chat completion (JSON-ready)."""
    return answer_record(answer).model_dump(mode="json")


# --- search -----------------------------------------------------------------------------------
class PassageRecord(BaseModel):
    text: str
    score: float


class PaperHitRecord(BaseModel):
    rank: int
    paper_id: str
    title: str = Field(description="The paper's exact title in the corpus.")
    url: str
    score: float = Field(description="Retrieval score (fused rank score; higher is better).")
    passages: list[PassageRecord] = Field(description="The paper's best passages for the query.")


class SearchRecord(BaseModel):
    object: Literal["search.result"] = "search.result"
    query: str
    kind: str = Field(description="Question kind: factual, list or comparative.")
    covered: bool = Field(description="False: nothing in the corpus is about the query.")
    best_similarity: float
    papers: list[PaperHitRecord]


def search_record(result: RetrievalResult, keep: set[str] | None = None) -> SearchRecord:
    """`keep`: only these paper ids (a filter)."""
    hits = [h for h in result.papers if keep is None or h.paper_id in keep]
    return SearchRecord(
        query=result.question, kind=result.kind, covered=result.covered,
        best_similarity=round(result.best_similarity, 4),
        papers=[PaperHitRecord(rank=rank, paper_id=h.paper_id, title=h.title, url=h.url,
                               score=round(h.score, 5),
                               passages=[PassageRecord(text=p.text, score=round(p.score, 5))
                                         for p in h.passages])
                for rank, h in enumerate(hits, start=1)])


# --- chat completions (for the OpenAPI document) ----------------------------------------------
class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: str = "stop"
    logprobs: None = None


class ChatCompletion(AnswerRecord):
    """OpenAI's chat completion, with the answer's structured records as extra top-level fields
    (the `openai` client exposes them as `response.model_extra`)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One event of a streamed answer (`data: {...}`). The last one, with finish_reason "stop",
    also carries `answer` (the checked text, complete) and the fields of AnswerRecord."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    answer: str | None = None
    mode: Literal["llm", "extractive"] | None = None
    abstained: bool | None = None
    kind: str | None = None
    notice: str | None = None
    checks: dict[str, int] | None = None
    sources: list[SourceRecord] | None = None
    citations: list[CitationRecord] | None = None
