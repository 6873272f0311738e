"""Relevance judgements: the `Qrels` type, its one strict reader (TREC `qid iteration docid grade`) and writer."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from ..errors import InvalidInput
from .atomic import PathLike, atomic_output
from .text import read_lines, read_query_table

QRELS_COLUMNS = 4


class QrelLine(NamedTuple):
    number: int
    query_id: str
    iteration: str
    docid: str
    grade: int
    fields: list[str]


def read_qrels_lines(path: PathLike, problems: list[str]) -> Iterator[QrelLine]:
    """The lines of a TREC qrels file; a line with another column count or a non-integer grade is added to
    `problems` and skipped. File-level problems (missing, binary, BOM) raise UserError."""
    for number, line in read_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != QRELS_COLUMNS:
            problems.append(f"{path}:{number}: expected {QRELS_COLUMNS} columns (qid iteration docid grade), "
                            f"found {len(fields)}")
            continue
        query_id, iteration, docid, grade_text = fields
        try:
            grade = int(grade_text)
        except ValueError:
            problems.append(f"{path}:{number}: grade {grade_text!r} is not an integer")
            continue
        yield QrelLine(number, query_id, iteration, docid, grade, fields)


@dataclass
class Qrels:
    """`judgments[query_id][docid] = grade`; `source` is the dataset id or file it came from."""

    judgments: dict[str, dict[str, int]]
    source: str
    path: Path | None = None

    @classmethod
    def read(cls, path: PathLike) -> "Qrels":
        """Read a TREC qrels file strictly; every problem is listed in the `InvalidInput` raised
        (including a document graded twice with different grades, and an empty file)."""
        path = Path(path)
        fast = read_query_table(path, QRELS_COLUMNS, 3, int)  # a well-formed file, read a block at a time
        if fast is not None:
            return cls(fast, str(path), path)
        problems: list[str] = []
        judgments: dict[str, dict[str, int]] = {}
        first_line: dict[tuple[str, str], int] = {}
        for line in read_qrels_lines(path, problems):
            key = (line.query_id, line.docid)
            if key in first_line and judgments[line.query_id][line.docid] != line.grade:
                problems.append(f"{path}:{line.number}: document {line.docid} of query {line.query_id} is graded "
                                f"{line.grade} here but {judgments[line.query_id][line.docid]} on line {first_line[key]}")
                continue
            first_line.setdefault(key, line.number)
            judgments.setdefault(line.query_id, {})[line.docid] = line.grade
        if not judgments and not problems:
            problems.append(f"{path}: the qrels file is empty")
        if problems:
            raise InvalidInput(problems)
        return cls(judgments, str(path), path)

    def __len__(self) -> int:
        return len(self.judgments)

    def docids(self) -> set[str]:
        return {docid for judged in self.judgments.values() for docid in judged}

    def write(self, path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike] = ()) -> Path:
        """Write TREC qrels lines (`qid 0 docid grade`), queries and documents in their order."""
        with atomic_output(path, inputs=[self.path, *inputs], overwrite=overwrite) as out:
            for query_id, judged in self.judgments.items():
                for docid, grade in judged.items():
                    out.write(f"{query_id} 0 {docid} {grade}\n")
        return Path(path)
