"""Reproducible synthetic abstracts for the scale runs, and stores of any size built from them.

Each synthetic abstract recombines sentences of the real corpus: it takes its sentences from three
random real abstracts (in their own order), so its vocabulary, names, numbers and sentence lengths are
those of real medical-AI abstracts. Its title is a unique invented system name ("KelovarNet-2f4: …")
followed by lower-case words of its own first sentence: every synthetic paper adds one alias to the
title index, as real papers do, without stealing the real papers' names.

Donors are the real papers that no development question is about (tests/data/dev_questions.jsonl),
so no distractor contains an answer sentence verbatim: distractors share the domain, its vocabulary
and its names, but are not partial copies of the papers the quality figure asks about (with the
gold papers as donors, every answer sentence would recur in ~470 of 100k distractors).

Vectors are not computed by the model (100k abstracts would take most of an hour on 2 CPU cores):
every real sentence is embedded once, and a synthetic chunk's vector is the mean of its sentences'
vectors, minus CENTERING times the corpus-mean sentence vector, normalised. The plain mean is
smoother than the model's embedding of the whole text and scores too high against any query;
calibrated once on the real corpus (its sentences as probe queries against the chunks of *other*
papers), the model's chunk vectors give a 99th-percentile similarity of 0.570, the plain mean 0.597,
the centred mean 0.568. It stays an approximation: exact for latency and memory (a nearest-neighbour
search does not care how its vectors were made), a proxy for distractor quality. The real 215
papers keep their real vectors.

Synthetic papers are written through the store API (`PaperStore.write_papers`) following the
ingest protocol (manifest dirty, write, lexical index written, manifest clean, index committed), so
the app sees an ordinary store. Paper i is the same in every run and every size: the 10k store is a
prefix of the 100k one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import du, load_dev_questions, log, make_settings

SEED = 20240611
SYLLABLES = ["ka", "lo", "var", "ne", "tri", "mo", "sel", "qu", "dor", "pha", "zen", "ri", "bel",
             "tu", "gan", "vi", "os", "mer", "cla", "do", "fen", "ix", "ru", "sa", "tor", "ul"]
SUFFIXES = ["Net", "Former", "Seg", "Med", "Diff", "GPT", "Bench", "Mamba", "CLIP", "Agent"]
WORD = re.compile(r"^[a-z][a-z\-]+$")
TOKENS_PER_CHUNK = 150  # the real chunks average ~143 tokens (title included)
CENTERING = 0.3  # see the module doc


@dataclass
class SentenceBank:
    """Every sentence of the real corpus, embedded once by the real model."""

    paper_sentences: list[list[int]]  # per real paper, indexes into sentences
    sentences: list[str]
    vectors: np.ndarray  # unit rows, float32
    seconds: float  # time the embedding took (0 when loaded from the cache)
    donors: list[int]  # the real papers synthetic abstracts borrow from
    center: np.ndarray  # CENTERING x the mean sentence vector


def protected_titles() -> set[str]:
    """The normalised titles of the papers synthetic abstracts never borrow from: the development
    questions' gold papers, so that no distractor repeats a sentence a question was written from."""
    from assistant.corpus import normalize_title

    return {normalize_title(t) for row in load_dev_questions() for t in row.get("gold_titles", [])}


def sentence_bank(work: Path, settings: Any) -> SentenceBank:
    from assistant.corpus import load_papers, normalize_title
    from assistant.embedding import embedder_id, get_embedder
    from assistant.sentences import split_sentences

    papers = load_papers(settings.corpus_paths).papers
    gold = protected_titles()
    donors = [i for i, p in enumerate(papers) if normalize_title(p.title) not in gold]
    per_paper = [split_sentences(p.abstract) for p in papers]
    sentences = [s for group in per_paper for s in group]
    index, cursor = [], 0
    for group in per_paper:
        index.append(list(range(cursor, cursor + len(group))))
        cursor += len(group)
    key = hashlib.sha1(("\x1f".join(sentences) + embedder_id(settings)).encode()).hexdigest()[:12]
    cache = work / f"sentence-bank-{key}.npy"
    seconds = 0.0
    if cache.exists():
        vectors = np.load(cache)
    else:
        started = time.perf_counter()
        vectors = get_embedder(settings).embed(sentences)
        seconds = time.perf_counter() - started
        work.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
        log(f"sentence bank: {len(sentences)} sentences embedded in {seconds:.1f}s")
    center = CENTERING * vectors.mean(axis=0)
    return SentenceBank(index, sentences, vectors, seconds, donors, center)


def _name(rng: np.random.Generator, i: int) -> str:
    stem = "".join(SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), size=3)).capitalize()
    return f"{stem}{SUFFIXES[int(rng.integers(len(SUFFIXES)))]}-{np.base_repr(i, 36).lower()}"


def synthetic_paper(bank: SentenceBank, i: int) -> tuple[str, str, list[list[int]]]:
    """Paper i: (title, abstract, chunks as lists of sentence indexes). Depends on i only."""
    rng = np.random.default_rng([SEED, i])
    donors = [bank.donors[int(j)] for j in rng.choice(len(bank.donors), size=3, replace=False)]
    n = len(bank.paper_sentences[int(rng.integers(len(bank.paper_sentences)))])
    pool = [s for d in donors for s in bank.paper_sentences[d]]
    picked = sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    chosen = [pool[j] for j in picked]
    words = [w for w in bank.sentences[chosen[0]].split() if WORD.match(w)][:9]
    title = f"{_name(rng, i)}: {' '.join(words) or 'a synthetic abstract'}"
    chunks: list[list[int]] = [[]]
    tokens = 0
    for s in chosen:
        cost = int(len(bank.sentences[s].split()) * 1.3) + 2
        if chunks[-1] and tokens + cost > TOKENS_PER_CHUNK:
            chunks.append([])
            tokens = 0
        chunks[-1].append(s)
        tokens += cost
    abstract = " ".join(bank.sentences[s] for s in chosen)
    return title, abstract, chunks


