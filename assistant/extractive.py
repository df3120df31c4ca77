"""The offline answerer: no LLM, it quotes the sentences of each relevant paper that best answer the
question, with citations, and builds comparison tables from the papers' own sentences.

Deterministic: the same store and question give the same answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.citations import SourceDoc
from assistant.fitted import fitted_params
from assistant.safety import is_instruction_like
from assistant.sentences import SentenceVectors, numbers, split_sentences, stemmed_terms

ASKS_NUMBER = re.compile(
    r"\b(how (many|much|accurate|well|fast|large|big)|what (is|are|was|were) the (score|accuracy|"
    r"auc|dice|size|number)|accuracy|auc|auroc|dice|f1|score|percent|percentage|rate|reduc\w*|"
    r"improv\w*|achiev\w*|reach\w*|outperform\w*|gain|speed\w*|faster|parameters|sensitivity|"
    r"specificity|precision|recall|mae|error|metric\w*)\b",
    re.IGNORECASE,
)
ASKS_DATA = re.compile(r"\b(datasets?|data|corpus|cohort|benchmark\w*|trained on|evaluated on)\b", re.I)
# One ask per wh-word: "How many slides ..., and on how many tasks ...?" asks two things.
ASK = re.compile(r"\b(what|which|who|when|where|why|how)\b", re.I)
# Sentences quoted beyond `sentences_per_paper` for a question that asks several things.
MAX_EXTRA_SENTENCES = 1
# Words of the question's form, which say nothing about where the answer is.
QUESTION_WORDS = {"what", "which", "who", "when", "where", "why", "how", "many", "much", "does",
                  "did", "was", "were", "its", "has", "have", "their", "there", "each"}
# "a single GPU", "hundreds of GPUs": amounts written in words answer "how many" too ("one",
# "two" are left out: prose uses them as determiners far more often).
NUMBER_WORDS = re.compile(r"\b(single|dozens|hundreds|thousands|millions|billions|half|twice|"
                          r"double|triple)\b", re.I)
# A named dataset or benchmark ("SA-Med3D-140K", "BraTS2023", "MIMIC-III"): capitals or digits
# inside a word with at least three letters.
NAME = re.compile(r"\b(?=(?:[A-Za-z0-9-]*?[A-Za-z]){3})[A-Za-z0-9-]*"
                  r"(?:[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]|[A-Z]{2})[A-Za-z0-9-]*\b")

# What each comparison row looks for: a description for the embedder and cue words.
ROWS: dict[str, tuple[str, re.Pattern[str]]] = {
    "Task": (
        "the problem or clinical task this work addresses",
        re.compile(r"\b(aim\w*|goal|address\w*|segmentation|classification|detection|generation|"
                   r"diagnos\w*|question answering|prediction|reasoning)\b", re.I),
    ),
    "Method": (
        "we propose a novel method, model architecture or framework",
        re.compile(r"\b(we (propose|present|introduce|develop|design)|(is|are) proposed|novel|named|"
                   r"called)\b", re.I),
    ),
    "Data": (
        "the datasets, images, patients or benchmarks used for training and evaluation",
        re.compile(r"\b(datasets?|benchmarks?|cohort|patients|scans|cases|collected|"
                   r"trained on|evaluated on|[A-Z][A-Za-z]*[A-Z0-9][A-Za-z0-9-]*)\b"),
    ),
    "Results": (
        "experimental results show the method outperforms baselines with higher accuracy",
        re.compile(r"(\d|\b(outperform\w*|achiev\w*|state-of-the-art|improv\w*|superior|results)\b)",
                   re.I),
    ),
}
CELL_CHARS = 220
ANAPHORA = re.compile(r"^(This|These|That|Those|It|Its|They|Their|However|Such|Moreover|Thus)\b")


QUOTE_FEATURES = ("bias", "sim", "coverage", "has_number", "number_asked", "position", "first",
                  "anaphora", "we", "log_length", "names", "data_asked")
# Used only where no fitted quote model exists: similarity and coverage, as the answerer did before.
FALLBACK_QUOTE = {"sim": 6.0, "coverage": 3.0, "number_asked": 1.0, "data_asked": 0.5,
                  "anaphora": -1.0}
WE = re.compile(r"\b(we|our)\b", re.I)


def quote_features(question: str, sentences: list[str], vectors: SentenceVectors,
                   query_vector: np.ndarray, q_terms: set[str] | None = None
                   ) -> list[dict[str, float]]:
    """What makes a sentence the one that answers: its similarity to the question, the question's
    words it covers, whether it carries an amount where one is asked, a named dataset where data
    is asked, where it stands in the abstract (background comes first), whether it leans on an
    earlier sentence ("This ...") or states the authors' own work ("we ...")."""
    if not sentences:
        return []
    if q_terms is None:
        q_terms = stemmed_terms(question) - stemmed_terms(" ".join(QUESTION_WORDS))
    sims = vectors(sentences) @ query_vector
    wants_number = bool(ASKS_NUMBER.search(question))
    wants_data = bool(ASKS_DATA.search(question))
    last = max(len(sentences) - 1, 1)
    rows = []
    for i, sentence in enumerate(sentences):
        has_number = bool(numbers(sentence) or NUMBER_WORDS.search(sentence))
        rows.append({
            "bias": 1.0,
            "sim": float(sims[i]),
            "coverage": len(stemmed_terms(sentence) & q_terms) / max(len(q_terms), 1),
            "has_number": float(has_number),
            "number_asked": float(has_number and wants_number),
            "position": i / last,
            "first": float(i == 0),
            "anaphora": float(bool(ANAPHORA.match(sentence))),
            "we": float(bool(WE.search(sentence))),
            "log_length": math.log(1 + len(sentence.split())),
            "names": min(len(NAME.findall(sentence)), 3) / 3,
            "data_asked": float(wants_data and bool(ROWS["Data"][1].search(sentence))),
        })
    return rows


