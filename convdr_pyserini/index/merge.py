"""Join the pieces of a sharded dense build into one index (`merge_shards`, `index merge`).

Pieces hold whole chunks assigned round-robin (see `index dense --shard`), so interleaving them chunk by
chunk restores collection order and gives the same bytes as a single, unsharded build. Vectors are
copied one chunk at a time; memory does not grow with the collection.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .._progress import progress_bar
from ..errors import UserError
from ..io.atomic import OutputLock, atomic_directory, prepare_output
from . import faiss_io
from .dense import FLAT, shard_total

logger = logging.getLogger(__name__)
# Settings every piece of one build shares (from meta.json).
SHARED_SETTINGS = ("collection", "dimension", "max_length", "batch_size", "chunk_size", "fp16", "encoder_card")


def merge_shards(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, index_type: str = FLAT,
                 ef_construction: int | None = None, train_sample: int | None = None, seed: int = 0,
                 overwrite: bool = False, command: str | None = None) -> dict:
    """Merge the pieces found in `inputs` (piece folders, or folders holding `shard-I-of-N`) into `output`,
    flat or as the faiss `index_type`; returns the merged index's meta."""
    paths = [Path(path) for path in inputs]
    output = prepare_output(output, paths, overwrite, directory=True)
    pieces = ordered_pieces([piece for path in paths for piece in faiss_io.shard_dirs(path)])
    first = pieces[0].meta
    with OutputLock(output), atomic_directory(output, inputs=paths, overwrite=overwrite) as folder:
        total = interleave(pieces, folder, first["chunk_size"])
        index_info = {"index_type": FLAT}
        if index_type != FLAT:
            from .compress import build_compressed, check_factory

            check_factory(index_type, pieces[0].dim)
            flat = faiss_io.open_index_dir(folder, verify=False)
            index_info = build_compressed(flat, folder / ".index.compressed", index_type, train_sample, seed,
                                          ef_construction=ef_construction)
            os.replace(folder / ".index.compressed", folder / faiss_io.INDEX)
        meta = {key: value for key, value in first.items()
                if key not in ("checksums", "encode_seconds", "device", "hnsw", "compression")}
        meta.update(
            index_info,
            count=total,
            shard=None,
            merged_from=[{"path": str(piece.path), "checksums": piece.meta.get("checksums")} for piece in pieces],
            build_command=command or f"merge_shards({[str(p) for p in paths]!r}, {str(output)!r}, {index_type!r})",
        )
        faiss_io.write_meta(folder, meta)
    logger.info("wrote %s: %d passages from %d pieces, %s index", output, total, len(pieces), meta["index_type"])
    return faiss_io.read_meta(output)


def ordered_pieces(paths: list[Path]) -> list[faiss_io.DenseIndexDir]:
    """Open the pieces, check they form one complete build, and return them in shard order."""
    pieces = [faiss_io.open_index_dir(path) for path in paths]
    for piece in pieces:
        if not piece.flat or not isinstance(piece.meta.get("shard"), dict):
            raise UserError(f"{piece.path} is not a flat shard piece of `index dense --shard` (meta.json has no shard)")
    shards = pieces[0].meta["shard"]["count"]
    for piece in pieces:
        for key in SHARED_SETTINGS + ("shard.count",):
            ours = piece.meta["shard"]["count"] if key == "shard.count" else piece.meta.get(key)
            theirs = shards if key == "shard.count" else pieces[0].meta.get(key)
            if ours != theirs:
                raise UserError(f"{piece.path} and {pieces[0].path} differ in {key}; they are not pieces of one build")
    by_index = {}
    for piece in pieces:
        number = piece.meta["shard"]["index"]
        if number in by_index:
            raise UserError(f"shard {number} given twice: {by_index[number].path} and {piece.path}")
        by_index[number] = piece
    missing = sorted(set(range(shards)) - set(by_index))
    if missing:
        raise UserError(f"missing shard piece(s) {', '.join(map(str, missing))} of {shards}")
    ordered = [by_index[number] for number in range(shards)]
    total = sum(piece.count for piece in ordered)
    chunk = ordered[0].meta["chunk_size"]
    for number, piece in enumerate(ordered):
        expected = shard_total(total, chunk, (number, shards))
        if piece.count != expected:
            raise UserError(
                f"{piece.path} has {piece.count} passages, expected {expected} of {total}; is a piece incomplete?"
            )
    return ordered


def interleave(pieces: list[faiss_io.DenseIndexDir], folder: Path, chunk_size: int) -> int:
    """Write the pieces' chunks round-robin into `folder` (flat index + docid); returns the row count."""
    dim = pieces[0].dim
    writer = faiss_io.FlatWriter(folder / faiss_io.INDEX, dim)
    vector_files = [open(piece.path / faiss_io.INDEX, "rb") for piece in pieces]
    docid_files = [open(piece.path / faiss_io.DOCID, "rb") for piece in pieces]
    remaining = [piece.count for piece in pieces]
    for handle in vector_files:
        handle.seek(faiss_io.FLAT_DATA_OFFSET)
    total = sum(remaining)
    try:
        with open(folder / faiss_io.DOCID, "wb") as docids, progress_bar(total=total, unit="passage",
                                                                          unit_scale=True, desc="merging") as bar:
            chunk = 0
            while any(remaining):
                number = chunk % len(pieces)
                rows = min(chunk_size, remaining[number])
                block = np.fromfile(vector_files[number], dtype=np.float32, count=rows * dim)
                writer.append(block.reshape(rows, dim))
                for _ in range(rows):
                    docids.write(docid_files[number].readline())
                remaining[number] -= rows
                bar.update(rows)
                chunk += 1
        writer.finish()
    finally:
        writer.close()
        for handle in vector_files + docid_files:
            handle.close()
    return total
