"""Streaming readers of the upstream passage files, resumable at a byte offset, with errors naming file and line.

Every reader yields `Record(doc_id, contents, end)` where `end` is the `Position` just after the record, so a
reader restarted at `end` goes on with the next record. Contents are ConvDR's text (`convdr_pyserini.io.passages`):
MS MARCO passages stripped, tabs/newlines/CRs in CAR paragraphs and OR-QuAC blocks turned into spaces.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator, NamedTuple

from ..errors import UserError
from ..io.passages import Passage, flat_text, marco_text
from ..io.text import decode_line, json_object, required_field

_PID = re.compile(r"^(?:MARCO_)?([0-9]+)$")
_DOC = re.compile(r"^(?:MARCO_)?D([0-9]+)$")
_CBOR_BREAK = b"\xff"
_CBOR_INDEFINITE_ARRAY = b"\x9f"
_CAR_PARAGRAPHS_FILE_TYPE = 2


class Position(NamedTuple):
    """Where a reader stands in its file: bytes consumed, records (lines, paragraphs) consumed, and how many
    passages of the next record are already written (for documents cut into several passages)."""

    offset: int = 0
    number: int = 0
    part: int = 0


class Record(NamedTuple):
    """A passage (or a whole document, for the readers of document collections) and the position after it.

    `contents` is None for a document without text (a record the organizers left out); `title` is a
    document's title.
    """

    doc_id: str
    contents: str | None
    end: Position
    title: str | None = None


def _binary_lines(path: Path, start: Position) -> Iterator[tuple[int, int, str]]:
    """(line number, offset after the line, decoded line without its ending) from `start` on."""
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        handle.seek(start.offset)
        offset, line_number = start.offset, start.number
        for raw in handle:
            offset += len(raw)
            line_number += 1
            yield line_number, offset, decode_line(raw, path, line_number).rstrip("\r\n")


def marco_passages(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(`MARCO_<pid>`, text) of an MS MARCO `collection.tsv` (`pid<TAB>text` lines)."""
    for line_number, offset, line in _binary_lines(path, start):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].isascii() or not parts[0].isdigit():
            raise UserError(f"{path}:{line_number}: expected 'pid<TAB>text' (2 tab-separated columns, integer pid), got {line[:60]!r}")
        yield Record(f"MARCO_{int(parts[0])}", marco_text(parts[1]), Position(offset, line_number))


