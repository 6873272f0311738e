"""Lucene indexes for BM25 (and RM3), built by Anserini (`build_lucene_index`, `index lucene`).

Documents go through Anserini's `SimpleIndexer` (the engine of `IndexCollection`) in batches, with the
default Pyserini/Anserini analyzer (Porter stemming, Lucene's English stopwords); positions, document
vectors (RM3 needs them) and the raw JSON are stored. `meta.json` records what was built and how.

    from convdr_pyserini.index import build_lucene_index
    build_lucene_index("convdr/cast20/mini", "indexes/cast20-mini.lucene")
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path

from .._progress import progress_bar
from ..errors import UserError
from ..io.atomic import OutputLock, atomic_directory, prepare_output
from ..io.collections import collection_files, count_documents, read_documents
from ..io.passages import collection_fields

logger = logging.getLogger(__name__)
ANALYZER = "Anserini DefaultEnglishAnalyzer (Porter stemmer, Lucene English stopwords)"
STORED = ["positions", "docvectors", "raw"]
BATCH = 2000


def default_threads() -> int:
    return min(4, os.cpu_count() or 1)


def build_lucene_index(collection: str | os.PathLike, output: str | os.PathLike, threads: int | None = None,
                       overwrite: bool = False, command: str | None = None) -> dict:
    """Index a JsonCollection folder (or the one of an ir_datasets id) into `output`; returns its meta."""
    threads = threads or default_threads()
    folder = collection_folder(collection)
    files = collection_files(folder)
    output = prepare_output(output, [folder, *files], overwrite, directory=True)
    started = time.time()
    with OutputLock(output), atomic_directory(output, inputs=[folder, *files], overwrite=overwrite) as tmp:
        count = build_index(files, tmp, threads)
        meta = {
            "kind": "lucene",
            "collection": str(collection),
            "collection_dir": str(folder),
            "fields": list(collection_fields(folder)),
            "documents": count,
            "analyzer": ANALYZER,
            "stored": STORED,
            "anserini_version": _anserini_version(),
            "command": command or f"build_lucene_index({str(collection)!r}, {str(output)!r}, threads={threads})",
            "threads": threads,
            "seconds": round(time.time() - started, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("indexed %s documents from %s into %s in %.1f s", f"{count:,}", collection, output, meta["seconds"])
    return meta


def collection_folder(spec: str | os.PathLike) -> Path:
    """The JsonCollection folder for `spec`: an existing folder, else an ir_datasets id prepared in the cache."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"{{collection}} {spec} is a file; give a JsonCollection folder or an ir_datasets id",
                        "collection")
    from ..datasets import collection_jsonl

    return collection_jsonl(str(spec))


def build_index(files: list[Path], index_dir: Path, threads: int) -> int:
    """Index the JsonCollection `files` into `index_dir` with Anserini; returns the number of documents."""
    from .. import _java

    quiet_anserini_logs()
    indexer = _java.autoclass("io.anserini.index.SimpleIndexer")([
        "-index", str(index_dir), "-collection", "JsonCollection", "-input", "",
        "-threads", str(threads), "-storePositions", "-storeDocvectors", "-storeRaw",
    ])
    try:
        with progress_bar(total=count_documents(files), unit="doc", desc="indexing") as bar:
            batch: list[str] = []
            for document in read_documents(files):
                batch.append(json.dumps({"id": document.docid, "contents": document.contents}, ensure_ascii=False))
                if len(batch) == BATCH:
                    indexer.addRawDocuments(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                indexer.addRawDocuments(batch)
                bar.update(len(batch))
    finally:
        indexer.close()  # Anserini logs a failed commit (e.g. a full disk) rather than raising it
    try:
        return document_count(index_dir)
    except UserError:
        if shutil.disk_usage(index_dir).free < sum(path.stat().st_size for path in files):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(index_dir)) from None  # one error line
        raise


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


def index_meta(index_dir: str | os.PathLike) -> dict:
    """An index folder's `meta.json` (written by `index lucene` or `index dense`), or {} for one built elsewhere."""
    from ..io.text import read_json

    path = Path(index_dir) / "meta.json"
    if not path.is_file():
        return {}
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object; rebuild the index")
    return meta


def _anserini_version() -> str:
    from .. import _java

    return _java.anserini_version()
