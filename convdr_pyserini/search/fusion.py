"""Reciprocal rank fusion (Cormack et al., 2009) of runs: `fuse_rrf([run_a, run_b])`.

    from convdr_pyserini import Run, fuse_rrf
    fused = fuse_rrf([Run.read("runs/bm25.trec"), Run.read("runs/convdr.trec")], k=60, depth=1000)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..io.runs import Run, ranked
from ..io.topics import Topics
from ..resolve import load_topics

RRF_K = 60


def fuse_rrf(runs: Sequence["Run | str | os.PathLike"], k: float = RRF_K, depth: int | None = None,
             topics: "Topics | str | None" = None) -> Run:
    """Fuse runs: each doc scores sum(1 / (k + rank)) over the runs that retrieved it (rank from 1, in each
    run's order: score descending then docid ascending); the top `depth` per query, ties by docid.

    Runs may be `Run`s or run files (read strictly). With `topics`, the fused run holds exactly their queries
    (in their order) and a run query outside them is an error.
    """
    from ..io.runs import read_runs

    if len(runs) < 2:
        raise UserError(f"rank fusion needs at least two runs, got {len(runs)}")
    if not k > 0:
        raise UserError(f"the RRF constant k must be positive, got {k}")
    topics = load_topics(topics) if topics is not None else None
    wanted = set(topics.ids()) if topics is not None else None
    files = [run for run in runs if not isinstance(run, Run)]
    loaded = iter(read_runs(files, wanted))
    runs = [run if isinstance(run, Run) else next(loaded) for run in runs]
    if wanted is not None:
        stray = sorted({query_id for run in runs for query_id in run if query_id not in wanted})
        if stray:
            raise UserError(f"fused runs hold queries outside the topics of {topics.source}, e.g. {', '.join(stray[:3])}")
    fused: dict[str, dict[str, float]] = {}
    for run in runs:
        for query_id, found in run.items():
            scores = fused.setdefault(query_id, {})
            for rank, (docid, _) in enumerate(found, 1):
                scores[docid] = scores.get(docid, 0.0) + 1.0 / (k + rank)
    order = topics.ids() if topics is not None else sorted(fused)
    hits = {query_id: ranked(fused.get(query_id, {}).items(), depth) for query_id in order}
    sources = tuple(dict.fromkeys(Path(source) for run in runs for source in run.sources))
    tag = f"rrf-k{k:g}"
    metadata = {"retriever": "fusion", "fusion": {"method": "rrf", "k": k, "depth": depth,
                                                  "runs": [str(run.path or run.name) for run in runs]},
                "topics": None if topics is None else topics.describe()}
    texts = None if topics is None else {query.query_id: query.raw_utterance for query in topics}
    return Run(hits, name=tag, tag=tag, metadata=metadata, sources=sources, query_texts=texts)
