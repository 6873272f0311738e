"""Which text (or conversation) each query is searched with: a query type, or a user's rewrites file.

BM25 takes `raw`, `manual`, `automatic`, `concat` (the utterance after the earlier ones of its topic) or
`rewrite`; dense encoders take `raw`, `manual`, `automatic`, `rewrite` (one utterance) or ConvDR's
conversational inputs `no_res`, `man_can`, `auto_can`. With `rewrite` the text comes from a `Rewrites` file;
a query it lacks is an error naming the first few, unless `missing_rewrite="raw"` falls back to the raw
utterance (and the run's sidecar says which queries did).
"""
from __future__ import annotations

from typing import Mapping

from ..errors import UserError
from ..io.topics import Rewrites, Topics

SPARSE_QUERY_TYPES = ("raw", "manual", "automatic", "concat", "rewrite")
DENSE_QUERY_TYPES = ("raw", "manual", "automatic", "rewrite", "no_res", "man_can", "auto_can")
QUERY_TYPES = tuple(dict.fromkeys(SPARSE_QUERY_TYPES + DENSE_QUERY_TYPES))
FIELDS = {"raw": "raw_utterance", "manual": "manual_rewritten_utterance", "automatic": "automatic_rewritten_utterance"}
MISSING_REWRITE = ("error", "raw")
SHOWN = 5


def concat_text(record, window: int | None = None) -> str:
    """The raw utterance after the previous `window` raw utterances of its topic (all when None), oldest first."""
    history = list(getattr(record, "history", ()) or ())
    if window is not None:
        history = history[len(history) - window:] if window else []
    return " ".join([*history, record.raw_utterance])


def field_text(record, kind: str) -> str:
    """The raw/manual/automatic text of a query record; a field the topics lack is a UserError."""
    name = FIELDS[kind]
    text = getattr(record, name, None)
    if text is None:
        raise UserError(f"query {record.query_id} has no {kind} query ({name}); these topics do not provide it")
    return text


def check_field(topics: Topics, kind: str) -> None:
    """UserError when the topics lack the raw/manual/automatic field `kind` (told by their first query)."""
    if kind in FIELDS and len(topics) and getattr(next(iter(topics)), FIELDS[kind], None) is None:
        raise UserError(f"{topics.source} has no {kind} queries (no {FIELDS[kind]} field)")


def query_kind(query: "str | Mapping[str, str]", allowed: tuple[str, ...], retriever: str) -> str:
    """The query type of a `query` argument (a type name, or rewrites), checked against what `retriever` takes."""
    if not isinstance(query, str):
        return "rewrite"
    if query not in allowed:
        hint = " (a dense, conversational input)" if query in DENSE_QUERY_TYPES else \
            " (a BM25 input)" if query in SPARSE_QUERY_TYPES else ""
        raise UserError(f"query type {query!r}{hint} does not apply to {retriever}; it takes "
                        f"{', '.join(allowed)}")
    if query == "rewrite":
        raise UserError("query type rewrite needs the rewrites themselves ({rewrites} FILE, or pass a Rewrites as "
                        "{query})", "rewrites", "query")
    return query


def check_hits(hits: int) -> None:
    """How many hits a retriever returns per query: a positive integer."""
    if isinstance(hits, bool) or not isinstance(hits, int):
        raise TypeError(f"hits must be an integer, not {type(hits).__name__}")
    if hits < 1:
        raise UserError(f"{{hits}} must be at least 1, got {hits}", "hits")


def rewritten_texts(topics: Topics, rewrites: Mapping[str, str], missing: str = "error") -> tuple[dict[str, str], dict]:
    """{query_id: text} from `rewrites`, and what the sidecar records (file, sha256, fallbacks)."""
    if missing not in MISSING_REWRITE:
        raise UserError(f"{{missing_rewrite}} must be one of {', '.join(MISSING_REWRITE)}, not {missing!r}",
                        "missing_rewrite")
    lacking = [query.query_id for query in topics if query.query_id not in rewrites]
    source = rewrites.describe() if isinstance(rewrites, Rewrites) else {"rewrites": len(rewrites)}
    if lacking and missing == "error":
        where = f" {rewrites.path}" if isinstance(rewrites, Rewrites) else ""
        raise UserError(f"the rewrites{where} lack {len(lacking)} of the {len(topics)} queries of {topics.source}, "
                        f"e.g. {', '.join(lacking[:SHOWN])}; pass {{missing_rewrite}} raw to search those with the "
                        "raw utterance", "missing_rewrite")
    texts = {query.query_id: rewrites[query.query_id] if query.query_id in rewrites else query.raw_utterance
             for query in topics}
    info = {**source, "missing": lacking, "missing_rewrite": missing,
            "unused": sum(query_id not in topics for query_id in rewrites)}
    return texts, info


def sparse_texts(topics: Topics, query: "str | Mapping[str, str]", concat_window: int | None = None,
                 missing_rewrite: str = "error") -> tuple[dict[str, str], dict]:
    """{query_id: text} for BM25, and the query facts for the sidecar."""
    kind = query_kind(query, SPARSE_QUERY_TYPES, "BM25")
    if kind == "rewrite":
        texts, info = rewritten_texts(topics, query, missing_rewrite)
        return texts, {"query_type": "rewrite", "rewrites": info}
    if kind == "concat":
        return ({record.query_id: concat_text(record, concat_window) for record in topics},
                {"query_type": kind, "concat_window": concat_window})
    check_field(topics, kind)
    return {record.query_id: field_text(record, kind) for record in topics}, {"query_type": kind}


def dense_inputs(topics: Topics, query: "str | Mapping[str, str]", missing_rewrite: str = "error"):
    """({query_id: encoder input}, {query_id: display text}, mode, sidecar facts) for a dense encoder.

    The input is a string for single-utterance modes, or a conversation `{query, history, responses}`."""
    from ..encode import conversational_input

    kind = query_kind(query, DENSE_QUERY_TYPES, "dense retrieval")
    if kind == "rewrite":
        texts, info = rewritten_texts(topics, query, missing_rewrite)
        return texts, texts, "manual", {"query_type": "rewrite", "rewrites": info}
    check_field(topics, kind)
    from ..resolve import response_lookup

    response_text = response_lookup(topics) if kind in ("man_can", "auto_can") else None
    inputs = {record.query_id: conversational_input(record, kind, response_text) for record in topics}
    shown = {record.query_id: field_text(record, kind) if kind in FIELDS else concat_text(record) for record in topics}
    return inputs, shown, kind, {"query_type": kind}
