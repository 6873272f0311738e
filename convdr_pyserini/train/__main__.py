"""`python -m convdr_pyserini.train`: ConvDR few-shot training (KD, ranking, multi-task, cross-validation).

    python -m convdr_pyserini.train --topics <id> --teacher <card|path> [--student-init <card|path>] \
        --query {no_res,man_can,auto_can} --loss {kd,ranking,kd+ranking} --epochs N --lr LR --batch-size 4 \
        [--max-concat-length N] [--cv 5] --seed 42 --output encoders/<name>
    python -m convdr_pyserini.train negatives --topics <id> --run <teacher run on manual rewrites> --output FILE

With `--cv K` the output folder holds `fold-0` ... `fold-{K-1}` (what `search --cv` reads) and `cv.yaml`;
without it, the output folder is the model. Either way each model folder is a Hugging Face folder with an
`encoder.yaml` card recording the training data, loss, folds, seed and metrics, and `losses.tsv` (per step).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from .._cli import ArgumentParser, add_ray_options, cli_main, finite_float, positive_float, positive_int, ray_cluster
from ..errors import UserError
from ..folds import FOLD_MAPS
from .config import LOSSES, LR_SCHEDULES, QUERY_MODES
from .data import NEGATIVE_POOL, NEGATIVES

logger = logging.getLogger("convdr_pyserini.train")
non_negative_float = finite_float(0.0, what="a number >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The training command line (`negatives` is a separate subcommand, see `build_negatives_parser`)."""
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.train",
        description="Train a ConvDR query encoder (few-shot KD and/or ranking). "
                    "`python -m convdr_pyserini.train negatives --help` mines the ranking data.",
    )
    parser.add_argument("--topics", required=True, help="training topics: an ir_datasets id (convdr/cast20, "
                                                        "convdr/cast20/mini, convdr/canard/dev, convdr/orquac/train) "
                                                        "or a CAsT JSON topics file with manual rewrites")
    parser.add_argument("--teacher", help="frozen teacher (card, card file or model folder); default: the student's "
                                          "initial weights")
    parser.add_argument("--student-init", help="student's initial weights (default: the teacher); for warm-up, "
                                               "the warmed model while --teacher stays the ad hoc model")
    parser.add_argument("--query", choices=QUERY_MODES, default="no_res", help="student input (default no_res)")
    parser.add_argument("--loss", choices=LOSSES, default="kd", help="kd, ranking, or their sum (default kd)")
    parser.add_argument("--no-kd", action="store_true", help="drop the KD term (e.g. --loss kd+ranking --no-kd)")
    parser.add_argument("--kd-weight", type=non_negative_float, default=None,
                        help="weight of the KD term (default: the student card's training_defaults, else 1 as ConvDR)")
    parser.add_argument("--ranking-weight", type=non_negative_float, default=None,
                        help="weight of the ranking term (default: the card's, else 1 as ConvDR)")
    parser.add_argument("--temperature", type=positive_float, default=None,
                        help="ranking scores are divided by it (default: the card's, else 1 as ConvDR)")
    parser.add_argument("--ranking-data", help="ranking data file from `train negatives` (needed by the ranking loss)")
    parser.add_argument("--collection", help="where the ranking passages' texts are: an ir_datasets id or a Lucene "
                                             "index folder (default: the topics' collection)")
    parser.add_argument("--epochs", type=positive_int, default=1, help="passes over the training queries (default 1)")
    parser.add_argument("--lr", type=positive_float, default=1e-5, help="AdamW learning rate, constant (default 1e-5)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="linear",
                        help="linear: decay to 0 over all steps, no warm-up, as ConvDR (default); constant")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="AdamW weight decay (default 0, as ConvDR)")
    parser.add_argument("--batch-size", type=positive_int, default=4,
                        help="effective batch size, whatever the number of devices (default 4)")
    parser.add_argument("--max-concat-length", type=positive_int, default=None,
                        help="token limit of the conversational input (default: the student's card; ConvDR used "
                             "256 for CAsT-19, 512 for CAsT-20)")
    parser.add_argument("--max-response-length", type=positive_int, default=None,
                        help="cut a canonical response (man_can, auto_can) to this many tokens (default: the card's, "
                             "else none, as ConvDR)")
    parser.add_argument("--truncate", choices=["convdr", "keep-current"], default=None,
                        help="how an over-long input is cut (default: the student's card)")
    parser.add_argument("--cv", type=positive_int, default=None,
                        help="K-fold cross-validation by topic (CAsT-19: 10 topics per fold in file order; CAsT-20: "
                             "(topic-81)//5); writes OUTPUT/fold-0 ... fold-{K-1}")
    parser.add_argument("--seed", type=int, default=42, help="seed of the shuffling, dropout and sampling (default 42)")
    parser.add_argument("--fold-map", choices=FOLD_MAPS, default="convdr",
                        help="with --cv: which topics train each fold's model. convdr (default): the folds the models "
                             "are evaluated on, ConvDR's evaluation and KD files; convdr-ranking-data: the CAsT-19 map of "
                             "ConvDR's gen_ranking_data.py, which its multi-task training read and which trains 3 models "
                             "on topics they are evaluated on (a warning lists them; docs/fidelity.md)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="train once per seed into OUTPUT/seed-<SEED> (instead of --seed)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu); torchrun splits each batch")
    parser.add_argument("--output", required=True, help="model folder to write, e.g. encoders/convdr-kd-cast20")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    add_ray_options(parser, "each seed's and fold's training as its own task (OUTPUT on a filesystem every worker "
                            "sees)")
    return parser


