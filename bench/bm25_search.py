"""BM25 batch-search throughput: our bulk path against Pyserini's `LuceneSearcher.batch_search` and
Anserini's own `SearchCollection`, on the same index, queries, hit count and JVM, in one run.

    python bench/bm25_search.py [--index DIR] [--queries 1000] [--hits 1000] [--threads N]

Without --index it builds the convdr/cast20/mini index (1,426 passages) in a temporary folder. Queries
are CANARD dev rewrites (real conversational questions). Prints queries/second and the ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convdr_pyserini import _java  # noqa: E402
from convdr_pyserini.datasets import load  # noqa: E402
from convdr_pyserini.index.__main__ import main as index_main  # noqa: E402
from convdr_pyserini.index.lucene import quiet_anserini_logs  # noqa: E402
from convdr_pyserini.search.bm25 import DEFAULT_B, DEFAULT_K1, BM25Searcher  # noqa: E402


def pyserini_batch(index: Path, texts: dict, hits: int, threads: int) -> dict:
    searcher = _java.pyserini("search.lucene").LuceneSearcher(str(index))
    searcher.set_bm25(DEFAULT_K1, DEFAULT_B)
    found = searcher.batch_search(list(texts.values()), list(texts), k=hits, threads=threads)
    return {qid: [(hit.docid, hit.score) for hit in found.get(qid, [])] for qid in texts}


def ours(index: Path, texts: dict, hits: int, threads: int) -> dict:
    searcher = BM25Searcher(index, DEFAULT_K1, DEFAULT_B)
    try:
        return searcher.search(texts, hits, threads=threads, progress=False)
    finally:
        searcher.close()


def search_collection(index: Path, texts: dict, hits: int, threads: int) -> dict:
    """Anserini's SearchCollection (in this JVM) on a TSV topics file; its run file read back."""
    with tempfile.TemporaryDirectory() as folder:
        topics, run = Path(folder) / "topics.tsv", Path(folder) / "run.trec"
        topics.write_text("".join(f"{qid}\t{text}\n" for qid, text in texts.items()), encoding="utf-8")
        _java.autoclass("io.anserini.search.SearchCollection").main([
            "-index", str(index), "-topics", str(topics), "-topicReader", "TsvString", "-output", str(run),
            "-bm25", "-bm25.k1", str(DEFAULT_K1), "-bm25.b", str(DEFAULT_B), "-hits", str(hits),
            "-threads", str(threads)])
        results: dict = {}
        for line in run.read_text(encoding="utf-8").splitlines():
            qid, _, docid, _, score, _ = line.split()
            results.setdefault(qid, []).append((docid, float(score)))
        return results


def timed(function, *args) -> tuple[float, dict]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="Lucene index (default: build convdr/cast20/mini in a temporary folder)")
    parser.add_argument("--queries", type=int, default=1000, help="number of CANARD dev queries (default 1000)")
    parser.add_argument("--hits", type=int, default=1000, help="hits per query (default 1000)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for Pyserini and SearchCollection (default: CPUs); ours is one thread")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        index = Path(args.index) if args.index else Path(folder) / "cast20-mini"
        if not args.index:
            assert index_main(["lucene", "--collection", "convdr/cast20/mini", "--output", str(index)]) == 0
        quiet_anserini_logs()
        records = list(load("convdr/canard/dev").queries_iter())[:args.queries]
        texts = {record.query_id: record.manual_rewritten_utterance for record in records}
        warm = dict(list(texts.items())[:50])
        paths = {"ours (bulk Java-side)": ours, "pyserini batch_search": pyserini_batch,
                 "anserini SearchCollection": search_collection}
        for function in paths.values():  # JIT warm-up
            function(index, warm, args.hits, args.threads)
        seconds, results = {}, {}
        for name, function in paths.items():
            seconds[name], results[name] = timed(function, index, texts, args.hits, args.threads)
        reference = results["pyserini batch_search"]
        same = all([d for d, _ in results["ours (bulk Java-side)"][q]] == [d for d, _ in reference[q]] for q in texts)
        n_hits = sum(len(hits) for hits in reference.values())
        print(f"{len(texts)} queries, {args.hits} hits max ({n_hits:,} returned), index {index}, "
              f"threads {args.threads}, {os.cpu_count()} CPUs")
        for name, value in seconds.items():
            print(f"  {name:28s} {value:7.2f} s  {len(texts) / value:8.1f} queries/s")
        ours_s = seconds["ours (bulk Java-side)"]
        print(f"ratio vs pyserini batch_search:     {seconds['pyserini batch_search'] / ours_s:.2f}x")
        print(f"ratio vs anserini SearchCollection: {seconds['anserini SearchCollection'] / ours_s:.2f}x")
        print(f"same hits as pyserini: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
