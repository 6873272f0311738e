"""Dense index folders in Pyserini's layout: a faiss file `index`, a `docid` file and our `meta.json`.

A flat inner-product index is written by streaming its vectors straight into faiss's own on-disk
format (header, then float32 rows), so neither the builder nor the block searcher ever holds the
whole matrix in memory, and `faiss.read_index` (hence Pyserini's `FaissSearcher`) reads the file as is.

Opening an index verifies its files against the sha256 checksums in `meta.json`. A verified file is recorded
in the user's cache (`verified.py`), never in the index folder, so that repeated searches of a large index do
not hash it again; a file that changed, moved or was replaced is hashed (and refused if it differs) the next time.
"""
from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..files import sha256_of
from ..io.text import read_json
from . import verified

logger = logging.getLogger(__name__)
META = "meta.json"
INDEX = "index"
DOCID = "docid"
FORMAT = "convdr_pyserini.dense/1"

# faiss/impl/index_write.cpp: fourcc, then write_index_header (d:int32, ntotal:int64, two dummy int64
# = 1 << 20, is_trained:bool, metric_type:int32), then the codes as (size:uint64, float32[size]).
_FLAT_IP = b"IxFI"
_HEADER = struct.Struct("<4siqqq?i")
_SIZE = struct.Struct("<Q")
_DUMMY = 1 << 20
_METRIC_INNER_PRODUCT = 0
FLAT_DATA_OFFSET = _HEADER.size + _SIZE.size


def flat_header(dim: int, count: int) -> bytes:
    """The bytes faiss writes before the vectors of an `IndexFlatIP` holding `count` rows."""
    return _HEADER.pack(_FLAT_IP, dim, count, _DUMMY, _DUMMY, True, _METRIC_INNER_PRODUCT) + _SIZE.pack(count * dim)


def read_flat_header(path: Path) -> tuple[int, int] | None:
    """(dim, count) of a flat inner-product faiss file, or None for any other faiss index type."""
    with open(path, "rb") as handle:
        head = handle.read(FLAT_DATA_OFFSET)
    if len(head) < FLAT_DATA_OFFSET or head[:4] != _FLAT_IP:
        return None
    _, dim, count, _, _, _, metric = _HEADER.unpack(head[: _HEADER.size])
    (size,) = _SIZE.unpack(head[_HEADER.size:])
    if metric != _METRIC_INNER_PRODUCT or size != dim * count:
        return None
    expected = FLAT_DATA_OFFSET + 4 * size
    if path.stat().st_size != expected:
        raise UserError(f"{path}: truncated or corrupt flat index ({path.stat().st_size} bytes, expected {expected})")
    return dim, count


