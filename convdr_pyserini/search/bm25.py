"""BM25 (optionally with RM3) through Anserini, with results read back from Java in bulk.

Pyserini's `LuceneSearcher.batch_search` hands every hit across the JVM bridge as an object and loads
each hit's whole stored document; at 1,000 hits that dominates. Here:

- plain BM25 runs the same Lucene search `SimpleSearcher` runs (Anserini's bag-of-words query over
  `contents` with its analyzer, `BM25Similarity(k1, b)`, ties broken by docid through the `id` doc
  values), skips the stored documents, and serialises each query's top docs with Jackson (shipped in the
  Anserini jar) into one JSON string, instead of one bridge object per hit;
- RM3 runs Anserini's own `SimpleSearcher.batch_search` (multi-threaded, on the Java side) and reads
  the whole result map back as one JSON string the same way.

Both give exactly the docids and (float32) scores of Pyserini's `LuceneSearcher` (tested), including
Anserini's score-tie adjustment (scores rounded to 1e-4, tied runs lowered by 1e-6 steps). With several
threads, plain BM25 searches slices of a batch in Python threads (pyjnius releases the GIL during Java
calls, and Lucene's IndexSearcher is thread-safe).

    from convdr_pyserini import BM25Retriever
    with BM25Retriever("indexes/cast20-mini.lucene", k1=0.82, b=0.68) as bm25:
        run = bm25.search("convdr/cast20/mini", query="manual", hits=100)
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import struct
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from .._progress import progress_bar
from ..errors import UserError
from ..io.runs import Run
from ..io.topics import Topics
from ..resolve import load_topics

logger = logging.getLogger(__name__)

DEFAULT_K1 = 0.82
DEFAULT_B = 0.68
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class RM3:
    """RM3 pseudo-relevance feedback settings (Anserini's defaults)."""

    fb_terms: int = 10
    fb_docs: int = 10
    original_query_weight: float = 0.5

    def __post_init__(self) -> None:
        if int(self.fb_terms) < 1 or int(self.fb_docs) < 1:
            raise UserError(f"RM3 {{fb_terms}} and {{fb_docs}} must be positive, got {self.fb_terms} and {self.fb_docs}",
                            "fb_terms", "fb_docs")
        if not (math.isfinite(self.original_query_weight) and 0 <= self.original_query_weight <= 1):
            raise UserError(f"RM3 {{original_query_weight}} {self.original_query_weight} is out of range: must be in "
                            "[0, 1]", "original_query_weight")


def check_parameters(k1: float, b: float) -> None:
    """k1 must be finite and >= 0, b within [0, 1] (as Lucene's BM25Similarity requires)."""
    for name, value in (("k1", k1), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not (math.isfinite(k1) and k1 >= 0):
        raise UserError(f"{{k1}} {k1} is out of range: k1 must be a finite number >= 0 (CAsT convention 0.82)", "k1")
    if not (math.isfinite(b) and 0 <= b <= 1):
        raise UserError(f"{{b}} {b} is out of range: b must be within [0, 1] (CAsT convention 0.68)", "b")


class BM25Searcher:
    """BM25 over one Lucene index, with optional RM3; results as {query_id: [(docid, score), ...]}."""

    def __init__(self, index_dir: str | Path, k1: float = DEFAULT_K1, b: float = DEFAULT_B, rm3: RM3 | None = None):
        check_parameters(k1, b)
        from .. import _java
        from ..index.lucene import open_reader

        self.index_dir = Path(index_dir)
        self.k1, self.b, self.rm3 = k1, b, rm3
        self._reader = open_reader(self.index_dir)
        if rm3 is not None and self._reader.numDocs() and self._reader.termVectors().get(0) is None:
            self._reader.close()
            raise UserError(f"index {self.index_dir} stores no document vectors, which RM3 needs; "
                            "rebuild it with `python -m convdr_pyserini.index lucene`")
        autoclass = _java.autoclass
        self._jnius = _java.jvm()
        self._searcher = autoclass("io.anserini.search.SimpleSearcher")(str(self.index_dir.resolve()))
        self._searcher.set_bm25(float(k1), float(b))
        if rm3 is not None:
            self._searcher.set_rm3(None, int(rm3.fb_terms), int(rm3.fb_docs), float(rm3.original_query_weight),
                                   False, True)
        index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
        self._lucene = index_searcher(self._jnius.cast("org.apache.lucene.index.IndexReader", self._reader))
        self._lucene.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")(float(k1), float(b)))
        self._sort = autoclass("io.anserini.search.SearchCollection").BREAK_SCORE_TIES_BY_DOCID
        self._query_generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._analyzer = self._searcher.get_analyzer()
        self._array_list = autoclass("java.util.ArrayList")  # for RM3's batch_search arguments
        self._json = autoclass("com.fasterxml.jackson.databind.ObjectMapper")()
        # ScoredDoc carries the hit's Lucene Document: leave it out of the JSON.
        self._json.configOverride(autoclass("org.apache.lucene.document.Document")).setIsIgnoredType(
            autoclass("java.lang.Boolean")("true"))

    @property
    def num_docs(self) -> int:
        return self._reader.numDocs()

    def search(self, queries: dict[str, str], hits: int, threads: int = 1, batch_size: int = DEFAULT_BATCH,
               progress: bool = True) -> dict[str, list[tuple[str, float]]]:
        """Top `hits` (docid, score) per query id, score descending then docid ascending."""
        query_ids = list(queries)
        hits = max(1, min(int(hits), self.num_docs))  # Lucene allocates its queue by hits: never past the index
        results: dict[str, list[tuple[str, float]]] = {}
        with progress_bar(total=len(query_ids), unit="query", desc="BM25" + ("+RM3" if self.rm3 else ""),
                          enabled=progress) as bar:
            for start in range(0, len(query_ids), batch_size):
                batch = query_ids[start:start + batch_size]
                texts = [queries[query_id] for query_id in batch]
                if self.rm3 is None:
                    results.update(zip(batch, self._search_lucene(texts, hits, threads)))
                else:
                    results.update(self._search_anserini(batch, texts, hits, threads))
                bar.update(len(batch))
        return {query_id: results[query_id] for query_id in query_ids}

    def _search_lucene(self, texts: list[str], hits: int, threads: int = 1) -> list[list[tuple[str, float]]]:
        """Plain BM25 for a batch; with several threads, each searches every `threads`-th query of the batch.

        pyjnius keeps the receiver of a method call in the (per-class) method object, so concurrent calls of one
        method on *different* Java objects of the same class can swap receivers: the threads only call methods
        of objects they all share (the searcher, the query generator, the JSON mapper)."""
        if threads <= 1 or len(texts) < 2:
            return [self._search_one(text, hits) for text in texts]
        found: list = [None] * len(texts)
        failures: list[BaseException] = []

        def work(first: int) -> None:
            try:
                for number in range(first, len(texts), threads):
                    found[number] = self._search_one(texts[number], hits)
            except BaseException as error:  # noqa: BLE001  (re-raised in the calling thread)
                failures.append(error)
            finally:
                self._jnius.detach()

        workers = [threading.Thread(target=work, args=(first,), daemon=True) for first in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]
        return found

    def _search_one(self, text: str, hits: int) -> list[tuple[str, float]]:
        query = self._query_generator.buildQuery("contents", self._analyzer, text)
        docs = json.loads(self._json.writeValueAsString(self._lucene.search(query, hits, self._sort, True)))["scoreDocs"]
        scores = adjust_score_ties([doc["score"] for doc in docs])
        return [(_bytes_ref_text(doc["fields"][1]), score) for doc, score in zip(docs, scores)]

    def _search_anserini(self, query_ids: list[str], texts: list[str], hits: int, threads: int):
        java_texts, java_ids = self._array_list(), self._array_list()
        for query_id, text in zip(query_ids, texts):
            java_texts.add(text)
            java_ids.add(query_id)
        found = self._searcher.batch_search(java_texts, java_ids, int(hits), int(threads))
        by_query = json.loads(self._json.writeValueAsString(found))
        results = {}
        for query_id in query_ids:
            hits = by_query.get(query_id, [])
            scores = _as_float32([hit["score"] for hit in hits])
            results[query_id] = [(hit["docid"], score) for hit, score in zip(hits, scores)]
        return results

    def doc_text(self, docid: str) -> str:
        """The `contents` of `docid`, from the raw JSON stored in the index (for the openmatch format)."""
        raw = self._searcher.doc_raw(docid)
        if raw is None:
            raise UserError(f"doc {docid} has no stored raw text in index {self.index_dir}; "
                            "rebuild it with `python -m convdr_pyserini.index lucene`")
        try:
            return json.loads(raw)["contents"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return raw

    def close(self) -> None:
        self._searcher.close()
        self._reader.close()


class BM25Retriever:
    """BM25 (optionally with RM3) over a Lucene index: `search(topics, query, hits) -> Run`.

    k1 and b are always explicit (defaults: the CAsT convention 0.82 / 0.68) and recorded in the run's tag
    and sidecar. `query` is a query type (`raw`, `manual`, `automatic`, `concat`) or a `Rewrites` / mapping.
    """

    def __init__(self, index: str | Path, k1: float = DEFAULT_K1, b: float = DEFAULT_B, rm3: RM3 | None = None,
                 threads: int = 1, batch_size: int = DEFAULT_BATCH):
        from ..index.lucene import index_meta

        if not isinstance(index, (str, os.PathLike)):
            raise TypeError(f"index must be a path, not {type(index).__name__}")
        check_parameters(k1, b)
        self.index = Path(index)
        self.k1, self.b, self.rm3 = float(k1), float(b), rm3
        self.threads, self.batch_size = int(threads), int(batch_size)
        if self.threads < 1 or self.batch_size < 1:
            raise UserError("{threads} and {batch_size} must be positive", "threads", "batch_size")
        self.index_meta = index_meta(self.index)
        self._searcher = BM25Searcher(self.index, self.k1, self.b, rm3)

    def __enter__(self) -> "BM25Retriever":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._searcher.close()

    @property
    def tag(self) -> str:
        rm3 = self.rm3
        return f"bm25-k1_{self.k1:g}-b_{self.b:g}" + (
            f"-rm3-{rm3.fb_terms}-{rm3.fb_docs}-{rm3.original_query_weight:g}" if rm3 else "")

    def describe(self) -> str:
        rm3 = self.rm3
        return f"BM25 k1={self.k1:g} b={self.b:g}" + (
            f" + RM3 fb_terms={rm3.fb_terms} fb_docs={rm3.fb_docs} original_query_weight={rm3.original_query_weight:g}"
            if rm3 else "")

    def doc_text(self, docid: str) -> str:
        """The stored `contents` of a document (for the openmatch format)."""
        return self._searcher.doc_text(docid)

    def search(self, topics: "Topics | str", query: "str | Mapping[str, str]" = "raw", hits: int = 1000,
               concat_window: int | None = None, missing_rewrite: str = "error", progress: bool = True) -> Run:
        """Search every query of `topics` (a `Topics`, a dataset id or a topics file); returns a `Run`."""
        from .queries import check_hits, sparse_texts

        check_hits(hits)
        started = time.time()
        topics = load_topics(topics)
        texts, query_info = sparse_texts(topics, query, concat_window, missing_rewrite)
        logger.info("%s, %d hits, %d %s queries of %s", self.describe(), hits, len(texts), query_info["query_type"],
                    topics.source)
        found = self._searcher.search(texts, hits, threads=self.threads, batch_size=self.batch_size,
                                      progress=progress)
        rewrites = query_info.get("rewrites", {})
        tag = self.tag + (f"-rewrite-{Path(rewrites['name']).stem}" if rewrites.get("name") else "")
        metadata = {
            "retriever": "bm25", "bm25": {"k1": self.k1, "b": self.b},
            "rm3": None if self.rm3 is None else asdict(self.rm3), **query_info, "hits": hits,
            "topics": topics.describe(), "index": str(self.index), "index_meta": self.index_meta,
            "index_documents": self._searcher.num_docs, "threads": self.threads,
            "search_path": "anserini SimpleSearcher.batch_search (RM3)" if self.rm3 else "lucene IndexSearcher, bulk JSON",
            "wall_seconds": round(time.time() - started, 3),
        }
        sources = tuple(path for path in (self.index, topics.path, rewrites.get("file")) if path)
        return Run({query_id: found[query_id] for query_id in texts}, name=tag, tag=tag, metadata=metadata,
                   sources=tuple(Path(path) for path in sources), query_texts=texts)


def _bytes_ref_text(ref: dict) -> str:
    """Decode Jackson's rendering of a Lucene BytesRef (base64 bytes, offset, length) to its UTF-8 text."""
    offset = ref["offset"]
    return base64.b64decode(ref["bytes"])[offset:offset + ref["length"]].decode("utf-8")


_FLOAT32 = struct.Struct("f")
_TIE_GAP = _FLOAT32.unpack(_FLOAT32.pack(1e-4))[0]
_TIE_STEP = _FLOAT32.unpack(_FLOAT32.pack(1e-6))[0]


def _f32(value: float) -> float:
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _as_float32(values: list[float]) -> list[float]:
    """Jackson writes each Java float as its shortest decimal; rounding to float32 recovers the exact score."""
    import numpy as np

    return np.asarray(values, dtype=np.float32).tolist()


def adjust_score_ties(scores: list[float]) -> list[float]:
    """Anserini's `ScoreTiesAdjusterReranker` (applied by `SimpleSearcher`), in the same float32 arithmetic.

    Scores (in rank order) are rounded to 1e-4; a score within 1e-4 of the previous (adjusted) one is
    lowered by 1e-6 times its position in the run of ties, so that score order equals rank order.
    """
    import numpy as np

    if not scores:
        return []
    # (float) (Math.round((double) score * 1e4) / 1e4), with Math.round's exact half-up rounding
    products = np.asarray(scores, dtype=np.float32).astype(np.float64) * 1e4
    whole = np.floor(products)
    rounded = ((whole + (products - whole >= 0.5)) / 1e4).astype(np.float32)
    clear_gap = ((rounded[:-1] - rounded[1:]) > np.float32(1e-4)).tolist()
    adjusted = rounded.tolist()
    base = list(adjusted)
    dup = 0
    for i in range(1, len(adjusted)):
        if dup == 0 and clear_gap[i - 1]:
            continue
        if _f32(adjusted[i - 1] - base[i]) > _TIE_GAP:
            dup = 0
        else:
            dup += 1
            adjusted[i] = _f32(base[i] - _f32(_TIE_STEP * dup))
    return adjusted
