"""Which sentences of a cited paper back the answer's claims that cite it: quoted verbatim
(offline answers) or the closest sentence by embedding (LLM answers). The sources panel marks
them, and a citation's preview shows the first."""

from __future__ import annotations

import logging
import re

import numpy as np

from assistant.citations import CITE, claim_units, split_sentences
from assistant.engine import Answer, Engine
from assistant.web.render import SOURCES_HEADING

log = logging.getLogger(__name__)

SUPPORT_SIMILARITY = 0.6  # a sentence this close to a citing claim is shown as its support
MIN_SENTENCE_CHARS = 15


def supporting_sentences(engine: Engine, answer: Answer) -> dict[int, list[str]]:
    body = SOURCES_HEADING.split(answer.answer, maxsplit=1)[0]
    claims: dict[int, list[str]] = {}
    previous = ""
    for start, end in claim_units(body):
        unit = body[start:end]
        numbers = {int(n) for m in CITE.finditer(unit) for n in re.split(r"[,;]", m.group(1))}
        claim = CITE.sub("", unit).strip(" |*-_").replace("&lt;", "<").replace("&gt;", ">")
        # "Sentence. [1]" at a line's end comes out as a unit of its own: it cites the sentence before.
        claim = claim or previous
        previous = claim
        if claim:
            for n in numbers:
                claims.setdefault(n, []).append(claim)
    by_n = {s.n: s for s in answer.sources}
    support: dict[int, list[str]] = {}
    for n, texts in claims.items():
        source = by_n.get(n)
        if source is None or not source.abstract:
            continue
        sentences = [s for s in split_sentences(source.abstract) if len(s) > MIN_SENTENCE_CHARS]
        if not sentences:
            continue
        found: list[str] = []
        loose: list[str] = []
        for claim in texts:
            quoted = [s for s in sentences if s.rstrip(" .…") in claim or s[:80] in claim]
            if quoted:
                found.extend(quoted)
            else:
                loose.append(claim)
        if loose:
            try:
                vectors = engine.vectors([*loose, *sentences])
                sims = vectors[len(loose):] @ vectors[: len(loose)].T  # sentences x claims
                for j in range(len(loose)):
                    best = int(np.argmax(sims[:, j]))
                    if sims[best, j] >= SUPPORT_SIMILARITY:
                        found.append(sentences[best])
            except Exception:  # highlighting is a nicety; never fail an answer over it
                log.debug("support highlighting failed", exc_info=True)
        support[n] = list(dict.fromkeys(found))
    return support
