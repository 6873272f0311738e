"""ConvDR as a Pyserini `QueryEncoder`, and pre-encoded queries keyed by query id.

Importing this module imports `pyserini.encode` (which boots the JVM) and torch; `convdr_pyserini.encode`
imports it only when `ConvDRQueryEncoder` or `PreEncodedQueries` is first used.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import _java
from ..io.atomic import atomic_output
from ..errors import UserError
from .cards import EncoderCard
from .inputs import MODES
from .models import DenseEncoder, load_encoder

QueryEncoder = _java.pyserini("encode").QueryEncoder


class ConvDRQueryEncoder(QueryEncoder):
    """Encodes a query string or a conversation `{query, history, responses}` as ConvDR does.

    `mode` picks the input: `raw`/`manual`/`automatic` encode the utterance alone (at most `max_query_length`
    tokens); `no_res`, `man_can`, `auto_can` encode the history-concatenated input (at most
    `max_concat_length` tokens, capped like ConvDR at the model's limit minus two), truncated per `truncate`.
    Unset lengths and truncation come from the encoder card.
    """

    def __init__(
        self,
        encoder: DenseEncoder | EncoderCard | str | os.PathLike,
        mode: str = "no_res",
        max_query_length: int | None = None,
        max_concat_length: int | None = None,
        truncate: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ):
        super().__init__()
        if mode not in MODES:
            raise UserError(f"query mode {mode!r} is not one of {', '.join(MODES)}")
        self.encoder = encoder if isinstance(encoder, DenseEncoder) else load_encoder(encoder, device=device)
        card = self.encoder.card
        self.has_model = True
        self.mode = mode
        self.max_query_length = max_query_length or card.max_query_length
        self.max_concat_length = min(max_concat_length or card.max_concat_length, self.encoder.max_tokens - 2)
        self.truncate = truncate or card.truncate
        if self.truncate not in ("convdr", "keep-current"):
            raise UserError(f"{{truncate}} must be convdr or keep-current, not {self.truncate!r}", "truncate")
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def token_ids(self, query, history: Sequence[str] | None = None, responses: Sequence[str] | None = None) -> list[int]:
        """The exact input ids the model sees for this query (no padding)."""
        return self.encoder.query_token_ids(query, self.mode, history, responses, self.max_query_length,
                                            self.max_concat_length, self.truncate)

    def encode(self, query, history: Sequence[str] | None = None, responses: Sequence[str] | None = None,
               **_unused) -> np.ndarray:
        """float32 `(dim,)` embedding of a string or a `{query, history, responses}` dict."""
        return self.encoder.encode_ids([self.token_ids(query, history, responses)], tower="query")[0]

    def encode_batch(self, queries: Sequence, progress: bool = False) -> np.ndarray:
        """float32 `(n, dim)` embeddings of strings and/or dicts."""
        if not queries:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = [self.token_ids(query) for query in queries]
        return self.encoder.encode_ids(ids, tower="query", batch_size=self.batch_size, progress=progress)


class PreEncodedQueries(QueryEncoder):
    """Query embeddings looked up by query id (not by text: "Tell me more" recurs across topics).

    Use as a Pyserini query encoder by searching with query ids: `FaissSearcher(index, pre).search(qid)`.
    """

    def __init__(self, embeddings: Mapping[str, np.ndarray]):
        super().__init__()
        self.has_encoded_query = True
        self.ids = list(embeddings)
        self.vectors = np.stack([np.asarray(embeddings[qid], dtype=np.float32) for qid in self.ids]) \
            if self.ids else np.zeros((0, 0), dtype=np.float32)
        self._row = {qid: row for row, qid in enumerate(self.ids)}

    @classmethod
    def from_encoder(cls, encoder: ConvDRQueryEncoder, query_ids: Sequence[str], queries: Sequence,
                     progress: bool = False) -> "PreEncodedQueries":
        """Encode `queries` (strings or dicts) once and key them by `query_ids`."""
        if len(query_ids) != len(set(query_ids)):
            raise UserError("query ids must be unique to pre-encode queries")
        vectors = encoder.encode_batch(list(queries), progress=progress)
        return cls(dict(zip(query_ids, vectors)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PreEncodedQueries":
        """Read a file written by `save` (`.npz` with `ids` and `vectors`)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, vectors = [str(qid) for qid in data["ids"]], data["vectors"].astype(np.float32)
        except (OSError, KeyError, ValueError) as error:
            raise UserError(f"{path} is not a pre-encoded query file (.npz with ids and vectors): {error}") from None
        return cls(dict(zip(ids, vectors)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write `ids` and `vectors` to an `.npz` file (atomically)."""
        with atomic_output(path, "wb") as handle:
            np.savez(handle, ids=np.array(self.ids, dtype=str), vectors=self.vectors)
        return Path(path)

    def encode(self, query: str, **_unused) -> np.ndarray:
        """The stored embedding of query id `query`."""
        try:
            return self.vectors[self._row[query]]
        except KeyError:
            raise UserError(f"query id {query!r} is not among the {len(self.ids)} pre-encoded queries") from None

    def encode_batch(self, queries: Sequence[str]) -> np.ndarray:
        return np.stack([self.encode(qid) for qid in queries]) if queries else self.vectors[:0]

    def __len__(self) -> int:
        return len(self.ids)
