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
