"""Dense retrieval: `DenseRetriever` (one encoder) and `ConvDRRetriever` (a model per cross-validation fold)
over one or several faiss index folders (shards), searched one at a time and block by block, so that peak
memory is one block of vectors, not the collection (ConvDR's block search, bounded).

Scores do not depend on how the collection is split (see `_block_top`), and ties are broken by docid
ascending, also across blocks and shards: each block contributes its top k plus every passage tied with
its k-th score, and the final cut sorts by (score desc, docid asc). Every index is verified against the
checksums in its meta.json when opened (see `faiss_io.verify_checksums`); compressed (non-flat) pieces are
searched by faiss itself, with `nprobe` / `ef_search` when given, and with `refine` F the top F x k candidates
are re-scored exactly from the flat index they were compressed from (memory-mapped, on disk).

    from convdr_pyserini import DenseRetriever
    dense = DenseRetriever("indexes/cast20-mini.minilm", encoder="minilm")
    run = dense.search("convdr/cast20/mini", query="manual", hits=100)
"""
from __future__ import annotations

import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..encode.inputs import CONVERSATIONAL_MODES, TRUNCATIONS
from ..errors import UserError
from ..index import faiss_io
from ..io.runs import HitArrays, Run
from ..io.topics import Topics
from ..resolve import load_topics

logger = logging.getLogger(__name__)

# Flat vectors read per block: 2**20 rows = 1.5 GiB at 384 dimensions, 3 GiB at 768.
DEFAULT_BLOCK_ROWS = 1 << 20


