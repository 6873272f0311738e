"""Reading and checking the inputs of an evaluation: qrels, topics, runs and measure strings.

Readers never stop at the first problem: each returns what it could read together with a list of
problems, one `file:line: message` string per problem, so that the user sees all of them at once.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

RUN_COLUMNS = 6  # qid Q0 docid rank score tag
QRELS_COLUMNS = 4  # qid iteration docid grade
_TRAILING_NUMBER = re.compile(r"(\d+)$")


class InvalidInput(UserError):
    """Several problems in the inputs, each reported on its own line (`problems`)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Topics:
    """The query ids a run may contain and the turn number of each, from an ir_datasets id."""

    source: str
    turns: dict[str, int]


@dataclass(frozen=True)
class Qrels:
    """Relevance judgements (`judgments[qid][docid] = grade`) and, when known, the topics they belong to."""

    source: str
    judgments: dict[str, dict[str, int]]
    topics: Topics | None = None

    def turn_of(self, query_id: str) -> int | None:
        """Turn number of `query_id`: from the topics, else the trailing number of the id (`81_3` -> 3)."""
        turn = None if self.topics is None else self.topics.turns.get(query_id)
        if turn is not None:
            return turn
        match = _TRAILING_NUMBER.search(query_id)
        return int(match.group(1)) if match else None


@dataclass
class Run:
    """A run as `scores[qid][docid] = score`; `path` is None for runs given as dicts."""

    name: str
    scores: dict[str, dict[str, float]]
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


def _is_dataset_id(value: str) -> bool:
    return not os.path.exists(value)


def load_topics(dataset_id: str) -> Topics:
    """The query ids and turn numbers of an ir_datasets id."""
    from .. import datasets

    dataset = datasets.load(dataset_id)
    if not dataset.has_queries():
        raise UserError(f"{dataset_id} has no topics")
    turns = {}
    for query in dataset.queries_iter():
        turns[query.query_id] = getattr(query, "turn_number", None)
    return Topics(dataset_id, turns)


def load_qrels(source: str | os.PathLike, topics: str | None = None) -> Qrels:
    """Qrels from an ir_datasets id (whose topics then come along) or from a TREC qrels file.

    `topics` names an ir_datasets id whose query ids a run may use; it defaults to the qrels' own
    dataset. A malformed qrels file raises `InvalidInput` listing every bad line.
    """
    source = str(source)
    if _is_dataset_id(source):
        from .. import datasets

        try:
            dataset = datasets.load(source)
        except UserError as error:
            raise UserError(f"qrels {source!r} is neither a file nor a known dataset id: {error}") from None
        if not dataset.has_qrels():
            raise UserError(f"{source} has no qrels")
        judgments: dict[str, dict[str, int]] = {}
        for qrel in dataset.qrels_iter():
            judgments.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
        return Qrels(source, judgments, load_topics(topics or source) if dataset.has_queries() or topics else None)
    judgments, problems = read_qrels_file(source)
    if problems:
        raise InvalidInput(problems)
    return Qrels(source, judgments, load_topics(topics) if topics else None)


