"""Conversational dense retrieval (ConvDR) reproduced inside Pyserini, ir_datasets and ir_measures.

The library, from a notebook::

    import convdr_pyserini as cp

    topics = cp.load_topics("convdr/cast20/mini")            # or "topics.tsv", or a CAsT JSON file
    bm25 = cp.BM25Retriever("indexes/cast20-mini.lucene", k1=0.82, b=0.68)
    run = bm25.search(topics, query="manual", hits=100)      # a Run
    report = cp.evaluate("convdr/cast20/mini", {"BM25 manual": run}, "nDCG@3 RR(rel=2) R@100")
    print(report.table())

Importing the package is cheap: it imports neither ir_datasets, torch, faiss nor Java; each name below is
loaded on first use. `import convdr_pyserini.datasets` registers the `convdr/...` ids with ir_datasets.
"""
from __future__ import annotations

import importlib

from ._version import __version__

_EXPORTS = {
    "Passage": "io", "Qrels": "io", "Rewrites": "io", "Run": "io", "Topics": "io",
    "load_rewrites": "io", "load_qrels": "resolve", "load_topics": "resolve",
    "BM25Retriever": "search", "ConvDRRetriever": "search", "DenseRetriever": "search", "SearchSpec": "search",
    "fuse_rrf": "search",
    "CrossEncoderReranker": "rerank",
    "Report": "evaluate", "evaluate": "evaluate",
    "Explorer": "compare", "compare": "compare",
    "TrainConfig": "train", "train": "train",
    "ConvDRQueryEncoder": "encode", "load_encoder": "encode",
    "DenseIndexConfig": "index", "build_dense_index": "index", "build_lucene_index": "index",
    "compress_index": "index", "merge_shards": "index", "build_dense_index_on_ray": "index",
    "RayCluster": "_ray",
    "IdMapping": "ids",
    "load_matrix": "reproduce", "reproduce": "reproduce",
    "Candidate": "reproduce", "NestedCVConfig": "reproduce", "nested_cv": "reproduce",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
