"""`search --ray`: the pieces of a dense index held by Ray actors, their hits merged exactly by the driver.

Each actor opens some of the index's pieces (the `shard-I-of-N` folders of a sharded index; compressed
pieces, HNSW included, as they are) with the single-process `DenseSearcher`, verifies them, keeps what that
keeps resident, and answers every query batch with its own top k. A piece's scores do not depend on which
process searches it, and each actor's top k is cut by (score descending, docid ascending), the order the
driver merges by, so the merged hits are exactly those of a single process: identical run files. The driver
encodes the queries and never loads vectors or docids. An unsharded index is one piece, searched by one
actor; the pieces must be at the same path on every worker (a shared filesystem).
"""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._ray import RETRIES, RayCluster, connect, run_on_pool, set_threads, worker_count
from ..errors import UserError
from ..index import faiss_io
from .dense import DenseSearcher, query_matrix

logger = logging.getLogger(__name__)


class PieceSearcher:
    """A Ray actor: a `DenseSearcher` over some pieces of the index."""

    def __init__(self, paths: list[str], options: dict, threads: int):
        set_threads(threads)
        self.searcher = DenseSearcher(paths, **options)

    def shape(self) -> tuple[int, int]:
        """(dimension, vectors) of this actor's pieces."""
        return self.searcher.dim, self.searcher.count

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        return self.searcher.search(queries, min(k, self.searcher.count))


@dataclass(frozen=True)
class RemotePiece:
    """A piece another process holds: its folder (what the run's sidecar records)."""

    path: Path


class RaySearcher:
    """`DenseSearcher`'s interface (`dim`, `count`, `pieces`, `docids`, `check_dimension`, `search`,
    `search_arrays`) over Ray actors."""

    def __init__(self, index_paths: Sequence[str | Path], cluster: RayCluster, device: str = "cpu",
                 verify: bool = True, nprobe: int | None = None, ef_search: int | None = None,
                 refine: float | None = None, refine_from: str | Path | None = None):
        paths = [piece for path in index_paths for piece in faiss_io.shard_dirs(Path(path))]
        self.pieces = [RemotePiece(path) for path in paths]
        self.nprobe, self.ef_search, self.refine = nprobe, ef_search, refine
        self._ray = ray = connect(cluster)
        gpus = cluster.gpus_per_worker or (1.0 if device.startswith("cuda") else 0.0)
        workers = min(worker_count(ray, cluster, gpus), len(paths))
        options = dict(device="cuda" if device.startswith("cuda") else "cpu", verify=verify, nprobe=nprobe,
                       ef_search=ef_search, refine=refine, refine_from=refine_from)
        actor = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)(PieceSearcher)
        shares = [[str(path) for path in paths[number::workers]] for number in range(workers)]
        logger.info("searching %d index piece(s) on %d Ray worker(s)", len(paths), workers)
        self._actors = [actor.options(**cluster.worker_options(gpus)).remote(share, options, cluster.threads())
                        for share in shares]
        shapes = run_on_pool(ray, self._actors, lambda worker, _: worker.shape.remote(), self._actors)
        dims = {dim for dim, _ in shapes}
        if len(dims) > 1:
            raise UserError(f"index pieces have different dimensions: {sorted(dims)}")
        self.dim = dims.pop()
        self.count = sum(count for _, count in shapes)
        if self.count == 0:
            raise UserError(f"the index {', '.join(map(str, paths))} holds no vectors")

    check_dimension = DenseSearcher.check_dimension  # it needs only `dim` and the pieces' paths

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """For each query vector, its top `k` (docid, score), score descending then docid ascending."""
        shared = self._ray.put(query_matrix(queries, self.dim))
        answers = run_on_pool(self._ray, self._actors, lambda worker, _: worker.search.remote(shared, k), self._actors)
        return [heapq.nsmallest(k, (hit for answer in answers for hit in answer[query]),
                                key=lambda hit: (-hit[1], hit[0]))
                for query in range(len(queries))]

    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`search` as `DenseSearcher.search_arrays` gives it: (keys, float32 scores, hits per query), the keys
        into `docids`, which then holds the docids of these hits (the driver never loads the docid files)."""
        found = self.search(queries, k)
        width = max((len(hits) for hits in found), default=0)
        names = sorted({docid for hits in found for docid, _ in hits})
        key = {docid: number for number, docid in enumerate(names)}
        rows = np.full((len(found), width), -1, dtype=np.int64)
        scores = np.full((len(found), width), -np.inf, dtype=np.float32)
        for query, hits in enumerate(found):
            rows[query, :len(hits)] = [key[docid] for docid, _ in hits]
            scores[query, :len(hits)] = [score for _, score in hits]
        self.docids = HitDocids(names)
        return rows, scores, np.array([len(hits) for hits in found], dtype=np.int64)


class HitDocids:
    """The docids of one search's hits, by key (the `DocidLookup` of `io.runs`)."""

    def __init__(self, names: list[str]):
        self.names = names

    def get(self, rows: np.ndarray) -> list[str]:
        return [self.names[row] for row in np.asarray(rows).tolist()]

    def padded(self, rows: np.ndarray) -> np.ndarray | None:
        """(len(rows), width) uint8: each docid's UTF-8 bytes then NULs; None when a docid holds a NUL."""
        names = self.get(rows)
        if any("\0" in name for name in names):
            return None
        encoded = np.array([name.encode("utf-8") for name in names], dtype=bytes)
        width = encoded.dtype.itemsize
        return encoded.view(np.uint8).reshape(len(names), width) if len(names) else np.zeros((0, 0), np.uint8)
