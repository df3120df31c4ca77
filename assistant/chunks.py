"""Papers -> chunks: llama-index's sentence-aware splitter, deterministic ids, title in the embedding."""

from __future__ import annotations

from functools import lru_cache

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from assistant.corpus import Paper, bibliographic_meta

# Everything but the title stays out of embeddings, BM25 and prompts.
HIDDEN_KEYS = ["paper_id", "chunk_index", "n_chunks", "paper_hash", "url", "authors", "year", "venue",
               "doi", "arxiv_id", "pmid", "collections"]


@lru_cache(maxsize=8)
def _splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2))


def chunk_id(paper_id: str, index: int) -> str:
    return f"{paper_id}-{index:04d}"


def embed_text(title: str, text: str) -> str:
    """What gets embedded: the title first, so a chunk is findable by its paper's name."""
    return f"{title}\n{text}"


def chunk_paper(paper: Paper, chunk_size: int, chunk_overlap: int) -> list[TextNode]:
    pieces = [p for p in _splitter(chunk_size, chunk_overlap).split_text(paper.abstract) if p.strip()]
    nodes = []
    for index, piece in enumerate(pieces):
        node = TextNode(
            id_=chunk_id(paper.id, index),
            text=piece,
            metadata={
                "paper_id": paper.id,
                "title": paper.title,
                "chunk_index": index,
                "n_chunks": len(pieces),
                "paper_hash": paper.content_hash,
                "url": paper.link,
                # On every chunk, so that the dense search filters with a Chroma `where` and the
                # lexical side reads them from the BM25 corpus it already holds.
                **bibliographic_meta(paper),
            },
            # Only the title travels with the text into embeddings and prompts.
            excluded_embed_metadata_keys=list(HIDDEN_KEYS),
            excluded_llm_metadata_keys=list(HIDDEN_KEYS),
        )
        # The paper is the chunk's source document, so the store can delete a paper's chunks at once.
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=paper.id)
        nodes.append(node)
    return nodes
