"""Pyserini JsonCollections: the one strict reader, used by the Lucene and dense index builders and the docstores.

A JsonCollection is a folder of `*.jsonl` / `*.json` files (optionally `.gz`, `.bz2` or `.xz`), one `{"id", "contents"}` object
per line (`docid`/`_id` and `text` are accepted too), or one such file. A docid must be a non-empty word
without whitespace (Lucene runs would otherwise break TREC run lines).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from ..errors import UserError
from .passages import TEXT_FIELDS, Passage
from .text import COMPRESSED_SUFFIXES, decode_line, json_object, raw_lines, visible

SUFFIXES = tuple(base + compressed for base in (".jsonl", ".json") for compressed in ("", *COMPRESSED_SUFFIXES))


class JsonDoc(NamedTuple):
    """One document line: where it is, its id, its contents, and the line itself (for Anserini)."""

    path: Path
    number: int
    docid: str
    contents: str
    line: str


def collection_files(path: str | os.PathLike) -> list[Path]:
    """The data files of a JsonCollection folder, sorted (or the one file given)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"collection {path} does not exist")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
    if not found:
        raise UserError(f"{path} holds no *.jsonl or *.json files (expected a Pyserini JsonCollection folder)")
    return found


def read_documents(files: list[Path]) -> Iterator[JsonDoc]:
    """Every document of the files, checked; a bad line is a UserError naming the file and line."""
    for path in files:
        for number, raw in enumerate(raw_lines(path), 1):
            line = decode_line(raw, path, number).rstrip("\r\n")
            if not line.strip():
                continue
            record = json_object(line, path, number, "a JSON object with the fields id and contents")
            docid = record.get("id", record.get("docid", record.get("_id")))
            contents = record.get("contents", record.get("text"))
            if isinstance(docid, int) and not isinstance(docid, bool):
                docid = str(docid)
            if not isinstance(docid, str) or not isinstance(contents, str):
                raise UserError(f"{path}:{number}: expected the fields id and contents (strings)")
            if not docid or any(ch.isspace() for ch in docid):
                raise UserError(f"{path}:{number}: docid {visible(docid)} is empty or contains whitespace")
            yield JsonDoc(path, number, docid, contents, line)


def count_documents(files: list[Path]) -> int:
    """Number of lines of the files (documents, when there are no blank lines)."""
    return sum(block.count(b"\n") for path in files for block in raw_lines(path))


@dataclass
class CollectionSource:
    """What a builder reads: the passages in order, their count if known, and where they come from."""

    name: str
    passages: Callable[[], Iterator[Passage]]
    total: int | None
    files: list[Path]
    fields: tuple[str, ...] = TEXT_FIELDS
    folder: Path | None = None

    def fingerprint(self) -> list[list]:
        """(path, size, mtime) of each file: a partial build resumes only over the same bytes."""
        return [[str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns] for path in self.files]


def passages_of(files: list[Path], fields: tuple[str, ...]) -> Callable[[], Iterator[Passage]]:
    """The passages of a JsonCollection's files, read afresh at each call (what `CollectionSource.passages` takes)."""
    return lambda: (Passage.from_contents(doc.docid, doc.contents, fields) for doc in read_documents(files))
