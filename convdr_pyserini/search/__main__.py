"""`python -m convdr_pyserini.search`: one command for every retrieval (BM25, dense/ConvDR, fusion).

Writes a run (trec, msmarco or openmatch) and a `<run>.json` sidecar recording every parameter, the
index's meta, the query type, the package versions and the wall time.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time

from .._cli import check_writable, cli_main, non_negative_int, positive_int
from ..errors import UserError
from .bm25 import DEFAULT_B, DEFAULT_K1
from .queries import QUERY_TYPES
from .runs import OUTPUT_FORMATS, sidecar_path


def build_parser() -> argparse.ArgumentParser:
    """The search command line."""
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.search",
        description="Retrieve for a topic set with BM25 (Anserini), a dense encoder, or reciprocal rank fusion.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--bm25", action="store_true", help="BM25 over a Lucene index (from `index lucene`)")
    mode.add_argument("--encoder", help="dense retrieval with this encoder (card name, card file or model folder)")
    mode.add_argument("--fusion", choices=["rrf"], help="fuse the --runs files (reciprocal rank fusion, k=60)")
    parser.add_argument("--topics", help="ir_datasets id of the topics, e.g. convdr/cast20 or convdr/cast20/mini")
    parser.add_argument("--query", choices=QUERY_TYPES,
                        help="query input: raw/manual/automatic/concat (BM25); raw/manual/automatic/no_res/"
                             "man_can/auto_can (dense)")
    parser.add_argument("--index", nargs="+", help="Lucene index folder (BM25); dense index folder(s) or shards")
    parser.add_argument("--hits", type=positive_int, default=1000, help="hits per query (default 1000)")
    parser.add_argument("--output", required=True, help="run file to write; its sidecar is <output>.json")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="trec", help="run format (default trec)")
    parser.add_argument("--tag", help="run tag (default: describes the retriever, e.g. bm25-k1_0.82-b_0.68)")
    parser.add_argument("--threads", type=positive_int, default=1, help="search threads (default 1)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="queries per batch (BM25 default 256; dense: encoder batch, default 64)")
    sparse = parser.add_argument_group("BM25")
    sparse.add_argument("--k1", type=float, default=DEFAULT_K1, help=f"BM25 k1 (default {DEFAULT_K1}, CAsT convention)")
    sparse.add_argument("--b", type=float, default=DEFAULT_B, help=f"BM25 b (default {DEFAULT_B}, CAsT convention)")
    sparse.add_argument("--rm3", action="store_true", help="RM3 pseudo-relevance feedback (needs document vectors)")
    sparse.add_argument("--fb-terms", type=positive_int, default=10, help="RM3 expansion terms (default 10)")
    sparse.add_argument("--fb-docs", type=positive_int, default=10, help="RM3 feedback documents (default 10)")
    sparse.add_argument("--original-query-weight", type=float, default=0.5,
                        help="RM3 weight of the original query, in [0, 1] (default 0.5)")
    sparse.add_argument("--concat-window", type=non_negative_int, default=None,
                        help="--query concat: previous utterances joined to the current one (default: all)")
    dense = parser.add_argument_group("dense")
    dense.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="encoder/search device (default cpu)")
    dense.add_argument("--truncate", choices=["convdr", "keep-current"], default=None,
                       help="how an over-long conversational input is cut (default: the encoder's)")
    dense.add_argument("--max-concat-length", type=positive_int, default=None,
                       help="token limit of the conversational input (default: the encoder's)")
    dense.add_argument("--cv", help="folder of per-fold encoders (fold-0, fold-1, ...): each topic is searched "
                                    "with the model that did not train on it")
    fusion = parser.add_argument_group("fusion")
    fusion.add_argument("--runs", nargs="+", help="run files to fuse (trec or msmarco format)")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Search, write the run and its sidecar, print a summary line."""
    started = time.time()
    retriever = _check_arguments(args)
    check_writable(args.output)
    check_writable(sidecar_path(args.output))
    records, dataset = [], None
    if args.topics:
        from ..datasets import load

        dataset = load(args.topics)
        records = list(dataset.queries_iter())
    if args.output_format == "openmatch" and dataset is None:
        raise UserError("--output-format openmatch needs --topics (for the query texts and the qrels labels)")
    from .runs import write_run, write_sidecar

    with contextlib.ExitStack() as resources:
        if retriever == "bm25":
            results, params, texts, doc_text = _search_bm25(args, records, resources)
        elif retriever == "dense":
            results, params, texts = _search_dense(args, dataset, records)
            doc_text = _docstore_text(dataset)
        else:
            results, params, texts = _fuse(args, records)
            doc_text = _docstore_text(dataset)
        qrels = _qrels(dataset) if args.output_format == "openmatch" else None
        default_tag = params.pop("default_tag")
        tag = args.tag or default_tag
        summary = write_run(args.output, results, tag=tag, output_format=args.output_format,
                            queries=texts, qrels=qrels, doc_text=doc_text)
    wall = time.time() - started
    write_sidecar(args.output, {
        **params, "retriever": retriever, "tag": tag, "topics": args.topics, "query_type": args.query,
        "hits": args.hits, "output": args.output, "output_format": args.output_format,
        "arguments": {key: value for key, value in vars(args).items()},
        "summary": summary, "wall_seconds": round(wall, 3),
    })
    print(f"wrote {args.output}: {summary['queries']} queries, {summary['hits']} hits, "
          f"{summary['queries_without_hits']} queries with no hits ({wall:.1f} s)")
    return 0


