"""`reproduce --ray`: the training of every (condition, seed) of a matrix as its own Ray task, before the run.

The driver runs the preparation steps the training conditions need, then starts one task per condition and
seed; a task trains that condition's stages in order (its folds one after another) into the same model
folders a sequential run writes, reusing the finished ones in the same way. The matrix then runs as without
Ray: every model it needs is found finished and reused, so runs, tables and manifests are those of a
sequential run (weights byte-identical for the same torch thread count, `--ray-cpus-per-worker`). A condition
whose training fails is left to the sequential pass, which reports it as it always does. The models and runs
folders must be on a filesystem every worker sees.
"""
from __future__ import annotations

import logging

from .._ray import RETRIES, RayCluster, connect, run_on_pool, set_threads, worker_count
from ..errors import UserError
from .matrix import Condition
from .runner import MatrixResult, Runner, _references, missing_files, reproduce

logger = logging.getLogger(__name__)


def train_condition_task(runner: Runner, condition: Condition, seed: int, threads: int) -> str | None:
    """One Ray task: train `condition`'s stages for `seed`; None, or the error that stopped it."""
    set_threads(threads)
    try:
        runner.train(condition, seed)
    except UserError as error:
        return str(error)
    return None


def reproduce_on_ray(matrix, cluster: RayCluster, only: str | None = None, runs_dir="runs/reproduce",
                     models_dir="encoders/reproduce") -> MatrixResult:
    """`reproduce(matrix, only, runs_dir, models_dir)` with the training done as Ray tasks first."""
    train_on_ray(Runner(matrix, runs_dir, models_dir), [matrix.condition(only)] if only else matrix.conditions,
                 cluster)
    return reproduce(matrix, only=only, runs_dir=runs_dir, models_dir=models_dir)


def train_on_ray(runner: Runner, conditions: list[Condition], cluster: RayCluster) -> None:
    """Train every (training condition, seed) of `conditions` on Ray (see the module docstring)."""
    jobs = []
    for condition in conditions:
        if not condition.trains or missing_files(condition):
            continue
        try:
            runner.prepare(_references(condition))
        except UserError:
            continue  # the sequential pass reports it
        jobs += [(condition, seed) for seed in runner.matrix.seeds if runner.finished_run(condition, seed) is None]
    if not jobs:
        return
    ray = connect(cluster)
    cuda = any(str(stage.get("device", "cpu")).startswith("cuda") for condition, _ in jobs for stage in condition.train)
    gpus = cluster.gpus_per_worker or (1.0 if cuda else 0.0)
    workers = worker_count(ray, cluster, gpus)
    task = ray.remote(max_retries=RETRIES)(train_condition_task).options(**cluster.worker_options(gpus))
    logger.info("training %d condition-seed pairs on Ray, %d at a time", len(jobs), min(workers, len(jobs)))
    errors = run_on_pool(ray, range(workers),
                         lambda _, job: task.remote(runner, job[0], job[1], cluster.threads()), jobs)
    for (condition, seed), error in zip(jobs, errors):
        if error is not None:
            logger.warning("[%s seed %d] training on Ray failed: %s", condition.name, seed, error)
