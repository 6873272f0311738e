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
import sys
import time
from pathlib import Path

from .._cli import atomic_output, cli_main
from ..errors import UserError
from .data import NEGATIVE_POOL, NEGATIVES

LOSSES = ("kd", "ranking", "kd+ranking")
QUERY_MODES = ("no_res", "man_can", "auto_can")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The training command line (`negatives` is a separate subcommand, see `build_negatives_parser`)."""
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.train",
        description="Train a ConvDR query encoder (few-shot KD and/or ranking). "
                    "`python -m convdr_pyserini.train negatives --help` mines the ranking data.",
    )
    parser.add_argument("--topics", required=True, help="ir_datasets id of the training topics, e.g. convdr/cast20, "
                                                        "convdr/cast20/mini, convdr/canard/dev, convdr/orquac/train")
    parser.add_argument("--teacher", help="frozen teacher (card, card file or model folder); default: the student's "
                                          "initial weights")
    parser.add_argument("--student-init", help="student's initial weights (default: the teacher); for warm-up, "
                                               "the warmed model while --teacher stays the ad hoc model")
    parser.add_argument("--query", choices=QUERY_MODES, default="no_res", help="student input (default no_res)")
    parser.add_argument("--loss", choices=LOSSES, default="kd", help="kd, ranking, or their sum (default kd)")
    parser.add_argument("--no-kd", action="store_true", help="drop the KD term (e.g. --loss kd+ranking --no-kd)")
    parser.add_argument("--ranking-data", help="ranking data file from `train negatives` (needed by the ranking loss)")
    parser.add_argument("--collection", help="where the ranking passages' texts are: an ir_datasets id or a Lucene "
                                             "index folder (default: the topics' collection)")
    parser.add_argument("--epochs", type=_positive(int), default=1, help="passes over the training queries (default 1)")
    parser.add_argument("--lr", type=_positive(float), default=1e-5,
                        help="AdamW learning rate, constant (default 1e-5)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0, as ConvDR)")
    parser.add_argument("--batch-size", type=_positive(int), default=4,
                        help="effective batch size, whatever the number of devices (default 4)")
    parser.add_argument("--max-concat-length", type=_positive(int), default=None,
                        help="token limit of the conversational input (default: the student's card; ConvDR used "
                             "256 for CAsT-19, 512 for CAsT-20)")
    parser.add_argument("--truncate", choices=["convdr", "keep-current"], default=None,
                        help="how an over-long input is cut (default: the student's card)")
    parser.add_argument("--cv", type=_positive(int), default=None,
                        help="K-fold cross-validation by topic (CAsT-19: 10 topics per fold in file order; CAsT-20: "
                             "(topic-81)//5); writes OUTPUT/fold-0 ... fold-{K-1}")
    parser.add_argument("--seed", type=int, default=42, help="seed of the shuffling, dropout and sampling (default 42)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu); torchrun splits each batch")
    parser.add_argument("--output", required=True, help="model folder to write, e.g. encoders/convdr-kd-cast20")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    return parser


def build_negatives_parser() -> argparse.ArgumentParser:
    """`train negatives`: ConvDR's gen_ranking_data."""
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.train negatives",
        description="Write ranking data: per judged query, the highest-graded passage and negatives from the "
                    "teacher's run on manual rewrites (judged non-relevant first, then unjudged top-ranked, up to "
                    "--pool, then --negatives sampled with --seed).",
    )
    parser.add_argument("--topics", required=True, help="ir_datasets id with qrels, e.g. convdr/cast20")
    parser.add_argument("--run", required=True, help="TREC run of the teacher on the manual rewrites "
                                                     "(search --encoder TEACHER --query manual)")
    parser.add_argument("--output", required=True, help="ranking data file to write (jsonl)")
    parser.add_argument("--negatives", type=_positive(int), default=NEGATIVES,
                        help=f"negatives per query (default {NEGATIVES})")
    parser.add_argument("--pool", type=_positive(int), default=NEGATIVE_POOL,
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
    from ..datasets import load
    from .data import mine_negatives, passage_lookup, read_ranked_run

    dataset = load(args.topics)
    if not dataset.has_qrels():
        raise UserError(f"{args.topics} has no qrels to take positives and judged negatives from")
    query_ids = [record.query_id for record in dataset.queries_iter()]
    qrels: dict[str, dict[str, int]] = {}
    for qrel in dataset.qrels_iter():
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
    run = read_ranked_run(args.run)
    if not set(run) & set(query_ids):
        raise UserError(f"run {args.run} has none of the query ids of {args.topics} (e.g. {next(iter(run), 'none')})")
    candidates = sorted({doc_id for judged in qrels.values() for doc_id in judged}
                        | {doc_id for query_id in query_ids for doc_id in run.get(query_id, ())})
    available = set(passage_lookup(args.collection or args.topics)(candidates))
    absent_from_run = sorted({doc_id for hits in run.values() for doc_id in hits} & set(candidates) - available)
    if absent_from_run:
        raise UserError(f"run {args.run} retrieves passages missing from the collection "
                        f"{args.collection or args.topics} (e.g. {', '.join(absent_from_run[:3])})")
    qrels = {query_id: {doc_id: grade for doc_id, grade in judged.items() if doc_id in available}
             for query_id, judged in qrels.items()}
    examples, skipped = mine_negatives(query_ids, qrels, run, args.seed, args.negatives, args.pool)
    if not examples:
        raise UserError(f"no judged query of {args.topics} has a relevant passage and {args.negatives} candidates")
    with atomic_output(args.output) as handle:
        for example in examples:
            handle.write(example.to_json() + "\n")
    note = f"; skipped {len(skipped)} with fewer than {args.negatives} candidates" if skipped else ""
    print(f"wrote {args.output}: {len(examples)} queries, 1 positive + {args.negatives} negatives each{note}")
    return 0


@cli_main(build_parser)
def train_main(args: argparse.Namespace) -> int:
    """Check the inputs, train (per fold with --cv), save the model folder(s) with their cards."""
    from .loop import distributed
    from .training import Trainer

    use_kd = "kd" in args.loss and not args.no_kd
    use_ranking = "ranking" in args.loss
    if not (use_kd or use_ranking):
        raise UserError(f"--loss {args.loss} with --no-kd leaves no loss; use --loss ranking or kd+ranking")
    if use_ranking and not args.ranking_data:
        raise UserError(f"--loss {args.loss} needs --ranking-data (write it with `train negatives`)")
    if not (args.teacher or args.student_init):
        raise UserError("give --teacher (and optionally --student-init)")
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    started = time.time()
    trainer = Trainer(args, use_kd, use_ranking)
    summary = trainer.run(output)
    if distributed()[0] == 0:
        print(f"wrote {output}: {summary} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
