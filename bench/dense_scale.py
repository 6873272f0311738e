"""Sharded dense indexing at scale: 2 shard builds in 2 concurrent processes, `index merge`, then search.

1. A synthetic collection of `--passages` passages (20-60 random English words, as in `dense_memory.py`) and
   the tiny random BERT encoder of `dense_memory.py` (2 layers, hidden 64, dimension 64, real MiniLM tokenizer).
2. `python -m convdr_pyserini.index dense ... --shard 0/2` and `--shard 1/2`, started together as two child
   processes with one thread each (2 CPU cores); each child's peak RSS is ru_maxrss from wait4.
3. `python -m convdr_pyserini.index merge` of the two pieces (child process, peak RSS as above).
4. `--queries` CANARD dev questions (the manual rewrites), encoded with the same tiny encoder, searched for the
   top `--hits` over the two pieces and over the merged index with `DenseSearcher`, in one child process
   (queries/s, peak RSS); the two result lists must be identical.
5. Disk use of the collection, the pieces and the merged index.

The reference side, where the machine allows it, is the unsharded build of the same collection in one process
with both threads (`--unsharded`, on by default up to 100k passages): passages/s of the 2-process build
against it. Prints a table and ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads stall
# faiss (training PQ codebooks took 57 s instead of 1 s on 2 busy cores). Must be set before faiss/torch load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dense_memory import synthetic_collection, tiny_encoder  # noqa: E402

MIB = 2 ** 20


def start(command: list[str], threads: int, log: Path) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    handle = open(log, "wb")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env), time.perf_counter()


def finish(child: subprocess.Popen, started: float, log: Path) -> dict:
    """Wait for a child; its wall seconds and peak RSS (bytes). A failed child stops the bench with its log."""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(map(str, child.args))} failed:\n{tail}")
    return {"seconds": seconds, "peak_rss": usage.ru_maxrss * 1024}


def finish_all(children: list[tuple[subprocess.Popen, float]], logs: list[Path]) -> list[dict]:
    """Wait for concurrent children in whatever order they end; each one's own wall seconds and peak RSS."""
    by_pid = {child.pid: number for number, (child, _) in enumerate(children)}
    results: list[dict | None] = [None] * len(children)
    while by_pid:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in by_pid:
            continue
        number = by_pid.pop(pid)
        child, started = children[number]
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            tail = logs[number].read_text(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(map(str, child.args))} failed:\n{tail}")
        results[number] = {"seconds": time.perf_counter() - started, "peak_rss": usage.ru_maxrss * 1024}
    return results


def build_command(collection: Path, encoder: Path, output: Path, batch_size: int, chunk_size: int, *extra) -> list[str]:
    return [sys.executable, "-m", "convdr_pyserini.index", "dense", "--collection", str(collection), "--encoder",
            str(encoder), "--output", str(output), "--batch-size", str(batch_size), "--chunk-size", str(chunk_size),
            *extra]


def disk_bytes(path: Path) -> int:
    return sum(file.stat().st_blocks * 512 for file in path.rglob("*") if file.is_file())


