"""Index builders: `python -m convdr_pyserini.index {lucene,dense,merge}`."""
