"""Reciprocal rank fusion (Cormack et al., 2009) of run files: `--fusion rrf --runs A B`."""
from __future__ import annotations

from .runs import ranked

RRF_K = 60


def reciprocal_rank_fusion(runs: list[dict[str, list[tuple[str, float]]]], k: int = RRF_K,
                           depth: int | None = None) -> dict[str, list[tuple[str, float]]]:
    """Fuse runs: each doc scores sum(1 / (k + rank)) over the runs that retrieved it (rank from 1, each run
    ordered by score descending then docid ascending); the top `depth` per query, ties by docid."""
    fused: dict[str, dict[str, float]] = {}
    for run in runs:
        for query_id, hits in run.items():
            scores = fused.setdefault(query_id, {})
            for rank, (docid, _) in enumerate(ranked(hits), 1):
                scores[docid] = scores.get(docid, 0.0) + 1.0 / (k + rank)
    return {query_id: ranked(scores.items(), depth) for query_id, scores in sorted(fused.items())}
