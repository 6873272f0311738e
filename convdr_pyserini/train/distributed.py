"""`train --ray`: every (seed, fold) model trained as its own Ray task, written where a sequential run writes it.

The driver checks the inputs (topics, folds), opens each seed's output as the sequential run does (lock, then
a hidden temporary folder beside it) and starts one task per seed and fold. A task builds the training
examples (the teacher's targets) itself, trains a fresh student with the seed, and saves it into the
temporary folder; when every task is done the driver writes `cv.yaml` and publishes each seed's folder. Any
failure removes the temporary folders, as in a sequential run. Tasks run with `cpus_per_worker` torch threads
(and GPUs with `--device cuda`); weights are byte-identical to a sequential run with the same thread count.
The output must be on a filesystem every worker sees.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .._ray import RETRIES, RayCluster, connect, run_on_pool, set_threads, worker_count
from ..io.atomic import OutputLock, atomic_directory, prepare_output
from .config import TrainConfig
from .training import (Trainer, fold_numbers, fold_of_topic, model_name, run_summary, training_inputs,
                       write_cv_summary)


def train_fold_task(config: TrainConfig, fold: int | None, folder: str, threads: int) -> tuple[dict, int]:
    """One Ray task: train the model of `fold` for `config`'s seed into `folder`; (metrics, training queries)."""
    set_threads(threads)
    trainer = Trainer(config)
    return trainer.train_fold(config, fold, Path(folder)), len(trainer.examples)


def train_on_ray(config: TrainConfig, cluster: RayCluster) -> dict:
    """Train as `train(config)` does, one Ray task per seed and fold; returns the same summary."""
    from ..resolve import load_topics

    topics = load_topics(config.topics)
    folds = fold_of_topic(topics, config.cv) if config.cv else None
    inputs = training_inputs(config, topics)
    seeds = [config] if config.seeds is None else [config.for_seed(seed) for seed in config.seeds]
    if config.seeds is not None:
        prepare_output(config.output, inputs, config.overwrite, directory=True)
    outputs = [prepare_output(each.output, inputs, each.overwrite, directory=True) for each in seeds]
    ray = connect(cluster)
    gpus = cluster.gpus_per_worker or (1.0 if config.device.startswith("cuda") else 0.0)
    workers = worker_count(ray, cluster, gpus)
    task = ray.remote(max_retries=RETRIES)(train_fold_task).options(**cluster.worker_options(gpus))
    started = time.time()
    with contextlib.ExitStack() as stack:
        folders = []
        for each, output in zip(seeds, outputs):
            stack.enter_context(OutputLock(output))
            folders.append(stack.enter_context(atomic_directory(output, inputs=inputs, overwrite=each.overwrite)))
        jobs = [(each, fold, folder) for each, folder in zip(seeds, folders) for fold in fold_numbers(folds)]
        results = run_on_pool(ray, range(workers),
                              lambda _, job: task.remote(job[0], job[1], str(job[2]), cluster.threads()), jobs)
        summaries = []
        for each, folder in zip(seeds, folders):
            metrics = {model_name(fold): result[0] for (owner, fold, _), result in zip(jobs, results) if owner is each}
            if folds is not None:
                write_cv_summary(each, folder, metrics, topics.source, folds)
            summaries.append(metrics)
    queries = results[0][1]
    seconds = time.time() - started
    if config.seeds is None:
        return run_summary(outputs[0], queries, summaries[0], seconds)
    return {"seeds": {f"seed-{each.seed}": run_summary(output, queries, metrics, seconds)
                      for each, output, metrics in zip(seeds, outputs, summaries)}}
