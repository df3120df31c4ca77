"""Which sentences of a cited paper back the answer's claims that cite it: the citation checker's
per-claim records (citations.Claim), so nothing here re-reads the rendered answer. The sources
panel marks them, and a citation's preview shows the first."""

from __future__ import annotations

from assistant.engine import Answer, Engine
from assistant.sentences import split_sentences


def supporting_sentences(engine: Engine, answer: Answer) -> dict[int, list[str]]:
    """Citation number -> the paper's sentences that the checker matched to the claims citing it."""
    del engine  # the records carry what is needed
    support: dict[int, list[str]] = {}
    for citation in answer.citations:
        sentences = [s for claim in citation.claims if claim.evidence
                     for s in split_sentences(claim.evidence)]
        if sentences:
            support[citation.n] = list(dict.fromkeys(sentences))
    return support
