"""Hybrid retrieval grouped by paper: dense (Chroma through llama-index) + BM25 (the lexical index
on disk, tantivy), fused by reciprocal rank, with named papers always included and an abstention
signal.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from assistant.chunks import chunk_id as make_chunk_id
from assistant.conditions import default_lexicon
from assistant.embedding import Embedder, LlamaIndexEmbedding
from assistant.errors import FilterError
from assistant.filter_index import FilterScope, IndexedMetadata
from assistant.filters import Filters
from assistant.fitted import fitted_params
from assistant.lexical import Vocabulary, open_index
from assistant.name_index import IndexedTitles
from assistant.settings import Settings
from assistant.store import METADATA_VERSION, PaperStore
from assistant.titles import TOKEN, EntityMatch, is_namelike
from assistant.tracing import span

log = logging.getLogger(__name__)

STOPWORDS = set(STOPWORDS_EN)
QuestionKind = Literal["factual", "list", "comparative"]

COMPARE = re.compile(
    r"\b(compar\w*|vs\.?|versus|differ\w*|difference|contrast\w*|better than|outperform\w*|"
    r"similarit\w*|same as|against|both)\b",
    re.IGNORECASE,
)
# An explicit request to compare, where the papers may be described rather than named: the verbs
# and nouns of comparing, not the adjectives ("different noise levels", "a contrastive objective",
# "comparable accuracy") that single-paper questions use.
COMPARE_WORDS = (r"compar(?:e[sd]?|ing|isons?)|vs\.?|versus|differ(?:s|ed|ences?)?|"
                 r"contrast(?:s|ed|ing)?")
EXPLICIT_COMPARE = re.compile(rf"\b(?:{COMPARE_WORDS})\b", re.I)
# "Which paper ...?" asks for one paper: what it says is not a second paper to compare with.
ONE_PAPER = re.compile(r"^\s*(?:which|what)\s+(?:paper|study|work|article)\b", re.I)
# A part of a comparison that describes a paper: a definite description ("the nailfold capillary
# dataset paper") or one that says it is about a paper, study or work.
DESCRIBES = re.compile(r"^(?:the|a|an|this|that|these|those)\b|\b(?:paper|study|work|article|one)\b",
                       re.I)
# Content words a description needs to identify one paper: "the nailfold capillary dataset paper"
# does, "the best model", "the baseline methods", "the state of the art" do not.
DESCRIPTION_MIN_WORDS = 3
# Papers of a described part's fused ranking that its description is compared with (besides
# each retriever's first paper).
DESCRIBED_POOL = 5
# Where a comparison question separates the things it compares: the comparison itself (its verb
# with its preposition, "vs", "between"). What lies between two of these is one compared thing,
# a name or a whole description ("the paper with a clinician survey and a taxonomy of ...").
COMPARE_SEPARATOR = re.compile(
    rf"\s*(?:\b(?:{COMPARE_WORDS})(?:\s+(?:with|from|to|against))?\b|"
    r"\b(?:between)\b|[;:?])\s*", re.I)
# Finer: also "and", "with", commas, for a part that names one paper and describes another.
COMPARE_SPLIT = re.compile(
    rf"\s*(?:\b(?:{COMPARE_WORDS})(?:\s+(?:with|from|to|against))?\b|"
    r"\b(?:and|with|against|between)\b|[,;:?]|\bto\b(?= the\b))\s*", re.I)
# A question's opening ("How does", "What problems do") is not part of what it describes (only
# at the question's start: "..., what accuracy did the best LLM get" describes no paper).
OPENER = re.compile(r"^(?:how|what|why|in what ways?)\b(?:\s+[\w'-]+){0,2}?\s+"
                    r"(?:do|does|did|is|are|was|were)\s+", re.I)
# The nouns of a question that asks for papers rather than for something of a paper it names.
LITERATURE = re.compile(r"\b(papers?|studies|works|articles|publications|surveys)\b", re.I)
LIST = re.compile(
    r"^\s*(which|what|list|name|find|show|are there|give me)\b.{0,40}\b(papers?|studies|works?|"
    r"methods|models|approaches|articles|systems|benchmarks|datasets|surveys)\b"
    r"|\b(papers?|studies|works|articles)\s+(that|which|on|about|using|proposing)\b",
    re.IGNORECASE,
)


@dataclass
class Passage:
    chunk_id: str
    text: str
    score: float
    similarity: float | None = None  # cosine with the question, where dense search saw it


@dataclass
class PaperHit:
    paper_id: str
    title: str
    url: str
    score: float
    passages: list[Passage] = field(default_factory=list)
    named: bool = False  # the question names this paper
    # The paper's rank (1 = first) in each retriever's own ranking ("dense", "bm25", "literal",
    # "phrase"), absent where that retriever did not find it: evidence for the relevance decision.
    ranks: dict[str, int] = field(default_factory=dict)
    bm25: float = 0.0  # best BM25 score of its chunks

    @property
    def best_similarity(self) -> float:
        sims = [p.similarity for p in self.passages if p.similarity is not None]
        return max(sims) if sims else 0.0


@dataclass
class RetrievalResult:
    question: str
    kind: QuestionKind
    papers: list[PaperHit]
    covered: bool  # False: nothing in the corpus is about the question; the answer should abstain
    best_similarity: float
    entities: list[EntityMatch] = field(default_factory=list)
    query_vector: np.ndarray | None = None
    unknown_condition: str | None = None  # a disease the question names and the corpus never does
    filters: Filters | None = None  # the filters retrieval applied, where any


@dataclass
class Candidates:
    """What each retriever found for one question, before fusion."""

    nodes: dict[str, TextNode] = field(default_factory=dict)
    rankings: dict[str, list[str]] = field(default_factory=dict)  # retriever -> chunk ids, best first
    similarity: dict[str, float] = field(default_factory=dict)  # chunk id -> cosine with the question
    bm25: dict[str, float] = field(default_factory=dict)  # chunk id -> BM25 score


def comparison_parts(question: str, names: Sequence[str]) -> list[list[str]]:
    """Two ways to cut a comparison question into the things it compares: at the comparison
    itself only (a description keeps its "and" and "with"), cutting finer only a part that holds
    one of the `names` already resolved; and finely throughout. The question's opening goes."""
    question = OPENER.sub("", question.strip())
    named = [n.lower() for n in names]
    coarse: list[str] = []
    for part in COMPARE_SEPARATOR.split(question):
        coarse += COMPARE_SPLIT.split(part) if any(n in part.lower() for n in named) else [part]
    cuttings = [[p.strip() for p in parts if p.strip()]
                for parts in (coarse, COMPARE_SPLIT.split(question))]
    return cuttings[:1] if cuttings[0] == cuttings[1] else cuttings  # one search per part