class DenseSearcher:
    """Exact (flat) or approximate (HNSW) inner-product search over index folders and shard pieces."""

    def __init__(self, index_paths: Sequence[str | Path], device: str = "cpu", block_rows: int = DEFAULT_BLOCK_ROWS,
                 verify: bool = True, nprobe: int | None = None, ef_search: int | None = None,
                 refine: float | None = None, refine_from: str | Path | None = None):
        if isinstance(index_paths, (str, Path)):
            index_paths = [index_paths]
        if not verify:
            logger.warning("not verifying the index checksums (--no-verify): a corrupt index gives wrong results")
        paths = [piece for path in index_paths for piece in faiss_io.shard_dirs(Path(path))]
        self.pieces = [faiss_io.open_index_dir(path, verify=verify) for path in paths]
        dims = {piece.dim for piece in self.pieces}
        if len(dims) > 1:
            listing = ", ".join(f"{piece.path} ({piece.dim})" for piece in self.pieces)
            raise UserError(f"index pieces have different dimensions: {listing}")
        self.dim = dims.pop()
        self.count = sum(piece.count for piece in self.pieces)
        if self.count == 0:
            raise UserError(f"the index {', '.join(str(p.path) for p in self.pieces)} holds no vectors")
        self.nprobe, self.ef_search, self.refine, self.refine_from = nprobe, ef_search, refine, refine_from
        self.verify = verify
        given = [name for name, value in (("nprobe", nprobe), ("ef_search", ef_search), ("refine", refine))
                 if value is not None]
        if given and all(piece.flat for piece in self.pieces):
            raise UserError(f"{{{given[0]}}} applies to compressed (IVF, PQ or HNSW) indexes; {self.pieces[0].path} "
                            "is flat", given[0])
        if refine is not None and not refine >= 1:
            raise UserError(f"{{refine}} must be at least 1 (candidates per hit), got {refine}", "refine")
        if refine_from is not None and (refine is None or len(self.pieces) != 1):
            raise UserError("{refine_from} needs {refine} and a single (unsharded) compressed index",
                            "refine_from", "refine")
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
        rows, scores, counts = self.search_arrays(queries, k)
        return [list(zip(self.docids.get(found[:count]), values[:count].tolist()))
                for found, values, count in zip(rows, scores, counts.tolist())]

    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`search` as arrays: (keys into `self.docids`, float32 scores, hits per query); row i holds query i's
        hits in its first counts[i] columns, score descending then docid ascending."""
        queries = query_matrix(queries, self.dim)
        best = None
        for number, piece in enumerate(self.pieces):
            offset = int(self._offsets[number])
            for start, scores, rows in self._piece_hits(number, piece, queries, k):
                keys = rows if offset + start == 0 else np.where(rows >= 0, rows + (offset + start), -1)
                best = (scores, keys) if best is None else _keep_top(np.hstack([best[0], scores]),
                                                                     np.hstack([best[1], keys]), k)
        if best is None:  # every piece is empty
            best = np.full((len(queries), 0), -np.inf, dtype=np.float32), np.full((len(queries), 0), -1)
        return _rank(*best, k, self.docids)

    @functools.cached_property
    def docids(self):
        """The docids of every piece, by key (`faiss_io.DocidTable` or `JoinedDocids`)."""
        if len(self.pieces) == 1:
            return self.pieces[0].docids
        return faiss_io.JoinedDocids([piece.docids for piece in self.pieces], self._offsets[:-1])

    def _piece_hits(self, number: int, piece: faiss_io.DenseIndexDir, queries: np.ndarray, k: int):
        """(first row, scores, rows) for each block of one piece: per query (a row of the two matrices) its hits
        in the block, at least its top k (all of them if fewer), padded with -inf and -1."""
        if piece.count == 0:  # a shard that got no chunk (fewer chunks than shards)
            return
        if not piece.flat:
            index = self._resident.get(number)
            if index is None:
                from ..index.compress import refine_source, refined, set_search_parameters

                index = piece.read_faiss()
                set_search_parameters(index, self.nprobe, self.ef_search, str(piece.path))
                if self.refine is not None and self.refine > 1:
                    index = refined(index, refine_source(piece, self.refine_from, self.verify), self.refine)
                self._resident[number] = index
            scores, rows = index.search(queries, min(k, piece.count))
            yield 0, (np.where(rows >= 0, scores, -np.inf) if (rows < 0).any() else scores), rows
            return
        if self.count <= self.block_rows:  # the whole index fits one block: keep it for the next searches
            if number not in self._resident:
                block = next(piece.vector_blocks(self.block_rows))[1]
                self._check_finite(piece, 0, block)
                self._resident[number] = block
            blocks = [(0, self._resident[number])]
        else:
            blocks = piece.vector_blocks(self.block_rows)
        for start, block in blocks:
            if number not in self._resident:
                self._check_finite(piece, start, block)
            yield (start, *self._block_top(queries, block, k))

    @staticmethod
    def _check_finite(piece: faiss_io.DenseIndexDir, start: int, block: np.ndarray, rows: int = 65536) -> None:
        """Refuse NaN or infinite vectors in an index whose checksums were not verified (ours never holds any)."""
        if piece.verified:
            return
        for first in range(0, len(block), rows):
            finite = np.isfinite(block[first:first + rows]).all(axis=1)
            if not finite.all():
                row = start + first + int(np.flatnonzero(~finite)[0])
                raise UserError(f"{piece.path}: the vector of {piece.docids.get([row])[0]} (row {row}) is not finite; "
                                "the index is corrupt")

    def _block_top(self, queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query: exact scores and rows of the block's top k plus every row tied with the k-th (padded).

        faiss proposes the top k + margin by its float32 scores; the exact score of a passage is its dot product
        in float64, rounded to float32: it depends only on the two vectors, so a passage gets the same score
        whatever block, shard or batch it is in. A row can be in the exact top k only if its faiss score is
        within twice the rounding tolerance of the k-th faiss score, so only those candidates are rescored;
        where the margin may hide such a row (the last proposed score is still within it), that query's
        candidates are taken from the whole block instead.
        """
        if len(block) <= k + max(8, k // 10):  # a small block: every row is a candidate
            candidates = np.broadcast_to(np.arange(len(block)), (len(queries), len(block)))
            return _keep_top(self._rescore(queries, block, candidates), candidates, k)
        approx, candidates = self._knn(queries, block, k + max(8, k // 10))
        floor = approx[:, k - 1] - 2e-4 * np.maximum(1.0, np.abs(approx[:, k - 1]))
        counts = (approx >= floor[:, None]).sum(axis=1)
        hidden = np.flatnonzero(approx[:, -1] >= floor)
        if len(hidden):
            wider = {int(i): np.flatnonzero(block @ queries[i] >= floor[i]) for i in hidden}
            counts[hidden] = [len(rows) for rows in wider.values()]
            candidates = np.pad(candidates, ((0, 0), (0, max(0, counts.max() - candidates.shape[1]))), constant_values=-1)
            for i, rows in wider.items():
                candidates[i, :len(rows)] = rows
        candidates = np.where(np.arange(candidates.shape[1]) < counts[:, None], candidates, -1)
        return _keep_top(self._rescore(queries, block, candidates), candidates, k)

    @staticmethod
    def _rescore(queries: np.ndarray, block: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Exact float32 scores (float64 dot products, rounded) of each query's candidate rows; -inf at -1.

        One gather and one float64 product per query, its rows gathered into a reused buffer that stays in cache
        while they are multiplied (gathering several queries' rows at once, or stacking the products, was
        slower); the queries are split over faiss's threads (numpy releases the GIL in both calls)."""
        exact = np.full(candidates.shape, -np.inf, dtype=np.float32)
        counts = (candidates >= 0).sum(axis=1).tolist()
        exact_queries = queries.astype(np.float64)

        def rescore(first: int, last: int) -> None:
            gathered = np.empty((candidates.shape[1], block.shape[1]), dtype=np.float32)
            products = np.empty(candidates.shape[1], dtype=np.float64)
            for i in range(first, last):
                count = counts[i]
                # mode="clip": the rows are valid (faiss's own), and the bounds check would double the gather's time
                np.take(block, candidates[i, :count], axis=0, out=gathered[:count], mode="clip")
                np.einsum("ij,j->i", gathered[:count], exact_queries[i], out=products[:count], dtype=np.float64,
                          casting="unsafe")
                exact[i, :count] = products[:count]

        _in_threads(rescore, len(queries))
        return exact

    def _knn(self, queries: np.ndarray, block: np.ndarray, k: int):
        import faiss

        if self._gpu is not None:
            return faiss.knn_gpu(self._gpu, queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)
        return faiss.knn(queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)


def _in_threads(function, count: int) -> None:
    """`function(first, last)` over [0, count) split into one contiguous range per faiss thread."""
    import faiss

    threads = max(1, min(faiss.omp_get_max_threads(), count // 16))
    if threads == 1:
        function(0, count)
        return
    bounds = np.linspace(0, count, threads + 1).astype(int).tolist()
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(function, first, last) for first, last in zip(bounds, bounds[1:])]:
            done.result()


def _keep_top(scores: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the entries scored at least its k-th best (all valid ones if fewer), in fewer columns."""
    valid = keys >= 0
    if scores.shape[1] > k:
        kth = np.partition(np.where(valid, scores, -np.inf), scores.shape[1] - k, axis=1)[:, scores.shape[1] - k]
        valid &= scores >= kth[:, None]
    width = int(valid.sum(axis=1).max(initial=0))
    if width < scores.shape[1]:
        columns = np.argsort(~valid, axis=1, kind="stable")[:, :width]
        scores, keys, valid = (np.take_along_axis(a, columns, axis=1) for a in (scores, keys, valid))
    return np.where(valid, scores, -np.inf).astype(np.float32), np.where(valid, keys, -1)


def _rank(scores: np.ndarray, keys: np.ndarray, k: int, docids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, scores, counts) of each row's top k by score descending then docid ascending."""
    if not (scores[:, :-1] >= scores[:, 1:]).all():  # faiss's own results come sorted
        order = np.argsort(-scores, axis=1, kind="stable")
        scores, keys = np.take_along_axis(scores, order, axis=1), np.take_along_axis(keys, order, axis=1)
    valid = keys >= 0
    tie = (scores[:, 1:] == scores[:, :-1]) & valid[:, 1:]
    if tie.any():  # reorder each run of equal scores by docid, the rows split over faiss's threads
        keys = np.ascontiguousarray(keys)  # faiss's or _keep_top's own array: reordered in place
        ranks = docids.ranks(build=16 * int(tie.sum()) >= len(docids))
        _in_threads(lambda first, last: _order_ties(keys[first:last], tie[first:last], docids, ranks), len(keys))
    return keys[:, :k], scores[:, :k], valid[:, :k].sum(axis=1)


def _order_ties(keys: np.ndarray, tie: np.ndarray, docids, ranks: np.ndarray | None) -> None:
    """Sort each run of tied entries of `keys` (rows of a C-ordered array, changed in place) by docid; `tie[i, j]`
    says that entry j + 1 of row i ties with entry j."""
    continued = np.zeros(keys.shape, dtype=bool)
    continued[:, 1:] = tie
    tied = continued.copy()
    tied[:, :-1] |= tie
    where = np.flatnonzero(tied)
    if not len(where):
        return
    run = np.cumsum(~continued.ravel()[where])  # runs are contiguous, in (query, score descending) order
    entries = keys.ravel()[where]
    names = ranks[entries] if ranks is not None else _docid_bytes(docids, entries)
    if names.dtype.kind == "i" and (int(run[-1]) + 1) * len(docids) < 2**63:  # one integer key: far faster
        order = np.argsort(run * len(docids) + names, kind="stable")
    else:
        order = np.lexsort((names, run))
    keys.reshape(-1)[where] = entries[order]


def _docid_bytes(docids, keys: np.ndarray) -> np.ndarray:
    """The docids of `keys` as an array that sorts as the strings do: their UTF-8 bytes (bytewise order is code
    point order), or the strings themselves where a docid holds a NUL. (`docids.ranks` is faster where built:
    fast-scan PQ scores tie often.)"""
    text = docids.padded(keys)
    if text is None or text.shape[1] == 0:
        return np.array(docids.get(keys))
    return text.view(f"S{text.shape[1]}").ravel()


def query_matrix(queries, dim: int) -> np.ndarray:
    """Query vectors as a contiguous float32 (n, dim) matrix; another shape is a UserError."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise UserError(f"query vectors have shape {queries.shape}, the index needs (n, {dim})")
    return queries


def _faiss_gpu_resources():
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        logger.warning("faiss has no GPU support here (pip install faiss-gpu-cu12); searching on the CPU")
        return None
    return faiss.StandardGpuResources()


class DenseRetriever:
    """Dense retrieval with one encoder: `search(topics, query, hits) -> Run`.

    `query` is `raw`, `manual`, `automatic` (one utterance), ConvDR's conversational `no_res`, `man_can`,
    `auto_can`, or a `Rewrites` / mapping of texts. `truncate` and `max_concat_length` default to the card's.
    `searcher` replaces the local `DenseSearcher` of `index` (e.g. a `search.distributed.RaySearcher` of it,
    whose Ray actors hold the pieces: same hits); the search options are then that searcher's.
    """

    def __init__(self, index: "str | Path | Sequence[str | Path]", encoder="minilm", device: str = "cpu",
                 batch_size: int = 64, truncate: str | None = None, max_concat_length: int | None = None,
                 verify: bool = True, nprobe: int | None = None, ef_search: int | None = None,
                 refine: float | None = None, refine_from: str | Path | None = None, searcher=None,
                 all_topics: bool = False):
        from ..index.dense import resolve_device

        self.index = [Path(index)] if isinstance(index, (str, Path)) else [Path(path) for path in index]
        self.device = resolve_device(device)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"{{batch_size}} must be a positive integer, got {batch_size!r}", "batch_size")
        if truncate not in (None, *TRUNCATIONS):
            raise UserError(f"{{truncate}} must be {' or '.join(TRUNCATIONS)}, not {truncate!r}", "truncate")
        self._check_encoder(encoder)
        self.batch_size = int(batch_size)
        self.truncate, self.max_concat_length = truncate, max_concat_length
        self.searcher = searcher or DenseSearcher(self.index, device=self.device, verify=verify, nprobe=nprobe,
                                                  ef_search=ef_search, refine=refine, refine_from=refine_from)
        self.encoder_spec = encoder
        self.all_topics = bool(all_topics)
        self._encoders: dict = {}

    @staticmethod
    def _check_encoder(encoder) -> None:
        """An unknown card, or a folder without a model, fails when the retriever is built, not at its first search."""
        if isinstance(encoder, (str, os.PathLike)):
            from ..encode import resolve_card

            resolve_card(encoder)

    @property
    def name(self) -> str:
        card = getattr(self.encoder_spec, "card", None)
        return card.name if card is not None else str(self.encoder_spec).rstrip("/").rsplit("/", 1)[-1]

    def encoder(self, spec=None):
        """The loaded encoder for `spec` (default: this retriever's), loaded once."""
        from ..encode import DenseEncoder, load_encoder

        spec = self.encoder_spec if spec is None else spec
        if isinstance(spec, DenseEncoder):
            return spec
        key = str(spec)
        if key not in self._encoders:
            encoder = load_encoder(spec, device=self.device)
            self.searcher.check_dimension(encoder.dim, f"encoder {spec}")
            self._encoders[key] = encoder
        return self._encoders[key]

    def _groups(self, topics: Topics) -> list[tuple[object, list[int]]]:
        """[(encoder spec, positions of the queries it encodes)]."""
        return [(self.encoder_spec, list(range(len(topics))))]

    def encode(self, topics: Topics, inputs: Mapping[str, object], mode: str,
               seen: dict[str, str] | None = None) -> np.ndarray:
        """Query embeddings, each query encoded by the model of its group; `seen` (when given) receives each
        query's input ids decoded back to text, what its encoder saw."""
        embeddings = np.zeros((len(topics), self.searcher.dim), dtype=np.float32)
        queries = list(topics)
        for spec, positions in self._groups(topics):
            encoder = self.encoder(spec)
            ids = [encoder.query_token_ids(inputs[queries[i].query_id], mode, max_concat_length=self.max_concat_length,
                                           truncate=self.truncate) for i in positions]
            embeddings[positions] = encoder.encode_ids(ids, tower="query", batch_size=self.batch_size)
            if seen is not None:
                seen.update((queries[i].query_id, encoder.tokenizer.decode(row)) for i, row in zip(positions, ids))
        return embeddings

    def search(self, topics: "Topics | str", query: "str | Mapping[str, str]" = "raw", hits: int = 1000,
               missing_rewrite: str = "error") -> Run:
        """Encode every query of `topics` as `query` says and search the index; returns a `Run`."""
        from .queries import check_hits, dense_inputs

        started = time.time()
        check_hits(hits)
        topics = self.scored_topics(load_topics(topics))
        inputs, shown, mode, query_info = dense_inputs(topics, query, missing_rewrite)
        seen = {} if mode in CONVERSATIONAL_MODES else None
        embeddings = self.encode(topics, inputs, mode, seen)
        rows, scores, counts = self.searcher.search_arrays(embeddings, max(1, min(int(hits), self.searcher.count)))
        rewrites = query_info.get("rewrites", {})
        tag = f"dense-{self.name}" + (f"-rewrite-{Path(rewrites['name']).stem}" if rewrites.get("name") else "")
        metadata = {"retriever": "dense", **self.describe(), **query_info, "hits": hits, "topics": topics.describe(),
                    "truncate": self.truncate, "max_concat_length": self.max_concat_length,
                    **({} if seen is None else {"encoder_input": self._seen_record(seen, topics)}),
                    "wall_seconds": round(time.time() - started, 3)}
        sources = [*self.index, topics.path, rewrites.get("file"), *self._model_paths()]
        found = HitArrays([record.query_id for record in topics], rows, scores, counts, self.searcher.docids)
        return Run(found, name=tag, tag=tag, metadata=metadata, sources=tuple(Path(p) for p in sources if p),
                   query_texts=shown)

    def _seen_record(self, seen: dict[str, str], topics: Topics) -> dict:
        """The conversational inputs the encoders saw, with the length limit and truncation they were cut by (the
        first model's card, where the search set neither; the fold models of one training share them)."""
        card = self.encoder(self._groups(topics)[0][0]).card
        return {"texts": seen, "max_concat_length": self.max_concat_length or card.max_concat_length,
                "truncate": self.truncate or card.truncate}

    def scored_topics(self, topics: Topics) -> Topics:
        """The topics this encoder is scored on: for a cross-validation fold model of these very topics (its card
        records the topics it held out), only the held-out ones, unless `all_topics`."""
        from ..encode import DenseEncoder, resolve_card
        from ..folds import only_topics

        spec = self.encoder_spec
        card = spec.card if isinstance(spec, DenseEncoder) else resolve_card(spec)
        held = card.held_out_topics
        if held is None or not _same_topics(held[0], topics):
            return topics
        trained_on, numbers = held
        fold = card.training.get("fold")
        if self.all_topics:
            logger.warning("scoring all topics of %s with %s, which was trained on every topic but %s (fold %s): most "
                           "of these scores are on its own training topics", trained_on, card.name, _span(numbers), fold)
            return topics
        kept = only_topics(topics, [number for number in numbers if any(q.topic_number == number for q in topics)])
        logger.info("%s is cross-validation fold %s of %s: scoring only the %d topics it held out (%s), %d of %d "
                    "queries; --all-topics scores all", card.name, fold, trained_on, len({q.topic_number for q in kept}),
                    _span(numbers), len(kept), len(topics))
        return kept

    def describe(self) -> dict:
        from ..index.lucene import index_meta

        return {"encoder": str(self.encoder_spec), "index": [str(path) for path in self.index],
                "index_meta": [index_meta(piece.path) for piece in self.searcher.pieces],
                "nprobe": self.searcher.nprobe, "ef_search": self.searcher.ef_search, "refine": self.searcher.refine}

    def _model_paths(self) -> list[Path]:
        spec = self.encoder_spec
        return [Path(spec)] if isinstance(spec, (str, Path)) and Path(spec).exists() else []


class ConvDRRetriever(DenseRetriever):
    """ConvDR with cross-validated models: each query is encoded by the model of its topic's fold, the one
    that did not train on it. `folds` is a folder holding `fold-0`, `fold-1`, ... (what `train` writes with
    `cv`); the fold rule is `convdr_pyserini.folds`."""

    def __init__(self, index, folds: str | Path, **options):
        self.folds = Path(folds)
        if not any(path.is_dir() for path in self.folds.glob("fold-*")):
            raise UserError(f"{self.folds} holds no fold-K model folder (expected the output of `train --cv K`)")
        super().__init__(index, encoder=str(self.folds), **options)

    def _check_encoder(self, encoder) -> None:
        """Each fold folder must hold a model (its card resolves), before any is loaded."""
        from ..encode import resolve_card

        for fold in sorted(path for path in Path(encoder).glob("fold-*") if path.is_dir()):
            resolve_card(fold)

    @property
    def name(self) -> str:
        return self.folds.name

    def _groups(self, topics: Topics) -> list[tuple[object, list[int]]]:
        from ..folds import fold_assignment

        fold_of_topic = fold_assignment(topics)
        groups: dict[int, list[int]] = {}
        for position, record in enumerate(topics):
            groups.setdefault(fold_of_topic[record.topic_number], []).append(position)
        result = []
        for fold in sorted(groups):
            model = self.folds / f"fold-{fold}"
            if not model.is_dir():
                raise UserError(f"{self.folds}: no fold-{fold} model folder (needed for the topics of fold {fold})")
            result.append((str(model), groups[fold]))
        return result

    def scored_topics(self, topics: Topics) -> Topics:
        return topics  # every topic is encoded by the fold model that held it out

    def describe(self) -> dict:
        return {**super().describe(), "encoder": None, "cv": str(self.folds)}

    def _model_paths(self) -> list[Path]:
        return [self.folds]


def _same_topics(trained_on: str, topics: Topics) -> bool:
    """Whether `topics` are (a subset of) the topics a model was trained on: the same dataset id, judged and mini
    variants included, or the same topics file."""
    def base(dataset_id: str) -> str:
        return dataset_id.removesuffix("/judged").removesuffix("/mini")

    if topics.dataset_id is not None:
        return base(topics.dataset_id) == base(trained_on)
    return topics.path is not None and Path(trained_on).exists() and Path(trained_on).resolve() == topics.path.resolve()


def _span(numbers: Sequence[int]) -> str:
    """Topic numbers as a short text: `41-50` for a run of consecutive numbers, else a list."""
    ordered = sorted(numbers)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))
