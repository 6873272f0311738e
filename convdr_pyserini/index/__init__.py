"""Index builders: Lucene (BM25, RM3) and dense faiss indexes in Pyserini's layout, shard merging, compression.

    from convdr_pyserini.index import DenseIndexConfig, build_dense_index, build_lucene_index
    build_lucene_index("convdr/cast20/mini", "indexes/cast20-mini.lucene")
    build_dense_index(DenseIndexConfig("convdr/cast20/mini", "minilm", "indexes/cast20-mini.minilm"))

The command line is `python -m convdr_pyserini.index {lucene,dense,merge,compress}`; `build_dense_index_on_ray`
(`index dense --ray`) builds the pieces on a Ray cluster.
"""
from .compress import compress_index
from .dense import DenseIndexConfig, build_dense_index
from .distributed import build_dense_index_on_ray
from .lucene import build_lucene_index
from .merge import merge_shards

__all__ = ["DenseIndexConfig", "build_dense_index", "build_dense_index_on_ray", "build_lucene_index", "compress_index",
           "merge_shards"]
