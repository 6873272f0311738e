"""Errors that the command-line tools report as `error:` lines on stderr with exit code 2.

A message may name the parameters it is about as `{name}` fields, listed after the message:
`UserError("{k1} -1 is out of range", "k1")` reads `k1 -1 is out of range` from Python (the API's parameter), and a
command line reports it with its flag (`--k1 -1 is out of range`) through `render`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator, Mapping


def _named(text: str, parameters: tuple[str, ...], names: Mapping[str, str]) -> str:
    for parameter in parameters:
        text = text.replace("{" + parameter + "}", names.get(parameter, parameter))
    return text


class UserError(Exception):
    """Bad input from the user: a missing or malformed file, an unknown id, a bad option or parameter value."""

    def __init__(self, message: str = "", *parameters: str):
        self.template, self.parameters = message, parameters
        super().__init__(_named(message, parameters, {}))

    def render(self, names: Mapping[str, str]) -> list[str]:
        """The message's lines, each parameter named as `names` says (a command line: its flags)."""
        return [_named(self.template, self.parameters, names)]

    def __reduce__(self):  # pickled whole (template and parameters), e.g. back from a Ray worker
        return type(self), (self.template, *self.parameters)


class InvalidInput(UserError):
    """Several problems in the inputs, each reported on its own line (`problems`)."""

    def __init__(self, problems: list[str], *parameters: str):
        self.templates = list(problems)
        self.problems = [_named(problem, parameters, {}) for problem in problems]
        super().__init__("\n".join(self.templates), *parameters)

    def render(self, names: Mapping[str, str]) -> list[str]:
        return [_named(problem, self.parameters, names) for problem in self.templates]

    def __reduce__(self):
        return type(self), (self.templates, *self.parameters)


# errors that mean "this place cannot be written" rather than a bug
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM,
                 errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.ETXTBSY, errno.EMLINK,
                 errno.ENAMETOOLONG}
# the same, as libraries that wrap the OS error in their own exception spell it (faiss, Lucene)
_WRITE_ERROR_TEXTS = [os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)]


def _disk_full(path: str | os.PathLike) -> bool:
    """Whether the file system that `path` would be written to has (almost) no free space left."""
    place = Path(path).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        return shutil.disk_usage(place).free < 1 << 20
    except OSError:
        return False


def _about_the_output(error: OSError, path: str | os.PathLike) -> str | None:
    """The file an OS error names when it is `path`, a folder above it, something inside it, or one of its
    companions beside it (`.<name>.lock`, `.<name>.<pid>.<random>.tmp`, `.<name>.partial`, and what lies in
    them); None for an error about anything else (an input)."""
    output = Path(os.path.abspath(path))
    for name in (error.filename, error.filename2):
        if not isinstance(name, (str, bytes, os.PathLike)):
            continue
        named = Path(os.path.abspath(os.fsdecode(name)))
        if output.is_relative_to(named) or any(
                place == output or place.parent == output.parent and place.name.startswith(f".{output.name}.")
                for place in (named, *named.parents)):
            return str(named)
    return None


def unwritable(error: BaseException, path: str | os.PathLike) -> UserError | None:
    """The one-line error for a failure that means `path` cannot be written, or None for any other failure: an
    OS error about the output, its folder, lock or temporary (a parent that is a file, a pseudo-file system such
    as /proc, a name too long, a lock that is a folder...) or one that means "cannot write" wherever it arose
    (read-only file system, permission denied, no locks, full disk or quota)."""
    if isinstance(error, OSError):
        named = _about_the_output(error, path)
        if error.errno not in _WRITE_ERRORS and named is None:
            return None
        reason = error.strerror or os.strerror(error.errno or 0) or type(error).__name__
        if named is not None and error.errno not in _WRITE_ERRORS and named != os.path.abspath(path):
            reason = f"{reason}: {named}"
    elif isinstance(error, Exception) and not isinstance(error, UserError):
        reason = next((text for text in _WRITE_ERROR_TEXTS if text in str(error)), None)
        if reason is None and _disk_full(path):  # e.g. torch.save: "PytorchStreamWriter failed writing file"
            reason = os.strerror(errno.ENOSPC)
        if reason is None:
            return None
    else:
        return None
    return UserError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Steps that write `path`: a failure that means it cannot be written becomes one `UserError`."""
    try:
        yield
    except Exception as error:
        failure = unwritable(error, path)
        if failure is None:
            raise
        raise failure from None
