"""Retrieval: BM25 (Anserini), dense and ConvDR (faiss), reciprocal rank fusion; each returns a `Run`.

    import convdr_pyserini as cp
    run = cp.BM25Retriever("indexes/cast20-mini.lucene").search("convdr/cast20/mini", query="raw", hits=100)
    dense = cp.DenseRetriever("indexes/cast20-mini.minilm", encoder="minilm").search("convdr/cast20/mini", "manual")
    convdr = cp.ConvDRRetriever("indexes/cast20-mini.minilm", folds="encoders/convdr-kd").search(
        "convdr/cast20/mini", query="no_res")
    fused = cp.fuse_rrf([run, convdr], k=60)

The command line is `python -m convdr_pyserini.search` (a `SearchSpec` built from its arguments).
"""
from .bm25 import RM3, BM25Retriever
from .dense import ConvDRRetriever, DenseRetriever
from .fusion import fuse_rrf
from .spec import SearchSpec

__all__ = ["RM3", "BM25Retriever", "ConvDRRetriever", "DenseRetriever", "SearchSpec", "fuse_rrf"]
