"""Training data: ConvDR's KD pairs (conversational input -> manual rewrite) and ranking data
(positive + negatives mined from the teacher's run on manual rewrites, ConvDR's `gen_ranking_data`).

Passage texts follow the one passage rule (`convdr_pyserini.io.passages`), whichever route they are looked
up by: a docstore of an ir_datasets id or the raw text stored in a Lucene index. Nothing here imports torch.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ..errors import UserError
from ..io.passages import TEXT_FIELDS, Passage

NEGATIVES = 9  # ConvDR: one positive and 9 negatives per query
NEGATIVE_POOL = 20  # judged non-relevant first, then unjudged top-ranked, up to this many; then sampled


@dataclass(frozen=True)
class RankingExample:
    """One line of a ranking data file: a query, its positive passage and its negatives."""

    query_id: str
    positive: str
    positive_grade: int
    negatives: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"query_id": self.query_id, "positive": self.positive,
                           "positive_grade": self.positive_grade, "negatives": list(self.negatives)})


def topic_of(record) -> int | str:
    """The conversation a query belongs to: CAsT `topic_number`, QuAC `dialog_id`."""
    topic = getattr(record, "topic_number", None)
    return topic if topic is not None else record.dialog_id


def student_input(record, mode: str, response_text: Callable[[str], str] | None = None):
    """The student's input for a query record in `mode` (a string or `{query, history, responses}`).

    CAsT records take their canonical responses from the collection; QuAC/CANARD records (which have
    `history_answers`) use the previous turn's answer as the response for `man_can`, as ConvDR did.
    """
    from ..encode import conversational_input

    answers = getattr(record, "history_answers", None)
    if mode in ("man_can", "auto_can") and answers is not None:
        if mode == "auto_can":
            raise UserError(f"{{query}} auto_can needs automatic canonical responses, which only CAsT-20 has "
                            f"(query {record.query_id})", "query")
        return {"query": record.raw_utterance, "history": list(record.history),
                "responses": [answers[-1]] if answers else []}
    return conversational_input(record, mode, response_text)


def check_manual_rewrites(dataset_id: str, records: Sequence) -> None:
    """UserError unless every query has a manual rewrite (the KD target)."""
    lacking = [record.query_id for record in records if not getattr(record, "manual_rewritten_utterance", None)]
    if lacking:
        raise UserError(f"{{loss}} kd needs manual rewrites, but {len(lacking)} of the {len(records)} queries of "
                        f"{dataset_id} have none (e.g. {', '.join(lacking[:3])}); use {{loss}} ranking, "
                        f"or topics with rewrites", "loss")


def best_positive(judgments: Mapping[str, int]) -> tuple[str, int] | None:
    """The highest-graded judged passage (ties: docid ascending), or None if nothing is relevant."""
    relevant = [(doc_id, grade) for doc_id, grade in judgments.items() if grade > 0]
    if not relevant:
        return None
    return min(relevant, key=lambda item: (-item[1], item[0]))


def mine_negatives(query_ids: Iterable[str], qrels: Mapping[str, Mapping[str, int]],
                   run: Mapping[str, Sequence[str]], seed: int, count: int = NEGATIVES,
                   pool_size: int = NEGATIVE_POOL) -> tuple[list[RankingExample], list[str]]:
    """Ranking examples for the judged queries with a relevant passage, and the ids of those skipped.

    Negatives come from a pool: the judged non-relevant passages first (by their rank in the teacher's run,
    those it missed after them by docid), then the run's unjudged passages in rank order, cut to `pool_size`;
    `count` of them are sampled with a generator seeded by `seed` and the query id, so the choice for one
    query depends neither on the others nor on their order. A query with fewer than `count` candidates is skipped.
    """
    examples, skipped = [], []
    for query_id in query_ids:
        judgments = qrels.get(query_id, {})
        positive = best_positive(judgments)
        if positive is None:
            continue
        ranked = list(run.get(query_id, ()))
        rank = {doc_id: position for position, doc_id in enumerate(ranked)}
        non_relevant = sorted((doc_id for doc_id, grade in judgments.items() if grade <= 0),
                              key=lambda doc_id: (rank.get(doc_id, len(ranked)), doc_id))
        unjudged = [doc_id for doc_id in ranked if doc_id not in judgments]
        pool = (non_relevant + unjudged)[:pool_size]
        if len(pool) < count:
            skipped.append(query_id)
            continue
        chosen = set(random.Random(f"{seed}:{query_id}").sample(pool, count))
        negatives = tuple(doc_id for doc_id in pool if doc_id in chosen)
        examples.append(RankingExample(query_id, positive[0], positive[1], negatives))
    return examples, skipped


def read_ranking_data(path: str | Path) -> list[RankingExample]:
    """Parse a ranking data file (jsonl written by `train negatives`); bad lines are a UserError."""
    from ..io.text import read_json_lines

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ranking data file {path} does not exist "
                        f"(write it with `python -m convdr_pyserini.train negatives`)")
    examples = []
    for number, data in read_json_lines(path):
        try:
            example = RankingExample(str(data["query_id"]), str(data["positive"]), int(data["positive_grade"]),
                                     tuple(str(doc_id) for doc_id in data["negatives"]))
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{path}:{number}: not a ranking example ({type(error).__name__}: {error})") from None
        if not example.negatives:
            raise UserError(f"{path}:{number}: query {example.query_id} has no negatives")
        examples.append(example)
    if not examples:
        raise UserError(f"ranking data file {path} is empty")
    return examples


def passage_lookup(collection: str) -> Callable[[Sequence[str]], dict[str, Passage]]:
    """A function {docids} -> {docid: Passage} over an ir_datasets id or a Lucene index folder (with raw text).

    Docids the collection lacks are left out of the answer (the caller names them).
    """
    folder = Path(collection)
    if folder.is_dir():
        from .. import _java
        from ..index.lucene import index_meta

        fields = tuple(index_meta(folder).get("fields") or TEXT_FIELDS)
        searcher = _java.pyserini("search.lucene").LuceneSearcher(str(folder))

        def lucene_passages(doc_ids):
            found = {}
            for doc_id in doc_ids:
                document = searcher.doc(doc_id)
                if document is not None:
                    raw = document.raw()
                    contents = json.loads(raw).get("contents", raw) if raw.lstrip().startswith("{") else raw
                    found[doc_id] = Passage.from_contents(doc_id, contents, fields)
            return found

        return lucene_passages
    from ..datasets import load

    dataset = load(collection)
    if not dataset.has_docs():
        raise UserError(f"{collection} has no documents to look passages up in; give {{collection}}", "collection")
    store = dataset.docs_store()

    def store_passages(doc_ids):
        return {doc_id: Passage.from_doc(doc) for doc_id, doc in store.get_many(doc_ids).items()}

    return store_passages


def ranking_passages(examples: Sequence[RankingExample], collection: str, source: str) -> dict[str, Passage]:
    """The passages every example uses; a passage missing from the collection is a UserError."""
    needed = sorted({doc_id for example in examples for doc_id in (example.positive, *example.negatives)})
    found = passage_lookup(collection)(needed)
    missing = [doc_id for doc_id in needed if doc_id not in found]
    if missing:
        raise UserError(f"ranking data {source} references {len(missing)} passage(s) missing from the collection "
                        f"{collection} (e.g. {', '.join(missing[:3])})")
    return found


def mine_ranking_data(topics: str, run: str | Path, output: str | Path, negatives: int = NEGATIVES,
                      pool: int = NEGATIVE_POOL, seed: int = 42, collection: str | None = None,
                      overwrite: bool = False) -> dict:
    """Write ranking data (ConvDR's `gen_ranking_data`): per judged query of `topics`, its highest-graded
    passage and `negatives` sampled from the teacher's `run` on manual rewrites. Returns counts."""
    from ..io.atomic import atomic_output, prepare_output
    from ..io.runs import Run
    from ..resolve import load_topics, topics_qrels

    prepare_output(output, [run, collection], overwrite)
    topics = load_topics(topics)
    qrels = topics_qrels(topics)
    if qrels is None:
        raise UserError(f"{topics.source} has no qrels to take positives and judged negatives from")
    query_ids = topics.ids()
    ranked_run = Run.read(run, topics=set(query_ids)).ranked_docids()
    judgments = qrels.judgments
    candidates = sorted({doc_id for judged in judgments.values() for doc_id in judged}
                        | {doc_id for query_id in query_ids for doc_id in ranked_run.get(query_id, ())})
    source = collection or topics.source
    available = set(passage_lookup(source)(candidates))
    absent = sorted({doc_id for found in ranked_run.values() for doc_id in found} & set(candidates) - available)
    if absent:
        raise UserError(f"run {run} retrieves passages missing from the collection {source} "
                        f"(e.g. {', '.join(absent[:3])})")
    judgments = {query_id: {doc_id: grade for doc_id, grade in judged.items() if doc_id in available}
                 for query_id, judged in judgments.items()}
    examples, skipped = mine_negatives(query_ids, judgments, ranked_run, seed, negatives, pool)
    if not examples:
        raise UserError(f"no judged query of {topics.source} has a relevant passage and {negatives} candidates")
    with atomic_output(output, inputs=[run, collection], overwrite=overwrite) as handle:
        for example in examples:
            handle.write(example.to_json() + "\n")
    return {"queries": len(examples), "negatives": negatives, "skipped": len(skipped)}
