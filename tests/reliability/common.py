"""Shared pieces of the reliability suite: the medical-AI text generator, store snapshots that a
test compares before and after, and the results files the report is generated from."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.chunks import chunk_paper
from assistant.corpus import Paper
from assistant.lexical import bm25_is_fresh
from assistant.settings import Settings
from assistant.stats import percentile
from assistant.store import PaperStore

# The committed record behind docs/RELIABILITY.md; `report --run` refreshes it. Plain test runs
# write to a git-ignored scratch folder so that running the suite never dirties the checkout.
RECORD = Path(__file__).parent / "results"
SCRATCH = Path(__file__).resolve().parents[2] / ".cache" / "reliability-results"
RESULTS = Path(os.environ.get("RELIABILITY_RESULTS_DIR", SCRATCH))

WORDS = [
    "segmentation",
    "transformer",
    "radiology",
    "cohort",
    "biomarker",
    "ultrasound",
    "pathology",
    "retinal",
    "lesion",
    "classifier",
    "calibration",
    "federated",
    "multimodal",
    "encoder",
    "decoder",
    "annotation",
    "benchmark",
    "clinician",
    "diagnosis",
    "tumour",
    "cardiac",
    "echocardiography",
    "histology",
    "mammography",
    "triage",
    "sepsis",
    "genomic",
    "attention",
    "contrastive",
    "diffusion",
    "registration",
    "uncertainty",
    "sensitivity",
    "specificity",
    "survival",
    "prognosis",
    "longitudinal",
    "imaging",
    "report",
    "retrieval",
    "dermatology",
    "endoscopy",
    "polyp",
    "glaucoma",
    "arrhythmia",
    "pneumonia",
    "fracture",
    "lymphoma",
    "stroke",
]


def sentence(rng: random.Random, n: int | None = None) -> str:
    words = [rng.choice(WORDS) for _ in range(n or rng.randint(8, 18))]
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words)), f"{rng.randint(50, 99)}.{rng.randint(0, 9)}%")
    return " ".join(words).capitalize() + "."


def abstract(rng: random.Random, sentences: tuple[int, int] = (2, 10)) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(*sentences)))


def title(rng: random.Random, tag: str) -> str:
    a, b, c = rng.sample(WORDS, 3)
    return f"{tag}: {a.title()} {b} for {c}"


def papers(rng: random.Random, n: int, tag: str) -> list[tuple[str, str]]:
    return [(title(rng, f"{tag}-{i}"), abstract(rng)) for i in range(n)]


# --- store snapshots ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    papers: dict[str, str]  # paper id -> content hash
    chunks: dict[str, int]  # paper id -> chunk count
    chunk_ids: frozenset[str]
    dirty: bool
    bm25_fresh: bool

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_ids)


def snapshot(settings: Settings) -> Snapshot:
    store = PaperStore(settings)
    chunk_ids: set[str] = set()
    per_paper: Counter[str] = Counter()
    for page in store._pages(store.chunks, ["metadatas"]):
        for cid, meta in zip(page["ids"], page["metadatas"], strict=True):
            chunk_ids.add(cid)
            per_paper[str((meta or {}).get("paper_id"))] += 1
    return Snapshot(
        store.paper_hashes(),
        dict(per_paper),
        frozenset(chunk_ids),
        store.dirty,
        bm25_is_fresh(store, settings.bm25_dir),
    )


def expected_after(before: Snapshot, accepted: list[Paper], settings: Settings) -> Snapshot:
    """What the store must hold after an ingest (no prune) of `accepted` into `before`."""
    papers = dict(before.papers)
    chunks = dict(before.chunks)
    ids = {cid for cid in before.chunk_ids if cid.rsplit("-", 1)[0] not in {p.id for p in accepted}}
    for paper in accepted:
        nodes = chunk_paper(paper, settings.chunk_size, settings.chunk_overlap)
        papers[paper.id] = paper.content_hash
        chunks[paper.id] = len(nodes)
        ids.update(n.id_ for n in nodes)
    return Snapshot(papers, chunks, frozenset(ids), False, True)


def differences(got: Snapshot, want: Snapshot) -> list[str]:
    problems = []
    missing = want.papers.keys() - got.papers.keys()
    extra = got.papers.keys() - want.papers.keys()
    if missing:
        problems.append(f"{len(missing)} paper(s) missing")
    if extra:
        problems.append(f"{len(extra)} unexpected paper(s)")
    stale = [pid for pid in want.papers.keys() & got.papers.keys() if want.papers[pid] != got.papers[pid]]
    if stale:
        problems.append(f"{len(stale)} paper(s) with the wrong content")
    if got.chunks != want.chunks:
        problems.append("chunk counts per paper differ")
    if got.chunk_ids != want.chunk_ids:
        problems.append(
            f"chunk ids differ ({len(got.chunk_ids - want.chunk_ids)} extra, "
            f"{len(want.chunk_ids - got.chunk_ids)} missing)"
        )
    if got.dirty:
        problems.append("store left marked dirty")
    if not got.bm25_fresh:
        problems.append("BM25 index stale")
    return problems


# --- results -----------------------------------------------------------------------------------
def write_result(name: str, data: dict[str, Any]) -> Path:
    """Numbers for docs/RELIABILITY.md; `python -m tests.reliability.report` turns them into tables."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RECORD / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max, by the one percentile rule of the package (assistant.stats)."""
    return {name: round(percentile(values, q), 3)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}


def chunk_texts(settings: Settings) -> dict[str, list[str]]:
    """paper id -> its chunk texts in chunk order, as the store holds them."""
    store = PaperStore(settings)
    found: dict[str, list[tuple[str, str]]] = {}
    for page in store._pages(store.chunks, ["documents", "metadatas"]):
        for cid, doc, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            found.setdefault(str((meta or {}).get("paper_id")), []).append((cid, doc or ""))
    return {pid: [text for _, text in sorted(items)] for pid, items in found.items()}


def expected_texts(accepted: list[Paper], settings: Settings) -> dict[str, list[str]]:
    return {
        p.id: [n.text for n in chunk_paper(p, settings.chunk_size, settings.chunk_overlap)] for p in accepted
    }
