"""BM25 (optionally with RM3) through Anserini, with results read back from Java in bulk.

Pyserini's `LuceneSearcher.batch_search` hands every hit across the JVM bridge as an object and loads
each hit's whole stored document; at 1,000 hits that dominates. Here:

- plain BM25 runs the same Lucene search `SimpleSearcher` runs (Anserini's bag-of-words query over
  `contents` with its analyzer, `BM25Similarity(k1, b)`, ties broken by docid through the `id` doc
  values), skips the stored documents, and serialises a batch of queries' top docs with Jackson (shipped
  in the Anserini jar) into one JSON string: one bridge crossing per batch;
- RM3 runs Anserini's own `SimpleSearcher.batch_search` (multi-threaded, on the Java side) and reads
  the whole result map back as one JSON string the same way.

Both give exactly the docids and (float32) scores of Pyserini's `LuceneSearcher` (tested), including
Anserini's score-tie adjustment (scores rounded to 1e-4, tied runs lowered by 1e-6 steps).
"""
from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DEFAULT_K1 = 0.82
DEFAULT_B = 0.68
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class RM3:
    """RM3 pseudo-relevance feedback settings (Anserini's defaults)."""

    fb_terms: int = 10
    fb_docs: int = 10
    original_query_weight: float = 0.5


def check_parameters(k1: float, b: float) -> None:
    """k1 must be finite and >= 0, b within [0, 1] (as Lucene's BM25Similarity requires)."""
    if not (math.isfinite(k1) and k1 >= 0):
        raise UserError(f"--k1 {k1} is out of range: k1 must be a finite number >= 0 (CAsT convention 0.82)")
    if not (0 <= b <= 1):
        raise UserError(f"--b {b} is out of range: b must be within [0, 1] (CAsT convention 0.68)")


def index_meta(index_dir: str | Path) -> dict:
    """The index's `meta.json` (written by `index lucene`), or {} for an index built elsewhere."""
    path = Path(index_dir) / "meta.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}); rebuild the index") from None


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
        self._array_list = autoclass("java.util.ArrayList")
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
        from tqdm import tqdm

        query_ids = list(queries)
        results: dict[str, list[tuple[str, float]]] = {}
        with tqdm(total=len(query_ids), unit="query", desc="BM25" + ("+RM3" if self.rm3 else ""),
                  disable=not progress, dynamic_ncols=True) as bar:
            for start in range(0, len(query_ids), batch_size):
                batch = query_ids[start:start + batch_size]
                texts = [queries[query_id] for query_id in batch]
                if self.rm3 is None:
                    results.update(zip(batch, self._search_lucene(texts, hits)))
                else:
                    results.update(self._search_anserini(batch, texts, hits, threads))
                bar.update(len(batch))
        return {query_id: results[query_id] for query_id in query_ids}

    def _search_lucene(self, texts: list[str], hits: int) -> list[list[tuple[str, float]]]:
        top_docs = self._array_list()
        for text in texts:
            query = self._query_generator.buildQuery("contents", self._analyzer, text)
            top_docs.add(self._lucene.search(query, hits, self._sort, True))
        results = []
        for found in json.loads(self._json.writeValueAsString(top_docs)):
            docs = found["scoreDocs"]
            scores = adjust_score_ties([doc["score"] for doc in docs])
            results.append([(_bytes_ref_text(doc["fields"][1]), score) for doc, score in zip(docs, scores)])
        return results

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