def search_child(args: argparse.Namespace) -> None:
    """Child mode: encode the queries, search the pieces and the merged index, write timings and hits as JSON."""
    import random

    import faiss
    import numpy as np

    from convdr_pyserini import files
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.search.dense import DenseSearcher

    faiss.omp_set_num_threads(args.threads)
    dialogs = json.loads(files.resolve("orquac/canard/dev.json").read_text(encoding="utf-8"))
    questions = random.Random(0).sample(sorted({turn["Rewrite"] for turn in dialogs}), args.queries)
    started = time.perf_counter()
    queries = load_encoder(args.encoder_path).encode_queries(questions, batch_size=128)
    encode_seconds = time.perf_counter() - started
    report = {"encode_seconds": encode_seconds}
    results = {}
    for name, path in (("pieces", args.pieces_path), ("merged", args.merged_path)):
        started = time.perf_counter()
        searcher = DenseSearcher([path])
        hits = searcher.search(queries, args.hits)
        report[f"{name}_seconds"] = time.perf_counter() - started
        report[f"{name}_count"] = len(searcher.pieces)
        results[name] = hits
    report["identical"] = results["pieces"] == results["merged"]
    report["hits_per_query"] = float(np.mean([len(h) for h in results["pieces"]]))
    Path(args.report).write_text(json.dumps(report), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000, help="collection size (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--unsharded", choices=["auto", "yes", "no"], default="auto",
                        help="also build unsharded in one 2-thread process (reference; auto: up to 100k passages)")
    parser.add_argument("--workdir", default=None, help="keep the files here instead of a temporary folder")
    # child mode (internal)
    parser.add_argument("--search-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encoder-path", help=argparse.SUPPRESS)
    parser.add_argument("--pieces-path", help=argparse.SUPPRESS)
    parser.add_argument("--merged-path", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_child:
        search_child(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    threads = os.cpu_count() or 2
    encoder = work / "tiny-encoder"
    if not (encoder / "encoder.yaml").is_file():
        tiny_encoder(encoder)
    collection = work / f"collection-{args.passages}"
    if not (collection / "docs.jsonl").is_file():
        started = time.perf_counter()
        synthetic_collection(collection, args.passages)
        print(f"wrote {args.passages:,} synthetic passages in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    pieces, merged = work / "index-sharded", work / "index-merged"
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    # 2. two shard builds at once, one thread each
    children = []
    for shard in range(2):
        command = build_command(collection, encoder, pieces, args.batch_size, args.chunk_size,
                                "--shard", f"{shard}/2", "--overwrite")
        children.append(start(command, 1, logs / f"shard-{shard}.log"))
    began = children[0][1]
    shards = finish_all(children, [logs / f"shard-{number}.log" for number in range(2)])
    build_seconds = time.perf_counter() - began
    for number, shard in enumerate(shards):
        meta = json.loads((pieces / f"shard-{number}-of-2" / "meta.json").read_text())
        shard["passages"] = meta["count"]
        shard["encode_seconds"] = meta["encode_seconds"]

    # reference: the same collection in one process with all threads
    unsharded = None
    if args.unsharded == "yes" or (args.unsharded == "auto" and args.passages <= 100_000):
        log = logs / "unsharded.log"
        unsharded = finish(*start(build_command(collection, encoder, work / "index-unsharded", args.batch_size,
                                                args.chunk_size, "--overwrite"), threads, log), log)

    # 3. merge
    log = logs / "merge.log"
    merge = finish(*start([sys.executable, "-m", "convdr_pyserini.index", "merge", "--input", str(pieces),
                           "--output", str(merged), "--overwrite"], threads, log), log)
    if unsharded is not None:
        same = all((merged / name).read_bytes() == (work / "index-unsharded" / name).read_bytes()
                   for name in ("index", "docid"))
        unsharded["merged_identical"] = same

    # 4. search, in a child process
    report_file = work / "search.json"
    log = logs / "search.log"
    search = finish(*start([sys.executable, __file__, "--search-child", "--encoder-path", str(encoder),
                            "--pieces-path", str(pieces), "--merged-path", str(merged), "--report", str(report_file),
                            "--queries", str(args.queries), "--hits", str(args.hits), "--threads", str(threads)],
                           threads, log), log)
    search.update(json.loads(report_file.read_text()))

    # 5. disk
    disk = {"collection": disk_bytes(collection), "pieces": disk_bytes(pieces), "merged": disk_bytes(merged)}
    report(args, shards, build_seconds, unsharded, merge, search, disk)


def report(args, shards, build_seconds, unsharded, merge, search, disk) -> None:
    total = args.passages
    rate = total / build_seconds
    print(f"sharded build of {total:,} synthetic passages (tiny random BERT, dim 64, batch {args.batch_size}), "
          f"2 shard processes x 1 thread on {os.cpu_count()} CPU cores")
    for number, shard in enumerate(shards):
        print(f"  shard {number}/2: {shard['passages']:,} passages, {shard['seconds']:.1f} s wall "
              f"({shard['passages'] / shard['seconds']:.0f} passages/s incl. start-up), peak RSS {shard['peak_rss'] / MIB:.1f} MiB")
    print(f"  both shards: {build_seconds:.1f} s wall, {rate:.0f} passages/s")
    ratio = None
    if unsharded is not None:
        reference_rate = total / unsharded["seconds"]
        ratio = rate / reference_rate
        print(f"  reference, unsharded in one {os.cpu_count()}-thread process: {unsharded['seconds']:.1f} s "
              f"({reference_rate:.0f} passages/s), peak RSS {unsharded['peak_rss'] / MIB:.1f} MiB; "
              f"merged index byte-identical to it: {unsharded['merged_identical']}")
        print(f"  ratio sharded / unsharded passages/s: {ratio:.2f}")
    print(f"index merge: {merge['seconds']:.1f} s, peak RSS {merge['peak_rss'] / MIB:.1f} MiB")
    queries = args.queries
    print(f"search, {queries} CANARD questions x top {args.hits} (DenseSearcher, exact, {os.cpu_count()} threads), "
          f"child peak RSS {search['peak_rss'] / MIB:.1f} MiB:")
    print(f"  over the 2 pieces: {search['pieces_seconds']:.2f} s ({queries / search['pieces_seconds']:.1f} queries/s); "
          f"over the merged index: {search['merged_seconds']:.2f} s ({queries / search['merged_seconds']:.1f} queries/s); "
          f"identical hits: {search['identical']}")
    print(f"disk: collection {disk['collection'] / MIB:.1f} MiB, pieces {disk['pieces'] / MIB:.1f} MiB, "
          f"merged {disk['merged'] / MIB:.1f} MiB ({disk['merged'] / total:.0f} bytes/passage)")
    print(json.dumps({
        "bench": "dense_scale", "passages": total, "shards": 2, "cpu_cores": os.cpu_count(),
        "build_seconds": round(build_seconds, 1), "passages_per_s": round(rate, 1),
        "shard_peak_rss_mib": [round(s["peak_rss"] / MIB, 1) for s in shards],
        "unsharded_passages_per_s": round(total / unsharded["seconds"], 1) if unsharded else None,
        "ratio_vs_unsharded": round(ratio, 3) if ratio else None,
        "merge_seconds": round(merge["seconds"], 1), "merge_peak_rss_mib": round(merge["peak_rss"] / MIB, 1),
        "search_queries": queries, "search_hits": args.hits,
        "search_qps_pieces": round(queries / search["pieces_seconds"], 2),
        "search_qps_merged": round(queries / search["merged_seconds"], 2),
        "search_peak_rss_mib": round(search["peak_rss"] / MIB, 1), "search_identical": search["identical"],
        "disk_mib": {name: round(value / MIB, 1) for name, value in disk.items()},
    }))
    ok = search["identical"] and (unsharded is None or unsharded["merged_identical"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
