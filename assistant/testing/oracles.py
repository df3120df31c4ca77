"""Reference implementations of code that was replaced for speed: the tests check the new code
against them, and bench/changes.py measures the difference."""

from __future__ import annotations

from typing import Any

import numpy as np


def old_verbatim(retriever: Any) -> Any:
    """`HybridRetriever._verbatim` as it was: one Chroma `$contains` read per spelling."""
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    r = retriever

    def verbatim(terms: list[list[str]], query_vector: Any) -> dict[str, Any]:
        most = max(1, int(r.settings.verbatim_max_paper_share * len(r.titles.titles)))
        found: dict[str, Any] = {}
        for spellings in terms:
            hits: dict[str, Any] = {}
            for spelling in spellings:
                got = r.store.chunks.get(where_document={"$contains": spelling},
                                         limit=r.settings.literal_candidates,
                                         include=["documents", "metadatas", "embeddings"])
                if not got["ids"]:
                    continue
                sims = np.asarray(got["embeddings"], dtype=np.float32) @ query_vector
                for i, chunk_id in enumerate(got["ids"]):
                    node = metadata_dict_to_node(got["metadatas"][i], text=got["documents"][i])
                    hits[chunk_id] = (node, float(sims[i]))
            papers = {node.metadata.get("paper_id") for node, _ in hits.values()}
            if len(papers) <= most:
                found.update(hits)
        return found

    return verbatim
