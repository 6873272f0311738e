"""`index dense --ray`: the sharded build of `dense.py`, run by a pool of Ray workers, then `merge_shards`.

The collection is split into P pieces exactly as `--shard I/P` splits it (whole chunks, round-robin), P being
the number of workers of the first run. Each worker is a Ray actor that loads the encoder once and builds its
pieces with `build_dense_index`, the single-machine code: same chunks, same checkpoints, same resume. The
driver then interleaves the pieces with `merge_shards` into OUTPUT, which therefore holds the same `index` and
`docid` bytes as a single-process build (plus the index type, built from the merged vectors as `index merge`
does), and removes the pieces.

Pieces live beside OUTPUT, in the hidden folder `.<name>.ray/` (`shard-I-of-P` and their `.partial` builds),
so OUTPUT's folder must be on a filesystem that the driver and every worker see at the same path (NFS, Lustre,
a cloud filesystem mount; a single machine trivially). Only file paths travel through Ray, never vectors:
the driver's memory does not grow with the collection.

Failures: a worker that dies is restarted by Ray and its piece retried (`_ray.RETRIES` times); the retry
resumes from the piece's last finished chunk, so no chunk is lost or written twice. A killed driver takes its
workers with it; rerunning the same command resumes every piece (finished pieces are kept) as long as the
settings and the collection files are those recorded in `.<name>.ray/build.json`; other settings are refused,
or discarded with `overwrite`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from .._progress import progress_bar
from .._ray import RETRIES, RayCluster, connect, run_on_pool, set_threads, worker_count
from ..errors import UserError
from ..io.atomic import OutputLock, prepare_output, publish_directory
from ..resolve import open_collection
from . import faiss_io
from .dense import FLAT, DenseIndexConfig, build_dense_index, build_inputs, done_passages

logger = logging.getLogger(__name__)
BUILD_RECORD = "build.json"


class IndexWorker:
    """A Ray actor: loads the encoder of `config` once, then builds the pieces it is given."""

    def __init__(self, config: DenseIndexConfig, threads: int):
        from ..encode import load_encoder, resolve_card
        from .dense import resolve_device

        set_threads(threads)
        self.encoder = load_encoder(resolve_card(config.encoder), device=resolve_device(config.device),
                                    fp16=config.fp16)

    def build(self, config: DenseIndexConfig) -> int:
        """Build (or resume) one piece; returns its passage count. A piece already finished (by an attempt
        whose result Ray lost) is kept as it is."""
        if (config.target / faiss_io.META).is_file():
            return int(faiss_io.read_meta(config.target)["count"])
        return build_dense_index(config, encoder=self.encoder)["count"]


def pieces_folder(output: Path) -> Path:
    """Where the pieces of a Ray build of `output` live until they are merged."""
    return output.parent / f".{output.name}.ray"


def build_dense_index_on_ray(config: DenseIndexConfig, cluster: RayCluster, merge: bool = True) -> dict:
    """Build the index `config` describes with Ray workers (see the module docstring); returns its meta.

    With `merge` False, OUTPUT is left as the pieces themselves (`OUTPUT/shard-I-of-P`, the layout of
    `--shard I/P`), which `search --ray` spreads over its workers; the returned meta is then piece 0's.
    """
    if config.shard is not None:
        raise UserError("a Ray build makes every piece itself; leave out {shard}", "shard")
    if not merge and config.index_type != FLAT:
        raise UserError(f"unmerged pieces are flat: leave out {{index_type}} {config.index_type} with {{merge}}, and "
                        "compress when merging (`index merge --index-type`)", "index_type", "merge")
    output = Path(config.output)
    source = open_collection(config.collection)
    from ..encode import resolve_card

    inputs = build_inputs(source, resolve_card(config.encoder))
    prepare_output(output, inputs, config.overwrite, directory=True)
    work = pieces_folder(output)
    with OutputLock(output):
        ray = connect(cluster)
        gpus = cluster.gpus_per_worker or (1.0 if config.device.startswith("cuda") else 0.0)
        workers = worker_count(ray, cluster, gpus)
        record = {"settings": _piece_settings(config), "collection_files": source.fingerprint()}
        count = _claim(work, record, workers, config.overwrite)
        pieces = [dataclasses.replace(config, output=str(work), shard=(number, count), index_type=FLAT,
                                      overwrite=False) for number in range(count)]
        todo = [piece for piece in pieces if not (piece.target / faiss_io.META).is_file()]
        logger.info("Ray build of %s: %d pieces in %s (%d to do), %d workers with %g CPU(s) and %g GPU(s) each",
                    output, count, work, len(todo), min(workers, max(1, len(todo))), cluster.cpus_per_worker, gpus)
        if todo:
            _run_pieces(ray, cluster, gpus, pieces, todo, min(workers, len(todo)), source.total)
        if merge:
            meta = _merge(work, output, config)
            shutil.rmtree(work)
        else:
            (work / BUILD_RECORD).unlink()
            publish_directory(work, output, overwrite=config.overwrite)
            logger.info("wrote %s: %d pieces (not merged)", output, count)
            meta = faiss_io.read_meta(output / faiss_io.shard_name(0, count))
    return meta


def _piece_settings(config: DenseIndexConfig) -> dict:
    """The settings the pieces depend on (the index type is applied when merging, not to the pieces)."""
    skipped = ("output", "overwrite", "command", "shard", "index_type", "ef_construction", "train_sample", "seed")
    return {key: value for key, value in dataclasses.asdict(config).items() if key not in skipped}


def _claim(work: Path, record: dict, workers: int, overwrite: bool) -> int:
    """Resume the pieces folder when it was made with the same settings (returns its piece count); start it
    with `workers` pieces otherwise (refused without `overwrite` when it holds another build)."""
    record_file = work / BUILD_RECORD
    previous = None
    if record_file.is_file():
        try:
            previous = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
    if isinstance(previous, dict) and isinstance(previous.get("pieces"), int):
        if {key: previous.get(key) for key in record} == record:
            logger.info("resuming the Ray build in %s (%d pieces)", work, previous["pieces"])
            return previous["pieces"]
        if not overwrite:
            what = "settings" if previous.get("settings") != record["settings"] else "collection files"
            raise UserError(f"{work} holds the pieces of a Ray build with other {what}; rerun the same command to "
                            "resume it, or pass {overwrite} to start over", "overwrite")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tmp = work / f".{BUILD_RECORD}.tmp"
    tmp.write_text(json.dumps({**record, "pieces": workers}), encoding="utf-8")
    tmp.replace(record_file)
    return workers


def _run_pieces(ray, cluster: RayCluster, gpus: float, pieces: list[DenseIndexConfig], todo: list[DenseIndexConfig],
                workers: int, total: int | None) -> None:
    """Build the `todo` pieces on `workers` actors (each takes the next piece when it is free), with a
    progress bar over the whole collection fed from the pieces' checkpoints."""
    actor = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)(IndexWorker)
    options = cluster.worker_options(gpus)
    actors = [actor.options(**options).remote(todo[0], cluster.threads()) for _ in range(workers)]
    done = lambda: sum(done_passages(piece.target) for piece in pieces)  # noqa: E731
    try:
        with progress_bar(total=total, initial=done(), unit="passage", unit_scale=True, desc="encoding") as bar:
            counts = run_on_pool(ray, actors, lambda worker, piece: worker.build.remote(piece), todo,
                                 on_wait=lambda: bar.update(done() - bar.n))
    finally:  # stop the workers now (a failed run's pieces stay resumable), not whenever Ray collects them
        for worker in actors:
            ray.kill(worker, no_restart=True)
    logger.info("encoded %d pieces (%d passages)", len(counts), sum(counts))


def _merge(work: Path, output: Path, config: DenseIndexConfig) -> dict:
    """Interleave the finished pieces into `output` (with the index type), as `index merge` does."""
    from .merge import merge_shards

    return merge_shards([work], output, config.index_type, config.ef_construction, config.train_sample, config.seed,
                        overwrite=config.overwrite, command=config.command)
