"""Strict reading of text inputs: UTF-8 only, no byte-order mark, no binary data; compressed files transparently.

Every reader of a user's file goes through here, so that a BOM, a NUL byte or an invalid UTF-8 sequence
is reported the same way everywhere: one `UserError` naming the file, the line and the offending value.
A file named `*.gz`, `*.bz2` or `*.xz` is decompressed as it is read (the way TREC distributes runs), with the
same checks and the line numbers of the decompressed text; corrupt or truncated compressed data is one
`UserError` naming the file and the line it was reached at.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UserError

BOM = "\ufeff"


def visible(text: str, limit: int = 60) -> str:
    """`text` quoted, with invisible characters escaped (a BOM shows as `\\ufeff`), cut to `limit` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown) if any(not ch.isprintable() for ch in shown) else repr(shown)


COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
_MAGIC = {".gz": b"\x1f\x8b", ".xz": b"\xfd7zXZ\x00", ".bz2": b"BZh"}  # bz2: then a digit and b"1AY&SY"


def compression_of(path: str | os.PathLike) -> str | None:
    """The compression suffix of a file name (`.gz`, `.bz2`, `.xz`), or None for a plain file."""
    name = os.fspath(path)
    return next((suffix for suffix in COMPRESSED_SUFFIXES if name.endswith(suffix)), None)


def plain_name(path: str | os.PathLike) -> str:
    """A file's name without its compression suffix (`run.trec.gz` -> `run.trec`): what tells its format."""
    name = Path(path).name
    suffix = compression_of(name)
    return name[: -len(suffix)] if suffix else name


def open_compressed(suffix: str, handle, mode: str):
    """A (de)compressing binary file object over `handle` (left open) for a compression suffix. Written
    output is reproducible: gzip with no timestamp and no file name in its header."""
    if suffix == ".gz":
        import gzip

        return gzip.GzipFile(filename="", fileobj=handle, mode=mode, mtime=0, compresslevel=6)
    if suffix == ".bz2":
        import bz2

        return bz2.BZ2File(handle, mode)
    import lzma

    return lzma.LZMAFile(handle, mode)


def _open_binary(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})") from None


def _decompression_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    return OSError, EOFError, lzma.LZMAError, zlib.error


def raw_lines(path: str | os.PathLike) -> Iterator[bytes]:
    """The lines of a file as bytes (endings kept), decompressed when its name ends in a compression suffix.

    A missing or unreadable file, and compressed data that is corrupt or truncated, is a UserError; an
    uncompressed name over compressed bytes is named as such (the first line would read as binary data)."""
    path = Path(path)
    suffix = compression_of(path)
    number = 0
    with _open_binary(path) as handle:
        if suffix is None:
            for number, raw in enumerate(handle, 1):
                if number == 1:
                    _refuse_unnamed_compression(raw, path)
                yield raw
            return
        stream = open_compressed(suffix, handle, "rb")
        try:
            for number, raw in enumerate(stream, 1):
                yield raw
        except _decompression_errors() as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise UserError(f"{path}:{number + 1}: cannot be decompressed as {suffix[1:]} ({reason})") from None


def read_blocks(path: str | os.PathLike, size: int = 1 << 16) -> Iterator[str]:
    """The text of a file in blocks of whole lines (about `size` bytes each), checked like `read_lines`, for the
    fast readers that parse many lines at once: binary data, bad UTF-8, a BOM and corrupt compressed data raise
    the error `read_lines` raises, at the same line."""
    path = Path(path)
    suffix = compression_of(path)
    number = 0
    with _open_binary(path) as handle:
        stream = handle if suffix is None else open_compressed(suffix, handle, "rb")
        while True:
            try:
                lines = stream.readlines(size)
            except _decompression_errors():
                for _ in raw_lines(path):  # raises the error, naming the line where the data breaks
                    pass
                raise
            if not lines:
                return
            if number == 0 and suffix is None:
                _refuse_unnamed_compression(lines[0], path)
            block = b"".join(lines)
            try:
                if b"\0" in block or number == 0 and block.startswith(BOM.encode("utf-8")):
                    raise ValueError
                text = block.decode("utf-8")
            except ValueError:  # (UnicodeDecodeError is one) the line-by-line check names the line and column
                for offset, raw in enumerate(lines, number + 1):
                    decode_line(raw, path, offset)
                raise
            number += len(lines)
            yield text