def classify(question: str, n_entities: int) -> QuestionKind:
    if n_entities >= 2 and COMPARE.search(question):
        return "comparative"
    # "Which datasets was D-Former evaluated on?" asks about the one paper it names; "which papers
    # build on D-Former?" asks for papers.
    if LIST.search(question) and (n_entities != 1 or LITERATURE.search(question)):
        return "list"
    return "factual"


def literal_terms(question: str) -> list[str]:
    """Terms searched verbatim, most specific first: name-like words (acronyms, CamelCase, with
    digits; a short number right after a name stays with it: "SAM 2"), runs of capitalised words
    ("Segment Anything Model"), then lone capitalised words inside the sentence ("Mamba-based"
    gives "Mamba"), at least three characters long."""
    tokens = list(TOKEN.finditer(question))

    def adjacent(i: int) -> bool:  # token i follows token i-1 after exactly one space
        return i > 0 and question[tokens[i - 1].end():tokens[i].start()] == " "

    names: list[str] = []
    runs: list[str] = []
    words: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            runs.append(" ".join(run))
        elif run:
            words.extend(p for p in _proper_parts(run[0], True) if p not in words)
        run.clear()

    for i, match in enumerate(tokens):
        token = match.group(0)
        number = i + 1 < len(tokens) and tokens[i + 1].group(0).isdigit() and \
            len(tokens[i + 1].group(0)) <= 2 and adjacent(i + 1)
        if token[0].isdigit() and not any(c.isupper() for c in token):
            flush()  # a number ("2" of "SAM 2", taken with the name) or "2-based"
            continue
        namelike = is_namelike(token)
        capital = i > 0 and token[:1].isupper() and token.lower() not in STOPWORDS
        if not (namelike or capital):
            flush()
            words.extend(p for p in _proper_parts(token, i > 0) if p not in words)
            continue
        if run and not adjacent(i):
            flush()
        run.append(token)
        suffix = f" {tokens[i + 1].group(0)}" if number else ""
        if namelike and len(token) >= 3:
            names.append(token + suffix)
        if number:
            run[-1] += suffix
            flush()
    flush()
    return list(dict.fromkeys(names + runs + words))


