"""`python -m convdr_pyserini.rerank`: re-score the top of a run with a cross-encoder.

    python -m convdr_pyserini.rerank --run runs/bm25.trec --topics convdr/cast20/mini --query no_res \
        --model models/monobert --depth 100 --output runs/bm25.rerank.trec

Writes the reranked run and its `<output>.json` sidecar (the first stage's record under the reranker's settings).
"""
from __future__ import annotations

import argparse
import time

from .._cli import ArgumentParser, cli_main, positive_int

QUERY_MODES = ("raw", "manual", "automatic", "rewrite", "no_res", "man_can", "auto_can")


def build_parser() -> argparse.ArgumentParser:
    """The rerank command line."""
    parser = ArgumentParser(prog="python -m convdr_pyserini.rerank",
                            description="Rerank the top of a run with a cross-encoder (Hugging Face sequence-"
                                        "classification folder or OpenMatch BERT reranker checkpoint).")
    parser.add_argument("--run", required=True, help="first-stage run (trec or msmarco format)")
    parser.add_argument("--topics", required=True, help="an ir_datasets id or a topics file (the run's topics)")
    parser.add_argument("--query", choices=QUERY_MODES, default="raw",
                        help="query input, as the dense encoders': raw/manual/automatic/rewrite (one utterance) or "
                             "ConvDR's no_res/man_can/auto_can (default raw)")
    parser.add_argument("--rewrites", metavar="FILE", help="with --query rewrite: the rewrites (qid<TAB>text)")
    parser.add_argument("--model", required=True, help="cross-encoder: model folder or OpenMatch checkpoint file")
    parser.add_argument("--depth", type=positive_int, default=100, help="hits reranked per query (default 100)")
    parser.add_argument("--collection", help="the passages the run was made on: a Lucene index, a JsonCollection, "
                                             "a dense index folder or a dataset id (default: the index in the run's "
                                             "sidecar)")
    parser.add_argument("--output", required=True, help="reranked run to write; its sidecar is <output>.json")
    parser.add_argument("--tag", help="run tag (default: the first stage's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="pairs per batch (default 32)")
    parser.add_argument("--max-length", type=positive_int, default=512, help="tokens per pair (default 512)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Rerank, write the run and its sidecar, print a summary line."""
    from pathlib import Path

    from ..errors import UserError
    from ..io.atomic import prepare_output
    from ..io.runs import sidecar_path
    from .reranker import CrossEncoderReranker

    started = time.time()
    if (args.query == "rewrite") != (args.rewrites is not None):
        raise UserError("{query} rewrite and {rewrites} FILE go together", "query", "rewrites")
    inputs = [Path(p) for p in (args.run, args.model, args.rewrites, args.collection, args.topics) if p]
    inputs = [p for p in inputs if p.exists()]
    prepare_output(sidecar_path(args.output), inputs, overwrite=True)
    prepare_output(args.output, inputs, args.overwrite)
    query = args.query
    if query == "rewrite":
        from ..io.topics import load_rewrites

        query = load_rewrites(args.rewrites)
    reranker = CrossEncoderReranker(args.model, args.collection, device=args.device, batch_size=args.batch_size,
                                    max_length=args.max_length)
    run = reranker.rerank(args.topics, args.run, query=query, depth=args.depth)
    counts = run.write(args.output, tag=args.tag, overwrite=args.overwrite, inputs=inputs,
                       extra={"command": args.command_line})
    print(f"wrote {args.output}: {counts['queries']} queries, {counts['hits']} hits reranked "
          f"({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
