"""Writing outputs safely: atomically, never over an input, never twice at once, nothing left behind.

- `prepare_output` checks an output before any work: it is not one of the inputs (same path, symlink or
  hard link), does not lie inside an input folder (nor holds one), and exists only if `overwrite` is given.
- `atomic_output` / `atomic_directory` write under a temporary name beside the target and rename it into
  place on success; on any error or interrupt the temporary is removed. Temporaries are named
  `.<name>.<pid>.<random>.tmp`, so those left by a killed process (a dead pid) are removed by the next
  writer of the same output. An output named `*.gz` (`*.bz2`, `*.xz`) is written compressed, byte-identical on
  a rerun (no timestamp or file name in the gzip header).
- `resumable_directory` builds a folder of independent parts (a cross-validation's folds) under a fixed name,
  `.<name>.partial`, stamped with the settings that decide its content: a run killed outright (SIGKILL, a lost
  machine or session) or interrupted (Ctrl-C, SIGTERM) keeps the finished parts there and a rerun with the
  same settings continues from them; other settings are refused without `overwrite`; an error removes it.
- `OutputLock` is an exclusive lock per output (`.<name>.lock`, `flock`), naming the holder's pid.

A place that cannot be written becomes one `UserError` naming the output, whichever step the OS refuses
(creating the folder, the lock file or the temporary, writing, renaming): a read-only file system, permission
denied, a file system without locks, a full disk or quota (`unwritable`). Every writer takes an `OutputLock`,
and the lock turns such a failure of whatever it guards into that error too, also when a library reports it in
its own exception (faiss, Lucene).
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import UserError, unwritable, writing
from .text import compression_of, open_compressed

logger = logging.getLogger(__name__)
_TEMP_RANDOM = r"[a-z0-9_]{8}"

PathLike = str | os.PathLike


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def check_not_input(output: PathLike, inputs: Iterable[PathLike | None]) -> None:
    """UserError if `output` is an input file (same path, symlink or hard link), lies inside an input folder,
    or is a folder holding an input; an output whose place cannot even be looked up (a name too long) is one too."""
    try:
        _check_not_input(Path(os.path.abspath(output)), inputs)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror or error}") from None


def _check_not_input(output: Path, inputs: Iterable[PathLike | None]) -> None:
    real_output = output.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        if not source.exists():
            continue
        real = source.resolve()
        if real == real_output or (output.exists() and os.path.samefile(output, source)):
            raise UserError(f"refusing to write {output}: it is the input {given}")
        if source.is_dir() and real_output.is_relative_to(real):
            raise UserError(f"refusing to write {output}: it lies inside the input folder {given}")
        if real.is_relative_to(real_output):
            raise UserError(f"refusing to write {output}: it would replace the folder holding the input {given}")


def prepare_output(path: PathLike, inputs: Iterable[PathLike | None] = (), overwrite: bool = False,
                   directory: bool = False) -> Path:
    """Check an output before any work is done (nothing is created); returns it as a Path.

    Refused: an output that is or holds an input, an existing output without `overwrite`, a file where a
    folder is wanted (or the reverse), a location that cannot be written.
    """
    path = Path(path)
    try:
        return _prepare_output(path, inputs, overwrite, directory)
    except OSError as error:  # e.g. a name too long to look up
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _prepare_output(path: Path, inputs: Iterable[PathLike | None], overwrite: bool, directory: bool) -> Path:
    if path.exists() or path.is_symlink():
        if directory and not path.is_dir():
            raise UserError(f"output {path} exists and is not a folder")
        if not directory and path.is_dir():
            raise UserError(f"output path {path} is a directory")
    check_not_input(path, inputs)
    if path.exists() and not overwrite and not (directory and not any(path.iterdir())):
        raise UserError(f"{path} already exists; pass {{overwrite}} to replace it", "overwrite")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: directory {ancestor} is not writable")
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write {path}: cannot create the directory {path.parent} ({error.strerror})") from None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):  # another user's leftover in a shared folder stays
            entry.unlink()


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove the temporaries of `path` left by processes that no longer run; returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + rf"(?:(\d+)\.)?{_TEMP_RANDOM}\.tmp")
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and (match.group(1) is None or not _pid_alive(int(match.group(1)))):
            _remove(entry)
            removed.append(entry)
    return removed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_output(path: PathLike, mode: str = "w", *, inputs: Iterable[PathLike | None] = (),
                  overwrite: bool = False, encoding: str | None = "utf-8") -> Iterator:
    """Write a file under a temporary name beside `path`; rename it into place only on success.

    The output is locked (`OutputLock`) while it is written."""
    path = prepare_output(path, inputs, overwrite)
    _make_parent(path)
    with OutputLock(path):
        remove_stale_temporaries(path)
        yield from _write_atomically(path, mode, overwrite, None if "b" in mode else encoding)


def _write_atomically(path: Path, mode: str, overwrite: bool, encoding: str | None):
    with writing(path):
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with writing(path):
            with _open_output(fd, path, mode, encoding) as handle:
                yield handle
            os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
            if path.exists() and not overwrite:
                raise UserError(f"{path} appeared while it was being written; pass {{overwrite}} to replace it", "overwrite")
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def _open_output(fd: int, path: Path, mode: str, encoding: str | None) -> Iterator:
    """The file object a writer writes to: the temporary itself, or, for an output named `*.gz`, `*.bz2` or
    `*.xz`, a compressing stream over it (reproducible: gzip without timestamp or file name)."""
    suffix = compression_of(path)
    if suffix is None:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if encoding else None) as handle:
            yield handle
        return
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(os.fdopen(fd, "wb"))
        stream = stack.enter_context(open_compressed(suffix, raw, "wb"))
        if "b" in mode:
            yield stream
        else:
            yield stack.enter_context(io.TextIOWrapper(stream, encoding=encoding, newline=""))


def write_text(path: PathLike, text: str, *, inputs: Iterable[PathLike | None] = (), overwrite: bool = False) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_output(path, inputs=inputs, overwrite=overwrite) as handle:
        handle.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: PathLike, *, inputs: Iterable[PathLike | None] = (), overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`; put it in place (replacing an old one) on success.

    The output is locked (`OutputLock`) while it is built."""
    path = prepare_output(path, inputs, overwrite, directory=True)
    _make_parent(path)
    with OutputLock(path):
        remove_stale_temporaries(path)
        yield from _build_atomically(path, overwrite)