def build_negatives_parser() -> argparse.ArgumentParser:
    """`train negatives`: ConvDR's gen_ranking_data."""
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.train negatives",
        description="Write ranking data: per judged query, the highest-graded passage and negatives from the "
                    "teacher's run on manual rewrites (judged non-relevant first, then unjudged top-ranked, up to "
                    "--pool, then --negatives sampled with --seed).",
    )
    parser.add_argument("--topics", required=True, help="ir_datasets id with qrels, e.g. convdr/cast20")
    parser.add_argument("--run", required=True, help="run of the teacher on the manual rewrites "
                                                     "(search --encoder TEACHER --query manual)")
    parser.add_argument("--output", required=True, help="ranking data file to write (jsonl)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--negatives", type=positive_int, default=NEGATIVES,
                        help=f"negatives per query (default {NEGATIVES})")
    parser.add_argument("--pool", type=positive_int, default=NEGATIVE_POOL,
                        help=f"candidates the negatives are sampled from (default {NEGATIVE_POOL})")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    parser.add_argument("--collection", help="the passages training will look up: an ir_datasets id or a Lucene index "
                                             "folder (default: the topics' collection); judged passages it lacks "
                                             "are never chosen")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train (default) or, with `negatives` first, mine ranking data."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["negatives"]:
        return negatives_main(argv[1:])
    return train_main(argv)


@cli_main(build_negatives_parser)
def negatives_main(args: argparse.Namespace) -> int:
    """Mine and write the ranking data file."""
    from .data import mine_ranking_data

    counts = mine_ranking_data(args.topics, args.run, args.output, args.negatives, args.pool, args.seed,
                               args.collection, args.overwrite)
    note = f"; skipped {counts['skipped']} with fewer than {args.negatives} candidates" if counts["skipped"] else ""
    print(f"wrote {args.output}: {counts['queries']} queries, 1 positive + {args.negatives} negatives each{note}")
    return 0


@cli_main(build_parser)
def train_main(args: argparse.Namespace) -> int:
    """Check the inputs, train (per fold with --cv, per seed with --seeds), save the model folder(s)."""
    from .config import TrainConfig
    from .loop import distributed
    from . import train

    loss = args.loss
    if args.no_kd:
        if loss == "kd":
            raise UserError("--loss kd with --no-kd leaves no loss; use --loss ranking or kd+ranking")
        loss = "ranking"
    started = time.time()
    cluster = ray_cluster(args)
    config = TrainConfig(
        topics=args.topics, output=args.output, teacher=args.teacher, student_init=args.student_init,
        query=args.query, loss=loss, ranking_data=args.ranking_data, collection=args.collection, epochs=args.epochs,
        lr=args.lr, lr_schedule=args.lr_schedule, weight_decay=args.weight_decay, batch_size=args.batch_size,
        max_concat_length=args.max_concat_length, max_response_length=args.max_response_length,
        truncate=args.truncate, cv=args.cv, fold_map=args.fold_map, seed=args.seed, seeds=args.seeds, kd_weight=args.kd_weight,
        ranking_weight=args.ranking_weight, temperature=args.temperature, device=args.device,
        overwrite=args.overwrite, command=args.command_line)
    summary = train(config, cluster)
    if distributed()[0] == 0:
        print(f"wrote {args.output}: {summary} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