def _check_arguments(args: argparse.Namespace) -> str:
    """The retriever (bm25, dense or fusion), after checking the options that go with it."""
    if args.bm25:
        from .bm25 import check_parameters

        check_parameters(args.k1, args.b)
        if not 0 <= args.original_query_weight <= 1:
            raise UserError(f"--original-query-weight {args.original_query_weight} is out of range: must be in [0, 1]")
        _require(args, "--bm25", topics=args.topics, query=args.query, index=args.index)
        if len(args.index) != 1:
            raise UserError(f"--bm25 searches one Lucene index; got {len(args.index)}: {' '.join(args.index)}")
        for name in ("cv", "runs"):
            if getattr(args, name):
                raise UserError(f"--{name} does not apply to --bm25")
        return "bm25"
    if args.encoder or args.cv:
        _require(args, "--encoder" if args.encoder else "--cv", topics=args.topics, query=args.query, index=args.index)
        if args.query == "concat":
            raise UserError("--query concat is a BM25 input; dense encoders take no_res, man_can or auto_can for "
                            "the conversational context")
        for name in ("rm3", "runs", "fusion"):
            if getattr(args, name):
                raise UserError(f"--{name} does not apply to dense retrieval (--encoder/--cv)")
        return "dense"
    if not args.fusion:
        raise UserError("choose the retriever: one of --bm25, --encoder (or --cv) and --fusion")
    _require(args, "--fusion", runs=args.runs)
    if len(args.runs) < 2:
        raise UserError(f"--fusion rrf needs at least two --runs files, got {len(args.runs)}")
    return "fusion"


def _require(args: argparse.Namespace, mode: str, **values) -> None:
    missing = [f"--{name}" for name, value in values.items() if not value]
    if missing:
        raise UserError(f"{mode} needs {' and '.join(missing)}")


def _search_bm25(args, records, resources: contextlib.ExitStack):
    from .bm25 import DEFAULT_BATCH, RM3, BM25Searcher, index_meta
    from .queries import query_texts

    texts = query_texts(records, args.query, args.topics, args.concat_window)
    rm3 = RM3(args.fb_terms, args.fb_docs, args.original_query_weight) if args.rm3 else None
    settings = f"BM25 k1={args.k1:g} b={args.b:g}" + (
        f" + RM3 fb_terms={rm3.fb_terms} fb_docs={rm3.fb_docs} original_query_weight={rm3.original_query_weight:g}"
        if rm3 else "")
    print(f"{settings}, {args.hits} hits, {len(texts)} {args.query} queries of {args.topics}", file=sys.stderr)
    searcher = BM25Searcher(args.index[0], args.k1, args.b, rm3)
    resources.callback(searcher.close)
    results = searcher.search(texts, args.hits, threads=args.threads, batch_size=args.batch_size or DEFAULT_BATCH)
    tag = f"bm25-k1_{args.k1:g}-b_{args.b:g}" + (
        f"-rm3-{rm3.fb_terms}-{rm3.fb_docs}-{rm3.original_query_weight:g}" if rm3 else "")
    params = {
        "default_tag": tag,
        "bm25": {"k1": args.k1, "b": args.b},
        "rm3": None if rm3 is None else vars(rm3),
        "concat_window": args.concat_window if args.query == "concat" else None,
        "index": args.index[0],
        "index_meta": index_meta(args.index[0]),
        "index_documents": searcher.num_docs,
        "search_path": "anserini SimpleSearcher.batch_search (RM3)" if rm3 else "lucene IndexSearcher, bulk JSON",
    }
    return results, params, texts, searcher.doc_text


def _search_dense(args, dataset, records):
    from .dense import search_dense
    from .queries import concat_text

    results = search_dense(args, dataset, records)
    texts = {record.query_id: _record_text(record, args.query, concat_text) for record in records}
    encoder = args.cv or args.encoder
    params = {"default_tag": f"dense-{encoder.rstrip('/').rsplit('/', 1)[-1]}", "encoder": args.encoder,
              "cv": args.cv, "index": args.index, "index_meta": _dense_meta(args.index)}
    return {record.query_id: results.get(record.query_id, []) for record in records}, params, texts


def _docstore_text(dataset):
    """A docid -> text lookup in the topics' collection, opened on first use."""
    store = None

    def doc_text(docid: str) -> str:
        nonlocal store
        store = store or dataset.docs_store()
        return store.get(docid).text

    return doc_text


def _record_text(record, query_type: str, concat_text) -> str:
    from ..datasets import query_text

    if query_type in ("raw", "manual", "automatic"):
        return query_text(record, query_type)
    return concat_text(record)


def _dense_meta(paths: list[str]) -> list[dict]:
    from .bm25 import index_meta

    return [index_meta(path) for path in paths]


def _fuse(args, records):
    from .fusion import RRF_K, reciprocal_rank_fusion
    from .runs import read_run

    runs = [read_run(path) for path in args.runs]
    fused = reciprocal_rank_fusion(runs, RRF_K, args.hits)
    texts = None
    if records:
        fused = {record.query_id: fused.get(record.query_id, []) for record in records}
        texts = {record.query_id: record.raw_utterance for record in records}
    params = {"default_tag": f"rrf-k{RRF_K}", "fusion": {"method": "rrf", "k": RRF_K, "runs": args.runs}}
    return fused, params, texts


def _qrels(dataset) -> dict[str, dict[str, int]] | None:
    if dataset is None or not dataset.has_qrels():
        return None
    qrels: dict[str, dict[str, int]] = {}
    for qrel in dataset.qrels_iter():
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
    return qrels


if __name__ == "__main__":
    raise SystemExit(main())
