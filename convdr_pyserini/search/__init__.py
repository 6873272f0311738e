"""Retrieval: `python -m convdr_pyserini.search` with BM25 (Anserini), dense encoders, or rank fusion."""