def _proper_parts(token: str, inside: bool) -> list[str]:
    """Capitalised or name-like parts of a hyphenated word ("Mamba-based" -> "Mamba")."""
    parts = [token] if is_namelike(token) or "-" not in token else token.split("-")
    return [p for p in parts if len(p) >= 3 and (
        is_namelike(p) or (inside and p[:1].isupper() and p.lower() not in STOPWORDS))]


def term_variants(term: str) -> list[str]:
    """Spellings of a term with a trailing number: "SAM 2", "SAM-2", "SAM2"."""
    head, _, number = term.rpartition(" ")
    if head and number.isdigit():
        return [term, f"{head}-{number}", f"{head}{number}"]
    return [term]


# Words that frame a question ("which papers use ...") rather than say what it is about.
FRAME = {
    "which", "what", "how", "who", "whom", "when", "where", "why", "does", "did", "do", "done",
    "paper", "papers", "study", "studies", "work", "works", "article", "articles", "use", "uses",
    "used", "using", "propose", "proposes", "proposed", "build", "builds", "built", "report",
    "reports", "reported", "present", "presents", "any", "there", "anyone", "has", "have", "its",
    "each", "other", "than", "own", "also", "only", "between", "versus", "compare", "compared",
    "many", "much", "well", "long",
}
PHRASE_WORD = re.compile(r"[A-Za-z][A-Za-z\-]*[A-Za-z]")


def key_phrases(question: str) -> list[str]:
    """Adjacent pairs of content words ("knowledge graphs" -> "knowledge graph"), the kind of
    topic phrase that bag-of-words BM25 and a single dense vector both blur."""
    matches = list(PHRASE_WORD.finditer(question))
    phrases: list[str] = []
    for a, b in pairwise(matches):
        first, second = a.group(0), b.group(0)
        if question[a.end():b.start()] != " " or is_namelike(first) or is_namelike(second):
            continue
        if any(w[:1].isupper() for w in (first, second)) and a.start() > 0:
            continue  # capitalised words are searched as literal terms already
        if any(len(w) < 3 or w.lower() in STOPWORDS or w.lower() in FRAME for w in (first, second)):
            continue
        second = second.lower()
        if second.endswith("s") and not second.endswith(("ss", "us", "is")):
            second = second[:-1]  # the singular also finds the plural
        phrase = f"{first.lower()} {second}"
        if phrase not in phrases:
            phrases.append(phrase)
    return phrases


def case_variants(text: str) -> list[str]:
    """Chroma's `$contains` is case-sensitive: the spellings a phrase usually has in prose."""
    return list(dict.fromkeys([text, text[:1].upper() + text[1:], text.title()]))


def rrf(rankings: list[list[str]], k: float, weights: list[float] | None = None
        ) -> dict[str, float]:
    """Weighted reciprocal-rank fusion. llama-index's QueryFusionRetriever hard-codes k=60, takes
    no per-list weights in RRF mode and keys nodes by content hash; this keeps the constant and the
    weights settings and keys by chunk id."""
    scores: dict[str, float] = defaultdict(float)
    for i, ranking in enumerate(rankings):
        weight = weights[i] if weights else 1.0
        for rank, key in enumerate(ranking):
            scores[key] += weight / (k + rank + 1)
    return scores