def best_per_row(scored: list[tuple[float, str, int]]) -> dict[str, int]:
    """(score, row, sentence index) -> each row's best sentence (the earliest on a tie)."""
    best: dict[str, int] = {}
    for _score, row, i in sorted(scored, key=lambda x: (-x[0], x[2])):
        best.setdefault(row, i)
    return best


def one_row_per_sentence(scored: list[tuple[float, str, int]]) -> dict[str, int]:
    """Greedy over all (row, sentence) scores, highest first, each sentence to one row at most."""
    picked: dict[str, int] = {}
    used: set[int] = set()
    for _score, row, i in sorted(scored, key=lambda x: (-x[0], x[2])):
        if row not in picked and i not in used:
            picked[row] = i
            used.add(i)
    return picked


def linear_score(row: dict[str, float], coefficients: dict[str, float],
            names: tuple[str, ...] = QUOTE_FEATURES) -> float:
    return sum(coefficients.get(name, 0.0) * row.get(name, 0.0) for name in names)


CELL_FEATURES = ("bias", "sim", "sim_rank", "cue", "position", "first", "last", "anaphora", "we",
                 "has_number", "names", "log_length", "title_name", "task_words", "method_words",
                 "data_words", "result_words")
# Every row's cue words as features of every row's model: each learns how much the others' words
# count against it ("we evaluate on LiTS" is data, not a result, though it holds a number).
CUE_WORDS = {
    "task_words": re.compile(r"\b(aim\w*|goal|address\w*|task|problem|challeng\w*)\b", re.I),
    "method_words": re.compile(r"\b(we (propose|present|introduce|develop|design)|(is|are) "
                               r"proposed|novel|named|called|architecture|framework)\b", re.I),
    "data_words": re.compile(r"\b(datasets?|benchmarks?|cohorts?|patients|scans|cases|collected|"
                             r"trained on|evaluated on|images)\b", re.I),
    "result_words": re.compile(r"\b(outperform\w*|achiev\w*|reach\w*|state-of-the-art|improv\w*|"
                               r"superior|accuracy|dice|auc|f1|score\w*|results? (show|demonstrate)\w*)\b",
                               re.I),
}


def cell_features(sentences: list[str], row_sims: np.ndarray, name: str
                  ) -> dict[str, list[dict[str, float]]]:
    """What makes a sentence the cell of a comparison row, per row: its similarity to the row's
    description (and whether it is the most similar of the abstract), the row's cue words, where
    it stands (abstracts open with background and close with results), whether it leans on an
    earlier sentence, states the authors' own work, carries a number or a named dataset, and
    holds the paper's short name. `row_sims`: sentences x rows."""
    last = max(len(sentences) - 1, 1)
    shared = []
    for i, sentence in enumerate(sentences):
        shared.append({
            "bias": 1.0,
            "position": i / last,
            "first": float(i == 0),
            "last": float(i == len(sentences) - 1),
            "anaphora": float(bool(ANAPHORA.match(sentence))),
            "we": float(bool(WE.search(sentence))),
            "has_number": float(bool(numbers(sentence))),
            "names": min(len(NAME.findall(sentence)), 3) / 3,
            "log_length": math.log(1 + len(sentence.split())),
            "title_name": float(bool(name) and name in sentence.lower()),
            **{key: float(bool(words.search(sentence))) for key, words in CUE_WORDS.items()},
        })
    out: dict[str, list[dict[str, float]]] = {}
    for r, (row, (_description, cue)) in enumerate(ROWS.items()):
        column = row_sims[:, r]
        order = np.argsort(-column, kind="stable")
        rank = np.empty(len(order))
        rank[order] = np.arange(len(order))
        out[row] = [{**shared[i], "sim": float(column[i]), "sim_rank": 1.0 / (1.0 + rank[i]),
                     "cue": float(bool(cue.search(sentence)))}
                    for i, sentence in enumerate(sentences)]
    return out


