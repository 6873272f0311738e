"""Dense batch-search throughput, in one process: our searcher against Pyserini's `FaissSearcher.batch_search`
and against raw `faiss` (`index.search`, no docid lookup), on the same flat index and query embeddings; and the
time from the search to a written trec run file, ours against raw faiss plus a plain numpy trec writer.

The index holds N synthetic unit vectors (dimension 384, as MiniLM) written in Pyserini's layout; the
queries are Q synthetic unit vectors; every side returns the top `--hits` per query, with the same
number of faiss threads. Each side runs once to warm up (loading), then `--repeat` rounds that call every
side in turn (a slow spell on a shared machine then hits all of them); the best round of each counts.

- ours, arrays (`DenseSearcher.search_arrays`): docid keys and scores, docid tie-breaking and
  shard-independent (exactly rescored) scores, no Python object per hit;
- ours, lists (`DenseSearcher.search`): the same hits as (docid, score) lists;
- Pyserini: DenseSearchResult lists; raw faiss: arrays only (faiss's float32 scores, ties in faiss's order).
- written run: ours is `search_arrays` + `Run.write` (trec, no sidecar); the reference is raw faiss +
  a loop writing one f-string per hit (docids from a list read once).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def alternating(repeat: int, functions: dict) -> dict[str, float]:
    """Best seconds of each function: one warm-up call each, then `repeat` rounds calling them in turn."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


def plain_trec(path: Path, query_ids: list[str], scores, rows, docids: list[str], tag: str) -> None:
    """The reference writer: raw faiss arrays to a trec file, one f-string per hit."""
    with open(path, "w", encoding="utf-8") as out:
        for query_id, found, values in zip(query_ids, rows.tolist(), scores.tolist()):
            out.write("".join(f"{query_id} Q0 {docids[row]} {rank} {score:.6f} {tag}\n"
                              for rank, (row, score) in enumerate(zip(found, values), 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import faiss
    import numpy as np

    from convdr_pyserini import _java
    from convdr_pyserini.index import faiss_io
    from convdr_pyserini.io.runs import HitArrays, Run
    from convdr_pyserini.search.dense import DenseSearcher

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.docs, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    qids = [f"q{i}" for i in range(args.queries)]
    faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        writer = faiss_io.FlatWriter(folder / "index", args.dim)
        writer.append(vectors)
        writer.finish()
        (folder / "docid").write_text("".join(f"doc{i}\n" for i in range(args.docs)))
        del vectors

        pyserini = _java.pyserini("search.faiss").FaissSearcher(str(folder), None)
        ours = DenseSearcher([folder])
        raw = faiss.read_index(str(folder / "index"))
        docid_list = (folder / "docid").read_text().split("\n")[:-1]

        def ours_to_file():
            rows, scores, counts = ours.search_arrays(queries, args.hits)
            Run(HitArrays(qids, rows, scores, counts, ours.docids)).write(
                folder / "ours.trec", tag="dense", overwrite=True, sidecar=False)

        def faiss_to_file():
            scores, rows = raw.search(queries, args.hits)
            plain_trec(folder / "faiss.trec", qids, scores, rows, docid_list, "dense")

        seconds = alternating(args.repeat, {
            "ours, arrays (DenseSearcher.search_arrays)": lambda: ours.search_arrays(queries, args.hits),
            "ours, lists (DenseSearcher.search)": lambda: ours.search(queries, args.hits),
            "raw faiss index.search": lambda: raw.search(queries, args.hits),
            "pyserini FaissSearcher.batch_search": lambda: pyserini.batch_search(
                queries, qids, k=args.hits, threads=args.threads),
        })
        seconds.update(alternating(args.repeat, {"ours to run file (search_arrays + Run.write)": ours_to_file,
                                                 "raw faiss + plain trec writer": faiss_to_file}))
        theirs = pyserini.batch_search(queries, qids, k=args.hits, threads=args.threads)
        mine = ours.search(queries, args.hits)
        agree = np.mean([len({h.docid for h in theirs[q]} & {d for d, _ in hits}) / args.hits
                         for q, hits in zip(qids, mine)])
    qps = {name: args.queries / value for name, value in seconds.items()}
    print(f"{args.queries} queries x top {args.hits} over {args.docs:,} x {args.dim} flat inner-product index, "
          f"{args.threads} faiss threads (best of {args.repeat}); load average {os.getloadavg()[0]:.2f}")
    for name, value in qps.items():
        print(f"  {name:46s} {seconds[name]:7.3f} s  {value:9.1f} queries/s")
    print(f"  top-{args.hits} overlap with Pyserini: {agree:.4f}")
    arrays, lists = qps["ours, arrays (DenseSearcher.search_arrays)"], qps["ours, lists (DenseSearcher.search)"]
    ratios = {
        "arrays_vs_faiss": arrays / qps["raw faiss index.search"],
        "lists_vs_faiss": lists / qps["raw faiss index.search"],
        "lists_vs_pyserini": lists / qps["pyserini FaissSearcher.batch_search"],
        "run_file_vs_faiss_plus_writer": seconds["raw faiss + plain trec writer"]
        / seconds["ours to run file (search_arrays + Run.write)"],
    }
    print("ratios: " + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
          + " (goals: arrays_vs_faiss >= 0.95, run_file >= 0.9, lists_vs_pyserini >= 1)")
    print(json.dumps({"bench": "dense_search", "docs": args.docs, "queries": args.queries, "hits": args.hits,
                      "threads": args.threads, "loadavg": os.getloadavg()[0],
                      "qps": {k: round(v, 1) for k, v in qps.items()},
                      "ratio_vs_pyserini": round(ratios["lists_vs_pyserini"], 3),
                      "ratio_vs_faiss": round(ratios["arrays_vs_faiss"], 3),
                      **{f"ratio_{k}": round(v, 3) for k, v in ratios.items()}}))
    sys.exit(0 if ratios["lists_vs_pyserini"] >= 1.0 else 1)


if __name__ == "__main__":
    main()
