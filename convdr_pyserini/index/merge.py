"""`python -m convdr_pyserini.index merge`: join the pieces of a sharded dense build into one index.

Pieces hold whole chunks assigned round-robin (see `index dense --shard`), so interleaving them chunk by
chunk restores collection order and gives the same bytes as a single, unsharded build. Vectors are
copied one chunk at a time; memory does not grow with the collection.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .._cli import atomic_directory
from ..errors import UserError
from . import faiss_io
from .._cli import positive_int
from .dense import _shard_total

# Settings every piece of one build shares (from meta.json).
SHARED_SETTINGS = ("collection", "dimension", "max_length", "batch_size", "chunk_size", "fp16", "encoder_card")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `merge` on the `python -m convdr_pyserini.index` parser."""
    parser = subparsers.add_parser(
        "merge",
        help="join the shard pieces of a dense build into one index",
        description="Join the pieces written by `index dense --shard I/N` (or torchrun) into one faiss index folder.",
    )
    parser.add_argument("--input", nargs="+", required=True,
                        help="piece folders, or the folder holding the shard-I-of-N pieces")
    parser.add_argument("--output", required=True, help="merged index folder to create")
    parser.add_argument("--hnsw", nargs=2, type=positive_int, metavar=("M", "EF"), default=None,
                        help="write an HNSW index (M links, efConstruction EF) instead of a flat one")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Merge the pieces named by the parsed arguments."""
    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise UserError(f"{output} already exists and is not empty; pass --overwrite to replace it")
    pieces = ordered_pieces([piece for path in args.input for piece in faiss_io.shard_dirs(Path(path))])
    first = pieces[0].meta
    with atomic_directory(output) as folder:
        total = interleave(pieces, folder, first["chunk_size"])
        index_type = "flat"
        if args.hnsw:
            index_type = "hnsw"
            hnsw_file = folder / ".index.hnsw"
            faiss_io.build_hnsw(faiss_io.open_index_dir(folder), hnsw_file, *args.hnsw)
            os.replace(hnsw_file, folder / faiss_io.INDEX)
        meta = {key: value for key, value in first.items() if key not in ("checksums", "encode_seconds", "device")}
        meta.update(
            index_type=index_type,
            hnsw={"M": args.hnsw[0], "ef_construction": args.hnsw[1]} if args.hnsw else None,
            count=total,
            shard=None,
            merged_from=[{"path": str(piece.path), "checksums": piece.meta.get("checksums")} for piece in pieces],
            build_command=" ".join(["python -m convdr_pyserini.index merge --input", *map(str, args.input),
                                    "--output", str(output)]
                                   + (["--hnsw", *map(str, args.hnsw)] if args.hnsw else [])),
        )
        faiss_io.write_meta(folder, meta)
    print(f"wrote {output}: {total} passages from {len(pieces)} pieces, {index_type} index", file=sys.stderr)
    return 0


def ordered_pieces(paths: list[Path]) -> list[faiss_io.DenseIndexDir]:
    """Open the pieces, check they form one complete build, and return them in shard order."""
    pieces = [faiss_io.open_index_dir(path) for path in paths]
    for piece in pieces:
        if not piece.flat or not piece.meta.get("shard"):
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
        expected = _shard_total(total, chunk, (number, shards))
        if piece.count != expected:
            raise UserError(
                f"{piece.path} has {piece.count} passages, expected {expected} of {total}; is a piece incomplete?"
            )
    return ordered


def interleave(pieces: list[faiss_io.DenseIndexDir], folder: Path, chunk_size: int) -> int:
    """Write the pieces' chunks round-robin into `folder` (flat index + docid); returns the row count."""
    from tqdm import tqdm

    dim = pieces[0].dim
    writer = faiss_io.FlatWriter(folder / faiss_io.INDEX, dim)
    vector_files = [open(piece.path / faiss_io.INDEX, "rb") for piece in pieces]
    docid_files = [open(piece.path / faiss_io.DOCID, "rb") for piece in pieces]
    remaining = [piece.count for piece in pieces]
    for handle in vector_files:
        handle.seek(faiss_io.FLAT_DATA_OFFSET)
    total = sum(remaining)
    try:
        with open(folder / faiss_io.DOCID, "wb") as docids, tqdm(total=total, unit="passage", unit_scale=True,
                                                                  desc="merging") as bar:
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
