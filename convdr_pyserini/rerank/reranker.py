"""`CrossEncoderReranker`: re-scores the top of a first-stage run with a cross-encoder.

    import convdr_pyserini as cp
    reranker = cp.CrossEncoderReranker("models/monobert", collection="indexes/cast20-mini.lucene")
    run = reranker.rerank("convdr/cast20/mini", "runs/bm25-automatic.trec", query="no_res", depth=100)

A pair is the query input then the passage: `[CLS] query [SEP] passage [SEP]` (RoBERTa: `<s> query </s></s>
passage </s>`), the query being built exactly as the dense encoders build theirs (`encode/inputs.py`): one
utterance for `raw`/`manual`/`automatic`/rewrites, ConvDR's concatenated history for `no_res`, with the previous
canonical response for `man_can`/`auto_can`. Each passage is tokenized once; pairs are scored in batches of
similar length. The reranked run holds the top `depth` of each query, ranked by score then docid.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from ..errors import UserError
from ..io.runs import Run
from ..io.topics import Topics

DEFAULT_DEPTH = 100
DEFAULT_BATCH = 32
DEFAULT_MAX_LENGTH = 512


class CrossEncoderReranker:
    """A cross-encoder (a model folder, an OpenMatch checkpoint, or a loaded `CrossEncoder`) and its settings.

    `max_length` (tokens per pair) defaults to the length a `rerank train` model was trained with, so that it
    reranks the pairs it learned on, else 512; it is capped by the model's positions."""

    def __init__(self, model, collection: str | os.PathLike | None = None, *, device: str = "cpu",
                 batch_size: int = DEFAULT_BATCH, max_length: int | None = None, max_query_length: int = 64,
                 max_concat_length: int = 256, truncate: str = "keep-current",
                 max_response_length: int | None = None):
        from ..encode.inputs import InputBuilder
        from .models import CrossEncoder, load_cross_encoder

        sizes = {"batch_size": batch_size, "max_query_length": max_query_length, "max_concat_length": max_concat_length}
        if max_length is not None:  # None: the model's trained length
            sizes["max_length"] = max_length
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{{{name}}} must be a positive integer, got {value!r}", name)
        self.encoder = model if isinstance(model, CrossEncoder) else load_cross_encoder(model, device)
        self.collection = None if collection is None else str(collection)
        self.batch_size = batch_size
        if max_length is None:
            max_length = self.encoder.trained_max_length or DEFAULT_MAX_LENGTH
        self.max_length = min(max_length, self.encoder.max_tokens)
        self.max_query_length = max_query_length
        self.max_concat_length = max_concat_length
        self.truncate = truncate
        self.max_response_length = max_response_length
        self.inputs = InputBuilder(self.encoder.tokenizer)
        if self.max_length < 8:
            raise UserError(f"{{max_length}} {self.max_length} leaves no room for a passage", "max_length")

    # -- inputs ------------------------------------------------------------------------------------------
    def query_ids(self, query, mode: str) -> list[int]:
        """Token ids of a query input (a string, or `{query, history, responses}` for conversational modes)."""
        from ..encode.inputs import CONVERSATIONAL_MODES, query_parts

        text, history, responses = query_parts(query)
        if mode not in CONVERSATIONAL_MODES:
            return self.inputs.single(text, self.max_query_length)
        response = responses[-1] if mode != "no_res" and responses else None
        limit = min(self.max_concat_length, self.max_length // 2)
        return self.inputs.conversation(text, history, response, limit, self.truncate, self.max_response_length)

    def passage_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of passages, without special tokens, cut to what a pair can hold."""
        if not texts:
            return []
        return self.encoder.tokenizer([text.strip() for text in texts], add_special_tokens=False, truncation=True,
                                      max_length=self.max_length)["input_ids"]

    def pair(self, query_ids: list[int], passage_ids: list[int]) -> tuple[list[int], int]:
        """The ids of one pair and the length of its first segment (for token types)."""
        sep = [self.inputs.sep_id]
        first = query_ids if self.inputs.bert_style else query_ids + sep
        room = self.max_length - len(first) - 1
        return first + passage_ids[:max(room, 0)] + sep, len(first)

    def tensors(self, pairs: list[tuple[list[int], int]]):
        """Right-padded `(input_ids, attention_mask, token_type_ids)` of pairs, on the model's device."""
        import torch

        width = max(len(ids) for ids, _ in pairs)
        pad_id = self.encoder.tokenizer.pad_token_id if self.encoder.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        types = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, (pair_ids, first) in enumerate(pairs):
            ids[row, :len(pair_ids)] = torch.as_tensor(pair_ids)
            mask[row, :len(pair_ids)] = 1
            types[row, first:len(pair_ids)] = 1
        device = self.encoder.device
        return ids.to(device), mask.to(device), types.to(device)

    def forward_pairs(self, pairs: list[tuple[list[int], int]], group_size: int):
        """(logits, [CLS] vectors) of pairs in input order, with gradients, from forward passes over groups of at
        most `group_size` pairs of similar length: the same values as one padded forward, with less padding."""
        import torch

        groups = length_groups(pairs, group_size)
        outputs = [self.encoder.forward(*self.tensors([pairs[index] for index in rows])) for rows in groups]
        inverse = torch.as_tensor(np.argsort(np.concatenate(groups)), device=self.encoder.device)
        return torch.cat([logits for logits, _ in outputs])[inverse], torch.cat([cls for _, cls in outputs])[inverse]

    # -- scoring -----------------------------------------------------------------------------------------
    def score_pairs(self, pairs: list[tuple[list[int], int]], progress: bool = False) -> np.ndarray:
        """float32 scores of ready pairs, computed in batches of similar length; output keeps input order."""
        import torch

        from .._progress import progress_bar

        encoder = self.encoder
        scores = np.zeros(len(pairs), dtype=np.float32)
        with torch.inference_mode(), progress_bar(total=len(pairs), unit=" pairs", desc="reranking",
                                                  enabled=progress) as bar:
            for rows in length_groups(pairs, self.batch_size):
                logits, _ = encoder.forward(*self.tensors([pairs[index] for index in rows]), with_cls=False)
                scores[rows] = encoder.scores(logits).float().cpu().numpy()
                bar.update(len(rows))
        return scores

    # -- reranking ---------------------------------------------------------------------------------------
    def rerank(self, topics, run, query: "str | Mapping[str, str]" = "raw", depth: int = DEFAULT_DEPTH,
               collection: str | os.PathLike | None = None, progress: bool = True) -> Run:
        """The top `depth` hits of each query of `run` (a `Run` or a run file) re-scored with the cross-encoder.

        `query` is a query mode (`raw`, `manual`, `automatic`, `no_res`, `man_can`, `auto_can`) or rewrites
        (`{query_id: text}`, e.g. `cp.load_rewrites(path)`). Passages come from `collection`, else the one
        given to the reranker, else the index named in the run's sidecar.
        """
        from ..resolve import load_topics
        from .passages import pair_text, passages_of, run_collection

        topics = load_topics(topics)
        run = read_run(run, topics)
        check_depth(depth, run)
        source = collection or self.collection or run_collection(run)
        if source is None:
            raise UserError("which collection was the run made on? give {collection} (a Lucene index, a "
                            "JsonCollection or a dataset id); the run has no sidecar naming its index", "collection")
        kind, inputs = query_inputs(topics, query, run)
        top = {query_id: hits[:depth] for query_id, hits in run.items()}
        passages = passages_of([docid for hits in top.values() for docid, _ in hits], str(source))
        doc_ids = sorted(passages)
        token_ids = dict(zip(doc_ids, self.passage_ids([pair_text(passages[d]) for d in doc_ids])))
        pairs, owners = [], []
        for query_id, hits in top.items():
            ids = self.query_ids(inputs[query_id], kind)
            for docid, _ in hits:
                pairs.append(self.pair(ids, token_ids[docid]))
                owners.append((query_id, docid))
        scores = self.score_pairs(pairs, progress)
        reranked: dict[str, list] = {query_id: [] for query_id in top}
        for (query_id, docid), score in zip(owners, scores.tolist()):
            reranked[query_id].append((docid, score))
        settings = {"query": kind if isinstance(query, str) else "rewrite", "depth": depth, "collection": str(source),
                    "batch_size": self.batch_size, "max_length": self.max_length,
                    "max_query_length": self.max_query_length, "max_concat_length": self.max_concat_length,
                    "truncate": self.truncate, **self.encoder.describe()}
        first_stage = {"run": str(run.path) if run.path else run.name, **run.metadata}
        return Run.from_hits(reranked, name=run.name, tag=run.tag, sources=run.sources,
                             metadata={"first_stage": first_stage, "rerank": settings})


def length_groups(pairs: list[tuple[list[int], int]], size: int) -> list[list[int]]:
    """Indices of `pairs`, longest first, in groups of at most `size`: batches with little padding."""
    order = sorted(range(len(pairs)), key=lambda index: -len(pairs[index][0]))
    return [order[start:start + size] for start in range(0, len(order), size)]


def read_run(run, topics: Topics) -> Run:
    """A run whose query ids are all in `topics` (a `Run` or a file); an empty run is a UserError."""
    from ..errors import InvalidInput

    if not isinstance(run, Run):
        try:
            run = Run.read(run, topics=topics)
        except InvalidInput as error:
            extra = f" (and {len(error.problems) - 1} more problems)" if len(error.problems) > 1 else ""
            raise UserError(error.problems[0] + extra) from None
        run.metadata = first_stage_record(run)
    unknown = [query_id for query_id in run if query_id not in topics]
    if unknown:
        raise UserError(f"run {run.path or run.name}: {len(unknown)} query id(s) are not in the topics of "
                        f"{topics.source}, e.g. {', '.join(unknown[:3])}")
    if not run.counts()["hits"]:
        raise UserError(f"run {run.path or run.name} has no hits to rerank")
    return run


def first_stage_record(run: Run) -> dict:
    """What the run's sidecar says about how it was made ({} without one)."""
    from ..io.runs import sidecar_path
    from ..io.text import read_json

    sidecar = sidecar_path(run.path)
    recorded = read_json(sidecar) if sidecar.is_file() else {}
    return recorded if isinstance(recorded, dict) else {}


def check_depth(depth: int, run: Run) -> None:
    """A positive depth no larger than the run's deepest query."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"depth must be an integer, not {type(depth).__name__}")
    deepest = max(len(hits) for _, hits in run.items())
    if depth < 1 or depth > deepest:
        raise UserError(f"{{depth}} {depth} must be between 1 and the run's {deepest} hits per query (its deepest "
                        f"query); a reranker cannot rank passages the first stage did not retrieve", "depth")


def query_inputs(topics: Topics, query, run: Run) -> tuple[str, dict]:
    """(mode, {query_id: input}) for the run's queries: the encoders' query modes, or rewrites."""
    from ..encode.inputs import MODES, conversational_input
    from ..resolve import response_lookup

    if not isinstance(query, str):
        lacking = [query_id for query_id in run if query_id not in query]
        if lacking:
            raise UserError(f"the rewrites lack {len(lacking)} query id(s) of the run, e.g. {', '.join(lacking[:3])}",
                            "query")
        return "manual", {query_id: query[query_id] for query_id in run}
    if query not in MODES:
        raise UserError(f"{{query}} {query!r} is not one of {', '.join(MODES)} (or rewrites)", "query")
    response_text = response_lookup(topics) if query in ("man_can", "auto_can") else None
    return query, {query_id: conversational_input(topics[query_id], query, response_text) for query_id in run}


def fold_models(folder: str | os.PathLike) -> dict[int, str] | None:
    """{fold: model folder} of a cross-validated reranker folder (`fold-0`, `fold-1`, ...), or None."""
    from pathlib import Path

    path = Path(folder)
    if not path.is_dir() or not (path / "fold-0").is_dir():
        return None
    return {int(child.name[5:]): str(child) for child in path.iterdir()
            if child.is_dir() and child.name.startswith("fold-") and child.name[5:].isdigit()}


def rerank_with_folds(folder: str | os.PathLike, topics, run, *, query="raw", depth: int = DEFAULT_DEPTH,
                      collection=None, progress: bool = True, **options) -> Run:
    """Rerank each query with the fold model that did not train on its topic (`convdr_pyserini.folds`)."""
    from ..folds import fold_assignment
    from ..resolve import load_topics
    from ..train.data import topic_of

    models = fold_models(folder)
    if models is None:
        raise UserError(f"{folder} holds no fold-0, fold-1, ... models", "model")
    topics = load_topics(topics)
    run = read_run(run, topics)
    check_depth(depth, run)
    assignment = fold_assignment(topics)
    parts, metadata = {}, {}
    for fold, model in sorted(models.items()):
        ids = [query_id for query_id in run if assignment.get(topic_of(topics[query_id])) == fold]
        if not ids:
            continue
        part = Run({query_id: run[query_id] for query_id in ids}, name=run.name, path=run.path, tag=run.tag,
                   metadata=run.metadata, sources=run.sources)
        reranked = CrossEncoderReranker(model, collection, **options).rerank(topics, part, query=query, depth=depth,
                                                                              collection=collection, progress=progress)
        parts.update(reranked.hits)
        metadata = reranked.metadata
    lacking = [query_id for query_id in run if query_id not in parts]
    if lacking:
        raise UserError(f"{folder}: no fold model for the topics of {len(lacking)} queries, e.g. {lacking[0]}", "model")
    metadata["rerank"] = {**metadata["rerank"], "model": str(folder), "folds": sorted(models)}
    return Run({query_id: parts[query_id] for query_id in run}, name=run.name, tag=run.tag, sources=run.sources,
               metadata=metadata)
