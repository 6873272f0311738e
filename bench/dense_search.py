"""Dense batch-search throughput, in one process: our searcher against Pyserini's `FaissSearcher.batch_search`
and against raw `faiss` (`index.search`, no docid lookup), on the same flat index and query embeddings.

The index holds N synthetic unit vectors (dimension 384, as MiniLM) written in Pyserini's layout; the
queries are Q synthetic unit vectors; every side returns the top `--hits` per query, with the same
number of faiss threads. Each side runs once to warm up (loading), then `--repeat` timed rounds; the
best round counts. Ours returns (docid, score) lists with docid tie-breaking and shard-independent
scores; Pyserini returns DenseSearchResult lists; raw faiss returns arrays only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def best_of(repeat: int, function) -> float:
    function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


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
        seconds = {
            "ours (DenseSearcher.search)": best_of(args.repeat, lambda: ours.search(queries, args.hits)),
            "pyserini FaissSearcher.batch_search": best_of(
                args.repeat, lambda: pyserini.batch_search(queries, qids, k=args.hits, threads=args.threads)),
            "raw faiss index.search": best_of(args.repeat, lambda: raw.search(queries, args.hits)),
        }
        theirs = pyserini.batch_search(queries, qids, k=args.hits, threads=args.threads)
        mine = ours.search(queries, args.hits)
        agree = np.mean([len({h.docid for h in theirs[q]} & {d for d, _ in hits}) / args.hits
                         for q, hits in zip(qids, mine)])
    qps = {name: args.queries / value for name, value in seconds.items()}
    print(f"{args.queries} queries x top {args.hits} over {args.docs:,} x {args.dim} flat inner-product index, "
          f"{args.threads} faiss threads (best of {args.repeat})")
    for name, value in qps.items():
        print(f"  {name:38s} {seconds[name]:7.3f} s  {value:9.1f} queries/s")
    print(f"  top-{args.hits} overlap with Pyserini: {agree:.4f}")
    ratio_pyserini = qps["ours (DenseSearcher.search)"] / qps["pyserini FaissSearcher.batch_search"]
    ratio_faiss = qps["ours (DenseSearcher.search)"] / qps["raw faiss index.search"]
    print(f"ratio ours / Pyserini: {ratio_pyserini:.2f} (must be >= 1.0); ours / raw faiss: {ratio_faiss:.2f}")
    print(json.dumps({"bench": "dense_search", "docs": args.docs, "queries": args.queries, "hits": args.hits,
                      "qps": {k: round(v, 1) for k, v in qps.items()}, "ratio_vs_pyserini": round(ratio_pyserini, 3),
                      "ratio_vs_faiss": round(ratio_faiss, 3)}))
    sys.exit(0 if ratio_pyserini >= 1.0 else 1)


if __name__ == "__main__":
    main()
