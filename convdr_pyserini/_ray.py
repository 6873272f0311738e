"""The one module that imports Ray: joining (or starting) a cluster, sizing the workers, collecting results.

`RayCluster` says where the work runs (`address`: None starts a local Ray instance, `auto` or `host:port`
joins a running cluster, `ray://host:port` joins one through Ray Client) and how wide (`workers`, each with
`cpus_per_worker` CPUs and `gpus_per_worker` GPUs). Commands take it from `--ray [ADDRESS]`, `--ray-workers`,
`--ray-cpus-per-worker` and `--ray-gpus-per-worker`. Ray is an optional dependency (`pip install
'convdr_pyserini[ray]'`): importing this module does not import it, and using it without Ray is a one-line
`UserError`. An already initialised Ray (`ray.init` in a notebook or a test) is used as it is.

Workers are started with the driver's `CONVDR_PYSERINI_*`, `HF_*` and `TRANSFORMERS_*` settings and log to
Ray's log folder (`/tmp/ray/session_latest/logs` on each node), not to the driver; their errors come back to
the driver, where a `UserError` raised by a worker is reported as the same one-line error.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import UserError

logger = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'convdr_pyserini[ray]'"
# A worker that dies (node lost, out of memory) is restarted and its task retried this many times.
RETRIES = 3
_FORWARDED_ENV = ("CONVDR_PYSERINI_", "HF_", "TRANSFORMERS_", "TOKENIZERS_PARALLELISM")
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RayCluster:
    """Where Ray work runs and how many workers of what size (see the module docstring)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise UserError(f"{{workers}} must be a positive integer, got {self.workers!r}", "workers")
        for name in ("cpus_per_worker", "gpus_per_worker"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                    or (name == "cpus_per_worker" and value == 0):
                bound = "> 0" if name == "cpus_per_worker" else ">= 0"
                raise UserError(f"{{{name}}} must be a finite number {bound}, got {value!r}", name)

    def threads(self) -> int:
        """Torch threads a worker uses: its whole CPUs (at least one)."""
        return max(1, int(self.cpus_per_worker))

    def worker_options(self, gpus: float | None = None) -> dict:
        """Ray resource options of one worker (`gpus` overrides `gpus_per_worker`)."""
        return {"num_cpus": self.cpus_per_worker, "num_gpus": self.gpus_per_worker if gpus is None else gpus}


def import_ray():
    """The `ray` module, or a one-line UserError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"Ray is not installed: {INSTALL_HINT}") from None
    return ray


def connect(cluster: RayCluster):
    """Join or start the cluster (once per process); returns the `ray` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = cluster.address
    where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
    if address not in (None, "auto"):
        _check_reachable(address)
    options = dict(logging_level=logging.ERROR, log_to_driver=False, runtime_env={"env_vars": _forwarded_env()})
    if address is None:
        options["include_dashboard"] = False
    started = time.time()
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as error:
        raise UserError(f"cannot connect to {where}: {_first_line(error)}") from None
    resources = ray.cluster_resources()
    logger.info("connected to %s in %.0f s: %g CPUs, %g GPUs", where, time.time() - started,
                resources.get("CPU", 0), resources.get("GPU", 0))
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast (one line) on an address nothing listens at, instead of Ray's long reconnect loop."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray {{address}} {address!r}: expected auto, HOST:PORT or ray://HOST:PORT", "address")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _forwarded_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(_FORWARDED_ENV)}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def worker_count(ray, cluster: RayCluster, gpus_per_worker: float | None = None) -> int:
    """`cluster.workers`, or as many workers as the cluster's CPUs and GPUs hold; a worker bigger than the
    whole cluster is a UserError."""
    gpus_each = cluster.gpus_per_worker if gpus_per_worker is None else gpus_per_worker
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if gpus_each > gpus:
        raise UserError(f"{{gpus_per_worker}} {gpus_each:g}, but the Ray cluster has {gpus:g} GPU(s)",
                        "gpus_per_worker")
    if cluster.cpus_per_worker > cpus:
        raise UserError(f"{{cpus_per_worker}} {cluster.cpus_per_worker:g}, but the Ray cluster has {cpus:g} CPU(s)",
                        "cpus_per_worker")
    if cluster.workers is not None:
        return cluster.workers
    fits = cpus / cluster.cpus_per_worker
    if gpus_each:
        fits = min(fits, gpus / gpus_each)
    return max(1, int(fits + 1e-9))


def set_threads(threads: int) -> None:
    """Inside a worker: use `threads` torch threads (Ray sizes OMP_NUM_THREADS, not torch's pool)."""
    import torch

    torch.set_num_threads(threads)


def run_on_pool(ray, workers: Sequence, call: Callable, items: Sequence,
                on_wait: Callable[[], None] | None = None, poll_seconds: float = 2.0) -> list:
    """`call(worker, item)` (which starts a Ray task or actor call) for every item, each worker taking the next
    item when it is free; returns the results in item order. `workers` are actors, or slot numbers that cap how
    many tasks run at once; `on_wait` is called every `poll_seconds` while they run (progress).

    A `UserError` raised in a worker is raised here as it is, at once; a worker that died more often than Ray
    retries it is a one-line UserError too.
    """
    queue = list(enumerate(items))
    running: dict = {}
    results: dict[int, object] = {}
    for worker in workers[:len(queue)]:
        number, item = queue.pop(0)
        running[call(worker, item)] = (worker, number)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_seconds)
            for ref in ready:
                worker, number = running.pop(ref)
                results[number] = _get(ray, ref)
                if queue:
                    following, item = queue.pop(0)
                    running[call(worker, item)] = (worker, following)
            if on_wait is not None:
                on_wait()
    except BaseException:  # an error or Ctrl-C: stop what still runs (its outputs stay resumable)
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    return [results[number] for number in range(len(items))]


def _get(ray, ref):
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, UserError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as error:
        raise UserError(f"a Ray worker died {RETRIES + 1} times running the same task; giving up "
                        f"({_first_line(error)})") from None