@dataclass
class Quote:
    source: SourceDoc
    sentence: str
    score: float


class ExtractiveAnswerer:
    def __init__(self, vectors: SentenceVectors, sentences_per_paper: int = 2) -> None:
        self.vectors = vectors
        self.sentences_per_paper = sentences_per_paper

    def best_sentences(self, question: str, source: SourceDoc, query_vector: np.ndarray,
                       n: int) -> list[Quote]:
        """The `n` sentences that best answer the question, picked one at a time by the quote
        model (fitted on the tune split: which sentences hold the asked-for value), with the
        question's words that the sentences picked so far do not yet cover counted again, so that
        a two-part question gets both parts answered."""
        sentences = [s for s in split_sentences(source.abstract) if not is_instruction_like(s)]
        if not sentences:
            return []
        # Words of the paper's own title identify the paper, not the answer within it.
        q_terms = (stemmed_terms(question) - stemmed_terms(source.title)
                   - stemmed_terms(" ".join(QUESTION_WORDS)))
        rows = quote_features(question, sentences, self.vectors, query_vector, q_terms)
        coefficients = (fitted_params().get("quotes") or {}).get("coefficients") or FALLBACK_QUOTE
        base = [linear_score(row, coefficients) - coefficients.get("coverage", 0.0) * row["coverage"]
                for row in rows]
        terms = [stemmed_terms(s) & q_terms for s in sentences]
        chosen: list[Quote] = []
        covered: set[str] = set()
        remaining = list(range(len(sentences)))
        weight = coefficients.get("coverage", 0.0)
        while remaining and len(chosen) < n:
            scores = {j: base[j] + weight * len(terms[j] - covered) / max(len(q_terms), 1)
                      for j in remaining}
            i = max(remaining, key=lambda j: (scores[j], -j))
            chosen.append(Quote(source, sentences[i], scores[i]))
            covered |= terms[i]
            remaining.remove(i)
        # Quote in the paper's own order, which reads better.
        return sorted(chosen, key=lambda q: sentences.index(q.sentence))

    def answer(self, question: str, kind: str, sources: list[SourceDoc], query_vector: np.ndarray,
               focus: list[int]) -> str:
        """`focus`: numbers of the sources the question names (answered first, or alone). Only
        sources judged to answer (SourceDoc.verdict) are quoted and cited; "related" ones are
        listed by title, without a citation."""
        if kind == "comparative" and len(focus) >= 2:
            return self.compare(question, [s for s in sources if s.n in focus])
        chosen = sorted((s for s in sources if s.verdict == "answers" or s.n in focus),
                        key=lambda s: (s.n not in focus, -s.relevance))
        related = [s for s in sources if s.verdict == "related" and s not in chosen]
        if kind == "list":
            body = self._list(question, chosen, query_vector)
        else:
            body = self._single(question, chosen, query_vector)
        return body + _related(related)

    def _single(self, question: str, chosen: list[SourceDoc], query_vector: np.ndarray) -> str:
        self._prefetch(chosen)
        n = self.sentences_per_paper + min(max(len(ASK.findall(question)) - 1, 0),
                                           MAX_EXTRA_SENTENCES)
        parts = []
        for source in chosen:
            quotes = self.best_sentences(question, source, query_vector, n)
            if quotes:
                text = " ".join(_quote_text(q.sentence) for q in quotes)
                parts.append(f"- *{_inline(source.title)}*: {text} [{source.n}]")
        return "\n".join(parts)

    def _prefetch(self, sources: list[SourceDoc], *extra: str) -> None:
        """Embed every sentence these sources will be scored on in one call: one batch sorted by
        length pads less than a call per abstract (a no-op when the cache has them all)."""
        self.vectors([*extra, *(s for source in sources for s in split_sentences(source.abstract))])

    def _list(self, question: str, chosen: list[SourceDoc], query_vector: np.ndarray) -> str:
        self._prefetch(chosen)
        count = "1 paper in the collection answers this:" if len(chosen) == 1 else \
            f"{len(chosen)} papers in the collection answer this:"
        lines = [count]
        for source in chosen:
            quotes = self.best_sentences(question, source, query_vector, 1)
            quote = f" — {_quote_text(quotes[0].sentence)}" if quotes else ""
            lines.append(f"- *{_inline(source.title)}* [{source.n}]{quote}")
        return "\n".join(lines)

    def compare(self, question: str, sources: list[SourceDoc]) -> str:
        """A side-by-side table, one column per paper, each cell a cited sentence of that paper."""
        sources = sources[:4]
        self._prefetch(sources, *(description for description, _ in ROWS.values()))
        header = "| | " + " | ".join(f"*{_cell(_short_title(s.title))}* [{s.n}]"
                                         for s in sources) + " |"
        lines = [header, "|---|" + "---|" * len(sources)]
        cells_model = fitted_params().get("cells")
        chosen = [self.assign_rows(source, cells_model) for source in sources]
        cells: dict[str, list[str]] = {}
        for row in ROWS:
            cells[row] = [
                f"{_cell(_clip(picked[row]))} [{source.n}]" if picked.get(row) else ""
                for source, picked in zip(sources, chosen, strict=True)
            ]
            lines.append(f"| **{row}** | " + " | ".join(cells[row]) + " |")
        code = [
            (" ".join(f"[{link}]({link})" for link in s.links if "github" in link or "gitlab" in link)
             + f" [{s.n}]") if any("github" in x or "gitlab" in x for x in s.links) else "not stated"
            for s in sources
        ]
        lines.append("| **Code** | " + " | ".join(code) + " |")
        summary = ["", "**In short:**"]
        for source, method in zip(sources, cells["Method"], strict=True):
            if method:
                summary.append(f"- *{_inline(_short_title(source.title))}*: {method}")
        return "\n".join(lines + summary)

    @staticmethod
    def short_name(source: SourceDoc) -> str:
        """The paper's short name ("SegMamba" of "SegMamba: ..."), lower-cased; "" if none."""
        return _short_title(source.title).lower() if ":" in source.title else ""

    def assign_rows(self, source: SourceDoc, cells: dict[str, Any] | None) -> dict[str, str]:
        """Each row's cell: the sentence the cell model `cells` scores highest for it (fitted on
        sentence-role labels of the tune half of the papers, bench/fit_cells.py). One sentence may
        fill two rows: a third of abstracts state their task only in the sentence that proposes
        the method, and the next-best "Task" sentence is then background (bench/fit_cells.py's
        cross-validation on the tune half compares both ways of picking).
        None: the row rules the model replaced, one row per sentence."""
        sentences = [s for s in split_sentences(source.abstract) if not is_instruction_like(s)]
        if not sentences:
            return {}
        name = self.short_name(source)
        sims = self.vectors(sentences) @ self._row_vectors().T  # sentences x rows
        if cells:
            rows = cell_features(sentences, sims, name)
            scored = [(linear_score(f, cells["rows"][row]["coefficients"], CELL_FEATURES), row, i)
                      for row in ROWS for i, f in enumerate(rows[row])]
            return {row: sentences[i] for row, i in best_per_row(scored).items()}
        scored = self._rule_scores(sentences, sims, name)
        return {row: sentences[i] for row, i in one_row_per_sentence(scored).items()}

    @staticmethod
    def _rule_scores(sentences: list[str], sims: np.ndarray, name: str
                     ) -> list[tuple[float, str, int]]:
        """The row rules used before the cell model (kept as its fallback and its baseline)."""
        scored = []
        for r, (row, (_description, cue)) in enumerate(ROWS.items()):
            for i, sentence in enumerate(sentences):
                score = float(sims[i, r]) + (0.3 if cue.search(sentence) else 0.0)
                if row == "Task" and i == 0:
                    score += 0.15  # abstracts open with the problem they address
                if row == "Method" and name and name in sentence.lower():
                    score += 0.2
                if row == "Results" and numbers(sentence):
                    score += 0.2
                if ANAPHORA.match(sentence):
                    score -= 0.2  # "This hinders its adoption." means nothing alone in a cell
                scored.append((score, row, i))
        return scored

    def _row_vectors(self) -> np.ndarray:
        return self.vectors([description for description, _ in ROWS.values()])


def _related(sources: list[SourceDoc]) -> str:
    """Close papers that were not judged to answer: named, not cited."""
    if not sources:
        return ""
    lines = ["", "", "Related papers (close to the question, not cited as answering it):"]
    lines += [f"- *{_inline(s.title)}*" for s in sources]
    return "\n".join(lines)


def _short_title(title: str) -> str:
    head, sep, _ = title.partition(":")
    return head if sep and len(head) <= 40 else (title if len(title) <= 60 else title[:57] + "…")


def _clip(sentence: str) -> str:
    if len(sentence) <= CELL_CHARS:
        return sentence
    cut = sentence[:CELL_CHARS].rsplit(" ", 1)[0]
    return cut + " …"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _inline(text: str) -> str:
    return text.replace("*", "").replace("[", "(").replace("]", ")")


def _quote_text(sentence: str) -> str:
    return sentence.replace("[", "(").replace("]", ")")
