"""`python -m convdr_pyserini.index lucene`: a Lucene index for BM25 (and RM3), built by Anserini.

Documents go through Anserini's `SimpleIndexer` (the engine of `IndexCollection`) in batches, with the
default Pyserini/Anserini analyzer (Porter stemming, Lucene's English stopwords); positions, document
vectors (RM3 needs them) and the raw JSON are stored. `meta.json` records what was built and how.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path
from typing import Iterator

from .._cli import atomic_directory, positive_int
from ..errors import UserError

ANALYZER = "Anserini DefaultEnglishAnalyzer (Porter stemmer, Lucene English stopwords)"
STORED = ["positions", "docvectors", "raw"]
BATCH = 2000


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `lucene` on the `python -m convdr_pyserini.index` parser."""
    parser = subparsers.add_parser(
        "lucene",
        help="build a Lucene index (BM25, RM3) with Anserini",
        description="Index a collection with Anserini, storing positions, document vectors and raw text.",
    )
    parser.add_argument("--collection", required=True,
                        help="ir_datasets id (e.g. convdr/cast20/mini) or a JsonCollection folder of *.jsonl files")
    parser.add_argument("--output", required=True, help="index folder to create, e.g. indexes/cast20-mini")
    parser.add_argument("--threads", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="indexing threads (default: min(4, CPUs))")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the index described by the parsed arguments."""
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} already exists; pass --overwrite to replace it")
    folder = collection_folder(args.collection)
    files = json_collection_files(folder)
    started = time.time()
    with atomic_directory(output) as tmp:
        count = build_index(files, tmp, args.threads)
        meta = {
            "kind": "lucene",
            "collection": args.collection,
            "collection_dir": str(folder),
            "documents": count,
            "analyzer": ANALYZER,
            "stored": STORED,
            "anserini_version": _anserini_version(),
            "command": build_command(args),
            "threads": args.threads,
            "seconds": round(time.time() - started, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"indexed {count:,} documents from {args.collection} into {output} in {meta['seconds']:.1f} s")
    return 0


def collection_folder(spec: str) -> Path:
    """The JsonCollection folder for `spec`: an existing folder, else an ir_datasets id prepared in the cache."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"--collection {spec} is a file; give a JsonCollection folder or an ir_datasets id")
    from ..datasets import collection_jsonl

    return collection_jsonl(spec)


def json_collection_files(folder: Path) -> list[Path]:
    """The `*.jsonl`/`*.json` files of a JsonCollection folder, sorted; none is an error."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".json") and p.is_file())
    if not files:
        raise UserError(f"{folder} holds no *.jsonl or *.json files (expected a Pyserini JsonCollection)")
    return files


def read_documents(files: list[Path]) -> Iterator[str]:
    """Each document's JSON line, checked for `id` and `contents`; a bad line is a UserError naming it."""
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise UserError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("id"), str) \
                        or not isinstance(record.get("contents"), str):
                    raise UserError(f"{path}:{number}: expected an object with string fields 'id' and 'contents'")
                yield line.rstrip("\n")


def _count_lines(files: list[Path]) -> int:
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return total


def build_index(files: list[Path], index_dir: Path, threads: int) -> int:
    """Index the JsonCollection `files` into `index_dir` with Anserini; returns the number of documents."""
    from tqdm import tqdm

    from .. import _java

    quiet_anserini_logs()
    indexer = _java.autoclass("io.anserini.index.SimpleIndexer")([
        "-index", str(index_dir), "-collection", "JsonCollection", "-input", "",
        "-threads", str(threads), "-storePositions", "-storeDocvectors", "-storeRaw",
    ])
    try:
        with tqdm(total=_count_lines(files), unit="doc", desc="indexing", dynamic_ncols=True) as bar:
            batch: list[str] = []
            for line in read_documents(files):
                batch.append(line)
                if len(batch) == BATCH:
                    indexer.addRawDocuments(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                indexer.addRawDocuments(batch)
                bar.update(len(batch))
    finally:
        indexer.close()
    return document_count(index_dir)


def quiet_anserini_logs() -> None:
    """Keep Anserini's INFO log lines off the terminal (warnings and errors still show)."""
    from .. import _java

    level = _java.autoclass("org.apache.logging.log4j.Level")
    _java.autoclass("org.apache.logging.log4j.core.config.Configurator").setLevel("io.anserini", level.WARN)


def document_count(index_dir: Path) -> int:
    """Number of documents in a Lucene index."""
    reader = open_reader(index_dir)
    try:
        return reader.numDocs()
    finally:
        reader.close()


def open_reader(index_dir: str | os.PathLike):
    """A Lucene `DirectoryReader` on `index_dir`; a missing, empty or corrupt index is a UserError."""
    from .. import _java

    path = Path(index_dir)
    if not path.is_dir():
        raise UserError(f"index {path} does not exist (build it with `python -m convdr_pyserini.index lucene`)")
    jnius = _java.jvm()
    directory = _java.autoclass("org.apache.lucene.store.FSDirectory").open(
        _java.autoclass("java.io.File")(str(path.resolve())).toPath())
    reader_class = _java.autoclass("org.apache.lucene.index.DirectoryReader")
    try:
        if not reader_class.indexExists(directory):
            raise UserError(f"{path} is not a Lucene index (no segments file); "
                            "build one with `python -m convdr_pyserini.index lucene`")
        return reader_class.open(directory)
    except jnius.JavaException as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"index {path} cannot be opened, it is corrupt or incomplete: {reason}") from None


def _anserini_version() -> str:
    from .. import _java

    return _java.anserini_version()


def build_command(args: argparse.Namespace) -> str:
    """The command line that rebuilds this index."""
    argv = ["python", "-m", "convdr_pyserini.index", "lucene", "--collection", args.collection,
            "--output", str(args.output), "--threads", str(args.threads)]
    return shlex.join(argv)
