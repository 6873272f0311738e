"""Write passages as Pyserini JsonCollection shards: streaming, resumable, and atomic as a whole.

The folder is built under `.<name>.partial/` beside the output. Each shard is written to a temporary
file and renamed when full; `progress.json` then records where the input stands, so an interrupted run
resumes after the last complete shard by seeking in the input files. When every input is read, the
summary `collection.yaml` is written and the folder renamed to the output path. Bad input removes the
partial folder; an interruption keeps it for the next run of the same command.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .._progress import progress_bar
from ..errors import UserError
from ..io.atomic import OutputLock, check_not_input, publish_directory
from ..io.passages import COLLECTION_SUMMARY, TEXT_FIELDS
from ..io.text import read_yaml
from .sources import Position, Record

logger = logging.getLogger(__name__)
FORMAT_VERSION = 2  # 2: ConvDR's passage text (whitespace runs kept) and the `fields` of the contents
SUMMARY = COLLECTION_SUMMARY
PROGRESS = "progress.json"
DEFAULT_SHARD_SIZE = 1_000_000
_BAR_EVERY = 4096


@dataclass(frozen=True)
class Source:
    """One input file, how to read it, the doc ids to leave out and, for documents, how to cut them into passages.

    `split(record)` gives the `(id, contents)` of each passage of a record; without it a record is one passage.
    """

    kind: str
    path: Path
    read: Callable[[Path, Position], Iterator[Record]]
    exclude: frozenset[str] = field(default=frozenset(), repr=False)
    split: Callable[[Record], Iterable[tuple[str, str]]] | None = None

    def passages(self, record: Record) -> Iterable[tuple[str, str]]:
        return [(record.doc_id, record.contents)] if self.split is None else self.split(record)


def shard_name(index: int) -> str:
    return f"docs-{index:05d}.jsonl"


def _signature(sources: list[Source], extra_inputs: dict[str, Path], shard_size: int,
               fields: tuple[str, ...]) -> dict:
    """What identifies a build: the inputs (name and size) and the options; equal signatures, equal output."""
    inputs = {source.kind: source.path for source in sources} | extra_inputs
    return {
        "format_version": FORMAT_VERSION,
        "shard_size": shard_size,
        "fields": list(fields),
        "inputs": {kind: {"file": path.name, "bytes": path.stat().st_size} for kind, path in inputs.items()},
    }


def _fingerprint(sources: list[Source], extra_inputs: dict[str, Path], shard_size: int,
                 fields: tuple[str, ...]) -> dict:
    """The signature plus full paths and modification times: a partial build resumes only if it matches."""
    inputs = {source.kind: source.path for source in sources} | extra_inputs
    stamps = {kind: [str(path.resolve()), path.stat().st_mtime_ns] for kind, path in inputs.items()}
    return _signature(sources, extra_inputs, shard_size, fields) | {"stamps": stamps}


def _read_summary(folder: Path) -> dict | None:
    path = folder / SUMMARY
    if not path.is_file():
        return None
    summary = read_yaml(path)
    return summary if isinstance(summary, dict) else None


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _check_inputs(sources: list[Source], extra_inputs: dict[str, Path]) -> None:
    for path in [source.path for source in sources] + list(extra_inputs.values()):
        if not path.is_file():
            raise UserError(f"{path} does not exist or is not a file")


def _prepare_staging(staging: Path, fingerprint: dict) -> dict:
    """The progress of a matching partial build in `staging`, or a fresh empty staging folder."""
    progress_path = staging / PROGRESS
    if progress_path.is_file():
        try:
            progress = json.loads(progress_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):  # a corrupt progress file: start over
            progress = {}
        if isinstance(progress, dict) and progress.get("fingerprint") == fingerprint:
            for leftover in staging.iterdir():
                if leftover.name.startswith(".") or (
                    leftover.suffix == ".jsonl" and leftover.name >= shard_name(progress["shards"])
                ):
                    leftover.unlink()
            return progress
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return {"fingerprint": fingerprint, "shards": 0, "source": 0, "position": list(Position()), "counts": {}}


def build_collection(
    sources: list[Source],
    output: str | os.PathLike,
    shard_size: int = DEFAULT_SHARD_SIZE,
    extra_inputs: dict[str, Path] | None = None,
    description: str = "passages",
    fields: tuple[str, ...] = TEXT_FIELDS,
    overwrite: bool = False,
) -> dict:
    """Write the records of `sources`, in order, as JsonCollection shards of `shard_size` docs in `output`.

    `extra_inputs` names further files the build depends on (e.g. the duplicate list), for the summary;
    `fields` says how each `contents` is laid out (`convdr_pyserini.io.passages`). An output already built
    from the same inputs is left as it is; one built from other inputs is replaced only with `overwrite`.
    Returns the summary (counts, inputs, fields).
    """
    if shard_size < 1:
        raise UserError(f"{{shard_size}} must be at least 1, got {shard_size}", "shard_size")
    output = Path(output)
    extra_inputs = extra_inputs or {}
    _check_inputs(sources, extra_inputs)
    check_not_input(output, [source.path for source in sources] + list(extra_inputs.values()))
    signature = _signature(sources, extra_inputs, shard_size, fields)
    if output.exists():
        existing = _read_summary(output) if output.is_dir() else None
        if existing is None and (not output.is_dir() or any(output.iterdir())):
            raise UserError(f"{output} exists and is not a collection written by this tool; choose another {{output}}",
                            "output")
        if existing is not None and existing.get("signature") == signature:
            logger.info("%s already holds this collection (%s docs)", output, f"{existing['counts']['documents']:,}")
            return existing
        if existing is not None and not overwrite:
            raise UserError(f"{output} holds a collection built from other inputs or options; "
                            "pass {overwrite} to replace it", "overwrite")
    staging = output.parent / f".{output.name}.partial"
    with OutputLock(output):
        try:
            progress = _prepare_staging(staging, _fingerprint(sources, extra_inputs, shard_size, fields))
        except OSError as error:
            raise UserError(f"cannot write {output}: {error.strerror}") from None
        if progress["shards"]:
            logger.info("resuming %s after %d complete shards", staging, progress["shards"])
        total_bytes = sum(source.path.stat().st_size for source in sources)
        done_bytes = sum(source.path.stat().st_size for source in sources[: progress["source"]]) + progress["position"][0]
        bar = progress_bar(total=total_bytes, initial=done_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=f"writing {description}", mininterval=1.0)
        try:
            with bar:
                summary = _write_shards(sources, staging, shard_size, progress, bar, signature)
        except UserError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except OSError as error:
            raise UserError(f"cannot write {output}: {error.strerror}") from None
        except BaseException:
            logger.warning("stopped; %d complete shards kept in %s: run the same command again to resume",
                           progress["shards"], staging)
            raise
        publish_directory(staging, output, overwrite=True)
    return summary


def _write_shards(sources: list[Source], staging: Path, shard_size: int, progress: dict, bar, signature: dict) -> dict:
    counts = {"documents": 0, "excluded": {}, "read": {}} | progress["counts"]
    shard, in_shard, handle, tmp = progress["shards"], 0, None, None

    def close_shard(source_index: int, position: Position) -> None:
        nonlocal shard, in_shard, handle
        handle.close()
        os.replace(tmp, staging / shard_name(shard))
        shard, in_shard, handle = shard + 1, 0, None
        progress.update(shards=shard, source=source_index, position=list(position), counts=counts)
        _write_json(staging / PROGRESS, progress)

    for source_index in range(progress["source"], len(sources)):
        source = sources[source_index]
        start = Position(*progress["position"]) if source_index == progress["source"] else Position()
        last_offset, record_start, skip = start.offset, start._replace(part=0), start.part
        read = counts["read"].get(source.kind, 0)
        excluded = counts["excluded"].get(source.kind, 0)
        for number, record in enumerate(source.read(source.path, record_start), 1):
            if not skip:
                read += 1
            if record.doc_id in source.exclude:
                excluded += 1
                parts = []
            else:
                parts = list(source.passages(record))
            for part, (doc_id, contents) in enumerate(parts[skip:], skip + 1):
                if handle is None:
                    tmp = staging / f".{shard_name(shard)}.tmp"
                    handle = open(tmp, "w", encoding="utf-8")
                handle.write(json.dumps({"id": doc_id, "contents": contents}, ensure_ascii=False) + "\n")
                counts["documents"] += 1
                in_shard += 1
                if in_shard == shard_size:
                    counts["read"][source.kind], counts["excluded"][source.kind] = read, excluded
                    # after the last passage of a record, resume with the next record; else within this one
                    close_shard(source_index, record.end if part == len(parts) else record_start._replace(part=part))
            skip, record_start = 0, record.end
            if number % _BAR_EVERY == 0 or handle is None:
                bar.update(record.end.offset - last_offset)
                last_offset = record.end.offset
        counts["read"][source.kind], counts["excluded"][source.kind] = read, excluded
        bar.update(source.path.stat().st_size - last_offset)
    if handle is not None:
        close_shard(len(sources), Position())
    counts["shards"] = shard
    summary = {"signature": signature, "counts": counts, "fields": signature["fields"]}
    _write_summary(staging / SUMMARY, summary)
    (staging / PROGRESS).unlink()
    return summary


def _write_summary(path: Path, summary: dict) -> None:
    import yaml

    text = "# written by python -m convdr_pyserini.collection; the *.jsonl files are a Pyserini JsonCollection\n"
    path.write_text(text + yaml.safe_dump(summary, sort_keys=True), encoding="utf-8")