def column_words(text: str, columns: int) -> list[str] | None:
    """The words of a block of lines (from `read_blocks`) when every line has exactly `columns` words, else None
    (a blank line too): column j of line i is word `i * (columns + 1) + j`.

    The words are split at once, each line end as a word of its own (a NUL: checked text holds none), so the
    lines are well-formed exactly when every (columns + 1)-th word, and only it, is a line end."""
    words = text.replace("\n", " \0 ").split()
    if not text.endswith("\n"):
        words.append("\0")
    ends = words[columns::columns + 1]
    if len(words) % (columns + 1) or ends.count("\0") != len(ends) or words.count("\0") != len(ends):
        return None
    return words


def read_query_table(path: str | os.PathLike, columns: int, value_column: int,
                     convert: Callable[[str], Any]) -> dict[str, dict[str, Any]] | None:
    """`{query_id: {docid: convert(value)}}` of a file of lines with the query id in column 0, the docid in column
    2 and the value in `value_column` (runs, qrels), parsed a block of lines at a time (`column_words`), when
    every line has `columns` words, every value converts and no docid repeats within a query; None for any other
    file (empty, a blank line, a problem): its reader then reads it line by line and reports every problem."""
    table: dict[str, dict[str, Any]] = {}
    width = columns + 1
    for text in read_blocks(path):
        words = column_words(text, columns)
        if words is None:
            return None
        try:
            values = list(map(convert, words[value_column::width]))
        except ValueError:
            return None
        docids = words[2::width]
        start = 0
        for query_id, group in itertools.groupby(words[0::width]):
            end = start + len(list(group))
            found = dict(zip(docids[start:end], values[start:end]))
            known = table.get(query_id)
            if len(found) != end - start or known is not None and not known.keys().isdisjoint(found):
                return None
            if known is None:
                table[query_id] = found
            else:
                known.update(found)
            start = end
    return table or None


def _refuse_unnamed_compression(first: bytes, path: Path) -> None:
    for suffix, magic in _MAGIC.items():
        if first.startswith(magic) and (suffix != ".bz2" or first[4:10] == b"1AY&SY"):
            raise UserError(f"{path}: compressed data ({suffix[1:]}) in a file without the {suffix} suffix; "
                            f"name it {path.name}{suffix} to have it read")


def decode_line(raw: bytes, path: Path, number: int) -> str:
    """One line of bytes as text; binary data, bad UTF-8 or a BOM (on line 1) is a UserError."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise UserError(f"{path}:{number}: binary data (a NUL byte at column {nul + 1}); expected a UTF-8 text file")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}:{number}: not UTF-8 text ({error.reason} at column {error.start + 1})") from None
    if number == 1 and line.startswith(BOM):
        raise UserError(f"{path}:1: starts with a byte-order mark ({visible(BOM)}); save the file as UTF-8 "
                        "without a BOM")
    return line


def read_lines(path: str | os.PathLike, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line of a UTF-8 text file (decompressed if named `*.gz`, `*.bz2`, `*.xz`);
    endings (LF or CRLF) removed unless `keep_ends`."""
    path = Path(path)
    for number, raw in enumerate(raw_lines(path), 1):
        line = decode_line(raw, path, number)
        yield number, line if keep_ends else line.rstrip("\r\n")


def read_text(path: str | os.PathLike) -> str:
    """The whole text of a UTF-8 file, checked like `read_lines`."""
    return "".join(line for _, line in read_lines(path, keep_ends=True))


def read_json(path: str | os.PathLike):
    """A JSON document; a syntax error names the file and line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None


def read_yaml(path: str | os.PathLike):
    """A YAML document (safe loader); a syntax error names the file."""
    import yaml

    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({reason})") from None


def json_object(line: str, path, number: int, expected: str = "a JSON object") -> dict:
    """One JSON-lines line parsed as an object; malformed JSON or another value is a UserError naming the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{number}: malformed JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}:{number}: expected {expected}, got {type(record).__name__}")
    return record


def read_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file; each line must be an object."""
    for number, line in read_lines(path):
        if line.strip():
            yield number, json_object(line, path, number)


def required_field(record, name: str, where: str, kind: type | tuple[type, ...] | None = None):
    """`record[name]`, or a UserError naming the missing (or mistyped) field and where it was expected."""
    try:
        value = record[name]
    except (KeyError, TypeError, IndexError):
        raise UserError(f"{where}: missing field '{name}'") from None
    if kind is not None and (not isinstance(value, kind) or isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,))):
        expected = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise UserError(f"{where}: field '{name}' is {type(value).__name__} {visible(str(value), 40)}, expected {expected}")
    return value


def first_character(path: str | os.PathLike) -> str:
    """The first non-blank character of a text file ("" for a blank one): tells JSON (`[`, `{`) from lines."""
    for _, line in read_lines(path):
        if line.strip():
            return line.lstrip()[0]
    return ""
