"""`python -m convdr_pyserini.rerank`: re-score the top of a run with a cross-encoder; `... rerank train`: train one
the ConvDR way (few-shot teacher-student, see `convdr_pyserini.rerank.training`).

    python -m convdr_pyserini.rerank --run runs/bm25.trec --topics convdr/cast20/mini --query no_res \
        --model models/monobert --depth 100 --output runs/bm25.rerank.trec
    python -m convdr_pyserini.rerank train --topics convdr/cast20/mini --run runs/bm25.trec --query no_res \
        --loss kd+ranking --cv 5 --output encoders/rerank-kd

Writes the reranked run and its `<output>.json` sidecar (the first stage's record under the reranker's settings).
A `--model` folder holding `fold-0`, `fold-1`, ... reranks each query with the fold that did not train on it.
"""
from __future__ import annotations

import argparse
import sys
import time

from .._cli import ArgumentParser, cli_main, finite_float, positive_int

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
    parser.add_argument("--max-length", type=positive_int,
                        help="tokens per pair (default: the length a `rerank train` model was trained with, else 512)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    return parser


def build_train_parser() -> argparse.ArgumentParser:
    """`rerank train`: the few-shot teacher-student training of a cross-encoder."""
    from .training import LOSSES

    parser = ArgumentParser(prog="python -m convdr_pyserini.rerank train",
                            description="Train a conversational cross-encoder the ConvDR way: the student (query "
                                        "input + passage) mimics the teacher's [CLS] embedding (manual rewrite + "
                                        "passage), plus a ranking loss; positives from the qrels, negatives "
                                        "sampled from the first-stage run.")
    parser.add_argument("--topics", required=True, help="training topics with manual rewrites and qrels")
    parser.add_argument("--run", required=True, help="first-stage run the negatives are drawn from")
    parser.add_argument("--output", required=True, help="output folder (fold-k students, teacher/fold-k)")
    parser.add_argument("--collection", help="passages (default: the run's index, else the topics' collection)")
    parser.add_argument("--teacher", help="a cross-encoder to use as the frozen teacher (e.g. an MS MARCO reranker) "
                                          "or a cross-validated teacher folder (fold-k, e.g. OUTPUT/teacher of an "
                                          "earlier run, with the same --cv); default: train one per fold on the "
                                          "manual rewrites")
    parser.add_argument("--teacher-only", action="store_true",
                        help="train the fold teachers only (OUTPUT/teacher/fold-k), for students to share")
    parser.add_argument("--init", default="minilm", help="encoder whose weights initialise the trained teacher "
                                                         "(default minilm)")
    parser.add_argument("--query", choices=("raw", "automatic", "no_res", "man_can", "auto_can"), default="no_res",
                        help="student input (default no_res)")
    parser.add_argument("--loss", choices=LOSSES, default="kd+ranking", help="student loss (default kd+ranking)")
    parser.add_argument("--kd-weight", type=finite_float(0.0), default=1.0, help="KD weight (default 1)")
    parser.add_argument("--ranking-weight", type=finite_float(0.0), default=1.0, help="ranking weight (default 1)")
    parser.add_argument("--negatives", type=positive_int, default=9, help="negatives per turn (default 9)")
    parser.add_argument("--pool", type=positive_int, default=20, help="candidates sampled from (default 20)")
    parser.add_argument("--epochs", type=positive_int, default=1, help="student epochs (default 1)")
    parser.add_argument("--teacher-epochs", type=positive_int, default=1, help="teacher epochs (default 1)")
    parser.add_argument("--lr", type=finite_float(0.0, exclusive_minimum=True), default=2e-5,
                        help="AdamW learning rate, constant (default 2e-5)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="turns per step (default 4)")
    parser.add_argument("--max-length", type=positive_int, default=256, help="tokens per pair (default 256)")
    parser.add_argument("--pairs-per-forward", type=positive_int, default=4,
                        help="pairs per forward pass, grouped by length (speed only; default 4, best on CPU; raise "
                             "it on a GPU)")
    parser.add_argument("--cv", type=positive_int, help="cross-validation folds by topic (the shared fold rule)")
    parser.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    parser.add_argument("--seeds", type=int, nargs="+", help="repeat once per seed into OUTPUT/seed-<s>")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Rerank (default) or, with `train` first, train a reranker."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return train_main(argv[1:])
    return rerank_main(argv)


@cli_main(build_train_parser)
def train_main(args: argparse.Namespace) -> int:
    """Train and print a summary line."""
    from .training import RerankTrainConfig, train_reranker

    options = {key: value for key, value in vars(args).items() if key not in ("verbosity", "command_line")}
    summary = train_reranker(RerankTrainConfig(**options, command=args.command_line))
    print(f"wrote {args.output}: {summary}")
    return 0


@cli_main(build_parser)
def rerank_main(args: argparse.Namespace) -> int:
    """Rerank, write the run and its sidecar, print a summary line."""
    from pathlib import Path

    from ..errors import UserError
    from ..io.atomic import prepare_output
    from ..io.runs import sidecar_path
    from .reranker import CrossEncoderReranker, fold_models, rerank_with_folds

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
    options = dict(device=args.device, batch_size=args.batch_size, max_length=args.max_length)
    if fold_models(args.model) is not None:
        run = rerank_with_folds(args.model, args.topics, args.run, query=query, depth=args.depth,
                                collection=args.collection, **options)
    else:
        reranker = CrossEncoderReranker(args.model, args.collection, **options)
        run = reranker.rerank(args.topics, args.run, query=query, depth=args.depth)
    counts = run.write(args.output, tag=args.tag, overwrite=args.overwrite, inputs=inputs,
                       extra={"command": args.command_line})
    print(f"wrote {args.output}: {counts['queries']} queries, {counts['hits']} hits reranked "
          f"({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
