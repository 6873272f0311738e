"""Strict reading of text inputs: UTF-8 only, no byte-order mark, no binary data.

Every reader of a user's file goes through here, so that a BOM, a NUL byte or an invalid UTF-8 sequence
is reported the same way everywhere: one `UserError` naming the file, the line and the offending value.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..errors import UserError

BOM = "\ufeff"


def visible(text: str, limit: int = 60) -> str:
    """`text` quoted, with invisible characters escaped (a BOM shows as `\\ufeff`), cut to `limit` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown) if any(not ch.isprintable() for ch in shown) else repr(shown)


def _open_binary(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})") from None


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
    """(line number, line) for every line of a UTF-8 text file; endings (LF or CRLF) removed unless `keep_ends`."""
    path = Path(path)
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, 1):
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
