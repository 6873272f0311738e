"""`python -m convdr_pyserini.index dense`: a streaming, resumable, shardable dense (faiss) index builder.

The collection is read in fixed-size chunks of `--chunk-size` passages. Inside a chunk, passages are
sorted by length and encoded in batches under `torch.inference_mode`, then written back in collection
order, straight into the faiss file on disk: memory holds one chunk, never the whole collection.
After every chunk the build records how many passages are done (`progress.json` in the hidden
`.<name>.partial` folder), so a killed build rerun with the same command continues from there and ends
with the same bytes as an uninterrupted one.

Sharding assigns whole chunks round-robin (chunk c goes to shard c mod N), so every chunk is encoded
exactly as in a single build and `merge` can interleave the pieces back into a byte-identical index.
`--shard I/N` picks a piece by hand; under `torchrun` the piece comes from RANK and WORLD_SIZE.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

from .._cli import positive_int
from ..errors import UserError
from . import faiss_io

PROGRESS = "progress.json"
DEFAULT_CHUNK = 4096


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `dense` on the `python -m convdr_pyserini.index` parser."""
    parser = subparsers.add_parser(
        "dense",
        help="encode a collection into a faiss index (Pyserini layout)",
        description="Encode a collection into a faiss index folder (Pyserini layout: index, docid, plus meta.json). "
        "Killed builds resume when rerun with the same command.",
    )
    parser.add_argument("--collection", required=True, help="ir_datasets id (e.g. convdr/cast20/mini) or JsonCollection folder")
    parser.add_argument("--encoder", required=True, help="encoder card name, card file, model folder or checkpoint")
    parser.add_argument("--output", required=True, help="index folder to create, e.g. indexes/cast20-mini.minilm")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="passages per forward pass (default 64)")
    parser.add_argument("--max-length", type=positive_int, default=None, help="passage token limit (default: the card's)")
    parser.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK,
                        help=f"passages per length-sorted, checkpointed chunk; also the shard unit (default {DEFAULT_CHUNK})")
    parser.add_argument("--fp16", action="store_true", help="half-precision encoding (CUDA only); vectors stay float32")
    parser.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                        help="build piece I of N (0-based) into OUTPUT/shard-I-of-N; join with `index merge`")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu)")
    parser.add_argument("--hnsw", nargs=2, type=positive_int, metavar=("M", "EF"), default=None,
                        help="write an HNSW index (M links, efConstruction EF) instead of a flat one")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")
    parser.set_defaults(func=run)
    return parser


def _shard(text: str) -> tuple[int, int]:
    try:
        shard, shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if shards < 1 or not 0 <= shard < shards:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= I < N")
    return shard, shards


