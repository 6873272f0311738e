"""BM25 batch-search throughput: ours against Pyserini's `LuceneSearcher.batch_search` and Anserini's own
`SearchCollection`, on the same index, queries, hit count, threads and JVM, in one run.

    python bench/bm25_search.py [--docs N] [--index DIR] [--queries 1000] [--hits 1000] [--threads N]

Without --index it builds an index in a temporary folder: the 1,426 real passages of convdr/cast20/mini, and
with `--docs N` as many more as needed to reach N passages, each a real passage repeated under a new id with
its words shuffled (seeded), so that term statistics and posting lengths grow like a real collection's while
the vocabulary stays real. Queries are CANARD dev rewrites (real conversational questions). Prints queries/s
and the ratios; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convdr_pyserini import _java  # noqa: E402
from convdr_pyserini.datasets import load  # noqa: E402
from convdr_pyserini.index import build_lucene_index  # noqa: E402
from convdr_pyserini.index.lucene import quiet_anserini_logs  # noqa: E402
from convdr_pyserini.search.bm25 import DEFAULT_B, DEFAULT_K1, BM25Searcher  # noqa: E402

MINI = "convdr/cast20/mini"


def write_collection(folder: Path, docs: int, seed: int = 0) -> Path:
    """A JsonCollection of `docs` passages: the mini collection, then shuffled-word copies under new ids."""
    passages = [(doc.doc_id, doc.text) for doc in load(MINI).docs_iter()]
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as out:
        for number in range(max(docs, len(passages))):
            docid, text = passages[number % len(passages)]
            if number >= len(passages):
                words = text.split()
                rng.shuffle(words)
                docid, text = f"{docid}-copy{number // len(passages)}", " ".join(words)
            out.write(json.dumps({"id": docid, "contents": text}, ensure_ascii=False) + "\n")
    return folder


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
    parser.add_argument("--index", help="Lucene index (default: build one in a temporary folder)")
    parser.add_argument("--docs", type=int, default=1426, help="passages in the built index (default 1,426: the "
                                                                "mini collection alone)")
    parser.add_argument("--queries", type=int, default=1000, help="number of CANARD dev queries (default 1000)")
    parser.add_argument("--hits", type=int, default=1000, help="hits per query (default 1000)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="search threads, the same for all three (default: CPUs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        index = Path(args.index) if args.index else Path(folder) / "index"
        if not args.index:
            started = time.perf_counter()
            collection = write_collection(Path(folder) / "collection", args.docs)
            build_lucene_index(collection, index, threads=args.threads)
            print(f"built a {args.docs:,}-passage index in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        quiet_anserini_logs()
        records = list(load("convdr/canard/dev").queries_iter())[:args.queries]
        texts = {record.query_id: record.manual_rewritten_utterance for record in records}
        warm = dict(list(texts.items())[:50])
        paths = {"ours": ours, "pyserini batch_search": pyserini_batch, "anserini SearchCollection": search_collection}
        for function in paths.values():  # JIT warm-up
            function(index, warm, args.hits, args.threads)
        seconds, results = {}, {}
        for name, function in paths.items():
            seconds[name], results[name] = timed(function, index, texts, args.hits, args.threads)
        reference = results["pyserini batch_search"]
        same = all([d for d, _ in results["ours"][q]] == [d for d, _ in reference[q]] for q in texts)
        returned = sum(len(hits) for hits in reference.values())
        print(f"{len(texts)} queries x {args.hits} hits ({returned:,} returned), {args.docs:,} passages, "
              f"{args.threads} threads each, {os.cpu_count()} CPUs")
        for name, value in seconds.items():
            print(f"  {name:26s} {value:7.2f} s  {len(texts) / value:8.1f} queries/s")
        ratio_pyserini = seconds["pyserini batch_search"] / seconds["ours"]
        ratio_anserini = seconds["anserini SearchCollection"] / seconds["ours"]
        print(f"ratio vs pyserini batch_search:     {ratio_pyserini:.2f}x")
        print(f"ratio vs anserini SearchCollection: {ratio_anserini:.2f}x")
        print(f"same hits as pyserini: {same}")
        print(json.dumps({"bench": "bm25_search", "docs": args.docs, "queries": len(texts), "hits": args.hits,
                          "threads": args.threads, "cpus": os.cpu_count(),
                          "queries_per_second": {name: round(len(texts) / value, 1) for name, value in seconds.items()},
                          "ratio_vs_pyserini": round(ratio_pyserini, 3),
                          "ratio_vs_searchcollection": round(ratio_anserini, 3), "same_hits": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
