"""The one cross-validation fold definition, shared by training, negative mining and ConvDR search.

- CAsT-20 (`convdr/cast20...` ids, or topic files whose topics are all within 81-105): fold = (topic - 81) // 5,
  i.e. 5 folds of 5 topics (81-85, 86-90, ...), ConvDR's `preprocess_cast20.py`.
- CAsT-19 (and any other topic set): folds of 10 topics each, in topic-file order; for the 50 CAsT-19
  evaluation topics this is ConvDR's and COTED's split (31-40, 41-50, ..., 71-80).
"""
from __future__ import annotations

from typing import Sequence

from .errors import UserError

CAST20_TOPICS = range(81, 106)
CAST20_TOPICS_PER_FOLD = 5
TOPICS_PER_FOLD = 10
# Training-side fold maps: `convdr` is the one rule above (ConvDR's evaluation and KD files, `eval_topics.jsonl.K`).
# `convdr-ranking-data` is the map ConvDR's `data/gen_ranking_data.py` hard-codes for CAsT-19 (`qid_to_fold_test`,
# "manually split ... to ensure the balance of judged queries"), which its multi-task training reads: the rule above
# except for these topics (docs/fidelity.md; `bench/fidelity/fold_audit.py` checks it against the original code).
FOLD_MAPS = ("convdr", "convdr-ranking-data")
CAST19_RANKING_DATA_MOVES = {37: 1, 40: 1, 61: 4}


def topic_file_order(dataset_id: str) -> list[int]:
    """Topic numbers of the full topic file behind `dataset_id` (judged subsets included), in file order."""
    from . import datasets

    base = dataset_id.removesuffix("/judged").removesuffix("/mini")
    return list(dict.fromkeys(query.topic_number for query in datasets.load(base).queries_iter()))


def folds(dataset_id: str | None, topic_numbers: Sequence[int]) -> dict[int, int]:
    """{topic: fold} for the given topics (in file order) of `dataset_id` (None for a topics file)."""
    if any(topic is None for topic in topic_numbers):
        raise UserError("cross-validation folds are by CAsT topic; these topics have no topic numbers")
    cast20 = dataset_id.startswith("convdr/cast20") if dataset_id else all(t in CAST20_TOPICS for t in topic_numbers)
    if cast20:
        outside = [topic for topic in topic_numbers if topic not in CAST20_TOPICS]
        if outside:
            raise UserError(f"topic {outside[0]} is not a CAsT-20 topic (81-105)")
        return {topic: (topic - CAST20_TOPICS.start) // CAST20_TOPICS_PER_FOLD for topic in topic_numbers}
    order = topic_file_order(dataset_id) if dataset_id else list(dict.fromkeys(topic_numbers))
    position = {topic: index for index, topic in enumerate(order)}
    unknown = [topic for topic in topic_numbers if topic not in position]
    if unknown:
        raise UserError(f"topic {unknown[0]} is not among the topics of {dataset_id}")
    return {topic: position[topic] // TOPICS_PER_FOLD for topic in topic_numbers}


def fold_assignment(topics) -> dict[int, int]:
    """{topic: fold} for the topics of a `Topics`."""
    numbers = list(dict.fromkeys(getattr(query, "topic_number", None) for query in topics))
    return folds(topics.dataset_id, numbers)


def only_topics(topics, numbers: Sequence[int]):
    """A `Topics` restricted to the conversations `numbers`, with the same source, so that folds and canonical
    responses are found as for the whole set."""
    import dataclasses

    missing = sorted(set(numbers) - {getattr(query, "topic_number", None) for query in topics})
    if missing:
        raise UserError(f"{topics.source} has no topic {missing[0]}")
    wanted = set(numbers)
    return dataclasses.replace(topics, queries=[query for query in topics if query.topic_number in wanted])


def training_folds(fold_map: str, dataset_id: str | None, assignment: dict[int, int]) -> dict[int, int]:
    """{topic: fold} that decides which topics train each fold's model under `fold_map`; `assignment` is the rule's
    (which topics each model is evaluated on)."""
    if fold_map not in FOLD_MAPS:
        raise UserError(f"{{fold_map}} {fold_map!r} is not one of {', '.join(FOLD_MAPS)}", "fold_map")
    if fold_map == "convdr":
        return dict(assignment)
    if not (dataset_id or "").startswith("convdr/cast19") or (dataset_id or "").startswith("convdr/cast19/train"):
        raise UserError(f"{{fold_map}} convdr-ranking-data is ConvDR's CAsT-19 ranking-data map; it has no folds for "
                        f"{dataset_id or 'a topics file'}", "fold_map")
    return {topic: CAST19_RANKING_DATA_MOVES.get(topic, fold) for topic, fold in assignment.items()}


def seen_held_out_topics(evaluation: dict[int, int], training: dict[int, int]) -> dict[int, list[int]]:
    """{fold: topics its model is evaluated on although it trained on them} (empty when the maps agree)."""
    seen: dict[int, list[int]] = {}
    for topic, fold in sorted(evaluation.items()):
        if training.get(topic, fold) != fold:  # in another training fold: every model but that one trains on it
            seen.setdefault(fold, []).append(topic)
    return seen