def _build_atomically(path: Path, overwrite: bool):
    with writing(path):
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        with writing(path):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            publish_directory(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


RESUME_STAMP = "resume.json"


def partial_path(path: PathLike) -> Path:
    """The hidden folder a resumable build of `path` writes into until it is finished (and resumes from)."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


@contextlib.contextmanager
def resumable_directory(path: PathLike, stamp: dict, *, inputs: Iterable[PathLike | None] = (),
                        overwrite: bool = False) -> Iterator[Path]:
    """`atomic_directory` for a folder of independent parts (a cross-validation's folds), built in
    `partial_path(path)` with `stamp` (everything that decides the content: settings, seed, inputs, version)
    beside the parts. A rerun with the same stamp gets the folder back with the parts finished so far (the
    caller skips them; each part is itself written atomically); a partial folder with another stamp is refused
    unless `overwrite`, which starts afresh. Published by rename on success; removed on an error; kept, with a
    warning, when interrupted (Ctrl-C, SIGTERM) or killed."""
    path = prepare_output(path, inputs, overwrite, directory=True)
    stamp = json.loads(json.dumps(stamp, default=str))  # as it reads back from the file
    _make_parent(path)
    with OutputLock(path):
        remove_stale_temporaries(path)
        partial = partial_path(path)
        marker = partial / RESUME_STAMP
        with writing(path):
            if partial.exists():
                _check_partial(partial, stamp, overwrite)
            partial.mkdir(exist_ok=True)
            if not marker.is_file():
                fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(marker), suffix=".tmp", dir=partial)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(stamp, handle, sort_keys=True, indent=1)
                os.replace(tmp_name, marker)
        try:
            with writing(path):
                yield partial
                marker.unlink()
                os.chmod(partial, 0o777 & ~_umask())
                publish_directory(partial, path, overwrite)
        except Exception:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        except BaseException:
            logger.warning("stopped; the finished parts are kept in %s: run the same command again to resume", partial)
            raise


def _check_partial(partial: Path, stamp: dict, overwrite: bool) -> None:
    """Keep a partial folder made under `stamp`; otherwise remove it with `overwrite` or refuse, naming what
    differs (a folder holding no finished part yet is removed)."""
    try:
        found = json.loads((partial / RESUME_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    if found == stamp:
        logger.info("resuming %s", partial)
        return
    if overwrite or not any(entry.is_dir() for entry in partial.iterdir()):
        shutil.rmtree(partial)
        return
    found = found if isinstance(found, dict) else {}
    changed = sorted(key for key in {*stamp, *found} if stamp.get(key) != found.get(key))
    if "settings" in changed and isinstance(found.get("settings"), dict):
        settings = stamp.get("settings", {})
        changed[changed.index("settings")] = ", ".join(sorted(
            key for key in {*settings, *found["settings"]} if settings.get(key) != found["settings"].get(key)))
    raise UserError(f"{partial} holds a partial build made with other {'; '.join(changed)}; rerun the same "
                    "command to resume it, or pass {overwrite} to start over", "overwrite")


def publish_directory(finished: Path, path: Path, overwrite: bool) -> None:
    """Rename the folder `finished` to `path`; an existing `path` is first moved aside (a temporary that a
    later run cleans if this one is killed), then removed."""
    old = None
    with writing(path):
        if path.exists():
            if not overwrite and any(path.iterdir()):
                raise UserError(f"{path} appeared while it was being built; pass {{overwrite}} to replace it", "overwrite")
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(finished, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_HELD: dict[str, list] = {}  # lock file -> [fd, depth]: locks this process holds (an OutputLock is reentrant)


class OutputLock:
    """An exclusive lock on an output for one process (`.<name>.lock` beside it, via `flock`); reentrant.

    A second process asking for the same output gets a UserError naming the pid that holds it. The lock
    file is removed on release; the lock itself dies with its process. A lock file that cannot be created or
    locked, and a failure to write inside the locked block, is one `UserError` (see `unwritable`).
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self._key = os.path.abspath(self.lock_path)

    def __enter__(self) -> "OutputLock":
        held = _HELD.get(self._key)
        if held is not None:
            held[1] += 1
            return self
        _make_parent(self.path)
        with writing(self.path):
            fd = self._lock()
            try:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode("ascii"))
            except OSError:
                self._release(fd)
                raise
        _HELD[self._key] = [fd, 1]
        return self

    def _lock(self) -> int:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise UserError(f"{self.path} is being written by another process (pid {holder}); "
                                "wait for it to finish") from None
            except OSError:
                self._release(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)  # the previous holder removed the file we locked: try again on the new one

    def _release(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)
        os.close(fd)

    def __exit__(self, kind, error, traceback) -> None:
        held = _HELD[self._key]
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self._key]
            self._release(held[0])
        if error is None or self._about_an_input(error):
            return
        failure = unwritable(error, self.path)
        if failure is not None:
            raise failure from None

    def _about_an_input(self, error: BaseException) -> bool:
        """An OS error naming a file outside the output's folder is about an input, not about writing."""
        name = getattr(error, "filename", None)
        if not isinstance(name, (str, bytes, os.PathLike)):
            return False
        return not Path(os.path.abspath(os.fsdecode(name))).is_relative_to(self.path.absolute().parent)