def run(args: argparse.Namespace) -> int:
    """Build the index described by the parsed arguments."""
    shard = args.shard or _torchrun_shard()
    output = Path(args.output)
    target = output / faiss_io.shard_name(*shard) if shard else output
    if target.exists() and any(target.iterdir()) and not args.overwrite:
        raise UserError(f"{target} already exists and is not empty; pass --overwrite to replace it")
    device = resolve_device(args.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")) if shard else 0)
    if args.hnsw and shard:
        raise UserError("--hnsw applies to a whole index: build the shards flat, then `index merge --hnsw M EF`")
    passages, total, collection = open_collection(args.collection)

    from ..encode import load_encoder

    encoder = load_encoder(args.encoder, device=device, fp16=args.fp16)
    max_length = args.max_length or encoder.card.max_passage_length
    settings = {
        "collection": collection,
        "encoder": _encoder_identity(encoder.card),
        "dimension": encoder.dim,
        "max_length": max_length,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "fp16": args.fp16,
        "shard": list(shard) if shard else None,
    }
    partial = target.parent / f".{target.name}.partial"
    started = time.time()
    done = encode_collection(encoder, passages, total, partial, settings, shard)
    seconds = time.time() - started
    index_type = "hnsw" if args.hnsw else "flat"
    if args.hnsw:
        # built beside the flat file, which stays resumable until the swap; a kill after the progress
        # file is gone restarts the build from scratch
        faiss_io.build_hnsw(faiss_io.open_index_dir(partial), partial / ".index.hnsw", *args.hnsw)
        (partial / PROGRESS).unlink()
        os.replace(partial / ".index.hnsw", partial / faiss_io.INDEX)
    meta = {
        "format": faiss_io.FORMAT,
        "index_type": index_type,
        "metric": "inner_product",
        "hnsw": {"M": args.hnsw[0], "ef_construction": args.hnsw[1]} if args.hnsw else None,
        "count": done,
        "dimension": encoder.dim,
        "encoder_card": _card_mapping(encoder.card),
        "collection": collection,
        "max_length": max_length,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "fp16": args.fp16,
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        "device": device,
        "build_command": build_command(args),
        "encode_seconds": round(seconds, 1),
        "versions": _versions(),
    }
    faiss_io.write_meta(partial, meta)
    (partial / PROGRESS).unlink(missing_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    print(f"wrote {target}: {done} passages, dimension {encoder.dim}, {index_type} index", file=sys.stderr)
    return 0


def encode_collection(encoder, passages, total, partial: Path, settings: dict, shard) -> int:
    """Encode this shard's chunks of `passages` into `partial` (index + docid), resuming recorded progress."""
    from tqdm import tqdm

    done, docid_bytes = _resume_point(partial, settings)
    dim, chunk_size, batch_size = settings["dimension"], settings["chunk_size"], settings["batch_size"]
    writer = faiss_io.FlatWriter(partial / faiss_io.INDEX, dim, keep_rows=done)
    docid_handle = open(partial / faiss_io.DOCID, "r+b" if docid_bytes else "wb")
    docid_handle.truncate(docid_bytes)
    docid_handle.seek(docid_bytes)
    own_total = _shard_total(total, chunk_size, shard) if total is not None else None
    bar = tqdm(total=own_total, initial=done, unit="passage", unit_scale=True, desc="encoding", dynamic_ncols=True)
    try:
        for ids, texts in _own_chunks(passages, chunk_size, shard, skip=done):
            # encode_passages sorts the chunk by token length into batches and runs under inference_mode
            writer.append(encoder.encode_passages(texts, batch_size=batch_size, max_length=settings["max_length"]))
            data = "".join(docid + "\n" for docid in ids).encode("utf-8")
            docid_handle.write(data)
            docid_bytes += len(data)
            writer.sync()
            docid_handle.flush()
            os.fsync(docid_handle.fileno())
            _save_progress(partial, settings, writer.rows, docid_bytes)
            bar.update(len(ids))
        writer.finish()
    finally:
        writer.close()
        docid_handle.close()
        bar.close()
    return writer.rows


def _own_chunks(passages: Iterator[tuple[str, str]], chunk_size: int, shard, skip: int):
    """(ids, texts) of the chunks this shard owns, leaving out its first `skip` passages (already done)."""
    shard_index, shards = shard or (0, 1)
    chunk: list[tuple[str, str]] = []
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
        yield [docid for docid, _ in chunk], [text for _, text in chunk]
    elif owned_seen + len(chunk) > skip:
        raise UserError(f"recorded progress ({skip} passages) does not end on a chunk boundary; delete the partial build")
    return owned_seen + len(chunk)


def _shard_total(total: int, chunk_size: int, shard) -> int:
    """Passages a shard owns out of `total`."""
    if shard is None:
        return total
    shard_index, shards = shard
    chunks = -(-total // chunk_size)
    owned = range(shard_index, chunks, shards)
    return sum(min(chunk_size, total - chunk * chunk_size) for chunk in owned)


def _resume_point(partial: Path, settings: dict) -> tuple[int, int]:
    """(passages done, docid file bytes) of a partial build with the same settings; (0, 0) for a fresh one."""
    progress_file = partial / PROGRESS
    if not progress_file.is_file():
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        _save_progress(partial, settings, 0, 0)
        return 0, 0
    progress = json.loads(progress_file.read_text(encoding="utf-8"))
    if progress["settings"] != settings:
        changed = sorted(key for key in settings if progress["settings"].get(key) != settings[key])
        raise UserError(
            f"{partial} holds a partial build made with different {', '.join(changed)}; "
            "rerun the same command to resume it, or delete that folder to start over"
        )
    print(f"resuming {partial}: {progress['done']} passages already encoded", file=sys.stderr)
    return progress["done"], progress["docid_bytes"]


def _save_progress(partial: Path, settings: dict, done: int, docid_bytes: int) -> None:
    tmp = partial / f".{PROGRESS}.tmp"
    tmp.write_text(json.dumps({"settings": settings, "done": done, "docid_bytes": docid_bytes}), encoding="utf-8")
    os.replace(tmp, partial / PROGRESS)


def open_collection(spec: str) -> tuple[Iterator[tuple], int | None, str]:
    """(iterator of (docid, text or (title, text)), passage count or None, canonical name) for an ir_datasets
    id or a JsonCollection folder."""
    path = Path(spec)
    if path.exists():
        files = json_collection_files(path)
        return _read_json_collection(files), _count_lines(files), str(path.resolve())
    from .. import datasets

    dataset = datasets.load(spec)
    if not dataset.has_docs():
        raise UserError(f"dataset {spec} has no documents to index")
    try:
        folder = datasets.collection_jsonl(spec)
    except UserError:
        folder = None
    if folder is not None:
        files = json_collection_files(folder)
        return _read_json_collection(files), _count_lines(files), spec
    try:
        count = dataset.docs_count()
    except NotImplementedError:  # ir_datasets docs without count metadata
        count = None
    return ((doc.doc_id, _doc_text(doc)) for doc in dataset.docs_iter()), count, spec


def json_collection_files(path: Path) -> list[Path]:
    """The `*.jsonl`/`*.json`(.gz) files of a Pyserini JsonCollection folder (or the one file given)."""
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")))
    if not found:
        raise UserError(f"{path} holds no *.jsonl or *.json files (expected a Pyserini JsonCollection folder)")
    return found


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _read_json_collection(files: list[Path]) -> Iterator[tuple[str, str]]:
    for path in files:
        with _open_text(path) as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    docid = record.get("id", record.get("docid", record.get("_id")))
                    text = record.get("contents", record.get("text"))
                except (json.JSONDecodeError, AttributeError):
                    raise UserError(f"{path}:{line_number}: not a JSON object") from None
                if docid is None or text is None:
                    raise UserError(f"{path}:{line_number}: expected the fields id and contents")
                docid = str(docid)
                if not docid or any(ch.isspace() for ch in docid):
                    raise UserError(f"{path}:{line_number}: docid {docid!r} is empty or contains whitespace")
                yield docid, text


def _count_lines(files: list[Path]) -> int:
    total = 0
    for path in files:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                total += block.count(b"\n")
    return total


def _doc_text(doc):
    """The encoder input of an ir_datasets doc: `(title, text)` when it has a title (DPR encodes
    `[CLS] title [SEP] text [SEP]`, as ConvDR did for OR-QuAC), else its text."""
    text = getattr(doc, "text", None)
    if not isinstance(text, str):
        return doc.default_text()
    title = getattr(doc, "title", None)
    return (title, text) if isinstance(title, str) else text


def resolve_device(device: str, local_rank: int = 0) -> str:
    """`cpu` or a concrete `cuda:n` (the local rank's GPU under torchrun); CUDA without a GPU is a UserError."""
    from ..encode import check_device

    check_device(device)
    return f"cuda:{local_rank}" if device == "cuda" else device


def _torchrun_shard() -> tuple[int, int] | None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def _encoder_identity(card) -> str:
    source = getattr(card, "source", None)
    return f"{card.name} ({source})" if source else card.name


def _card_mapping(card) -> dict:
    mapping = card.to_mapping() if hasattr(card, "to_mapping") else dict(vars(card))
    return json.loads(json.dumps(mapping, default=str))


def build_command(args: argparse.Namespace) -> str:
    """The command line equivalent to the parsed arguments (so it can be pasted back)."""
    words = ["python", "-m", "convdr_pyserini.index", "dense"]
    for name in ("collection", "encoder", "output", "batch_size", "max_length", "chunk_size", "shard", "device", "hnsw"):
        value = getattr(args, name)
        if value is None:
            continue
        if name == "shard":
            value = f"{value[0]}/{value[1]}"
        words.append("--" + name.replace("_", "-"))
        words.extend(str(part) for part in (value if isinstance(value, (list, tuple)) else [value]))
    words += ["--fp16"] * bool(args.fp16) + ["--overwrite"] * bool(args.overwrite)
    return " ".join(shlex.quote(word) for word in words)


def _versions() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("convdr_pyserini", "torch", "transformers", "faiss-cpu", "faiss-gpu-cu12", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
