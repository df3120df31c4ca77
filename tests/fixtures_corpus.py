"""Helpers for the foundation tests: generated corpora in the three formats and store readers.

Imported by the test modules directly (tests/ is on sys.path under pytest's default import mode).
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

from assistant.chunks import chunk_paper
from assistant.corpus import load_papers
from assistant.settings import Settings
from assistant.store import PaperStore

LISTING_HEADER = (
    "Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\n"
)

_WORDS = (
    "segmentation", "transformer", "radiology", "cohort", "biomarker", "ultrasound", "pathology",
    "retinal", "lesion", "classifier", "calibration", "federated", "multimodal", "encoder",
    "decoder", "annotation", "benchmark", "clinician", "diagnosis", "tumour", "cardiac",
    "echocardiography", "histology", "mammography", "triage", "sepsis", "genomic", "attention",
    "contrastive", "diffusion", "registration", "uncertainty", "cross-validation", "sensitivity",
    "specificity", "survival", "prognosis", "longitudinal", "imaging", "report", "language",
    "model", "retrieval",
)


def make_papers(n: int, *, seed: int = 0, prefix: str = "Study") -> list[tuple[str, str]]:
    """`n` (title, abstract) pairs with unique titles and abstracts of 2 to 30 sentences, so papers
    split into anywhere from one to several chunks at the default chunk size."""
    rng = random.Random(seed)
    papers = []
    for i in range(n):
        title = f"{prefix} {i}: {rng.choice(_WORDS).title()} {rng.choice(_WORDS)} in practice"
        sentences = []
        for _ in range(rng.randint(2, 30)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
            sentences.append(" ".join(words).capitalize() + ".")
        papers.append((title, f"Paper {prefix.lower()}{i} " + " ".join(sentences)))
    return papers


def write_listing(path: Path, papers: list[tuple[str, str]], *, header: bool = True) -> Path:
    body = "".join(f"{title}\n{abstract}\n" for title, abstract in papers)
    path.write_text((LISTING_HEADER if header else "") + body, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


def write_csv(path: Path, records: list[dict], columns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for record in records:
            writer.writerow(record)
    return path


def expected_chunks(paths: list[Path], settings: Settings) -> dict[str, list[str]]:
    """paper id -> the chunk texts an ingest of `paths` must leave in the store, in order."""
    papers = load_papers(paths).papers
    return {
        p.id: [n.text for n in chunk_paper(p, settings.chunk_size, settings.chunk_overlap)]
        for p in papers
    }


def store_chunks(settings: Settings) -> dict[str, dict[str, tuple[str, dict]]]:
    """paper id -> {chunk id: (text, metadata)} as the store holds them."""
    store = PaperStore(settings)
    got = store.chunks.get(include=["documents", "metadatas"])
    out: dict[str, dict[str, tuple[str, dict]]] = defaultdict(dict)
    for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        out[meta["paper_id"]][cid] = (doc, meta)
    return dict(out)


def store_chunk_texts(settings: Settings) -> dict[str, list[str]]:
    """paper id -> chunk texts ordered by chunk index."""
    return {
        pid: [chunks[cid][0] for cid in sorted(chunks)]
        for pid, chunks in store_chunks(settings).items()
    }
