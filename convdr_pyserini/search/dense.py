"""Dense retrieval for `python -m convdr_pyserini.search --encoder ...`: exact inner-product top-k over one
or several faiss index folders (shards), searched one at a time and block by block, so that peak memory
is one block of vectors, not the collection (ConvDR's block search, bounded).

Scores do not depend on how the collection is split (see `_block_top`), and ties are broken by docid
ascending, also across blocks and shards: each block contributes its top k plus every passage tied with
its k-th score, and the final cut sorts by (score desc, docid asc).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..index import faiss_io

# Flat vectors read per block: 2**20 rows = 1.5 GiB at 384 dimensions, 3 GiB at 768.
DEFAULT_BLOCK_ROWS = 1 << 20


class DenseSearcher:
    """Exact (flat) or approximate (HNSW) inner-product search over index folders and shard pieces."""

    def __init__(self, index_paths: Sequence[str | Path], device: str = "cpu", block_rows: int = DEFAULT_BLOCK_ROWS):
        paths = [piece for path in index_paths for piece in faiss_io.shard_dirs(Path(path))]
        self.pieces = [faiss_io.open_index_dir(path) for path in paths]
        dims = {piece.dim for piece in self.pieces}
        if len(dims) > 1:
            listing = ", ".join(f"{piece.path} ({piece.dim})" for piece in self.pieces)
            raise UserError(f"index pieces have different dimensions: {listing}")
        self.dim = dims.pop()
        self.count = sum(piece.count for piece in self.pieces)
        self.block_rows = block_rows
        self._offsets = np.cumsum([0] + [piece.count for piece in self.pieces])
        self._resident: dict[int, object] = {}  # piece number -> its vectors (small index) or faiss index
        self._gpu = _faiss_gpu_resources() if device.startswith("cuda") else None

    def check_dimension(self, dim: int, what: str) -> None:
        """UserError unless `dim` (of the query encoder `what`) equals the index dimension."""
        if dim != self.dim:
            where = ", ".join(str(piece.path) for piece in self.pieces)
            raise UserError(f"{what} produces {dim}-dimensional vectors but the index {where} holds {self.dim}-dimensional ones")

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """For each query vector, its top `k` (docid, score), score descending then docid ascending."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise UserError(f"query vectors have shape {queries.shape}, the index needs (n, {self.dim})")
        candidates: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(len(queries))]
        for number, piece in enumerate(self.pieces):
            offset = int(self._offsets[number])
            for start, scores, rows in self._piece_hits(number, piece, queries, k):
                for query, (query_scores, query_rows) in enumerate(zip(scores, rows)):
                    candidates[query].append((query_scores, query_rows + (offset + start)))
        return [self._top(parts, k) for parts in candidates]

    def _piece_hits(self, number: int, piece: faiss_io.DenseIndexDir, queries: np.ndarray, k: int):
        """(first row, per-query scores, per-query rows) for each block of one piece."""
        if not piece.flat:
            index = self._resident.get(number)
            if index is None:
                index = self._resident[number] = piece.read_faiss()
            scores, rows = index.search(queries, min(k, piece.count))
            keep = rows >= 0
            yield 0, [s[m] for s, m in zip(scores, keep)], [r[m] for r, m in zip(rows, keep)]
            return
        if self.count <= self.block_rows:  # the whole index fits one block: keep it for the next searches
            if number not in self._resident:
                self._resident[number] = next(piece.vector_blocks(self.block_rows))[1]
            blocks = [(0, self._resident[number])]
        else:
            blocks = piece.vector_blocks(self.block_rows)
        for start, block in blocks:
            yield (start, *self._block_top(queries, block, k))

    def _block_top(self, queries: np.ndarray, block: np.ndarray, k: int):
        """Per query: scores and rows of the block's top k plus every row tied with the k-th score.

        faiss proposes the top k + margin; those candidates are rescored in float64 (then rounded to float32),
        a computation that depends only on the two vectors, so a passage gets the same score whatever block,
        shard or batch it is in. If the margin could hide a passage that belongs in the top k (its faiss score
        is within rounding of the k-th), the query is rescored over the whole block instead.
        """
        margin = max(8, k // 10)
        fetch = min(k + margin, len(block))
        if fetch < len(block):
            faiss_scores, candidates = self._knn(queries, block, fetch)
        else:
            faiss_scores, candidates = None, np.broadcast_to(np.arange(len(block)), (len(queries), len(block)))
        out_scores, out_rows = [], []
        for query, vector in enumerate(queries.astype(np.float64)):
            rows = candidates[query]
            rows = rows[rows >= 0]
            scores = (block[rows].astype(np.float64) @ vector).astype(np.float32)
            if len(scores) > k:
                kth = np.partition(scores, len(scores) - k)[len(scores) - k]
                tolerance = 1e-4 * max(1.0, abs(float(kth)))
                if faiss_scores is not None and kth - faiss_scores[query, -1] <= tolerance:
                    rows = np.flatnonzero(block @ queries[query] >= kth - 2 * tolerance)
                    scores = (block[rows].astype(np.float64) @ vector).astype(np.float32)
                    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
                keep = scores >= kth
                rows, scores = rows[keep], scores[keep]
            out_scores.append(scores)
            out_rows.append(rows)
        return out_scores, out_rows

    def _knn(self, queries: np.ndarray, block: np.ndarray, k: int):
        import faiss

        if self._gpu is not None:
            return faiss.knn_gpu(self._gpu, queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)
        return faiss.knn(queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)

    def _top(self, parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> list[tuple[str, float]]:
        scores = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        keys = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
        if len(scores) > k:
            threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= threshold
            scores, keys = scores[keep], keys[keep]
        order = np.argsort(-scores, kind="stable")
        scores, keys = scores[order], keys[order]
        docids = self._docids(keys)
        hits = list(zip(docids, scores.tolist()))
        if len(scores) > 1 and (np.diff(scores) == 0).any():
            hits.sort(key=lambda hit: (-hit[1], hit[0]))
        return hits[:k]

    def _docids(self, keys: np.ndarray) -> list[str]:
        if len(self.pieces) == 1:
            return self.pieces[0].docids.get(keys)
        numbers = np.searchsorted(self._offsets, keys, side="right") - 1
        docids: list[str | None] = [None] * len(keys)
        for number in np.unique(numbers):
            where = np.flatnonzero(numbers == number)
            for position, docid in zip(where, self.pieces[number].docids.get(keys[where] - self._offsets[number])):
                docids[position] = docid
        return docids


def _faiss_gpu_resources():
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        print("note: faiss has no GPU support here (pip install faiss-gpu-cu12); searching on the CPU", file=sys.stderr)
        return None
    return faiss.StandardGpuResources()


def search_dense(args, dataset, queries: list) -> dict[str, list[tuple[str, float]]]:
    """Encode `queries` as `args.query` says and search `args.index`; {query_id: [(docid, score), ...]}.

    With `args.cv` (a folder of per-fold encoders `fold-0`, `fold-1`, ...), each query is encoded by the
    model of the fold its topic belongs to, i.e. the one that did not train on it.
    """
    from ..index.dense import resolve_device

    device = resolve_device(getattr(args, "device", None) or "cpu")
    searcher = DenseSearcher(args.index, device=device)
    response_text = _response_lookup(dataset) if args.query in ("man_can", "auto_can") else None
    from ..encode import conversational_input

    inputs = [conversational_input(query, args.query, response_text) for query in queries]
    groups = _encoder_groups(args, queries)
    embeddings = np.zeros((len(queries), searcher.dim), dtype=np.float32)
    for encoder_spec, positions in groups:
        encoder = _query_encoder(args, encoder_spec, device)
        searcher.check_dimension(encoder.dim, f"encoder {encoder_spec}")
        embeddings[positions] = _encode(encoder, [inputs[i] for i in positions], args.batch_size)
    results = searcher.search(embeddings, args.hits)
    return {query.query_id: hits for query, hits in zip(queries, results)}


def _response_lookup(dataset):
    """doc_id -> text of canonical responses: the topics' own docstore, or, for the full CAsT collection (too
    large to hold in memory), the mini collection, which holds every CAsT-20 canonical passage."""
    try:
        store = dataset.docs_store()
    except UserError:
        from .. import datasets

        store = datasets.load("convdr/cast20/mini").docs_store()
    return lambda doc_id: store.get(doc_id).text


def _encoder_groups(args, queries: list) -> list[tuple[str, list[int]]]:
    """[(encoder card/path, positions of the queries it encodes)]: one group, or one per CV fold."""
    cv = getattr(args, "cv", None)
    if not cv:
        return [(args.encoder, list(range(len(queries))))]
    from ..folds import folds

    topics = sorted({query.topic_number for query in queries})
    dataset_id = getattr(args, "topics", "") or ""
    fold_by_topic = folds(dataset_id, topics)
    groups: dict[int, list[int]] = {}
    for position, query in enumerate(queries):
        groups.setdefault(fold_by_topic[query.topic_number], []).append(position)
    result = []
    for fold in sorted(groups):
        model = Path(cv) / f"fold-{fold}"
        if not model.is_dir():
            raise UserError(f"--cv {cv}: no fold-{fold} model folder (needed for topics of fold {fold})")
        result.append((str(model), groups[fold]))
    return result


def _query_encoder(args, encoder_spec: str, device: str):
    from ..encode import ConvDRQueryEncoder

    options = {"mode": args.query, "device": device}
    for name in ("max_concat_length", "truncate"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    return ConvDRQueryEncoder(encoder_spec, **options)


def _encode(encoder, inputs: list, batch_size: int | None) -> np.ndarray:
    from tqdm import tqdm

    batch_size = batch_size or 64
    parts = []
    with tqdm(total=len(inputs), unit="query", desc="encoding queries", leave=False) as bar:
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            parts.append(np.asarray(encoder.encode_batch(batch), dtype=np.float32).reshape(len(batch), -1))
            bar.update(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
