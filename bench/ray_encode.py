"""Ray's overhead on dense encoding: 2 Ray actors of 1 thread against 2 `--shard` processes of 1 thread, same work.

One run, on one local Ray instance that this script starts (`ray.init(num_cpus=2)`, as a running cluster is):

- shards: `python -m convdr_pyserini.index dense --shard 0/2` and `1/2` started together (OMP_NUM_THREADS=1),
  then `index merge`;
- Ray: `python -m convdr_pyserini.index dense --ray ADDRESS --ray-workers 2 --ray-cpus-per-worker 1`, a driver
  joining that instance; its 2 actors build the same two pieces and the driver merges them.

Both sides encode the same passages with MiniLM (`--max-length`, `--chunk-size`, `--batch-size` the same) and
end with the same merged index (checked byte for byte); the time of each side runs from its first process start
to the merged index. Printed: passages/s of each side, the ratio Ray / shards (goal >= 0.9), the Ray driver's
peak RSS (from wait4) and the workers' peak RSS (the shard processes from wait4, the actors' VmHWM sampled
from /proc), the rate at which one process reads and parses a collection to pick its chunks (what every worker
pays for the whole collection), and /proc/loadavg before and after (the machine may be shared). The last line is
one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
INDEX = [sys.executable, "-m", "convdr_pyserini.index"]


def collection(folder: Path, passages: int) -> Path:
    """The first `passages` passages of convdr/cast20/mini as a JsonCollection folder."""
    from convdr_pyserini import datasets

    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    if passages > len(lines):
        raise SystemExit(f"--passages {passages}: the mini collection has {len(lines)}")
    folder.mkdir()
    (folder / "docs.jsonl").write_text("\n".join(lines[:passages]) + "\n", encoding="utf-8")
    return folder


def read_rate(docs: Path, folder: Path, copies: int = 100) -> float:
    """Passages/s at which one process reads and parses a collection to pick its chunks (the cost every
    worker pays for the whole collection): `copies` copies of the bench passages, as piece 0 of 2 reads them."""
    from convdr_pyserini.index.dense import _own_chunks
    from convdr_pyserini.resolve import open_collection

    folder.mkdir()
    text = (docs / "docs.jsonl").read_text(encoding="utf-8")
    (folder / "docs.jsonl").write_text(text * copies, encoding="utf-8")
    source = open_collection(folder)
    started = time.perf_counter()
    for _ in _own_chunks(source.passages(), 4096, (0, 2), 0):
        pass
    return source.total / (time.perf_counter() - started)


def run_children(commands: list[list[str]], env: dict) -> list[int]:
    """Start the commands together, wait for all; their peak RSS in MiB (ru_maxrss)."""
    children = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for command in commands]
    peaks = []
    for child in children:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(child.args)} failed: {child.stderr.read().decode()[-2000:]}")
        peaks.append(usage.ru_maxrss // 1024)
    return peaks


class ActorMemory(threading.Thread):
    """Samples the peak RSS (VmHWM) of every `ray::IndexWorker` process until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks: dict[int, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    if not (entry / "cmdline").read_bytes().startswith(b"ray::IndexWorker"):
                        continue
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peaks[int(entry.name)] = max(self.peaks.get(int(entry.name), 0), int(line.split()[1]) // 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1426, help="passages of the mini collection (default: all 1426)")
    parser.add_argument("--max-length", type=int, default=128, help="passage token limit (default 128)")
    parser.add_argument("--chunk-size", type=int, default=128, help="passages per chunk (default 128)")
    parser.add_argument("--batch-size", type=int, default=32, help="passages per forward pass (default 32)")
    args = parser.parse_args()
    import ray

    before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = collection(root / "docs", args.passages)
        common = ["--collection", str(docs), "--encoder", "minilm", "--max-length", str(args.max_length),
                  "--chunk-size", str(args.chunk_size), "--batch-size", str(args.batch_size), "-q"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

        started = time.perf_counter()
        shard_peaks = run_children([[*INDEX, "dense", *common, "--output", str(root / "pieces"), "--shard", f"{i}/2"]
                                    for i in range(2)], env)
        merge_peak = run_children([[*INDEX, "merge", "--input", str(root / "pieces"), "--output",
                                    str(root / "shards"), "-q"]], env)[0]
        shard_seconds = time.perf_counter() - started

        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        try:
            sampler = ActorMemory()
            sampler.start()
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # now with Ray's auth settings
            started = time.perf_counter()
            driver_peak = run_children([[*INDEX, "dense", *common, "--output", str(root / "ray"), "--ray",
                                         ray.get_runtime_context().gcs_address, "--ray-workers", "2",
                                         "--ray-cpus-per-worker", "1"]], env)[0]
            ray_seconds = time.perf_counter() - started
            sampler.stopped.set()
            sampler.join()
        finally:
            ray.shutdown()
        reading = read_rate(docs, root / "copies")
        identical = all((root / "shards" / name).read_bytes() == (root / "ray" / name).read_bytes()
                        for name in ("index", "docid"))
    after = Path("/proc/loadavg").read_text().split()[:3]
    shard_rate, ray_rate = args.passages / shard_seconds, args.passages / ray_seconds
    actor_peaks = sorted(sampler.peaks.values())
    print(f"passages: {args.passages} (convdr/cast20/mini), MiniLM, max length {args.max_length}, chunk "
          f"{args.chunk_size}, batch {args.batch_size}; 2 workers of 1 thread each; CPUs: {os.cpu_count()}")
    print(f"--shard processes + merge: {shard_seconds:7.1f} s  {shard_rate:7.1f} passages/s   "
          f"peak RSS shards {shard_peaks} MiB, merge {merge_peak} MiB")
    print(f"Ray actors + driver merge: {ray_seconds:7.1f} s  {ray_rate:7.1f} passages/s   "
          f"peak RSS driver {driver_peak} MiB, actors {actor_peaks} MiB")
    print(f"collection read and parse rate of one process: {reading:,.0f} passages/s "
          f"(38.6M passages: {38.6e6 / reading / 60:.0f} min per worker)")
    print(f"ratio Ray / shards: {ray_rate / shard_rate:.3f} (goal >= 0.9); identical index: {identical}; "
          f"loadavg before {' '.join(before)}, after {' '.join(after)}")
    print(json.dumps({"passages": args.passages, "shard_passages_per_s": round(shard_rate, 2),
                      "ray_passages_per_s": round(ray_rate, 2), "ratio": round(ray_rate / shard_rate, 3),
                      "driver_peak_rss_mib": driver_peak, "actor_peak_rss_mib": actor_peaks,
                      "shard_peak_rss_mib": shard_peaks, "merge_peak_rss_mib": merge_peak, "identical": identical,
                      "read_passages_per_s": round(reading),
                      "loadavg_before": before, "loadavg_after": after}))
    if not identical:
        raise SystemExit("the two indexes differ")


if __name__ == "__main__":
    main()
