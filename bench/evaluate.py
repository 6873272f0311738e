"""Evaluation as a whole process: `python -m convdr_pyserini.evaluate` against `python -m ir_measures`, on the same
qrels, run and measures, each started as a child process (best of 3, the two alternating); wall time and peak
memory (the child's maximum resident set size).

    python bench/evaluate.py [--run RUN] [--scales 1 10] [--repeats 3]

The run is a 216-query x 1,000-hit run of convdr/cast20/mini (MiniLM over indexes/cast20-mini.minilm, built by
`make demo`, else over one built in a temporary folder; or `--run`), scored against the CAsT-20 qrels with `nDCG@3 RR(rel=2) R@100`, per query (`-q` /
`--per-query`). Scale 10 is ten copies of the run and the qrels under renamed topics (topic 81 becomes 181, 281,
...): 2,160 queries. Both tools' averages are checked to agree. Prints the times, the memory and the ratios; the
last line is one JSON object.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convdr_pyserini import files  # noqa: E402

MEASURES = "nDCG@3 RR(rel=2) R@100"
QRELS = "cast-20/2020qrels.txt"
INDEX = ROOT / "indexes" / "cast20-mini.minilm"


def make_run(path: Path) -> Path:
    """The 216 raw queries of convdr/cast20/mini, 1,000 MiniLM hits each (over the demo's index, else one built
    beside `path`)."""
    import convdr_pyserini as cp

    index = INDEX
    if not index.is_dir():
        index = path.parent / "cast20-mini.minilm"
        cp.build_dense_index(cp.DenseIndexConfig("convdr/cast20/mini", "minilm", str(index)))
    topics = cp.load_topics("convdr/cast20/mini")
    cp.DenseRetriever(index, encoder="minilm").search(topics, query="raw", hits=1000).write(path, sidecar=False)
    return path


def renamed(source: Path, target: Path, copies: int) -> Path:
    """`copies` copies of a run or qrels file, copy k with topic t renamed kt (query `t_n` becomes `kt_n`)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    with open(target, "w", encoding="utf-8") as out:
        for copy in range(1, copies + 1):
            out.writelines(f"{copy}{line}" for line in lines)
    return target


def child(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak resident MiB, stdout) of one child process."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            sys.exit(f"error: {' '.join(command)} exited with {process.returncode}")
        output.seek(0)
        return seconds, usage.ru_maxrss / 1024, output.read().decode("utf-8")


def commands(qrels: Path, run: Path) -> dict[str, list[str]]:
    return {
        "ours": [sys.executable, "-m", "convdr_pyserini.evaluate", "--qrels", str(qrels), "--run", str(run),
                 "--measures", MEASURES, "--per-query"],
        "ir_measures": [sys.executable, "-m", "ir_measures", str(qrels), str(run), MEASURES, "-q"],
    }


def averages_agree(qrels: Path, run: Path) -> bool:
    """Both tools' averages, to 4 places (ir_measures prints 4)."""
    ours = json.loads(child(commands(qrels, run)["ours"][:-1] + ["--format", "json"])[2])["runs"][0]["aggregate"]
    theirs = {}
    for line in child(commands(qrels, run)["ir_measures"])[2].splitlines():
        query_id, measure, value = line.split("\t")
        if query_id == "all":
            theirs[measure] = float(value)
    return set(ours) == set(theirs) and all(abs(ours[m] - theirs[m]) < 5e-5 for m in ours)


def measure(qrels: Path, run: Path, repeats: int) -> dict:
    best = {name: (float("inf"), 0.0) for name in ("ours", "ir_measures")}
    for _ in range(repeats):
        for name, command in commands(qrels, run).items():
            seconds, mib, _ = child(command)
            best[name] = (min(best[name][0], seconds), max(best[name][1], mib))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run of convdr/cast20/mini (default: made with MiniLM, 1,000 hits)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10], help="copies of the run (default 1 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool per scale (default 3; best kept)")
    parser.add_argument("--make-run", help=argparse.SUPPRESS)  # in a child: this process's peak RSS stays small,
    args = parser.parse_args()                                 # and a child's starts from its parent's on Linux
    if args.make_run:
        make_run(Path(args.make_run))
        return 0
    results, agree = {}, True
    with tempfile.TemporaryDirectory() as folder:
        base_run = Path(args.run) if args.run else Path(folder) / "minilm-raw-1000.trec"
        if not args.run:
            subprocess.run([sys.executable, __file__, "--make-run", str(base_run)], check=True)
        base_qrels = files.resolve(QRELS)
        for scale in args.scales:
            run = base_run if scale == 1 else renamed(base_run, Path(folder) / f"run-x{scale}.trec", scale)
            qrels = base_qrels if scale == 1 else renamed(base_qrels, Path(folder) / f"qrels-x{scale}.txt", scale)
            queries = len({line.split()[0] for line in run.read_text(encoding="utf-8").splitlines()})
            hits = sum(1 for _ in run.open(encoding="utf-8"))
            agree = averages_agree(qrels, run) and agree
            best = measure(qrels, run, args.repeats)
            (ours_s, ours_mib), (theirs_s, theirs_mib) = best["ours"], best["ir_measures"]
            results[scale] = {"queries": queries, "hits": hits, "seconds": {"ours": round(ours_s, 3),
                              "ir_measures": round(theirs_s, 3)}, "peak_mib": {"ours": round(ours_mib, 1),
                              "ir_measures": round(theirs_mib, 1)}, "speed_ratio": round(theirs_s / ours_s, 3),
                              "memory_ratio": round(ours_mib / theirs_mib, 3)}
            print(f"{queries:,} queries x {hits // queries:,} hits ({MEASURES}, per query), best of {args.repeats}:")
            print(f"  ours         {ours_s:6.2f} s  {ours_mib:7.1f} MiB")
            print(f"  ir_measures  {theirs_s:6.2f} s  {theirs_mib:7.1f} MiB")
            print(f"  speed: {theirs_s / ours_s:.2f}x ir_measures'   memory: {ours_mib / theirs_mib:.2f}x ir_measures'")
    print(f"averages agree (4 places): {agree}; {os.cpu_count()} CPUs")
    print(json.dumps({"bench": "evaluate", "measures": MEASURES, "repeats": args.repeats, "cpus": os.cpu_count(),
                      "averages_agree": agree, "scales": results}))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
