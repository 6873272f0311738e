"""Document runs from passage runs: a passage `<docid>-<n>` scores its document through an aggregation.

CAsT-21 retrieves passages (documents cut into passages `<docid>-<n>`, n from 0) and judges documents. The
aggregations are those of the passage-to-document literature (Dai & Callan, SIGIR 2019: FirstP, MaxP, SumP), over
the passages a run retrieved:

- `maxp`: a document scores as its best retrieved passage;
- `firstp`: as its retrieved passage with the smallest number n (its first passage, when that was retrieved);
- `sump`: the sum of its retrieved passages' scores; `meanp`: their mean;
- `cast21-published`: the rule the CAsT-21 organizers' published `document_runs/*.run` follow, line for line:
  MaxP with the document id cut at the passage id's FIRST `-`. It turns every Washington Post UUID id
  (`WAPO_1cf6896e-67be-...-3`) into `WAPO_1cf6896e`, which no qrels hold; use it only to reproduce their numbers.

A document id is a passage id up to its last `-` followed by 1 to 6 digits (a WaPo UUID's last group, 12 hex
digits, is never taken for a passage number). Documents are ranked by score, ties by document id ascending, as every
run of this package. Aggregating a run whose ids are not all passage ids is refused: a document run needs no
aggregation, and a run mixing both would compare passages with documents.
"""
from __future__ import annotations

import re
from typing import Iterable

from ..errors import UserError

AGGREGATIONS = ("maxp", "firstp", "sump", "meanp", "cast21-published")
PASSAGE_ID = re.compile(r"^(.+)-(0|[1-9][0-9]{0,5})$")
SHOWN = 3


def split_passage_id(passage_id: str) -> tuple[str, int] | None:
    """(document id, passage number) of a passage id `<docid>-<n>`, or None if it is not one."""
    match = PASSAGE_ID.match(passage_id)
    return (match.group(1), int(match.group(2))) if match else None


def passage_share(docids: Iterable[str]) -> tuple[int, int, list[str]]:
    """(passage ids, all ids, a few ids that are not passage ids) of a set of ids."""
    total, passages, others = 0, 0, []
    for docid in docids:
        total += 1
        if PASSAGE_ID.match(docid):
            passages += 1
        elif len(others) < SHOWN:
            others.append(docid)
    return passages, total, others


def check_passage_ids(docids: Iterable[str], name: str, aggregate: str) -> None:
    """A UserError unless every id is a passage id `<docid>-<n>`, saying what the ids are instead."""
    passages, total, others = passage_share(sorted(docids))
    if passages == total:
        return
    if passages == 0:
        raise UserError(f"{name}: the ids are document ids, not passage ids <docid>-<n> (e.g. {others[0]}); "
                        f"a document run needs no --aggregate {aggregate}")
    raise UserError(f"{name}: {total - passages:,} of {total:,} ids are not passage ids <docid>-<n> "
                    f"(e.g. {', '.join(others)}): the run mixes passages and documents; --aggregate needs passages only")


def check_aggregation(aggregate: str) -> None:
    if aggregate not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {aggregate!r}; expected one of {', '.join(AGGREGATIONS)}")


def aggregate_hits(hits: Iterable[tuple[str, float]], aggregate: str) -> dict[str, float]:
    """`{document id: score}` of one query's passage hits under `aggregate` (ids must be passage ids)."""
    check_aggregation(aggregate)
    scores: dict[str, list[tuple[int, float]]] = {}
    for passage_id, score in hits:
        if aggregate == "cast21-published":
            document, number = passage_id.split("-", 1)[0], 0
        else:
            document, number = split_passage_id(passage_id)
        scores.setdefault(document, []).append((number, score))
    if aggregate in ("maxp", "cast21-published"):
        return {document: max(score for _, score in found) for document, found in scores.items()}
    if aggregate == "firstp":
        return {document: min(found)[1] for document, found in scores.items()}
    if aggregate == "sump":
        return {document: sum(score for _, score in found) for document, found in scores.items()}
    return {document: sum(score for _, score in found) / len(found) for document, found in scores.items()}