class HybridRetriever:
    def __init__(self, settings: Settings, store: PaperStore, embedder: Embedder) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._lock = threading.Lock()
        # The question's embedding and the dense search run here while the lexical searches run
        # on the calling thread: the model (one thread per question) and Chroma's search leave
        # the GIL, so on two cores the two sides overlap (p95 of a retrieval at 250k papers:
        # bench/results/retrieval-overlap.json). Jobs never wait on other jobs: no deadlock
        # however many requests share the pool.
        self._workers = (ThreadPoolExecutor(settings.retrieval_threads,
                                            thread_name_prefix="retrieval")
                         if settings.retrieval_threads else None)
        self.refresh()

    def refresh(self) -> None:
        """(Re)open the dense retriever and the lexical index (BM25, verbatim words, paper names:
        on disk, nothing rebuilt). Called when the store's generation moves on."""
        with self._lock:
            index = VectorStoreIndex.from_vector_store(
                self.store.vector_store, embed_model=LlamaIndexEmbedding(self.embedder)
            )
            self.index = index
            self.dense = index.as_retriever(similarity_top_k=self.settings.dense_candidates)
            generation = self.store.generation
            self.lexical, fresh = open_index(self.settings, self.store)
            self.vocabulary = Vocabulary(self.lexical)
            if self.settings.abstain_on_unknown_condition:
                default_lexicon()  # read once now (~10 ms), not during the first question
            self.verbatim = self.lexical  # verbatim sub-queries: the index, not a Chroma scan
            self.titles = IndexedTitles(self.lexical, self.settings.alias_max_mention_share)
            # Filters are answered from the index too (filter_index.py), per question.
            self.metadata = IndexedMetadata(self.lexical)
            self.metadata_version = self.store.metadata_version
            self.chunk_count = self.store.count_chunks()
            self._names: dict[tuple[str, float], list[EntityMatch]] = {}
            # An index behind the store (an ingest not committed yet): look again next question.
            self.generation = generation if fresh else -1

    def resolve_names(self, question: str, threshold: float | None = None) -> list[EntityMatch]:
        """The papers a question names, resolved once per question (the engine asks before it
        retrieves, with the same question)."""
        threshold = self.settings.entity_match_threshold if threshold is None else threshold
        key = (question, threshold)
        names = self._names.get(key)
        if names is None:
            names = self.titles.resolve(question, threshold)
            if len(self._names) >= 256:
                self._names.clear()
            self._names[key] = names
        return list(names)

    def retrieve(self, question: str, k: int | None = None, *, kind: QuestionKind | None = None,
                 extra_paper_ids: list[str] | None = None,
                 filters: Filters | None = None) -> RetrievalResult:
        """The k best papers for the question. With `filters`, every side searches only the papers
        that match them (dense: a Chroma `where`; BM25: a filter inside its tantivy query; verbatim
        and named papers: the same set), so k papers come back whenever k papers match; no paper
        matching raises AssistantError."""
        scope = self._filter_scope(filters) if filters else None
        # Started first: the names are resolved while the question is embedded.
        dense = self._start_dense(question, scope)
        entities = self.resolve_names(question)
        if (len(entities) < 2 and not extra_paper_ids and EXPLICIT_COMPARE.search(question)
                and not ONE_PAPER.search(question)):
            entities += self.described_targets(question, entities)
        kind = kind or classify(question, len(entities))
        k = k or (self.settings.list_top_k if kind == "list" else self.settings.top_k)
        if scope is not None:
            allowed = scope.allowed([e.paper_id for e in entities] + list(extra_paper_ids or []))
            entities = [e for e in entities if e.paper_id in allowed]
            extra_paper_ids = [pid for pid in extra_paper_ids or [] if pid in allowed]

        candidates, query_vector = self._gather(question, dense, scope)
        papers = self.fuse(candidates, self.fusion_weights(kind))
        similarity = candidates.similarity

        named_ids = [e.paper_id for e in entities] + list(extra_paper_ids or [])
        with span("retrieval.named", papers=len(set(named_ids))):
            for pid in dict.fromkeys(named_ids):
                papers[pid] = self._named_hit(pid, query_vector, papers.get(pid))

        ranked = sorted(papers.values(), key=lambda h: (h.named, h.score), reverse=True)
        n_named = sum(1 for h in ranked if h.named)
        ranked = ranked[: max(k, n_named)]
        best = max(similarity.values(), default=0.0)
        unknown = None if named_ids else self.unknown_condition(question)
        covered = bool(named_ids) or (unknown is None and self._covered(question, best))
        return RetrievalResult(question, kind, ranked, covered, best, entities, query_vector,
                               unknown_condition=unknown, filters=filters or None)

    def _filter_scope(self, filters: Filters) -> FilterScope:
        """The papers the filters allow, BM25's chunk query and the dense side's `where`."""
        if self.metadata_version < METADATA_VERSION:
            raise FilterError(
                f"the store at {self.store.label} was built before paper metadata was kept, so it "
                "cannot be filtered by year, author, venue, paper or collection",
                hint="rebuild it with `assistant ingest --rebuild` (unfiltered questions work as before)",
            )
        scope = self.metadata.scope(filters)
        if scope is None:
            raise FilterError(
                f"no paper in the collection matches the filters ({filters.describe()})"
                + (f", read from the question's words {', '.join(map(repr, filters.phrases))}"
                   if filters.phrases else ""),
                hint="widen or remove the filters",
            )
        return scope

    def _dense(self, bundle: QueryBundle, where: dict | None) -> list[NodeWithScore]:
        if where is None:
            return self.dense.retrieve(bundle)
        # Chroma filters before it ranks: the nearest chunks among the matching papers.
        retriever = self.index.as_retriever(similarity_top_k=self.settings.dense_candidates,
                                            vector_store_kwargs={"where": where})
        return retriever.retrieve(bundle)

    def described_targets(self, question: str, entities: list[EntityMatch]) -> list[EntityMatch]:
        """Papers a comparison identifies by what they did ("compare the nailfold capillary
        dataset paper with MedVAE"): each part of the question between the compared things that
        names no paper and has DESCRIPTION_MIN_WORDS content words is searched on its own, and its
        best paper becomes a compared paper. Parts are first cut only at the comparison itself (a
        description keeps its "and" and "with"), a part that names a paper more finely; failing
        that, the whole question finely."""
        for parts in comparison_parts(question, [e.name for e in entities]):
            found = self._described(parts, entities)
            if found:
                return found
        return []

    def _described(self, parts: list[str], entities: list[EntityMatch]) -> list[EntityMatch]:
        named_spans = [e.name.lower() for e in entities]
        found: list[EntityMatch] = []
        taken = {e.paper_id for e in entities}
        for part in parts:
            part = EXPLICIT_COMPARE.sub(" ", part).strip()
            words = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9\-]+", part)
                     if w.lower() not in STOPWORDS and w.lower() not in FRAME]
            if len(words) < DESCRIPTION_MIN_WORDS or any(name in part.lower() for name in named_spans):
                continue
            if not DESCRIBES.search(part):
                continue  # "Meditron-70B on QA accuracy" names something, it describes no paper
            if len(entities) + len(found) >= 2:
                break
            vector = self.embedder.embed([part])[0]
            bundle = QueryBundle(query_str=part, embedding=vector.tolist())
            papers = self.fuse(self.candidates(part, bundle, vector), self.fusion_weights("factual"))
            fused = [h for h in sorted(papers.values(), key=lambda h: h.score, reverse=True)
                     if h.paper_id not in taken]
            # Fusion alone favours surveys that share the description's words, and papers that
            # share a generic acronym ("LLM") with it: the pool adds each retriever's first paper,
            # and the choice is the paper whose text and title are closest to the description
            # (a description paraphrases what a paper did, which its title states).
            pool = fused[:DESCRIBED_POOL] + [h for h in fused[DESCRIBED_POOL:] if 1 in h.ranks.values()]
            if not pool:
                continue
            title_similarity = self.embedder.embed([h.title for h in pool]) @ vector
            best = max(zip(pool, title_similarity, strict=True),
                       key=lambda p: p[0].best_similarity + float(p[1]))[0]
            found.append(EntityMatch(part, best.paper_id, best.title, exact=False))
            taken.add(best.paper_id)
        return found if len(entities) + len(found) >= 2 else []

    def candidates(self, question: str, bundle: QueryBundle, query_vector: np.ndarray,
                   scope: FilterScope | None = None) -> Candidates:
        """Every retriever's ranked chunks for the question, before fusion; with a filter `scope`
        (_filter_scope), each searches only the papers it allows."""
        where = scope.where if scope else None

        def dense() -> tuple[np.ndarray, list[NodeWithScore]]:
            return query_vector, self._dense_hits(bundle, where)

        return self._gather(question, self._run(dense), scope)[0]

    def _start_dense(self, question: str, scope: FilterScope | None
                     ) -> Future[tuple[np.ndarray, list[NodeWithScore]]]:
        """The question's vector and the dense side's hits, computed in a worker."""
        where = scope.where if scope else None

        def dense() -> tuple[np.ndarray, list[NodeWithScore]]:
            with span("retrieval.embed"):
                vector = self.embedder.embed([question])[0]
            return vector, self._dense_hits(QueryBundle(query_str=question,
                                                        embedding=vector.tolist()), where)

        return self._run(dense)

    def _run(self, job: Callable[[], tuple[np.ndarray, list[NodeWithScore]]]
             ) -> Future[tuple[np.ndarray, list[NodeWithScore]]]:
        if self._workers is not None:
            return self._workers.submit(copy_context().run, job)  # the caller's tracing span
        done: Future[tuple[np.ndarray, list[NodeWithScore]]] = Future()
        try:
            done.set_result(job())
        except Exception as exc:  # raised where the result is read, as from a worker
            done.set_exception(exc)
        return done

    def _dense_hits(self, bundle: QueryBundle, where: dict | None) -> list[NodeWithScore]:
        has_chunks = self.chunk_count or self.store.count_chunks()  # counting costs a scan
        with span("retrieval.dense"):
            return self._dense(bundle, where) if has_chunks else []

    def _gather(self, question: str, dense: Future[tuple[np.ndarray, list[NodeWithScore]]],
                scope: FilterScope | None) -> tuple[Candidates, np.ndarray]:
        """candidates(), with the dense side (`dense`: the question's vector and its hits) coming
        from a worker while the lexical side runs here; and the question's vector."""
        try:
            with span("retrieval.bm25"):
                bm25_hits = self._bm25(QueryBundle(query_str=question), scope)
            with span("retrieval.literal"):
                literal_ids = self._verbatim_ids(self._literal_spellings(question))
            with span("retrieval.phrases"):
                phrase_ids = self._verbatim_ids(self._phrase_spellings(question))
        finally:
            query_vector, dense_hits = dense.result()  # also when the lexical side failed
        # One read of the vectors for both verbatim sub-queries' chunks.
        scored = self._verbatim_scores([*literal_ids, *phrase_ids], query_vector)
        literal = {c: scored[c] for ids in literal_ids for c in ids if c in scored}
        phrases = {c: scored[c] for ids in phrase_ids for c in ids if c in scored}
        found = Candidates()
        for hit in dense_hits:
            found.nodes[hit.node.node_id] = hit.node
            # llama-index's Chroma store reports exp(-cosine distance); recover the cosine.
            found.similarity[hit.node.node_id] = 1.0 + math.log(max(hit.score or 1e-9, 1e-9))
        for hit in bm25_hits:
            found.nodes.setdefault(hit.node.node_id, hit.node)
            found.bm25[hit.node.node_id] = float(hit.score or 0.0)
        found.rankings["dense"] = [h.node.node_id for h in dense_hits]
        found.rankings["bm25"] = [h.node.node_id for h in bm25_hits]
        if scope is not None:  # a chunk id is "<paper id>-<index>" (chunks.chunk_id)
            allowed = scope.allowed(c.rsplit("-", 1)[0] for c in [*literal, *phrases])
            literal = {c: v for c, v in literal.items() if c.rsplit("-", 1)[0] in allowed}
            phrases = {c: v for c, v in phrases.items() if c.rsplit("-", 1)[0] in allowed}
        for name, sub in (("literal", literal), ("phrase", phrases)):
            for node_id, (node, sim) in sub.items():
                found.nodes.setdefault(node_id, node)
                found.similarity.setdefault(node_id, sim)
            if sub:
                found.rankings[name] = sorted(sub, key=lambda i, f=sub: f[i][1], reverse=True)
        return found, query_vector

    def fusion_weights(self, kind: QuestionKind) -> dict[str, float]:
        """Per-retriever fusion weights for a kind of question: fitted on the tune split
        (bench/fit_answers.py) where the fitted file has them, else the settings'. Two sets are
        fitted, on the bundled corpus and on a large store of it among distractors; a store uses
        the set fitted at the size nearer its own on a log scale (at 215 and 253k papers: from
        7.4k papers on, the large one). Weights fitted on 215 papers alone favour dense search,
        which distractors crowd out (bench/results/recall-at-scale.json)."""
        params = fitted_params()
        large = params.get("fusion_large")
        small = params.get("fusion_papers")
        if large and small and self.titles.n_papers() ** 2 >= large["papers"] * small:
            fitted = large["weights"].get(kind)
        else:
            fitted = params.get("fusion", {}).get(kind)
        if fitted:
            return {name: float(w) for name, w in fitted.items()}
        return {"dense": 1.0, "bm25": 1.0, "literal": self.settings.literal_weight,
                "phrase": self.settings.phrase_weight}

    def fuse(self, found: Candidates, weights: dict[str, float]) -> dict[str, PaperHit]:
        """Weighted reciprocal-rank fusion of the chunk rankings, grouped by paper."""
        names = [n for n in found.rankings if weights.get(n, 0.0) > 0]
        fused = rrf([found.rankings[n] for n in names], self.settings.rrf_k,
                    [weights[n] for n in names])
        papers: dict[str, PaperHit] = {}
        for chunk_id in sorted(fused, key=fused.__getitem__, reverse=True):
            node = found.nodes[chunk_id]
            pid = str(node.metadata.get("paper_id"))
            hit = papers.get(pid)
            if hit is None:
                hit = papers[pid] = PaperHit(pid, str(node.metadata.get("title", "")),
                                             str(node.metadata.get("url", "")), 0.0)
            if len(hit.passages) < self.settings.max_chunks_per_paper:
                hit.passages.append(Passage(chunk_id, node.get_content(), fused[chunk_id],
                                            found.similarity.get(chunk_id)))
            hit.bm25 = max(hit.bm25, found.bm25.get(chunk_id, 0.0))
        for hit in papers.values():
            # A paper's score: its best chunk, plus half its second (abstracts have few chunks).
            scores = sorted((p.score for p in hit.passages), reverse=True)
            hit.score = scores[0] + (0.5 * scores[1] if len(scores) > 1 else 0.0)
        for name, ranking in found.rankings.items():
            order = dict.fromkeys(str(found.nodes[c].metadata.get("paper_id")) for c in ranking)
            for rank, pid in enumerate(order, start=1):
                if pid in papers:
                    papers[pid].ranks[name] = rank
        return papers

    def unknown_condition(self, question: str) -> str | None:
        """A disease the question names and no paper's words spell ("tuberculosis"): the corpus
        cannot be about the question, however close its setting (chest X-rays) looks."""
        if not self.settings.abstain_on_unknown_condition:
            return None
        lexicon = default_lexicon()
        name = self.vocabulary.unknown_name(lexicon.mentioned(question))
        return lexicon.names[name] if name else None

    def _covered(self, question: str, best: float) -> bool:
        """Whether the corpus is about the question at all: a confident dense match, or a
        moderate one where the question's words are (nearly) all corpus vocabulary."""
        if best >= self.settings.abstain_confident_similarity:
            return True
        if best < self.settings.abstain_threshold:
            return False
        return self.vocabulary.unknown_share(question) < self.settings.abstain_max_unknown_share

    def _literal(self, question: str, query_vector: np.ndarray) -> dict[str, tuple[TextNode, float]]:
        """Chunks containing the question's name-like terms verbatim ("MIMIC-IV", "RWKV"): a
        keyword sub-query, ranked by similarity, that dense and BM25 both tend to dilute."""
        return self._verbatim(self._literal_spellings(question), query_vector)

    def _literal_spellings(self, question: str) -> list[list[str]]:
        return [term_variants(t) for t in literal_terms(question)[: self.settings.literal_max_terms]]

    def _phrases(self, question: str, query_vector: np.ndarray) -> dict[str, tuple[TextNode, float]]:
        """Chunks containing the question's topic phrases ("knowledge graph", "inverse problem")
        or a differently-suffixed form of a word the stemmer does not conflate
        ("echocardiography" -> "echocard..."), a second verbatim sub-query."""
        return self._verbatim(self._phrase_spellings(question), query_vector)

    def _phrase_spellings(self, question: str) -> list[list[str]]:
        spellings = [case_variants(p) for p in key_phrases(question)[: self.settings.phrase_max_terms]]
        return spellings + [case_variants(p) for p in self.vocabulary.variant_prefixes(question)]

    def _verbatim(self, terms: list[list[str]], query_vector: np.ndarray
                  ) -> dict[str, tuple[TextNode, float]]:
        """Chunks containing any spelling of each term, with their similarity to the question, in
        the order of the terms."""
        kept = self._verbatim_ids(terms)
        scored = self._verbatim_scores(kept, query_vector)
        return {cid: scored[cid] for ids in kept for cid in ids if cid in scored}

    def _verbatim_ids(self, terms: list[list[str]]) -> list[dict[str, None]]:
        """Per term that tells papers apart, the ids of the chunks containing any of its
        spellings. A term found in more than `verbatim_max_paper_share` of the papers ("CNN",
        "medical image") or in more than `literal_candidates` chunks tells papers apart too little
        and is left out."""
        most = max(1, int(self.settings.verbatim_max_paper_share * self.titles.n_papers()))
        limit = self.settings.literal_candidates
        kept: list[dict[str, None]] = []
        for spellings in terms:
            found = [self.verbatim.contains(spelling, limit + 1) for spelling in spellings]
            ids = dict.fromkeys(cid for f in found for cid in f)
            # A chunk's id is "<paper id>-<index>" (chunks.chunk_id).
            if not ids or len({cid.rsplit("-", 1)[0] for cid in ids}) > most:
                continue
            if any(len(f) > limit for f in found):
                # More chunks than we fetch: the first `limit` would be the oldest in the store,
                # not the best, so the term ranks nothing, as a common one. (Ranking only the
                # chunks dense and BM25 found by it measured worse: Recall@10 0.86 against 0.90
                # at 100k papers.)
                continue
            kept.append(ids)
        return kept

    def _verbatim_scores(self, kept: list[dict[str, None]], query_vector: np.ndarray
                         ) -> dict[str, tuple[TextNode, float]]:
        """The chunks of `kept` with their similarity to the question."""
        wanted = list(dict.fromkeys(cid for ids in kept for cid in ids))
        if not wanted:
            return {}
        # One read by id for every term's chunks, of their vectors alone: the nodes come from the
        # index's memory (reading documents and metadata too takes three times as long).
        got = self.store.chunks.get(ids=wanted, include=["embeddings"])
        sims = np.asarray(got["embeddings"], dtype=np.float32) @ query_vector if got["ids"] else []
        records = {}
        for i, cid in enumerate(got["ids"]):
            node = self.verbatim.node(cid)
            if node is not None:
                records[cid] = (node, float(sims[i]))
        return records

    def _bm25(self, bundle: QueryBundle, scope: FilterScope | None = None) -> list[NodeWithScore]:
        """BM25's best chunks (tantivy); with a filter scope, the best among the chunks it allows
        (the filter is part of the query, so the subset's own best come back, k of them)."""
        if not re.search(r"\w\w", bundle.query_str):
            return []
        return self.lexical.bm25(bundle.query_str, self.settings.bm25_candidates,
                                 scope.chunks if scope else None)

    def _named_hit(self, pid: str, query_vector: np.ndarray, hit: PaperHit | None) -> PaperHit:
        """A per-entity sub-query: the named paper's own chunks ranked against the question."""
        got = self._paper_chunks(pid)
        if not got["ids"]:
            if hit:
                hit.named = True
                return hit
            title = self.titles.titles.get(pid, "")
            return PaperHit(pid, title, "", 0.0, named=True)
        sims = np.asarray(got["embeddings"], dtype=np.float32) @ query_vector
        order = np.argsort(-sims)[: self.settings.max_chunks_per_paper]
        meta = got["metadatas"][0] or {}
        passages = [Passage(got["ids"][i], got["documents"][i], float(sims[i]), float(sims[i]))
                    for i in order]
        score = hit.score if hit else 0.0
        return PaperHit(pid, str(meta.get("title", "")), str(meta.get("url", "")), score,
                        passages, named=True, ranks=hit.ranks if hit else {},
                        bm25=hit.bm25 if hit else 0.0)

    def _paper_chunks(self, pid: str) -> dict:
        """A paper's chunks with documents, metadatas and embeddings. By id (the paper record says
        how many there are): a `where` filter on paper_id scans the collection."""
        include = ["documents", "metadatas", "embeddings"]
        record = self.store.papers.get(ids=[pid], include=["metadatas"])
        n = int(((record["metadatas"] or [{}])[0] or {}).get("n_chunks", 0)) if record["ids"] else 0
        if n:
            got = self.store.chunks.get(ids=[make_chunk_id(pid, i) for i in range(n)], include=include)
            if len(got["ids"]) == n:
                return got
        return self.store.chunks.get(where={"paper_id": pid}, include=include)
