"""Compressed dense indexes: any faiss factory type (`HNSW32`, `IVF4096,SQ8`, `OPQ96,IVF65536,PQ96`, ...)
built from a flat index's stored vectors, streaming, trained on a seeded sample, kept in Pyserini's layout.

    from convdr_pyserini.index import compress_index
    compress_index("indexes/cast20-mini.minilm", "indexes/cast20-mini.minilm.sq8", "IVF256,SQ8")
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io.atomic import OutputLock, atomic_directory, prepare_output
from . import faiss_io

logger = logging.getLogger(__name__)
BLOCK_ROWS = 65536
# Default training sample: 40 vectors per IVF list (faiss warns under 39), at least 2^16 (PQ/SQ codebooks and
# OPQ rotations; faiss's own PQ training subsamples to 256 per centroid = 2^16), at most 2^22 (the sample is
# held in memory: IVF65536 takes 40 x 65536 = 2.6M rows, 7.5 GiB at 768 dimensions; --train-sample lowers it).
TRAIN_PER_LIST = 40
TRAIN_MIN = 1 << 16
TRAIN_MAX = 1 << 22


def make_index(factory: str, dim: int):
    """A new faiss index of type `factory` (inner product); a string faiss rejects is a UserError."""
    import faiss

    try:
        return faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "rejected"
        raise UserError(f"index type {factory!r} is not a faiss factory string faiss accepts for {dim} dimensions "
                        f"({reason})") from None


def check_factory(factory: str, dim: int) -> None:
    """UserError unless faiss builds `factory` for `dim`-dimensional vectors."""
    make_index(factory, dim)


def default_train_sample(index, count: int) -> int:
    """Training vectors used when none are given: 40 per IVF list, within [2^16, 2^22], at most the index."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    wanted = TRAIN_PER_LIST * ivf.nlist if ivf is not None else 0
    return int(min(count, max(TRAIN_MIN, min(TRAIN_MAX, wanted))))


def build_compressed(flat: faiss_io.DenseIndexDir, target: Path, factory: str, train_sample: int | None = None,
                     seed: int = 0, ef_construction: int | None = None, block_rows: int = BLOCK_ROWS,
                     nprobe: int | None = None) -> dict:
    """Write a `factory` index of the flat index's vectors to `target`; returns what meta.json records. `nprobe`
    is stored in the index as the IVF lists a search visits when it names none."""
    import faiss

    index = make_index(factory, flat.dim)
    set_search_parameters(index, nprobe, where=factory)  # checked before the (long) training
    hnsw = _hnsw(index)
    if ef_construction is not None:
        if hnsw is None:
            raise UserError(f"efConstruction applies to HNSW indexes, not {factory}")
        hnsw.efConstruction = ef_construction
    sample = 0
    if not index.is_trained:
        sample = train_sample or default_train_sample(index, flat.count)
        if sample > flat.count:
            raise UserError(f"training sample of {sample:,} vectors is larger than the index ({flat.count:,} vectors)")
        index.train(read_rows(flat, sample_rows(flat.count, sample, seed)))
    elif train_sample is not None:
        raise UserError(f"index type {factory} needs no training; drop {{train_sample}}", "train_sample")
    for _, block in flat.vector_blocks(block_rows):
        index.add(block)
    faiss.write_index(index, str(target))
    ivf = faiss.try_extract_index_ivf(index)
    return {"index_type": factory, "train_sample": sample, "train_seed": seed,
            **({} if ivf is None else {"nprobe": int(ivf.nprobe)}),
            "ef_construction": None if hnsw is None else int(hnsw.efConstruction),
            "bytes": target.stat().st_size, "bytes_per_vector": round(target.stat().st_size / max(flat.count, 1), 2)}