class FlatWriter:
    """Append float32 rows to a flat faiss file; `finish()` writes the final row count into the header.

    Opening an existing file resumes it: rows past `keep_rows` (written before a crash but never
    recorded as done) are cut off.
    """

    def __init__(self, path: Path, dim: int, keep_rows: int = 0):
        self.path, self.dim, self.rows = path, dim, keep_rows
        if keep_rows == 0:
            path.write_bytes(flat_header(dim, 0))
        self._handle = open(path, "r+b")
        self._handle.truncate(FLAT_DATA_OFFSET + 4 * dim * keep_rows)
        self._handle.seek(0, os.SEEK_END)

    def append(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {vectors.shape}")
        self._handle.write(vectors.tobytes())
        self.rows += len(vectors)

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def finish(self) -> None:
        self._handle.seek(0)
        self._handle.write(flat_header(self.dim, self.rows))
        self.sync()
        self._handle.close()

    def close(self) -> None:
        self._handle.close()


_UNRANKED = np.empty(0, dtype=np.int32)


class RankedDocids:
    """Docid ranks for a table that gives the `padded` docids of its keys (`DocidTable`, `JoinedDocids`)."""

    _ranks: np.ndarray | None = _UNRANKED

    def ranks(self, build: bool, chunk: int = 1 << 20) -> np.ndarray | None:
        """Each key's position in docid order (equal docids share one), so that ties are broken by comparing
        integers: computed on the first call with `build` (one sort of all the docids); None before, or when a
        docid holds a NUL."""
        if self._ranks is _UNRANKED and build:
            count = len(self)
            parts = [self.padded(np.arange(start, min(start + chunk, count))) for start in range(0, count, chunk)]
            self._ranks = None if any(part is None for part in parts) else _sorted_positions(parts)
        return None if self._ranks is _UNRANKED else self._ranks


def _sorted_positions(parts: list[np.ndarray]) -> np.ndarray:
    """Dense ranks of NUL-padded byte rows in bytewise order (the order of the strings they encode)."""
    width = max((part.shape[1] for part in parts), default=0)
    if width == 0:
        return np.zeros(sum(len(part) for part in parts), dtype=np.int32)
    names = np.concatenate([np.pad(part, ((0, 0), (0, width - part.shape[1]))) for part in parts])
    ranks = np.unique(names.view(f"S{width}").ravel(), return_inverse=True)[1].ravel()
    return ranks.astype(np.int32 if len(ranks) < 2**31 else np.int64)  # int32: half the memory


class DocidTable(RankedDocids):
    """The `docid` file as one byte string plus line offsets: far smaller than a list of str."""

    def __init__(self, path: Path):
        self._blob = path.read_bytes()
        if self._blob and not self._blob.endswith(b"\n"):
            self._blob += b"\n"
        ends = np.flatnonzero(np.frombuffer(self._blob, dtype=np.uint8) == 10)
        self._starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) if len(ends) else ends
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    def get(self, rows) -> list[str]:
        """Docids of the given row numbers, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        blob = self._blob
        return [blob[s:e].decode("utf-8").rstrip() for s, e in zip(self._starts[rows].tolist(), self._ends[rows].tolist())]

    def padded(self, rows) -> np.ndarray | None:
        """(len(rows), width) uint8: the UTF-8 bytes `get` decodes (trailing whitespace stripped), then NULs;
        None when one of them holds a NUL."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self._starts[rows], self._ends[rows].copy()
        data = np.frombuffer(self._blob, dtype=np.uint8)
        while len(stops):  # strip trailing ASCII whitespace, as str.rstrip does
            last = data[np.maximum(stops - 1, 0)]
            strip = (stops > starts) & _ASCII_SPACE[last]
            if not strip.any():
                break
            stops[strip] -= 1
        lengths = stops - starts
        unusual = np.flatnonzero((lengths > 0) & (data[np.maximum(stops - 1, 0)] >= 0x80))
        for i in unusual:  # may end in non-ASCII whitespace: let str.rstrip decide
            lengths[i] = len(self.get(rows[i:i + 1])[0].encode("utf-8"))
        width = int(lengths.max(initial=0))
        columns = np.arange(width)
        inside = columns < lengths[:, None]
        text = np.where(inside, data[np.minimum(starts[:, None] + columns, len(data) - 1)], 0).astype(np.uint8)
        return None if (text[inside] == 0).any() else text

_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # what str.isspace accepts below 128


class JoinedDocids(RankedDocids):
    """The docids of several index pieces as one table: key = the piece's first key (`offsets`) + its row."""

    def __init__(self, tables: list[DocidTable], offsets: np.ndarray):
        self.tables, self.offsets = tables, np.asarray(offsets, dtype=np.int64)

    def __len__(self) -> int:
        return sum(len(table) for table in self.tables)

    def _by_piece(self, keys: np.ndarray) -> Iterator[tuple[np.ndarray, DocidTable, np.ndarray]]:
        """(positions in `keys`, table, rows in it) for each piece that `keys` reach."""
        numbers = np.searchsorted(self.offsets, keys, side="right") - 1
        for number in np.unique(numbers):
            where = np.flatnonzero(numbers == number)
            yield where, self.tables[number], keys[where] - self.offsets[number]

    def get(self, keys) -> list[str]:
        keys = np.asarray(keys, dtype=np.int64)
        docids: list[str] = [""] * len(keys)
        for where, table, rows in self._by_piece(keys):
            for position, docid in zip(where.tolist(), table.get(rows)):
                docids[position] = docid
        return docids

    def padded(self, keys) -> np.ndarray | None:
        keys = np.asarray(keys, dtype=np.int64)
        parts = [(where, table.padded(rows)) for where, table, rows in self._by_piece(keys)]
        if any(text is None for _, text in parts):
            return None
        text = np.zeros((len(keys), max((part.shape[1] for _, part in parts), default=0)), dtype=np.uint8)
        for where, part in parts:
            text[where, :part.shape[1]] = part
        return text


