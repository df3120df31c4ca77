"""An evidence table for list questions: one row per paper, one column per aspect (task, method,
data, main result, and any the user names, e.g. "sample size"), each cell a sentence quoted from
that paper's abstract with its citation number. Sentences are matched to columns with the sentence
embedder the engine already has (citations.SentenceVectors, which caches their vectors)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.citations import SentenceVectors, SourceDoc, split_sentences
from assistant.errors import AssistantError

# Column -> (what the embedder compares sentences with, cue words that favour a sentence).
COLUMNS: dict[str, tuple[str, re.Pattern[str] | None]] = {
    "task": ("the problem or task this work addresses",
             re.compile(r"\b(aim\w*|goal|address\w*|task|challeng\w*|problem)\b", re.I)),
    "method": ("we propose a new method, model or framework",
               re.compile(r"\b(we (propose|present|introduce|develop|design)|novel|named|called)\b",
                          re.I)),
    "data": ("the datasets, patients, images or benchmarks used for training and evaluation",
             re.compile(r"\b(datasets?|benchmarks?|cohort|patients|images|scans|cases|collected)\b",
                        re.I)),
    "main result": ("the main result: the method outperforms baselines with higher accuracy",
                    re.compile(r"(\d|\b(outperform\w*|achiev\w*|state-of-the-art|improv\w*)\b)",
                               re.I)),
}
# Descriptions for column names users often add, which the small embedder reads poorly alone
# ("sample size" alone is nearest to "routinely collected data").
KNOWN_COLUMNS = {
    "sample size": "the number of patients, participants, subjects, images, scans or cases studied",
    "limitations": "a limitation, weakness or drawback of the study",
    "metric": "the evaluation metric such as accuracy, AUROC, Dice or F1",
    "code": "the code, software or repository is publicly available",
}
# A column whose name asks for an amount favours sentences with numbers in them.
QUANTITY = re.compile(r"\b(size|number|count|how many|amount|n)\b", re.I)
NUMBER = re.compile(r"\d")
CUE_BONUS = 0.3  # as the comparison table's (extractive.py): cue words matter as much as the vector
MAX_EXTRA_COLUMNS = 5
COLUMN_NAME = re.compile(r"^[\w][\w \-/()%.,]{0,59}$")


@dataclass
class EvidenceCell:
    sentence: str
    score: float


@dataclass
class EvidenceRow:
    n: int
    paper_id: str
    title: str
    url: str
    cells: dict[str, EvidenceCell | None] = field(default_factory=dict)


@dataclass
class EvidenceTable:
    columns: list[str]
    rows: list[EvidenceRow]

    def cell_text(self, row: EvidenceRow, column: str) -> str:
        cell = row.cells.get(column)
        return f"“{cell.sentence}” [{row.n}]" if cell else "not stated"

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["n", "title", "url", *self.columns])
        for row in self.rows:
            writer.writerow([row.n, row.title, row.url, *(self.cell_text(row, c) for c in self.columns)])
        return out.getvalue()

    def to_markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "/").replace("\n", " ")

        lines = ["| paper | " + " | ".join(self.columns) + " |",
                 "|---|" + "---|" * len(self.columns)]
        for row in self.rows:
            lines.append(f"| {cell(row.title)} [{row.n}] | "
                         + " | ".join(cell(self.cell_text(row, c)) for c in self.columns) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {"columns": self.columns, "rows": [
            {"n": r.n, "paper_id": r.paper_id, "title": r.title, "url": r.url,
             "cells": {c: ({"sentence": cell.sentence, "score": round(cell.score, 4)} if cell else None)
                       for c, cell in r.cells.items()}}
            for r in self.rows]}


def column_names(extra: Sequence[str]) -> list[str]:
    """The default columns plus the user's, checked: short plain names, at most a few."""
    names = list(COLUMNS)
    for name in extra:
        name = " ".join(str(name).split())
        if not name or name.lower() in names:
            continue
        if not COLUMN_NAME.match(name):
            raise AssistantError(f"column name {name[:40]!r} is not usable",
                                 hint="a short name such as \"sample size\" (letters, digits, spaces)")
        names.append(name.lower())
    if len(names) - len(COLUMNS) > MAX_EXTRA_COLUMNS:
        raise AssistantError(f"at most {MAX_EXTRA_COLUMNS} extra columns")
    return names


def evidence_table(sources: Sequence[SourceDoc], vectors: SentenceVectors,
                   extra_columns: Sequence[str] = (), *, min_similarity: float = 0.15) -> EvidenceTable:
    """One row per source, in order. Each column gets the sentence of the paper that fits it best
    (cosine with the column's description, plus a small bonus for its cue words), picked greedily
    best-first, each sentence in one default column at most; a column that no sentence fits at
    `min_similarity` (similarity plus bonus) reads "not stated" rather than quoting something
    unrelated."""
    columns = column_names(extra_columns)
    descriptions = [COLUMNS[c][0] if c in COLUMNS else KNOWN_COLUMNS.get(c, f"the {c} of the study")
                    for c in columns]
    column_vectors = vectors(descriptions)
    rows = []
    for source in sources:
        row = EvidenceRow(source.n, source.paper_id, source.title, source.url,
                          dict.fromkeys(columns))
        sentences = split_sentences(source.abstract)
        if sentences:
            sims = vectors(sentences) @ column_vectors.T  # sentences x columns
            row.cells.update(_assign(columns, sentences, np.asarray(sims), min_similarity))
        rows.append(row)
    return EvidenceTable(columns, rows)


def _words_of(name: str) -> re.Pattern[str] | None:
    """A pattern for the name's own words (their first five letters: "hospital" finds
    "hospitals")."""
    words = [w[:5] for w in re.findall(r"[A-Za-z]{4,}", name)]
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + ")", re.I) if words else None


def _assign(columns: list[str], sentences: list[str], sims: np.ndarray, floor: float
            ) -> dict[str, EvidenceCell]:
    scored = []
    for c, column in enumerate(columns):
        cue = COLUMNS[column][1] if column in COLUMNS else None
        for i, sentence in enumerate(sentences):
            sim = float(sims[i, c])
            if cue is None:  # a column the user named: an amount, or the name's own words
                cue = NUMBER if QUANTITY.search(column) else _words_of(column)
            bonus = CUE_BONUS if cue is not None and cue.search(sentence) else 0.0
            if column == "task" and i == 0:
                bonus += CUE_BONUS  # abstracts open with the problem they address
            if sim + bonus >= floor:
                scored.append((sim + bonus, sim, column, i))
    picked: dict[str, EvidenceCell] = {}
    used: set[int] = set()
    for _score, sim, column, i in sorted(scored, key=lambda s: (-s[0], s[3])):
        # The default columns each quote a different sentence; a column the user added may quote
        # one of theirs again (a short abstract states the sample size in its data sentence).
        if column not in picked and (i not in used or column not in COLUMNS):
            picked[column] = EvidenceCell(sentences[i], sim)
            if column in COLUMNS:
                used.add(i)
    return picked
