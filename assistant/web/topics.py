"""The topic map: every paper's embedding laid out in 2-D by t-SNE (scikit-learn), grouped into
clusters by k-means on that layout (k chosen by silhouette), each cluster labelled with its
characteristic words by class-based TF-IDF over its titles and abstracts (as BERTopic does).

t-SNE rather than UMAP: `umap-learn` installs offline, but numba's compilation makes its first
map take about 26 s here (16 s import, 10 s first fit) against about 1.3 s for t-SNE on the
bundled 215 papers, and it adds 210 MB of dependencies.

Computed once per store generation, kept in memory and in the store directory, so a restart or a
second browser draws it at once.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.web.render import clean_latex, esc

log = logging.getLogger(__name__)

CACHE_FILE = "topic_map.json"
MAP_MAX_PAPERS = 5_000  # larger stores are mapped on a fixed sample of this many papers
MIN_CLUSTERS, MAX_CLUSTERS = 3, 12
PAPERS_PER_CLUSTER = 8  # no more clusters than papers / this
MIN_TOPICS_LARGE, PAPERS_PER_TOPIC_FLOOR = 6, 30  # at least min(6, papers / 30) clusters
LABEL_WORDS = 3
PALETTE = ("#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
           "#86bcb6", "#d37295", "#a0cbe8", "#8cd17d")
WIDTH, HEIGHT, MARGIN = 1000, 640, 40


@dataclass
class TopicMap:
    generation: int
    ids: list[str]
    x: list[float]
    y: list[float]
    cluster: list[int]
    labels: list[list[str]]  # per cluster, its characteristic words
    total: int  # papers in the store (more than len(ids) when sampled)


def layout(vectors: np.ndarray) -> np.ndarray:
    """2-D points by t-SNE on cosine distances, scaled to [0, 1]; deterministic."""
    n = len(vectors)
    if n < 4:
        points = np.array([[math.cos(2 * math.pi * i / max(n, 1)), math.sin(2 * math.pi * i / max(n, 1))]
                           for i in range(n)], dtype=float)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        points = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                      random_state=0).fit_transform(np.asarray(vectors, dtype=np.float32))
    if n == 0:
        return np.zeros((0, 2))
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - low) / np.where(high - low > 0, high - low, 1.0)


def clusters(points: np.ndarray) -> np.ndarray:
    """Cluster ids by k-means on the layout, the k with the best silhouette."""
    n = len(points)
    top = min(MAX_CLUSTERS, n // PAPERS_PER_CLUSTER)
    if top < MIN_CLUSTERS:
        return np.zeros(n, dtype=int)
    # Silhouette alone favours a few big groups; a larger corpus is worth a few more topics.
    low = max(MIN_CLUSTERS, min(top, MIN_TOPICS_LARGE, n // PAPERS_PER_TOPIC_FLOOR))
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best: tuple[float, np.ndarray] | None = None
    for k in range(low, top + 1):
        found = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(points)
        score = silhouette_score(points, found)
        if best is None or score > best[0]:
            best = (score, found)
    assert best is not None
    return best[1]


def cluster_words(texts: Sequence[str], labels: np.ndarray,
                  per_cluster: int = LABEL_WORDS) -> list[list[str]]:
    """Each cluster's characteristic words by class-based TF-IDF: a word's frequency in the
    cluster times log(1 + average words per cluster / the word's frequency overall)."""
    from sklearn.feature_extraction.text import CountVectorizer

    k = int(labels.max()) + 1 if len(labels) else 0
    documents = [" ".join(texts[i] for i in range(len(texts)) if labels[i] == c) for c in range(k)]
    if not any(d.strip() for d in documents):
        return [[] for _ in range(k)]
    vectorizer = CountVectorizer(stop_words=sorted(_stop_words()), token_pattern=r"(?u)\b[A-Za-z][\w-]{2,}\b",
                                 ngram_range=(1, 1), min_df=1)
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(float)
    except ValueError:  # nothing but stop words
        return [[] for _ in range(k)]
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    average = counts.sum() / max(k, 1)
    idf = np.log(1.0 + average / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    out = []
    for c in range(k):
        order = np.argsort(-scores[c])
        chosen: list[str] = []
        for i in order:
            word = str(words[i])
            if scores[c, i] <= 0 or len(chosen) >= per_cluster:
                break
            if not any(word[:5] == w[:5] for w in chosen):  # "segment", "segmentation"
                chosen.append(word)
        out.append(chosen)
    return out


def _stop_words() -> set[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # Words every abstract in this kind of corpus uses: they label nothing.
    return set(ENGLISH_STOP_WORDS) | {
        "paper", "propose", "proposed", "method", "methods", "model", "models", "approach", "based",
        "results", "using", "novel", "framework", "performance", "show", "demonstrate", "state",
        "art", "existing", "new", "use", "used", "achieves", "task", "tasks", "data", "dataset",
        "datasets", "study", "work", "code", "available", "github", "com", "https", "http",
        "experiments", "medical", "learning", "deep", "network", "networks", "extensive", "significant",
        "significantly", "improve", "improves", "improved", "different", "high", "large", "various",
        "furthermore", "additionally", "specifically", "introduce", "present", "effective", "efficient",
        "image", "images", "imaging", "train", "training", "trained", "computational", "analysis",
        "accuracy", "outperforms", "challenges", "challenging", "recent", "advances", "key", "lack",
    }


def compute(ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], generation: int,
            total: int | None = None) -> TopicMap:
    points = layout(np.asarray(vectors))
    labels = clusters(points) if len(ids) else np.zeros(0, dtype=int)
    words = cluster_words(list(texts), labels) if len(ids) else []
    return TopicMap(generation=generation, ids=list(ids), x=[round(float(v), 5) for v in points[:, 0]],
                    y=[round(float(v), 5) for v in points[:, 1]], cluster=[int(c) for c in labels],
                    labels=words, total=total if total is not None else len(ids))


class TopicMapCache:
    """The map of the current store generation: in memory, else from the store directory's copy,
    else computed (once, under a lock, while other callers wait for it)."""

    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / CACHE_FILE
        self._lock = threading.Lock()
        self._map: TopicMap | None = None

    def get(self, generation: int,
            load: Callable[[], tuple[list[str], np.ndarray, list[str], int]]) -> TopicMap:
        """`load()` gives (ids, vectors, texts, total) when the map must be computed."""
        with self._lock:
            if self._map is not None and self._map.generation == generation:
                return self._map
            saved = self._read(generation)
            if saved is None:
                ids, vectors, texts, total = load()
                saved = compute(ids, vectors, texts, generation, total)
                self._write(saved)
            self._map = saved
            return saved

    def _read(self, generation: int) -> TopicMap | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            topic_map = TopicMap(**data)
        except (OSError, ValueError, TypeError):
            return None
        return topic_map if topic_map.generation == generation else None

    def _write(self, topic_map: TopicMap) -> None:
        if not self.path.parent.is_dir():  # never recreate a store directory removed meanwhile
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(asdict(topic_map)), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:  # only a cache
            log.warning("could not save the topic map: %s", exc)


def sample(ids: Sequence[str], limit: int = MAP_MAX_PAPERS) -> list[int]:
    """Indexes of at most `limit` papers, a fixed spread over the store (deterministic)."""
    if len(ids) <= limit:
        return list(range(len(ids)))
    step = len(ids) / limit
    return [int(i * step) for i in range(limit)]


# --- drawing ----------------------------------------------------------------------------------
def _xy(topic_map: TopicMap, i: int) -> tuple[float, float]:
    return (MARGIN + topic_map.x[i] * (WIDTH - 2 * MARGIN),
            MARGIN + (1 - topic_map.y[i]) * (HEIGHT - 2 * MARGIN))


def svg(topic_map: TopicMap, titles: dict[str, str], cited: dict[str, int],
        retrieved: dict[str, int], selected: str | None = None) -> str:
    """The map as inline SVG: a dot per paper coloured by cluster (its title on hover), the
    cluster's words at its centre, the latest answer's cited papers as numbered rings."""
    dots, marks = [], []
    for i, pid in enumerate(topic_map.ids):
        x, y = _xy(topic_map, i)
        colour = PALETTE[topic_map.cluster[i] % len(PALETTE)]
        title = esc(clean_latex(titles.get(pid, pid)))
        n = cited.get(pid) or retrieved.get(pid)
        cls = "pa-pt" + (" pa-pt-cited" if pid in cited else " pa-pt-retrieved" if pid in retrieved else "")
        cls += " pa-pt-selected" if pid == selected else ""
        radius = 9 if pid in cited else 7 if pid in retrieved else 5
        dot = (f'<circle class="{cls}" data-id="{esc(pid)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
               f'fill="{colour}" tabindex="0" role="button" aria-label="{title}">'
               f"<title>{(f'[{n}] ' if n else '') + title}</title></circle>")
        (marks if n else dots).append(dot)
        if pid in cited:
            marks.append(f'<text class="pa-pt-n" x="{x:.1f}" y="{y - 13:.1f}">{cited[pid]}</text>')
    names = []
    for c, words in enumerate(topic_map.labels):
        members = [i for i, k in enumerate(topic_map.cluster) if k == c]
        if not members or not words:
            continue
        xs, ys = zip(*(_xy(topic_map, i) for i in members), strict=True)
        names.append(f'<text class="pa-cluster" x="{float(np.median(xs)):.1f}" '
                     f'y="{float(np.median(ys)):.1f}">{esc(" · ".join(words))}</text>')
    return (f'<svg class="pa-mapsvg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="Map of {len(topic_map.ids)} papers in {len(topic_map.labels)} topics">'
            f'<g class="pa-dots">{"".join(dots)}</g><g class="pa-names">{"".join(names)}</g>'
            f'<g class="pa-marks">{"".join(marks)}</g></svg>')


def legend_html(topic_map: TopicMap) -> str:
    sizes = [sum(1 for k in topic_map.cluster if k == c) for c in range(len(topic_map.labels))]
    items = "".join(
        f'<li><i style="background:{PALETTE[c % len(PALETTE)]}"></i>{esc(", ".join(words) or "other")}'
        f" <small>({sizes[c]})</small></li>"
        for c, words in sorted(enumerate(topic_map.labels), key=lambda cw: -sizes[cw[0]]))
    sampled = (f" A fixed sample of {len(topic_map.ids):,} of the {topic_map.total:,} papers is shown."
               if topic_map.total > len(topic_map.ids) else "")
    return (f'<div class="pa-legend"><p>Each dot is a paper; papers about similar things lie close '
            f"together. Topics were found automatically and are named by their most characteristic "
            f"words. Rings mark the papers of the latest answer (numbered when cited). Click a dot to "
            f"open the paper.{sampled}</p><ul>{items}</ul></div>")
