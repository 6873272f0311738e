"""Shared command-line plumbing: the `main(argv) -> int` wrapper and atomic output files."""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError


def cli_main(build_parser: Callable) -> Callable:
    """Turn `run(args) -> int | None` into `main(argv=None) -> int`.

    A `UserError` becomes one line on stderr and exit code 2, never a traceback.
    """

    def decorate(run: Callable) -> Callable:
        @functools.wraps(run)
        def main(argv: list[str] | None = None) -> int:
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exit_:
                return int(exit_.code or 0)
            try:
                return int(run(args) or 0)
            except UserError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                return 130

        return main

    return decorate


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0, "an integer >= 0")


def _bounded_int(text: str, minimum: int, expected: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, if the file `path` cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output path {path} is a directory")
    _ensure_writable_parent(path)
    return path


def _ensure_writable_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output directory {parent}: {error.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"output path {path} cannot be written (directory {parent} is not writable)")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Write to a temporary file beside `path` and rename it into place only on success."""
    path = check_writable(path)
    if "b" in mode:
        encoding = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if encoding else None) as handle:
            yield handle
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name beside `path`; rename it into place on success."""
    import shutil

    path = Path(path)
    _ensure_writable_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
