"""What this user already verified of dense index files: a record in the user's cache, never in the index.

Opening a dense index hashes its `index` and `docid` files and compares them with the checksums in its
`meta.json`; for a large index that takes minutes, so a file that matched is remembered in
`<cache>/verified/` (`convdr_pyserini.files.home()`), one small JSON file per index file, named after its real
path. The record holds what identifies that very file: real path, device, inode, size, modification and change
times, and the checksum it matched. A file that was changed, moved or replaced no longer matches its record and
is hashed again, so the guarantee stays: a corrupt index is refused before it is searched.

Readers never write into the index folder (it may be read-only or shared by a group) and take no lock: readers
opening a never-verified index at the same time each hash it once and write the same record atomically. Where
the cache cannot be written, a verified file is remembered for the process only, and the reason is logged once
(at debug level, `-v`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from .. import files

logger = logging.getLogger(__name__)
FOLDER = "verified"

_remembered: set[str] = set()  # identities verified by this process (JSON text)
_told_why_forgotten = False


def identity(path: Path, checksum: str) -> dict:
    """What identifies the file `path` now, with the checksum it must have."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    return {"path": real, "device": stat.st_dev, "inode": stat.st_ino, "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "checksum": checksum}


def record_file(real_path: str) -> Path:
    """The cache file holding the record of the file at `real_path`."""
    return files.home() / FOLDER / (hashlib.sha256(os.fsencode(real_path)).hexdigest()[:32] + ".json")


def is_verified(file: dict) -> bool:
    """Whether the file `identity` describes was verified before (by this process, or recorded in the cache)."""
    text = json.dumps(file, sort_keys=True)
    if text in _remembered:
        return True
    try:
        recorded = record_file(file["path"]).read_text(encoding="utf-8")
    except (OSError, RuntimeError, UnicodeDecodeError):  # RuntimeError: no home folder to find the cache in
        return False
    if recorded != text:
        return False
    _remembered.add(text)
    return True


def remember(file: dict) -> None:
    """Record that the file `identity` describes matched its checksum (in memory where the cache cannot be written)."""
    text = json.dumps(file, sort_keys=True)
    _remembered.add(text)
    try:
        target = record_file(file["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except (OSError, RuntimeError) as error:
        _tell_why_forgotten(error)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _tell_why_forgotten(error)


def _tell_why_forgotten(error: Exception) -> None:
    global _told_why_forgotten
    if _told_why_forgotten:
        return
    _told_why_forgotten = True
    reason = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) and error.strerror else str(error)
    logger.debug("cannot record verified index files in the cache (%s); this process remembers them, "
                 "the next one verifies them again", reason)