@dataclass
class DenseIndexDir:
    """An opened dense index folder (checked: readable faiss file, docid count == vector count)."""

    path: Path
    meta: dict
    dim: int
    count: int
    flat: bool
    docids: DocidTable
    verified: bool = False

    def vector_blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 block) of a flat index, read `block_rows` rows at a time."""
        if not self.flat:
            raise ValueError("vector_blocks needs a flat index")
        with open(self.path / INDEX, "rb") as handle:
            for start in range(0, self.count, block_rows):
                rows = min(block_rows, self.count - start)
                handle.seek(FLAT_DATA_OFFSET + 4 * self.dim * start)
                block = np.fromfile(handle, dtype=np.float32, count=rows * self.dim)
                yield start, block.reshape(rows, self.dim)

    def read_faiss(self):
        """The whole faiss index in memory (needed for HNSW and other non-flat types)."""
        import faiss

        return faiss.read_index(str(self.path / INDEX))


def open_index_dir(path: str | os.PathLike, verify: bool = True) -> DenseIndexDir:
    """Open and validate a dense index folder (checksums included, unless `verify` is False); bad folders
    raise a one-line `UserError`."""
    path = Path(path)
    index_file, docid_file = path / INDEX, path / DOCID
    for needed in (index_file, docid_file):
        if not needed.is_file():
            raise UserError(f"{path} is not a dense index: missing {needed.name} file")
    meta = read_meta(path)
    verified = verify_checksums(path, meta) if verify else False
    header = read_flat_header(index_file)
    if header is not None:
        dim, count = header
    else:
        import faiss

        try:
            index = faiss.read_index(str(index_file))
        except RuntimeError as error:
            raise UserError(f"{index_file}: not a readable faiss index ({str(error).splitlines()[0]})") from None
        dim, count = index.d, index.ntotal
        del index
    docids = DocidTable(docid_file)
    if len(docids) != count:
        raise UserError(f"{path}: docid file has {len(docids)} ids but the faiss index has {count} vectors")
    return DenseIndexDir(path, meta, dim, count, header is not None, docids, verified)


def verify_checksums(path: Path, meta: dict) -> bool:
    """Check `index` and `docid` against the sha256 in meta.json; False when meta.json records none.

    A file recorded as verified (same real path, inode, size and times; see `verified`) is not hashed again.
    """
    checksums = meta.get("checksums")
    if not isinstance(checksums, dict):
        logger.debug("%s has no checksums in meta.json (not built by convdr_pyserini); not verified", path)
        return False
    for name in (INDEX, DOCID):
        expected = checksums.get(name)
        if not isinstance(expected, str):
            raise UserError(f"{path / META}: no checksum for {name}; rebuild the index")
        file = verified.identity(path / name, expected)  # before hashing: a change meanwhile is seen next time
        if verified.is_verified(file):
            continue
        actual = "sha256:" + sha256_of(path / name)
        if actual != expected:
            raise UserError(f"{path / name} has {actual} but meta.json records {expected}: the index is corrupt or "
                            "was modified; rebuild it (or search it anyway with --no-verify)")
        logger.debug("verified %s against meta.json", path / name)
        verified.remember(file)
    return True


def read_meta(path: Path) -> dict:
    """meta.json of an index folder ({} when absent, e.g. an index built by Pyserini itself)."""
    meta_file = path / META
    if not meta_file.is_file():
        return {}
    meta = read_json(meta_file)
    if not isinstance(meta, dict):
        raise UserError(f"{meta_file}: expected a JSON object")
    return meta


def write_meta(path: Path, meta: dict) -> None:
    """Write meta.json with the checksums of the index and docid files added."""
    meta = dict(meta, checksums={name: "sha256:" + sha256_of(path / name) for name in (INDEX, DOCID)})
    tmp = path / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path / META)


def shard_dirs(path: Path) -> list[Path]:
    """Index folders a path stands for: itself, or the `shard-*` pieces of a sharded build."""
    if (path / INDEX).is_file():
        return [path]
    pieces = sorted(p for p in path.glob("shard-*-of-*") if (p / INDEX).is_file())
    if not pieces:
        raise UserError(f"{path} is not a dense index: no index file and no shard-*-of-* pieces")
    return pieces


def shard_name(shard: int, shards: int) -> str:
    return f"shard-{shard}-of-{shards}"
