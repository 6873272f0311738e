"""`python -m convdr_pyserini.search`: one command for every retrieval (BM25, dense/ConvDR, fusion).

Writes a run (trec, msmarco or openmatch) and a `<run>.json` sidecar recording every parameter, the
index's meta, the query type (and rewrites file with its sha256), the package versions and the wall time.
The arguments become a `SearchSpec`, which does the work.
"""
from __future__ import annotations

import argparse
import logging
import time

from .._cli import (ArgumentParser, MAX_INT, add_ray_options, cli_main, finite_float, non_negative_int, positive_float,
                    positive_int, ray_cluster)
from ..io.runs import FORMATS
from .bm25 import DEFAULT_B, DEFAULT_K1
from .queries import MISSING_REWRITE, QUERY_TYPES

logger = logging.getLogger("convdr_pyserini.search")


def build_parser() -> argparse.ArgumentParser:
    """The search command line."""
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.search",
        description="Retrieve for a topic set with BM25 (Anserini), a dense encoder, ConvDR, or reciprocal rank fusion.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--bm25", action="store_true", help="BM25 over a Lucene index (from `index lucene`)")
    mode.add_argument("--encoder", help="dense retrieval with this encoder (card name, card file or model folder)")
    mode.add_argument("--cv", help="ConvDR: folder of per-fold encoders (fold-0, fold-1, ...); each topic is searched "
                                   "with the model that did not train on it")
    mode.add_argument("--fusion", choices=["rrf"], help="fuse the --runs files (reciprocal rank fusion, k=60)")
    parser.add_argument("--topics", help="an ir_datasets id (convdr/cast20, convdr/cast20/mini, ...), a Pyserini "
                                         "topics TSV (qid<TAB>text) or a CAsT JSON topics file")
    parser.add_argument("--query", choices=QUERY_TYPES,
                        help="query input: raw/manual/automatic/concat/rewrite (BM25); raw/manual/automatic/rewrite/"
                             "no_res/man_can/auto_can (dense)")
    parser.add_argument("--rewrites", metavar="FILE", help="with --query rewrite: the rewrites (qid<TAB>text, or a "
                                                           "TSV with id and query columns)")
    parser.add_argument("--missing-rewrite", choices=MISSING_REWRITE, default="error",
                        help="a query the rewrites lack: error (default) or search its raw utterance")
    parser.add_argument("--index", nargs="+", help="Lucene index folder (BM25); dense index folder(s) or shards")
    parser.add_argument("--hits", type=positive_int, default=1000, help=f"hits per query (default 1000, at most {MAX_INT})")
    parser.add_argument("--output", required=True, help="run file to write; its sidecar is <output>.json")
    parser.add_argument("--output-format", choices=FORMATS, default="trec", help="run format (default trec)")
    parser.add_argument("--tag", help="run tag (default: describes the retriever, e.g. bm25-k1_0.82-b_0.68)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--threads", type=positive_int, default=1, help="search threads (default 1)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="queries per batch (BM25 default 256; dense: encoder batch, default 64)")
    sparse = parser.add_argument_group("BM25")
    sparse.add_argument("--k1", type=finite_float(0.0), default=DEFAULT_K1,
                        help=f"BM25 k1 (default {DEFAULT_K1}, CAsT convention)")
    sparse.add_argument("--b", type=finite_float(0.0, 1.0), default=DEFAULT_B,
                        help=f"BM25 b (default {DEFAULT_B}, CAsT convention)")
    sparse.add_argument("--rm3", action="store_true", help="RM3 pseudo-relevance feedback (needs document vectors)")
    sparse.add_argument("--fb-terms", type=positive_int, default=10, help="RM3 expansion terms (default 10)")
    sparse.add_argument("--fb-docs", type=positive_int, default=10, help="RM3 feedback documents (default 10)")
    sparse.add_argument("--original-query-weight", type=finite_float(0.0, 1.0), default=0.5,
                        help="RM3 weight of the original query, in [0, 1] (default 0.5)")
    sparse.add_argument("--concat-window", type=non_negative_int, default=None,
                        help="--query concat: previous utterances joined to the current one (default: all)")
    dense = parser.add_argument_group("dense")
    dense.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="encoder/search device (default cpu)")
    dense.add_argument("--truncate", choices=["convdr", "keep-current"], default=None,
                       help="how an over-long conversational input is cut (default: the encoder's)")
    dense.add_argument("--max-concat-length", type=positive_int, default=None,
                       help="token limit of the conversational input (default: the encoder's)")
    dense.add_argument("--all-topics", action="store_true",
                       help="with a cross-validation fold model (e.g. the released convdr-kd-cast19, fold 1): score "
                            "every topic, not only those its fold held out (a warning says most were seen in training)")
    dense.add_argument("--no-verify", dest="verify", action="store_false",
                       help="skip the index checksum verification (a warning says so)")
    dense.add_argument("--nprobe", type=positive_int, default=None, help="IVF lists searched (compressed IVF indexes)")
    dense.add_argument("--ef-search", type=positive_int, default=None, help="HNSW search breadth (HNSW indexes)")
    dense.add_argument("--refine", type=finite_float(1.0), default=None, metavar="F",
                       help="re-score the top F x hits candidates of a compressed index exactly, from the flat index "
                            "it was compressed from (read from disk, memory-mapped)")
    dense.add_argument("--refine-from", metavar="FLAT", default=None,
                       help="that flat index, when it is no longer where meta.json's compressed_from says")
    second = parser.add_argument_group("reranking (second stage)")
    second.add_argument("--rerank", metavar="MODEL", help="rerank the hits with this cross-encoder (model folder or "
                                                          "OpenMatch checkpoint), passages from the index searched")
    second.add_argument("--rerank-depth", type=positive_int, default=100,
                        help="hits reranked per query (default 100, at most --hits); the run keeps those only")
    second.add_argument("--rerank-query", choices=("raw", "manual", "automatic", "no_res", "man_can", "auto_can"),
                        help="the reranker's query input (default: --query)")
    fusion = parser.add_argument_group("fusion")
    fusion.add_argument("--runs", nargs="+", help="run files to fuse (trec or msmarco format)")
    fusion.add_argument("--rrf-k", type=positive_float, default=60, help="the RRF constant k (default 60)")
    add_ray_options(parser, "a dense or ConvDR search, the index pieces held by the workers (at the same path on "
                            "each)")
    return parser


