"""Resolve upstream data files: explicit path, then mirror, then cache, then checksummed download.

Every file is declared once in `data/files.yaml` (name, url, sha256, size). The name is the file's
path under a mirror folder laid out like the project's shared data folder, e.g. `cast-20/2020qrels.txt`.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import UserError, writing

MIRROR_ENV = "CONVDR_PYSERINI_MIRROR"
HOME_ENV = "CONVDR_PYSERINI_HOME"
OFFLINE_ENV = "CONVDR_PYSERINI_OFFLINE"


@dataclass(frozen=True)
class DataFile:
    """One upstream file as declared in the manifest."""

    name: str
    url: str
    sha256: str | None = None
    size: int | None = None
    license: str | None = None
    user_supplied: bool = False


@functools.lru_cache(maxsize=1)
def manifest() -> dict[str, DataFile]:
    """All declared files, by name."""
    import yaml

    text = resources.files(__package__).joinpath("data", "files.yaml").read_text(encoding="utf-8")
    return {entry["name"]: DataFile(**entry) for entry in yaml.safe_load(text)["files"]}


def home() -> Path:
    """The cache folder: `$CONVDR_PYSERINI_HOME`, else `convdr_pyserini` in the user's cache folder
    (`$XDG_CACHE_HOME`, default `~/.cache`)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")  # the XDG spec ignores a relative value
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "convdr_pyserini"


def mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path(value: str | os.PathLike) -> Path | None:
    """`value` as an existing path, or the local copy of the declared data file it names; None if neither."""
    path = Path(value)
    if path.exists():
        return path
    if str(value) in manifest():
        return resolve(str(value))
    return None


def declared(name: str) -> DataFile:
    try:
        return manifest()[name]
    except KeyError:
        raise UserError(f"{name} is not declared in convdr_pyserini/data/files.yaml") from None


def resolve(name: str, path: str | os.PathLike | None = None) -> Path:
    """Local path of the declared file `name`, trying: `path`, mirror, cache, download.

    A file found in the mirror or cache whose checksum differs from the manifest is refused.
    """
    entry = declared(name)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path} (given for {name}) does not exist")
        return path
    candidates = [root / name for root in (mirror(), home() / "data") if root is not None]
    for candidate in candidates:
        if candidate.is_file():
            _verify(candidate, entry)
            return candidate
    if entry.user_supplied:
        raise UserError(
            f"{name} not found: obtain it from {entry.url} and put it at {candidates[-1]}"
            + (f" or {candidates[0]}" if len(candidates) > 1 else "")
        )
    return download(entry, home() / "data" / name)


def _verify(path: Path, entry: DataFile) -> None:
    if entry.sha256 is None:
        return
    if entry.size is not None and path.stat().st_size != entry.size:
        raise UserError(
            f"{path} has {path.stat().st_size} bytes, expected {entry.size} for {entry.name} "
            f"(sha256 {entry.sha256}); refusing to use it, replace it with the file from {entry.url}"
        )
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise UserError(
            f"{path} has sha256 {actual}, expected {entry.sha256} for {entry.name}; "
            f"refusing to use it, replace it with the file from {entry.url}"
        )


def download(entry: DataFile, target: Path) -> Path:
    """Download `entry` to `target`, verifying its sha256, renaming into place only when it matches."""
    import urllib.request  # only here: it takes longer to import than most commands take to run

    where = f"put the file (sha256 {entry.sha256}) at {target} or under ${MIRROR_ENV}/{entry.name}"
    if os.environ.get(OFFLINE_ENV):
        raise UserError(f"{entry.name} not found offline; download {entry.url} and {where}")
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = sha256_of(tmp)
        if entry.sha256 and actual != entry.sha256:
            raise UserError(
                f"download of {entry.name} from {entry.url} has sha256 {actual}, expected {entry.sha256}; not used"
            )
        with writing(target):
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
    except OSError as error:  # urllib.error.URLError is one
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise UserError(f"{entry.name} not found and download of {entry.url} failed ({reason}); {where}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
