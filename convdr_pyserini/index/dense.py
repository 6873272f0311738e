"""Dense (faiss) indexes in Pyserini's layout: a streaming, resumable, shardable builder.

The collection is read in fixed-size chunks of `chunk_size` passages. Inside a chunk, passages are sorted by
length and encoded in batches under `torch.inference_mode`, then written back in collection order, straight
into the faiss file on disk: memory holds one chunk, never the whole collection. After every chunk the build
records how many passages are done (`progress.json` in the hidden `.<name>.partial` folder), so a killed build
rerun with the same settings continues from there and ends with the same bytes as an uninterrupted one; the
progress also fingerprints the collection files, so a changed collection is never resumed over.

Sharding assigns whole chunks round-robin (chunk c goes to shard c mod N), so every chunk is encoded exactly
as in a single build and `merge_shards` can interleave the pieces back into a byte-identical index. A piece is
picked by `shard=(I, N)`, or under `torchrun` from RANK and WORLD_SIZE.

    from convdr_pyserini.index import DenseIndexConfig, build_dense_index
    build_dense_index(DenseIndexConfig("convdr/cast20/mini", "minilm", "indexes/cast20-mini.minilm"))
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .._progress import progress_bar
from ..errors import UserError
from ..io.atomic import OutputLock, partial_path, prepare_output, publish_directory
from ..io.collections import CollectionSource
from ..resolve import open_collection
from . import faiss_io

logger = logging.getLogger(__name__)
PROGRESS = "progress.json"
DEFAULT_CHUNK = 4096
FLAT = "flat"


@dataclass
class DenseIndexConfig:
    """Everything a dense index build depends on.

    `index_type` is `flat` (exact inner product, streamed to disk) or a faiss factory string (`HNSW32`,
    `IVF4096,SQ8`, `OPQ96,IVF65536,PQ96`, ...) built from the flat vectors at the end, trained on a seeded
    sample of `train_sample` stored vectors (default: all of them, up to what the type needs).
    """

    collection: str
    encoder: str
    output: str | os.PathLike
    batch_size: int = 64
    max_length: int | None = None
    chunk_size: int = DEFAULT_CHUNK
    fp16: bool = False
    shard: tuple[int, int] | None = None
    device: str = "cpu"
    index_type: str = FLAT
    ef_construction: int | None = None
    train_sample: int | None = None
    seed: int = 0
    overwrite: bool = False
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 1:
            raise UserError(f"max_length must be a positive integer, got {self.max_length}")
        if self.shard is not None:
            index, count = self.shard
            if count < 1 or not 0 <= index < count:
                raise UserError(f"shard {index}/{count}: need 0 <= I < N")
        if self.index_type != FLAT and self.shard is not None:
            raise UserError(f"index type {self.index_type} applies to a whole index: build the shards flat, then "
                            "merge them with an index type")
        from ..encode import check_device, resolve_card

        check_device(self.device)  # a device or encoder that cannot be used fails here, before any encoding
        resolve_card(self.encoder)

    @property
    def target(self) -> Path:
        """The folder this build writes: the output, or its `shard-I-of-N` piece."""
        shard = self.shard or torchrun_shard()
        return Path(self.output) / faiss_io.shard_name(*shard) if shard else Path(self.output)


def torchrun_shard() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def resolve_device(device: str, local_rank: int = 0) -> str:
    """`cpu` or a concrete `cuda:n` (the local rank's GPU under torchrun); CUDA without a GPU is a UserError."""
    from ..encode import check_device

    check_device(device)
    return f"cuda:{local_rank}" if device == "cuda" else device


def build_dense_index(config: DenseIndexConfig, encoder=None) -> dict:
    """Build (or resume, or finish) the index `config` describes; returns its meta.json contents.

    `encoder` is the loaded encoder of `config` when the caller holds one (a Ray worker building several
    pieces loads it once); by default it is loaded here.
    """
    shard = config.shard or torchrun_shard()
    target = config.target
    source = open_collection(config.collection)
    from ..encode import load_encoder, resolve_card

    card = resolve_card(config.encoder) if encoder is None else encoder.card
    prepare_output(target, build_inputs(source, card), config.overwrite, directory=True)
    if encoder is None:
        device = resolve_device(config.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")) if shard else 0)
        encoder = load_encoder(card, device=device, fp16=config.fp16)
    with OutputLock(target):
        return _build(config, source, encoder, shard, target)


def build_inputs(source: CollectionSource, card) -> list:
    """What a build reads (the collection, local encoder weights): its output must be none of them."""
    return [*source.files, source.folder, _local_weights(card)]


def done_passages(target: Path) -> int:
    """Passages a build of `target` has finished: all of a published index, else its recorded progress."""
    try:
        if (target / faiss_io.META).is_file():
            return int(faiss_io.read_meta(target).get("count", 0))
        progress = json.loads((partial_path(target) / PROGRESS).read_text(encoding="utf-8"))
        return int(progress.get("done", 0))
    except (OSError, ValueError, TypeError, UserError):
        return 0


def _local_weights(card) -> Path | None:
    path = card.weights.get("path") if isinstance(card.weights, dict) else None
    if path is None:
        return None
    path = Path(os.path.expanduser(str(path)))
    if not path.is_absolute() and card.source is not None:
        path = (card.source if card.source.is_dir() else card.source.parent) / path
    return path


def _build(config: DenseIndexConfig, source: CollectionSource, encoder, shard, target: Path) -> dict:
    device = str(encoder.device)
    max_length = config.max_length or encoder.card.max_passage_length
    if config.index_type != FLAT:
        from .compress import check_factory

        check_factory(config.index_type, encoder.dim)
    settings = {
        "collection": source.name,
        "collection_files": source.fingerprint(),
        "fields": list(source.fields),
        "encoder": _encoder_identity(encoder.card),
        "dimension": encoder.dim,
        "max_length": max_length,
        "batch_size": config.batch_size,
        "chunk_size": config.chunk_size,
        "fp16": config.fp16,
        "shard": list(shard) if shard else None,
    }
    partial = partial_path(target)
    progress = _resume_point(partial, settings, config.overwrite)
    started = time.time()
    if not progress.get("encoded"):
        progress = encode_collection(encoder, source, partial, settings, shard, progress)
    if progress["done"] == 0 and shard is None:
        raise UserError(f"collection {config.collection} has no passages to index")
    encode_seconds = progress.get("encode_seconds", round(time.time() - started, 1))
    index_info = {"index_type": FLAT}
    if config.index_type != FLAT:
        index_info = _compress_partial(partial, config, progress, settings)
    meta = {
        "format": faiss_io.FORMAT,
        "metric": "inner_product",
        **index_info,
        "count": progress["done"],
        "dimension": encoder.dim,
        "encoder_card": _card_mapping(encoder.card),
        "collection": source.name,
        "fields": list(source.fields),
        "max_length": max_length,
        "batch_size": config.batch_size,
        "chunk_size": config.chunk_size,
        "fp16": config.fp16,
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        "device": device,
        "build_command": config.command or repr(_config_mapping(config)),
        "encode_seconds": encode_seconds,
        "versions": _versions(),
    }
    faiss_io.write_meta(partial, meta)
    publish_directory(partial, target, overwrite=True)
    (target / PROGRESS).unlink(missing_ok=True)
    logger.info("wrote %s: %d passages, dimension %d, %s index", target, progress["done"], encoder.dim,
                meta["index_type"])
    return faiss_io.read_meta(target)


def _config_mapping(config: DenseIndexConfig) -> dict:
    return {key: value for key, value in asdict(config).items() if key != "command"}


def _compress_partial(partial: Path, config: DenseIndexConfig, progress: dict, settings: dict) -> dict:
    """Replace the finished flat file in `partial` by the compressed index (once; a rerun reuses it)."""
    from .compress import build_compressed

    if progress.get("compressed") is None:
        flat = faiss_io.open_index_dir(partial, verify=False)
        if not flat.flat:
            raise UserError(f"{partial} holds a non-flat index but no record of compressing it; delete the folder")
        info = build_compressed(flat, partial / ".index.compressed", config.index_type, config.train_sample,
                                config.seed, ef_construction=config.ef_construction)
        os.replace(partial / ".index.compressed", partial / faiss_io.INDEX)
        progress["compressed"] = info
        _save_progress(partial, settings, progress)
    return progress["compressed"]


def encode_collection(encoder, source: CollectionSource, partial: Path, settings: dict, shard,
                      progress: dict) -> dict:
    """Encode this shard's chunks of the collection into `partial` (index + docid), resuming `progress`."""
    started = time.time()
    done, docid_bytes = progress["done"], progress["docid_bytes"]
    dim, chunk_size, batch_size = settings["dimension"], settings["chunk_size"], settings["batch_size"]
    writer = faiss_io.FlatWriter(partial / faiss_io.INDEX, dim, keep_rows=done)
    docid_handle = open(partial / faiss_io.DOCID, "r+b" if docid_bytes else "wb")
    docid_handle.truncate(docid_bytes)
    docid_handle.seek(docid_bytes)
    own_total = shard_total(source.total, chunk_size, shard) if source.total is not None else None
    bar = progress_bar(total=own_total, initial=done, unit="passage", unit_scale=True, desc="encoding")
    try:
        for passages in _own_chunks(source.passages(), chunk_size, shard, skip=done):
            # encode_passages sorts the chunk by token length into batches and runs under inference_mode
            vectors = encoder.encode_passages([p.encoder_input() for p in passages], batch_size=batch_size,
                                              max_length=settings["max_length"])
            _check_finite(vectors, passages)
            writer.append(vectors)
            data = "".join(p.doc_id + "\n" for p in passages).encode("utf-8")
            docid_handle.write(data)
            docid_bytes += len(data)
            writer.sync()
            docid_handle.flush()
            os.fsync(docid_handle.fileno())
            progress.update(done=writer.rows, docid_bytes=docid_bytes)
            _save_progress(partial, settings, progress)
            bar.update(len(passages))
        writer.finish()
    except OSError as error:
        raise UserError(f"cannot write {partial}: {error.strerror}") from None
    finally:
        writer.close()
        docid_handle.close()
        bar.close()
    progress.update(done=writer.rows, encoded=True,
                    encode_seconds=round(progress.get("encode_seconds", 0) + time.time() - started, 1))
    _save_progress(partial, settings, progress)
    return progress


def _check_finite(vectors: np.ndarray, passages) -> None:
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = passages[int(np.flatnonzero(~finite)[0])].doc_id
        raise UserError(f"the encoder gave a non-finite vector (NaN or infinity) for passage {bad}; "
                        "nothing was indexed past it (with {fp16}, try without)", "fp16")


def _own_chunks(passages: Iterator, chunk_size: int, shard, skip: int) -> Iterator[list]:
    """The chunks this shard owns, leaving out its first `skip` passages (already done)."""
    shard_index, shards = shard or (0, 1)
    chunk: list = []
    number = 0
    owned_seen = 0
    for passage in passages:
        chunk.append(passage)
        if len(chunk) == chunk_size:
            owned_seen = yield from _emit(chunk, number, shard_index, shards, skip, owned_seen)
            chunk, number = [], number + 1
    if chunk:
        yield from _emit(chunk, number, shard_index, shards, skip, owned_seen)


def _emit(chunk, number, shard_index, shards, skip, owned_seen):
    if number % shards != shard_index:
        return owned_seen
    if owned_seen >= skip:
        yield chunk
    elif owned_seen + len(chunk) > skip:
        raise UserError(f"recorded progress ({skip} passages) does not end on a chunk boundary; rerun with "
                        "{overwrite}", "overwrite")
    return owned_seen + len(chunk)


def shard_total(total: int, chunk_size: int, shard) -> int:
    """Passages a shard owns out of `total`."""
    if shard is None:
        return total
    shard_index, shards = shard
    chunks = -(-total // chunk_size)
    owned = range(shard_index, chunks, shards)
    return sum(min(chunk_size, total - chunk * chunk_size) for chunk in owned)


def _resume_point(partial: Path, settings: dict, overwrite: bool) -> dict:
    """The progress of a partial build with the same settings; a fresh one otherwise (a partial build made
    with other settings is refused, or discarded with `overwrite`)."""
    import shutil

    progress_file = partial / PROGRESS
    progress = None
    if progress_file.is_file():
        try:
            progress = json.loads(progress_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            logger.warning("%s is unreadable; starting the build over", progress_file)
    if isinstance(progress, dict) and isinstance(progress.get("settings"), dict) \
            and progress["settings"] != settings and not overwrite:
        changed = sorted(key for key in settings if progress["settings"].get(key) != settings[key])
        reasons = [f"it was made with different {', '.join(key for key in changed if key != 'collection_files')}"] \
            if set(changed) - {"collection_files"} else []
        if "collection_files" in changed:
            reasons.append("the collection files changed since it was started")
        what = " and ".join(reasons)
        raise UserError(f"{partial} holds a partial build, but {what}; rerun the same command to resume it, "
                        "or pass {overwrite} to start over", "overwrite")
    if isinstance(progress, dict) and progress.get("settings") == settings \
            and isinstance(progress.get("done"), int) and isinstance(progress.get("docid_bytes"), int):
        logger.info("resuming %s: %d passages already encoded", partial, progress["done"])
        return progress
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    progress = {"done": 0, "docid_bytes": 0}
    _save_progress(partial, settings, progress)
    return progress


def _save_progress(partial: Path, settings: dict, progress: dict) -> None:
    tmp = partial / f".{PROGRESS}.tmp"
    tmp.write_text(json.dumps({**progress, "settings": settings}), encoding="utf-8")
    os.replace(tmp, partial / PROGRESS)


def _encoder_identity(card) -> str:
    source = getattr(card, "source", None)
    return f"{card.name} ({source})" if source else card.name


def _card_mapping(card) -> dict:
    return json.loads(json.dumps(card.to_mapping(), default=str))


def _versions() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("convdr_pyserini", "torch", "transformers", "faiss-cpu", "faiss-gpu-cu12", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
