"""Reciprocal rank fusion (Cormack et al., 2009) of run files: `--fusion rrf --runs A B`."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from .runs import ranked

RRF_K = 60


def read_run(path: str | os.PathLike) -> dict[str, list[tuple[str, float]]]:
    """{query_id: [(docid, score), ...]} from a trec run (`qid Q0 docid rank score tag`) or an msmarco
    run (`qid docid rank`, scored by -rank); a malformed line is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"run file {path} does not exist")
    run: dict[str, list[tuple[str, float]]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) == 6:
                    query_id, docid, score = fields[0], fields[2], float(fields[4])
                elif len(fields) == 3:
                    query_id, docid, score = fields[0], fields[1], -float(int(fields[2]))
                else:
                    raise ValueError(f"expected 6 (trec) or 3 (msmarco) fields, got {len(fields)}")
            except ValueError as error:
                raise UserError(f"{path}:{number}: not a run line ({error})") from None
            run.setdefault(query_id, []).append((docid, score))
    if not run:
        raise UserError(f"run file {path} is empty")
    return run


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