def read_qrels_file(path: str | os.PathLike) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Read a TREC qrels file (`qid iteration docid grade`); returns the judgements and the problems found."""
    judgments: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    problems = []
    for number, columns in _lines(path, problems):
        if len(columns) != QRELS_COLUMNS:
            problems.append(
                f"{path}:{number}: expected {QRELS_COLUMNS} columns (qid iteration docid grade), found {len(columns)}"
            )
            continue
        qid, _, docid, grade_text = columns
        try:
            grade = int(grade_text)
        except ValueError:
            problems.append(f"{path}:{number}: grade {grade_text!r} is not an integer")
            continue
        key = (qid, docid)
        if key in first_line and judgments[qid][docid] != grade:
            problems.append(
                f"{path}:{number}: document {docid} of query {qid} is graded {grade} here "
                f"but {judgments[qid][docid]} on line {first_line[key]}"
            )
            continue
        first_line.setdefault(key, number)
        judgments.setdefault(qid, {})[docid] = grade
    if not judgments and not problems:
        problems.append(f"{path}: the qrels file is empty")
    return judgments, problems


def read_run_file(path: str | os.PathLike, topics: Topics | None) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Read a TREC run file (`qid Q0 docid rank score tag`); returns the scores and the problems found.

    Problems: wrong column count, a score that is not a finite number, a docid repeated within a
    query, and (when `topics` is given) a query id that is not in the topics, reported once per id.
    """
    scores: dict[str, dict[str, float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    unknown_queries: dict[str, int] = {}
    problems = []
    for number, columns in _lines(path, problems):
        if len(columns) != RUN_COLUMNS:
            problems.append(
                f"{path}:{number}: expected {RUN_COLUMNS} columns (qid Q0 docid rank score tag), found {len(columns)}"
            )
            continue
        qid, _, docid, _, score_text, _ = columns
        try:
            score = float(score_text)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            problems.append(f"{path}:{number}: score {score_text!r} is not a finite number")
            continue
        if (qid, docid) in first_line:
            problems.append(
                f"{path}:{number}: document {docid} repeated within query {qid} (first on line {first_line[qid, docid]})"
            )
            continue
        first_line[qid, docid] = number
        if topics is not None and qid not in topics.turns:
            unknown_queries.setdefault(qid, number)
        scores.setdefault(qid, {})[docid] = score
    for qid, number in unknown_queries.items():
        problems.append(f"{path}:{number}: query {qid} is not in the topics of {topics.source}")
    if not scores and not problems:
        problems.append(f"{path}: the run file is empty")
    return scores, problems


def _lines(path: str | os.PathLike, problems: list[str]):
    """Yield (line number, whitespace-split columns) of the non-blank lines of a text file."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                columns = line.split()
                if columns:
                    yield number, columns
    except FileNotFoundError:
        problems.append(f"{path}: no such file")
    except IsADirectoryError:
        problems.append(f"{path}: is a directory, not a file")
    except UnicodeDecodeError as error:
        problems.append(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})")


def check_run_dict(name: str, scores: dict, topics: Topics | None) -> list[str]:
    """The problems of a run given as a dict (`scores[qid][docid] = score`)."""
    problems = []
    for qid, docs in scores.items():
        if topics is not None and qid not in topics.turns:
            problems.append(f"{name}: query {qid} is not in the topics of {topics.source}")
        for docid, score in docs.items():
            if not isinstance(score, (int, float)) or not math.isfinite(score):
                problems.append(f"{name}: score {score!r} of document {docid} in query {qid} is not a finite number")
    return problems


def read_run(name: str, run: str | os.PathLike | dict, topics: Topics | None) -> tuple[Run, list[str]]:
    """A run from a file path or a dict, checked against the topics."""
    if isinstance(run, dict):
        scores = {str(qid): dict(docs) for qid, docs in run.items()}
        return Run(name, scores), check_run_dict(name, scores, topics)
    scores, problems = read_run_file(run, topics)
    return Run(name, scores, Path(run)), problems


_MAPPING_PAIRS = (
    ("cast-19/2019qrels.txt", "cast-19/coted-preprocessed/qrels.tsv"),
    ("cast-20/2020qrels.txt", "cast-20/coted-preprocessed/qrels.tsv"),
)


def convert_convdr_ids(run: Run, qrels: Qrels) -> None:
    """Rewrite ConvDR integer docids to official ids when the qrels use official ones.

    MARCO integers convert by arithmetic, CAR integers through the mapping learnt from the line-aligned
    official/integer CAsT qrels of both years (`convdr_pyserini.ids`). Integers outside it (unjudged CAR
    passages) are kept as they are: no qrels line names them, so they count as unjudged, exactly as
    their official ids would, and every measure is unchanged.
    """
    from .. import files, ids

    run_docids = {docid for docs in run.scores.values() for docid in docs}
    qrels_docids = {docid for docs in qrels.judgments.values() for docid in docs}
    if not ids.looks_like_convdr_ids(run_docids) or ids.looks_like_convdr_ids(qrels_docids):
        return
    mapping = ids.IdMapping()
    for official, integer in _MAPPING_PAIRS:
        mapping.update(ids.IdMapping.from_qrels_pair(files.resolve(official), files.resolve(integer)))
    official_of = {docid: mapping.to_official(docid) for docid in run_docids}
    unmapped = sum(official is None for official in official_of.values())
    run.scores = {
        qid: {official_of[docid] or docid: score for docid, score in docs.items()} for qid, docs in run.scores.items()
    }
    note = f"ConvDR integer ids converted to official ids ({len(run_docids) - unmapped} of {len(run_docids)} docids"
    run.notes.append(note + (f"; {unmapped} outside the judged CAR mapping kept, so unjudged)" if unmapped else ")"))
