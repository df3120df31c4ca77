"""Markdown tables in a model's answer: whether a comparison table is usable (cites each compared
paper in its cells), spreading a row's citation to its cells so the checker sees them, and
dropping an unusable table so the papers' own one replaces it."""

from __future__ import annotations

import re

from assistant.citations import CITE, normalize_citations


def has_table(text: str, columns: int) -> bool:
    rows = [line for line in text.splitlines() if line.strip().startswith("|")]
    return len(rows) >= 3 and all(line.count("|") >= columns + 1 for line in rows[:2])


def usable_table(text: str, focus: list[int]) -> bool:
    """A table that cites each compared paper (up to 4) in at least two cells. Small models write
    tables of the wrong papers, with no citations, or citing a paper only in its name cell, which
    leaves every claim in the row unchecked."""
    if not has_table(text, min(len(focus), 4)):
        return False
    cells = [cell for line in text.splitlines() if line.strip().startswith("|")
             for cell in line.split("|")]
    return all(sum(n in cited_numbers(cell) for cell in cells) >= 2 for n in focus[:4])


def cite_table_rows(text: str) -> str:
    """A table row that cites one paper in its first cell only (small models cite "| [1] | task |
    method |") vouches for its other cells: each gets that citation, so that the checker checks
    it, and moves or flags it, rather than it being shown unchecked."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = line.strip().strip("|").split("|")
        if not line.strip().startswith("|") or len(cells) < 2:
            continue
        numbers = cited_numbers(cells[0])
        if len(numbers) != 1 or cited_numbers("|".join(cells[1:])):
            continue
        n = numbers.pop()
        cells[1:] = [f"{c.rstrip()} [{n}] " if c.strip() else c for c in cells[1:]]
        lines[i] = "|" + "|".join(cells) + "|"
    return "\n".join(lines)


def cited_numbers(text: str) -> set[int]:
    """Every number the text cites, in any form the checker reads ("[2]", "[ 2 ]", "[1-3]")."""
    return {int(n) for group in CITE.findall(normalize_citations(text)) for n in re.split(r"[,;]", group)}


def without_table(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(
        line for line in text.splitlines() if not line.strip().startswith("|"))).strip()
