"""The one cross-validation fold definition, shared by training, negative mining and `--cv` search.

- CAsT-20: fold = (topic - 81) // 5, i.e. 5 folds of 5 topics (81-85, 86-90, ...).
- CAsT-19 (and any other topic set): folds of 10 topics each, in topic-file order; for the 50 CAsT-19
  evaluation topics this is ConvDR's and COTED's split (31-40, 41-50, ..., 71-80).
"""
from __future__ import annotations

from typing import Sequence

from .errors import UserError

CAST20_FIRST_TOPIC = 81
CAST20_TOPICS_PER_FOLD = 5
TOPICS_PER_FOLD = 10


def fold_of(dataset_id: str, topic_number: int, topics_in_order: Sequence[int]) -> int:
    """Fold (0-based) of `topic_number`; `topics_in_order` lists the topic file's topics in file order."""
    if dataset_id.startswith("convdr/cast20"):
        if topic_number < CAST20_FIRST_TOPIC:
            raise UserError(f"topic {topic_number} is not a CAsT-20 topic (81-105)")
        return (topic_number - CAST20_FIRST_TOPIC) // CAST20_TOPICS_PER_FOLD
    try:
        return list(topics_in_order).index(topic_number) // TOPICS_PER_FOLD
    except ValueError:
        raise UserError(f"topic {topic_number} is not among the topics of {dataset_id}") from None


def topic_file_order(dataset_id: str) -> list[int]:
    """Topic numbers of the full topic file behind `dataset_id` (judged subsets included), in file order."""
    from . import datasets

    base = dataset_id.removesuffix("/judged").removesuffix("/mini")
    seen: dict[int, None] = {}
    for query in datasets.load(base).queries_iter():
        seen.setdefault(query.topic_number, None)
    return list(seen)


def folds(dataset_id: str, topic_numbers: Sequence[int]) -> dict[int, int]:
    """{topic: fold} for the given topics of `dataset_id`."""
    order = [] if dataset_id.startswith("convdr/cast20") else topic_file_order(dataset_id)
    return {topic: fold_of(dataset_id, topic, order) for topic in topic_numbers}
