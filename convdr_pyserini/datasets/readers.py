"""Parsers for the upstream topic, rewrite and qrels files, with errors that name the file and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ir_datasets.formats import TrecQrel

from ..errors import UserError


def read_json(path: Path):
    """Parse a JSON file; a syntax error names the file and line."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a JSON-lines file."""
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{line_number}: malformed JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}")
            yield line_number, record


def field(record: dict, name: str, where: str):
    """`record[name]`, or a UserError naming the missing field and where it was expected."""
    try:
        return record[name]
    except (KeyError, TypeError):
        raise UserError(f"{where}: missing field '{name}'") from None


def read_tsv_pairs(path: Path) -> dict[str, str]:
    """Read `id<TAB>text` lines (LF or CRLF endings, UTF-8); duplicate ids are an error."""
    pairs: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise UserError(f"{path}:{line_number}: expected 2 tab-separated columns (id, text), got {len(parts)}")
            key, text = parts
            if key in pairs:
                raise UserError(f"{path}:{line_number}: duplicate query id {key}")
            pairs[key] = text.strip()
    return pairs


def read_trec_qrels(path: Path) -> list[TrecQrel]:
    """Read `qid iteration docid grade` lines; wrong column counts and non-integer grades are errors."""
    qrels = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise UserError(f"{path}:{line_number}: qrels line has {len(parts)} columns, expected 4 (qid iter docid grade)")
            query_id, iteration, doc_id, grade = parts
            try:
                relevance = int(grade)
            except ValueError:
                raise UserError(f"{path}:{line_number}: relevance grade {grade!r} is not an integer") from None
            qrels.append(TrecQrel(query_id, doc_id, relevance, iteration))
    return qrels
