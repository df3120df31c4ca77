"""Which retrieved papers answer the question: a decision per paper (answers / related / not
relevant) from signals that do not depend on any particular question, combined by a logistic model
whose coefficients and thresholds are fitted on the tune split of the blind question set
(bench/fit_answers.py -> assistant/fitted_params.json).

Retrieval ranks papers; it does not decide. Without this, every answer cited the whole top k.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from assistant.fitted import fitted_params
from assistant.retrieval import PaperHit, RetrievalResult
from assistant.sentences import SentenceVectors, split_sentences, stemmed_terms

Verdict = Literal["answers", "related", "irrelevant"]
Shape = Literal["single", "many", "comparative"]

# The shape of the answer a question wants, from its grammar: "which papers ..." wants every paper
# that qualifies; "which paper ...", "what Dice does X reach" want one.
PLURAL_ASK = re.compile(
    r"\b(papers|studies|works|articles|methods|models|approaches|systems|benchmarks|datasets|"
    r"surveys|reviews|frameworks|tools|efforts|publications)\b|\b(list|any|all|several|other)\b",
    re.I,
)
QUESTION_FORM = {"what", "which", "who", "when", "where", "why", "how", "many", "much", "does",
                 "did", "was", "were", "its", "has", "have", "their", "there", "each", "any",
                 "paper", "papers", "study", "studies", "work", "works", "article", "articles",
                 "compare", "compared", "versus", "between", "list", "find", "show", "tell",
                 "about", "using", "used", "use", "uses"}

FEATURES = ("bias", "sent_max", "sent_gap", "sent_top2", "title_sim", "fused_ratio", "log_rank",
            "dense_rr", "bm25_rr", "literal_rr", "phrase_rr", "literal_hit", "phrase_hit",
            "bm25_ratio", "coverage",
            "title_coverage", "named", "other_named")


def answer_shape(question: str, kind: str) -> Shape:
    if kind == "comparative":
        return "comparative"
    return "many" if PLURAL_ASK.search(question) else "single"


@dataclass
class Judgement:
    paper_id: str
    probability: float
    verdict: Verdict
    features: dict[str, float] = field(default_factory=dict)


def question_terms(question: str) -> set[str]:
    return stemmed_terms(question) - stemmed_terms(" ".join(QUESTION_FORM))


def features(question: str, result: RetrievalResult, abstracts: dict[str, str],
             vectors: SentenceVectors) -> list[dict[str, float]]:
    """One feature row per retrieved paper, in retrieval order. `abstracts`: paper id -> text."""
    hits = result.papers
    if not hits:
        return []
    q = result.query_vector
    assert q is not None
    q_terms = question_terms(question)
    sentence_lists = [split_sentences(abstracts.get(h.paper_id, "")) or [h.title] for h in hits]
    # One embedding call for every sentence and title (cached across questions).
    vectors([*(s for sents in sentence_lists for s in sents), *(h.title for h in hits)])
    sims = [np.sort(vectors(sents) @ q)[::-1] for sents in sentence_lists]
    title_sims = vectors([h.title for h in hits]) @ q
    best_sent = max(float(s[0]) for s in sims)
    top_score = max(h.score for h in hits) or 1.0
    top_bm25 = max(h.bm25 for h in hits) or 1.0
    any_named = any(h.named for h in hits)
    rows = []
    for i, (hit, s) in enumerate(zip(hits, sims, strict=True)):
        text_terms = stemmed_terms(f"{hit.title} {abstracts.get(hit.paper_id, '')}")
        title_terms = stemmed_terms(hit.title)
        rows.append({
            "bias": 1.0,
            "sent_max": float(s[0]),
            "sent_gap": float(s[0]) - best_sent,
            "sent_top2": float(s[: 2].mean()),
            "title_sim": float(title_sims[i]),
            "fused_ratio": hit.score / top_score,
            "log_rank": math.log(1 + i),
            "dense_rr": _reciprocal(hit, "dense"),
            "bm25_rr": _reciprocal(hit, "bm25"),
            "literal_rr": _reciprocal(hit, "literal"),
            "phrase_rr": _reciprocal(hit, "phrase"),
            # Holds a name or phrase of the question verbatim: for a list question ("which papers
            # use MIMIC-IV") every such paper may qualify, whatever its rank.
            "literal_hit": float("literal" in hit.ranks),
            "phrase_hit": float("phrase" in hit.ranks),
            "bm25_ratio": hit.bm25 / top_bm25,
            "coverage": len(q_terms & text_terms) / len(q_terms) if q_terms else 0.0,
            "title_coverage": len(q_terms & title_terms) / len(q_terms) if q_terms else 0.0,
            "named": float(hit.named),
            "other_named": float(any_named and not hit.named),
        })
    return rows


def _reciprocal(hit: PaperHit, retriever: str) -> float:
    rank = hit.ranks.get(retriever)
    return 1.0 / rank if rank else 0.0


def probability(row: dict[str, float], coefficients: dict[str, float],
                names: tuple[str, ...] = FEATURES) -> float:
    z = sum(coefficients.get(name, 0.0) * row.get(name, 0.0) for name in names)
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


# Used only where no fitted model exists (a fresh checkout before bench/fit_answers.py ran): the
# best-sentence similarity alone, with the gap to the best paper.
FALLBACK = {"shapes": {shape: {"coefficients": {"bias": -6.0, "sent_max": 10.0, "sent_gap": 8.0},
                               "answers": 0.5, "related": 0.25}
                       for shape in ("single", "many", "comparative")}}


# Fewer than the features computed: the abstention model learns from few unanswerable questions,
# and the bag-of-words ones (coverage of the best paper, question length) fitted noise on the tune
# split (out-of-fold: more answerable questions abstained for no more unanswerable ones caught).
QUESTION_FEATURES = ("bias", "best_p", "best_sent", "best_cov", "missing", "named", "dense_best",
                     "many", "comparative", "literal")


def question_features(question: str, result: RetrievalResult, rows: list[dict[str, float]],
                      probabilities: list[float], abstracts: dict[str, str]) -> dict[str, float]:
    """Whether the question is answerable at all: how well the best paper covers it, and which of
    its words no retrieved paper has ("hip" where the papers say "knee")."""
    q_terms = question_terms(question)
    best = max(range(len(rows)), key=lambda i: probabilities[i])
    texts = [stemmed_terms(f"{h.title} {abstracts.get(h.paper_id, '')}") for h in result.papers]
    seen = set().union(*texts) if texts else set()
    hit = result.papers[best]
    # The question's words beyond the ones that name the paper: what it asks about the paper.
    rest = q_terms - stemmed_terms(hit.title) - stemmed_terms(" ".join(e.name for e in result.entities))
    abstract_terms = stemmed_terms(abstracts.get(hit.paper_id, ""))
    return {
        "bias": 1.0,
        "best_p": probabilities[best],
        "best_sent": max(r["sent_max"] for r in rows),
        "best_cov": max(r["coverage"] for r in rows),
        "cov_of_best": rows[best]["coverage"],
        "rest_cov": len(rest & abstract_terms) / len(rest) if rest else 1.0,
        "missing": len(q_terms - seen) / len(q_terms) if q_terms else 0.0,
        "named": float(any(h.named for h in result.papers)),
        "dense_best": result.best_similarity,
        "n_terms": math.log(1 + len(q_terms)),
        "many": float(answer_shape(question, result.kind) == "many"),
        "comparative": float(result.kind == "comparative"),
        "literal": float(any("literal" in h.ranks for h in result.papers)),
    }


@dataclass
class Decision:
    judgements: list[Judgement]
    unanswerable: float = 0.0  # probability that no paper answers the question
    abstain: bool = False
    question_features: dict[str, float] = field(default_factory=dict)


class RelevanceJudge:
    """Judges every retrieved paper against the question, and the question against the corpus."""

    def __init__(self, vectors: SentenceVectors) -> None:
        self.vectors = vectors
        fitted = fitted_params()
        self.params = fitted.get("relevance") or FALLBACK
        self.abstention = fitted.get("abstention")

    def judge(self, question: str, result: RetrievalResult, abstracts: dict[str, str]) -> Decision:
        shape = answer_shape(question, result.kind)
        params = self.params["shapes"][shape]
        rows = features(question, result, abstracts, self.vectors)
        judgements = []
        for hit, row in zip(result.papers, rows, strict=True):
            p = probability(row, params["coefficients"])
            verdict: Verdict = ("answers" if p >= params["answers"] or hit.named
                                else "related" if p >= params["related"] else "irrelevant")
            judgements.append(Judgement(hit.paper_id, p, verdict, row))
        decision = Decision(judgements)
        if not judgements:
            return decision
        decision.question_features = question_features(
            question, result, rows, [j.probability for j in judgements], abstracts)
        if self.abstention:
            decision.unanswerable = probability(decision.question_features,
                                                self.abstention["coefficients"], QUESTION_FEATURES)
            decision.abstain = decision.unanswerable >= self.abstention["threshold"]
        if decision.abstain:
            for j in judgements:
                j.verdict = "related" if j.verdict == "answers" else j.verdict
        elif not any(j.verdict == "answers" for j in judgements):
            # "Which paper ...?" leads with the single best paper.
            max(judgements, key=lambda j: j.probability).verdict = "answers"
        return decision