def spec_from_arguments(args: argparse.Namespace):
    """The `SearchSpec` the parsed arguments describe."""
    from ..errors import UserError
    from .spec import SearchSpec

    retriever = "bm25" if args.bm25 else "convdr" if args.cv else "dense" if args.encoder else \
        "rrf" if args.fusion else None
    if retriever is None:
        raise UserError("choose the retriever: one of --bm25, --encoder, --cv and --fusion")
    return SearchSpec(
        retriever=retriever, topics=args.topics, query=args.query, rewrites=args.rewrites,
        missing_rewrite=args.missing_rewrite, index=args.index or [], hits=args.hits, threads=args.threads,
        batch_size=args.batch_size, k1=args.k1, b=args.b, rm3=args.rm3, fb_terms=args.fb_terms,
        fb_docs=args.fb_docs, original_query_weight=args.original_query_weight, concat_window=args.concat_window,
        encoder=args.encoder, cv=args.cv, device=args.device, truncate=args.truncate,
        max_concat_length=args.max_concat_length, all_topics=args.all_topics, verify=args.verify, nprobe=args.nprobe, ef_search=args.ef_search,
        refine=args.refine, refine_from=args.refine_from, runs=args.runs or [], rrf_k=args.rrf_k,
        rerank=args.rerank, rerank_depth=args.rerank_depth,
        rerank_query=args.rerank_query)


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Search, write the run and its sidecar, print a summary line."""
    started = time.time()
    spec = spec_from_arguments(args)
    run = spec.execute(args.output, args.output_format, args.tag, args.overwrite, cluster=ray_cluster(args))
    counts = run.counts()
    print(f"wrote {args.output}: {counts['queries']} queries, {counts['hits']} hits, "
          f"{counts['queries_without_hits']} queries with no hits ({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
