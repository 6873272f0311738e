"""Second-stage reranking with cross-encoders, and ConvDR's few-shot paradigm for training them.

    import convdr_pyserini as cp
    reranker = cp.CrossEncoderReranker("models/monobert", collection="indexes/cast20-mini.lucene")
    run = reranker.rerank("convdr/cast20/mini", "runs/convdr.trec", query="no_res", depth=100)

Modules: `models` (Hugging Face sequence-classification and OpenMatch checkpoints), `passages` (passage
texts from the run's collection), `reranker` (`CrossEncoderReranker`). The command line is
`python -m convdr_pyserini.rerank`. Importing this package imports neither torch nor pyserini.
"""
__all__ = ["CrossEncoderReranker", "load_cross_encoder"]

_LAZY = {"CrossEncoderReranker": "reranker", "load_cross_encoder": "models"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