def orquac_blocks(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(id, title + newline + text) of OR-QuAC `all_blocks.txt` (JSON lines `{"id", "title", "text"}`).

    The title goes first on its own line, so that title and text can be told apart again.
    """
    for line_number, offset, line in _binary_lines(path, start):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        block = json_object(line, path, line_number, "a JSON object {id, title, text}")
        values = []
        for name in ("id", "title", "text"):
            value = block.get(name)
            if value is None:
                raise UserError(f"{where}: missing field '{name}'")
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise UserError(f"{where}: field '{name}' is a {type(value).__name__}, expected a string")
            values.append(str(value))
        doc_id, title, text = values
        yield Record(doc_id, Passage(doc_id, flat_text(text), flat_text(title)).contents(), Position(offset, line_number))


class _StrictReader:
    """A file wrapper for the cbor decoder: a short read is an error instead of the decoder's endless loop."""

    __slots__ = ("_handle", "_path")

    def __init__(self, handle: io.BufferedReader, path: Path):
        self._handle = handle
        self._path = path

    def read(self, size: int) -> bytes:
        data = self._handle.read(size)
        if len(data) != size:
            raise UserError(f"{self._path}: truncated TREC CAR cbor (file ends inside an item at byte {self._handle.tell():,})")
        return data


def _car_items(path: Path, start: Position) -> Iterator[tuple[object, Position]]:
    """(decoded cbor item, position after it) of each paragraph of a TREC CAR paragraph file."""
    import cbor

    try:
        handle = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        strict = _StrictReader(handle, path)
        first = None
        if handle.peek(1):
            first = _decode(cbor, strict, path, Position())
        if not (isinstance(first, list) and first[:1] == ["CAR"]):
            raise UserError(f"{path}: not a TREC CAR file (no 'CAR' header); expected paragraphCorpus cbor (v2.0)")
        file_types = first[1] if len(first) > 1 and isinstance(first[1], list) else []
        if _CAR_PARAGRAPHS_FILE_TYPE not in file_types:
            raise UserError(f"{path}: a TREC CAR file of type {file_types}, not a paragraph file (type 2)")
        if strict.read(1) != _CBOR_INDEFINITE_ARRAY:
            raise UserError(f"{path}: malformed TREC CAR cbor (no paragraph list after the header)")
        if start.offset > handle.tell():
            handle.seek(start.offset)
        number = start.number
        while True:
            head = handle.peek(1)[:1]
            if not head or head == _CBOR_BREAK:
                return
            item = _decode(cbor, strict, path, Position(handle.tell(), number))
            number += 1
            yield item, Position(handle.tell(), number)


def _decode(cbor, strict: _StrictReader, path: Path, at: Position):
    try:
        return cbor.load(strict)
    except UserError:
        raise
    except Exception as error:  # the C decoder raises ValueError, EOFError and others on bad bytes
        raise UserError(
            f"{path}: malformed TREC CAR cbor at paragraph {at.number + 1:,} (byte {at.offset:,}): {error}"
        ) from None


def _paragraph(item, path: Path, end: Position, text: bool = False):
    """The trec-car-tools `Paragraph` of a decoded item (with `text`: its id and text)."""
    from trec_car.read_data import Paragraph

    try:
        paragraph = Paragraph.from_cbor(item)
        return (paragraph.para_id, paragraph.get_text()) if text else paragraph
    except Exception as error:  # trec-car-tools indexes into the decoded item without checks
        raise UserError(
            f"{path}: malformed TREC CAR paragraph {end.number:,} (ends at byte {end.offset:,}): "
            f"{type(error).__name__}: {error}"
        ) from None


def car_paragraphs(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(`CAR_<para_id>`, text) of a TREC CAR paragraph cbor, read with trec-car-tools, in file order."""
    for item, end in _car_items(path, start):
        para_id, text = _paragraph(item, path, end, text=True)
        yield Record(f"CAR_{para_id}", flat_text(text), end)


def car_paragraph_ids(path: Path) -> Iterator[tuple[str, Position]]:
    """(para_id, position after it) of every paragraph of a TREC CAR cbor, in file order."""
    for item, end in _car_items(path, Position()):
        yield _paragraph(item, path, end).para_id, end


def read_duplicates(path: Path, documents: bool = False) -> frozenset[str]:
    """The MARCO ids to drop: every id listed after the colon of a CAsT duplicate list line.

    Passages (CAsT-19/20 `duplicate_list_v1.0.txt`): lines `MARCO_<pid>:MARCO_<dup>,MARCO_<dup>,...` (the list may be
    empty), ids also without the `MARCO_` prefix; this is what ConvDR and ir_datasets drop. Documents (`documents`,
    CAsT-21 `marco_duplicates.txt`): lines `D<n>:D<dup>,...`, ids also as `MARCO_D<n>`; an id listed as the
    duplicate of two originals is dropped all the same, as the organizers' tools do. The id before the colon is kept.
    """
    pattern, shape, prefix = ((_DOC, "D<n>:D<n>,D<n>,...", "MARCO_D") if documents
                              else (_PID, "MARCO_<pid>:MARCO_<pid>,MARCO_<pid>,...", "MARCO_"))
    drop: set[str] = set()
    for line_number, _, line in _binary_lines(path, Position()):
        if not line.strip():
            continue
        head, colon, tail = line.strip().partition(":")
        matches = [pattern.match(doc_id.strip()) for doc_id in [head, *filter(None, tail.split(","))]]
        if not colon or not all(matches):
            raise UserError(f"{path}:{line_number}: expected '{shape}', got {line[:60]!r}")
        drop.update(f"{prefix}{int(match.group(1))}" for match in matches[1:])
    return frozenset(drop)


def marco_documents(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(`MARCO_D<n>`, body, title) of an MS MARCO v1 `msmarco-docs.tsv` (`docid<TAB>url<TAB>title<TAB>body`).

    As the organizers' tools did, the line is stripped first; a document whose body is then missing (3 columns)
    has no passages (contents None).
    """
    for line_number, offset, line in _binary_lines(path, start):
        parts = line.strip().split("\t")
        if len(parts) not in (3, 4) or not _DOC.match(parts[0]) or parts[0].startswith("MARCO_"):
            raise UserError(f"{path}:{line_number}: expected 'D<n><TAB>url<TAB>title<TAB>body' (4 tab-separated "
                            f"columns), got {line[:60]!r}")
        body = parts[3] if len(parts) == 4 else None
        yield Record(f"MARCO_{parts[0]}", body, Position(offset, line_number), parts[2])


def kilt_documents(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(`KILT_<wikipedia_id>`, paragraphs joined by spaces, title) of the KILT knowledge source (JSON lines)."""
    for line_number, offset, line in _binary_lines(path, start):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        page = json_object(line, path, line_number, "a JSON object {wikipedia_id, wikipedia_title, text}")
        wikipedia_id = required_field(page, "wikipedia_id", where, (str, int))
        title = required_field(page, "wikipedia_title", where, str)
        text = required_field(page, "text", where, list)
        if not all(isinstance(paragraph, str) for paragraph in text):
            raise UserError(f"{where}: field 'text' must be a list of strings")
        yield Record(f"KILT_{wikipedia_id}", " ".join(text), Position(offset, line_number), flat_text(title))


def wapo_documents(path: Path, start: Position = Position()) -> Iterator[Record]:
    """(`WAPO_<id>`, paragraphs, title) of TREC Washington Post v4 (JSON lines `{id, title, contents: [...]}`).

    The body is what the organizers' tools took: the `content` of every `contents` item of subtype `paragraph`,
    each preceded by a space; at the first item that is not an object with text (a null in `contents`) they
    stopped and appended `No body`. A missing title is `No Title`.
    """
    for line_number, offset, line in _binary_lines(path, start):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        article = json_object(line, path, line_number, "a JSON object {id, title, contents}")
        doc_id = required_field(article, "id", where, str)
        items = required_field(article, "contents", where, list)
        body = ""
        for item in items:
            if not isinstance(item, dict) or (item.get("subtype") == "paragraph" and not isinstance(item.get("content"), str)):
                body += "No body"
                break
            if item.get("subtype") == "paragraph":
                body += " " + item["content"]
        title = article.get("title")
        yield Record(f"WAPO_{doc_id}", body, Position(offset, line_number),
                     flat_text(title) if isinstance(title, str) else "No Title")
