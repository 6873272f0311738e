"""Query text per query type for sparse retrieval: raw, manual, automatic, or concat (with history)."""
from __future__ import annotations

from ..errors import UserError

SPARSE_QUERY_TYPES = ("raw", "manual", "automatic", "concat")
DENSE_QUERY_TYPES = ("raw", "manual", "automatic", "no_res", "man_can", "auto_can")
QUERY_TYPES = SPARSE_QUERY_TYPES + tuple(t for t in DENSE_QUERY_TYPES if t not in SPARSE_QUERY_TYPES)


def concat_text(record, window: int | None = None) -> str:
    """The raw utterance after the previous `window` raw utterances of its topic (all when None), oldest first."""
    history = list(getattr(record, "history", ()) or ())
    if window is not None:
        history = history[len(history) - window:] if window else []
    return " ".join([*history, record.raw_utterance])


def query_texts(records: list, query_type: str, dataset_id: str, concat_window: int | None = None) -> dict[str, str]:
    """{query_id: text} for `query_type`, in dataset order; a type the dataset lacks is a UserError."""
    from ..datasets import QUERY_FIELDS, query_text

    if query_type not in SPARSE_QUERY_TYPES:
        raise UserError(f"--query {query_type} is a dense (ConvDR) input; BM25 takes one of "
                        f"{', '.join(SPARSE_QUERY_TYPES)}")
    if query_type in QUERY_FIELDS and records and getattr(records[0], QUERY_FIELDS[query_type], None) is None:
        raise UserError(f"{dataset_id} has no {query_type} queries (no {QUERY_FIELDS[query_type]} field)")
    if query_type == "concat":
        return {record.query_id: concat_text(record, concat_window) for record in records}
    return {record.query_id: query_text(record, query_type) for record in records}