def sample_rows(count: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct row numbers out of `count`, drawn with `seed`, sorted."""
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))


def read_rows(flat: faiss_io.DenseIndexDir, rows: np.ndarray) -> np.ndarray:
    """The stored vectors of the given rows, read from the flat file without loading it whole."""
    matrix = np.memmap(flat.path / faiss_io.INDEX, dtype=np.float32, mode="r", offset=faiss_io.FLAT_DATA_OFFSET,
                       shape=(flat.count, flat.dim))
    return np.ascontiguousarray(matrix[rows])


def _hnsw(index):
    import faiss

    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    base = faiss.downcast_index(base)
    return getattr(base, "hnsw", None)


def set_search_parameters(index, nprobe: int | None = None, ef_search: int | None = None, where: str = "") -> None:
    """Set IVF `nprobe` / HNSW `efSearch` on a loaded faiss index; a parameter its type lacks is a UserError."""
    import faiss

    if nprobe is not None:
        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError:
            raise UserError(f"{{nprobe}} applies to IVF indexes; {where or 'this index'} has none", "nprobe") from None
        if nprobe > ivf.nlist:
            raise UserError(f"{{nprobe}} {nprobe} is larger than the {ivf.nlist} lists of {where or 'the index'}",
                            "nprobe")
        ivf.nprobe = nprobe
    if ef_search is not None:
        hnsw = _hnsw(index)
        if hnsw is None:
            raise UserError(f"{{ef_search}} applies to HNSW indexes; {where or 'this index'} is not one", "ef_search")
        hnsw.efSearch = ef_search


def refine_source(piece: faiss_io.DenseIndexDir, source: str | os.PathLike | None = None,
                  verify: bool = True) -> faiss_io.DenseIndexDir:
    """The flat index the compressed `piece` was built from (meta.json `compressed_from`, or `source`), checked
    to hold the same passages in the same order."""
    source = source or (piece.meta.get("compressed_from") or {}).get("path")
    if source is None:
        raise UserError(f"{piece.path}: {{refine}} needs the flat index it was compressed from; name it with "
                        "{refine_from}", "refine", "refine_from")
    try:
        flat = faiss_io.open_index_dir(source, verify=verify)
    except UserError as error:
        raise UserError(f"{{refine}}: {error}", "refine") from None
    if not flat.flat or (flat.count, flat.dim) != (piece.count, piece.dim):
        raise UserError(f"{{refine}}: {source} holds {flat.count} x {flat.dim} {'flat' if flat.flat else 'compressed'} "
                        f"vectors; {piece.path} needs its own {piece.count} x {piece.dim} flat index", "refine")
    if _docid_checksum(flat) != _docid_checksum(piece):
        raise UserError(f"{{refine}}: {source} and {piece.path} have different docid files; not the same "
                        "collection", "refine")
    return flat


def _docid_checksum(folder: faiss_io.DenseIndexDir) -> str:
    """The docid file's sha256: from meta.json when it was verified on opening, else hashed now."""
    recorded = (folder.meta.get("checksums") or {}).get(faiss_io.DOCID)
    return recorded if folder.verified and recorded else "sha256:" + faiss_io.sha256_of(folder.path / faiss_io.DOCID)


def refined(index, flat: faiss_io.DenseIndexDir, k_factor: float):
    """A faiss `IndexRefine`: `index` proposes k_factor x k candidates, re-scored exactly from the flat file,
    which is memory-mapped, not loaded (only the candidates' rows are read)."""
    import faiss

    vectors = faiss.read_index(str(flat.path / faiss_io.INDEX), faiss.IO_FLAG_MMAP_IFC)
    wrapper = faiss.IndexRefine(index, vectors)
    wrapper.k_factor = float(k_factor)
    wrapper.own_fields = False
    wrapper.referenced_objects = [index, vectors]  # keep both alive as long as the wrapper
    return wrapper


def compress_index(input: str | os.PathLike, output: str | os.PathLike, index_type: str,
                   ef_construction: int | None = None, train_sample: int | None = None, seed: int = 0,
                   overwrite: bool = False, command: str | None = None, nprobe: int | None = None) -> dict:
    """Convert the flat index `input` into an `index_type` index at `output` (docids copied); returns its meta.
    `nprobe` (IVF types) is stored as the index's default for searches that give none (faiss's own default: 1)."""
    output = prepare_output(output, [input], overwrite, directory=True)
    source = faiss_io.open_index_dir(input)
    if not source.flat:
        raise UserError(f"{input} is not a flat index (its meta.json says {source.meta.get('index_type')}); "
                        "compress the flat index it was built from")
    check_factory(index_type, source.dim)
    with OutputLock(output), atomic_directory(output, inputs=[input], overwrite=overwrite) as folder:
        info = build_compressed(source, folder / faiss_io.INDEX, index_type, train_sample, seed, ef_construction,
                                nprobe=nprobe)
        shutil.copyfile(source.path / faiss_io.DOCID, folder / faiss_io.DOCID)
        meta = {key: value for key, value in source.meta.items() if key not in ("checksums", "hnsw")}
        meta.update(info, compressed_from={"path": str(input), "checksums": source.meta.get("checksums")},
                    build_command=command or f"compress_index({str(input)!r}, {str(output)!r}, {index_type!r})")
        faiss_io.write_meta(folder, meta)
    logger.info("wrote %s: %d vectors as %s (%.1f bytes per vector)", output, source.count, index_type,
                info["bytes_per_vector"])
    return faiss_io.read_meta(output)