def _items(bank: SentenceBank, start: int, stop: int) -> list[tuple[Any, list[Any], np.ndarray]]:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from assistant.chunks import chunk_id
    from assistant.corpus import Paper, paper_id

    items = []
    for i in range(start, stop):
        title, abstract, chunks = synthetic_paper(bank, i)
        paper = Paper(id=paper_id(title), title=title, abstract=abstract, source="synthetic")
        nodes, vectors = [], []
        for index, group in enumerate(chunks):
            node = TextNode(
                id_=chunk_id(paper.id, index),
                text=" ".join(bank.sentences[s] for s in group),
                metadata={"paper_id": paper.id, "title": title, "chunk_index": index,
                          "n_chunks": len(chunks), "paper_hash": paper.content_hash, "url": ""},
                excluded_embed_metadata_keys=["paper_id", "chunk_index", "n_chunks", "paper_hash",
                                              "url"],
                excluded_llm_metadata_keys=["paper_id", "chunk_index", "n_chunks", "paper_hash",
                                            "url"],
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=paper.id)
            nodes.append(node)
            mean = bank.vectors[group].mean(axis=0) - bank.center
            vectors.append(mean / (np.linalg.norm(mean) or 1.0))
        items.append((paper, nodes, np.asarray(vectors, dtype=np.float32)))
    return items


def grow_store(settings: Any, bank: SentenceBank, n_synthetic: int, batch: int = 500
               ) -> dict[str, Any]:
    """Add synthetic papers until the store holds `n_synthetic` of them (plus the real ones), each
    batch written to the store and then to the lexical index, committed at the end, as an ingest
    does. Returns what it cost."""
    from assistant.lexical import LexicalUpdate, fingerprint, index_is_fresh, rebuild, store_stamp
    from assistant.store import PaperStore

    store = PaperStore(settings)
    meta_path = settings.store_dir / "synthetic.json"
    have = json.loads(meta_path.read_text())["synthetic"] if meta_path.exists() else 0
    if have > n_synthetic:
        raise ValueError(f"store already holds {have} synthetic papers (> {n_synthetic})")
    chunks_before = store.count_chunks()
    disk_before = du(settings.store_dir)
    started = time.perf_counter()
    make_s = write_s = lexical_s = commit_s = 0.0
    if have < n_synthetic:
        in_step = index_is_fresh(settings, store)
        update = LexicalUpdate(settings) if in_step else None
        generation = store.generation + 1
        store.set_manifest(generation=generation, dirty=True)
        for start in range(have, n_synthetic, batch):
            stop = min(start + batch, n_synthetic)
            t = time.perf_counter()
            items = _items(bank, start, stop)
            make_s += time.perf_counter() - t
            t = time.perf_counter()
            store.write_papers(items)
            write_s += time.perf_counter() - t
            if update is not None:
                t = time.perf_counter()
                update.add_nodes([(paper, nodes) for paper, nodes, _ in items])
                lexical_s += time.perf_counter() - t
            meta_path.write_text(json.dumps({"synthetic": stop}))
            if (stop // batch) % 20 == 0:
                log(f"synthetic: {stop}/{n_synthetic} papers written ({write_s:.0f}s in Chroma, "
                    f"{lexical_s:.0f}s in the lexical index)")
        t = time.perf_counter()
        # The papers' fingerprint kept in the manifest, as an ingest keeps it, so that the next
        # ingest reads only its own papers' records (assistant/ingest.py, _stored_keys).
        hashes = store.paper_hashes()
        store.set_manifest(generation=generation, dirty=False,
                           papers_fingerprint=fingerprint(hashes))
        if update is not None:
            update.commit(store_stamp(store, hashes))
        else:
            rebuild(settings, store)
        commit_s = time.perf_counter() - t
    return {
        "synthetic_added": n_synthetic - have,
        "papers": store.count_papers(),
        "chunks": store.count_chunks(),
        "chunks_added": store.count_chunks() - chunks_before,
        "generate_s": round(make_s, 2),
        "chroma_write_s": round(write_s, 2),
        "lexical_write_s": round(lexical_s, 2),
        "lexical_commit_s": round(commit_s, 2),
        "total_s": round(time.perf_counter() - started, 2),
        "disk_bytes": du(settings.store_dir),
        "disk_added_bytes": du(settings.store_dir) - disk_before,
        "lexical_disk_bytes": du(settings.lexical_path),
    }


def write_corpus(bank: SentenceBank, start: int, stop: int, path: Path) -> Path:
    """Synthetic papers [start, stop) as a JSONL corpus file, for a real ingest (model embedding)."""
    rows = []
    for i in range(start, stop):
        title, abstract, _ = synthetic_paper(bank, i)
        rows.append(json.dumps({"title": title, "abstract": abstract}) + "\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path


def copy_store(src: Path, dst: Path) -> None:
    """A store directory copied whole (Chroma files, lexical index, synthetic marker)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ingest.lock"))


def scale_settings(store_dir: Path) -> Any:
    return make_settings(store_dir)
