"""OR-QuAC (from the user's files) and CANARD dev as conversational query records."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from ir_datasets.formats import TrecQrel

from ..errors import UserError
from ..io.passages import TITLE_TEXT_FIELDS, Passage
from ..io.text import read_json, read_json_lines as iter_json_lines, required_field as field

ORQUAC_QID = re.compile(r"^(C_[0-9a-f]+_[01])_q#(\d+)$")


class QuacQuery(NamedTuple):
    """A QuAC-style turn: OR-QuAC or CANARD. `history` and `history_answers` are oldest first."""

    query_id: str
    dialog_id: str
    turn_number: int
    raw_utterance: str
    manual_rewritten_utterance: str
    history: tuple[str, ...]
    history_answers: tuple[str, ...]
    answer: Optional[str]

    def default_text(self) -> str:
        return self.raw_utterance


class OrquacDoc(NamedTuple):
    """An OR-QuAC passage block; its encoder input is the pair (title, text) (see `convdr_pyserini.io.passages`)."""

    doc_id: str
    title: str
    text: str

    def default_text(self) -> str:
        return f"{self.title} {self.text}"


def orquac_queries(path: Path) -> list[QuacQuery]:
    """Parse an OR-QuAC `preprocessed/<split>.txt` file (JSON lines)."""
    queries, seen = [], set()
    for line_number, record in iter_json_lines(path):
        where = f"{path}:{line_number}"
        query_id = field(record, "qid", where)
        match = ORQUAC_QID.match(query_id)
        if not match:
            raise UserError(f"{where}: qid {query_id!r} is not of the form C_<dialog>_q#<n>")
        if query_id in seen:
            raise UserError(f"{where}: duplicate query id {query_id}")
        seen.add(query_id)
        history = field(record, "history", where)
        answer = record.get("answer")
        queries.append(
            QuacQuery(
                query_id,
                match.group(1),
                int(match.group(2)) + 1,
                field(record, "question", where),
                field(record, "rewrite", where),
                tuple(field(turn, "question", f"{where} history") for turn in history),
                tuple(field(field(turn, "answer", f"{where} history"), "text", f"{where} history answer") for turn in history),
                answer.get("text") if isinstance(answer, dict) else None,
            )
        )
    return queries


def orquac_qrels(path: Path) -> list[TrecQrel]:
    """Parse OR-QuAC `qrels.txt`, a JSON object {qid: {pid: grade}}."""
    qrels = read_json(path)
    if not isinstance(qrels, dict):
        raise UserError(f"{path}: expected a JSON object {{qid: {{pid: grade}}}}")
    result = []
    for query_id, judged in qrels.items():
        if not isinstance(judged, dict):
            raise UserError(f"{path}: qid {query_id}: expected an object {{pid: grade}}")
        for doc_id, grade in judged.items():
            if not isinstance(grade, int):
                raise UserError(f"{path}: qid {query_id}, pid {doc_id}: grade {grade!r} is not an integer")
            result.append(TrecQrel(query_id, doc_id, grade, "0"))
    return result


def orquac_docs(path: Path) -> Iterator[OrquacDoc]:
    """Stream OR-QuAC `all_blocks.txt` (JSON lines {id, title, text})."""
    from ..collection.sources import orquac_blocks

    for record in orquac_blocks(path):
        passage = Passage.from_contents(record.doc_id, record.contents, TITLE_TEXT_FIELDS)
        yield OrquacDoc(passage.doc_id, passage.title, passage.text)


def canard_queries(path: Path) -> list[QuacQuery]:
    """Parse CANARD's `dev.json`; ids follow OR-QuAC: `<QuAC_dialog_id>_q#<Question_no - 1>`."""
    records = read_json(path)
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON list")
    queries, seen = [], set()
    for index, record in enumerate(records):
        where = f"{path}: record #{index + 1}"
        dialog_id = field(record, "QuAC_dialog_id", where)
        number = field(record, "Question_no", where)
        query_id = f"{dialog_id}_q#{number - 1}"
        if query_id in seen:
            raise UserError(f"{where}: duplicate query id {query_id}")
        seen.add(query_id)
        # History starts with the article and section titles, then alternates question, answer.
        turns = field(record, "History", where)[2:]
        queries.append(
            QuacQuery(
                query_id,
                dialog_id,
                number,
                field(record, "Question", where),
                field(record, "Rewrite", where),
                tuple(turns[0::2]),
                tuple(turns[1::2]),
                None,
            )
        )
    return queries

