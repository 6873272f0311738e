"""`python -m convdr_pyserini.evaluate`: score runs side by side with ir_measures.

    python -m convdr_pyserini.evaluate --qrels convdr/cast20 --run A.trec B.trec \\
        --measures "nDCG@3 RR(rel=2) R(rel=2)@100" --baseline A.trec --by-turn turns.png
    python -m convdr_pyserini.evaluate --qrels convdr/cast20 --run raw.trec \\
        --condition "ConvDR-KD" kd.seed1.trec kd.seed2.trec kd.seed3.trec --baseline raw.trec

Prints the scores and writes nothing unless asked: `--save-eval [DIR]` saves each run's per-query values as
`<run>.eval.json` (beside the run, or in DIR), `--by-turn PLOT.png` plots the means by turn. Every problem in the
inputs is reported on its own line (`file:line: message`), then the exit code is 2; scores that cannot be saved
are printed first, then one line says what could not be saved (exit code 2).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .._cli import ArgumentParser, cli_main
from ..errors import UserError
from ..io.passage_runs import AGGREGATIONS

logger = logging.getLogger("convdr_pyserini.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.evaluate",
        description="Evaluate TREC runs with ir_measures; several runs side by side, with paired significance "
        "tests against a baseline. Prints the scores; --save-eval also saves each run's per-query values.",
    )
    parser.add_argument("--qrels", required=True, help="an ir_datasets id (e.g. convdr/cast20) or a TREC qrels file")
    parser.add_argument("--run", nargs="+", default=[], metavar="RUN",
                        help="run files (trec: qid Q0 docid rank score tag; or msmarco: qid docid rank)")
    parser.add_argument("--condition", nargs="+", action="append", default=[], metavar=("NAME", "RUN"),
                        help="a condition over several runs (e.g. seeds): its name, then its run files; reported as "
                             "mean ± std with each run's values (repeatable)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--measures",
        help='ir_measures measure string, e.g. "nDCG@3 RR(rel=2) R@100 AP" (trec_eval names such as ndcg_cut.3 work too)',
    )
    choice.add_argument(
        "--preset",
        choices=["cast19", "cast20", "cast21", "orquac"],
        help="a dataset's customary measures and relevance convention (default: from the qrels' dataset id)",
    )
    parser.add_argument("--topics", metavar="ID", help="ir_datasets id whose query ids the runs may use (for a qrels file)")
    parser.add_argument("--baseline", metavar="RUN", help="run (or condition name) to test the others against "
                                                         "(a run file is added to the runs if absent)")
    parser.add_argument(
        "--missing-as-zero",
        action="store_true",
        help="average over every judged query, a query the run lacks scoring 0 (trec_eval -c); "
        "default: average over the judged queries present in the run (trec_eval's default)",
    )
    parser.add_argument("--aggregate", choices=AGGREGATIONS,
                        help="score passage runs (ids <docid>-<n>, CAsT-21) against document qrels as document runs: "
                        "maxp (best passage), firstp (lowest-numbered retrieved passage), sump, meanp, or "
                        "cast21-published (the organizers' rule, to reproduce their published numbers)")
    parser.add_argument("--judged-only", action="store_true", help="remove unjudged documents from the runs before scoring")
    parser.add_argument("--per-query", action="store_true", help="also print each query's values")
    parser.add_argument("--by-turn", metavar="PLOT.png", help="print each measure by turn number and plot it to this PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --by-turn plot")
    parser.add_argument("--save-eval", nargs="?", const="", metavar="DIR",
                        help="save each run's settings, averages and per-query values as <run>.eval.json, beside "
                             "the run or in DIR (replacing an older one); default: save nothing")
    parser.add_argument("--format", choices=["table", "tsv", "json"], default="table", help="output format (default: table)")
    return parser


def _measures_and_preset(args: argparse.Namespace):
    from .presets import PRESETS, preset_for_dataset

    if args.measures is not None:
        return args.measures, None
    preset = PRESETS[args.preset] if args.preset else preset_for_dataset(args.topics or args.qrels)
    if preset is None:
        raise UserError(f"give --measures or --preset ({', '.join(PRESETS)}); {args.qrels} has no preset")
    return preset.measures, preset


def _run_names(paths: list[str]) -> dict[str, str]:
    """Display name -> path: the file name, or the path as given where file names collide."""
    names = [os.path.basename(path) for path in paths]
    return {(name if names.count(name) == 1 else path): path for name, path in zip(names, paths)}


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    from ..io.atomic import prepare_output
    from .api import evaluate

    conditions = {}
    for entry in args.condition:
        if len(entry) < 2:
            raise UserError(f"--condition {entry[0]}: give the condition's name, then at least one run file")
        if entry[0] in conditions:
            raise UserError(f"--condition {entry[0]} is given twice")
        conditions[entry[0]] = list(dict.fromkeys(entry[1:]))
    paths = list(dict.fromkeys(args.run))
    if args.baseline is not None and args.baseline not in paths and args.baseline not in conditions:
        paths.insert(0, args.baseline)
    if not paths and not conditions:
        raise UserError("give --run files and/or --condition NAME RUN...")
    runs = _run_names(paths)
    clash = sorted(set(runs) & set(conditions))
    if clash:
        raise UserError(f"--condition name {clash[0]} is also the name of a --run file")
    baseline = args.baseline if args.baseline in conditions else \
        None if args.baseline is None else next(name for name, path in runs.items() if path == args.baseline)
    inputs = [*runs.values(), *(path for members in conditions.values() for path in members), args.qrels]
    if args.by_turn:
        prepare_output(args.by_turn, inputs, args.overwrite)
    measures, preset = _measures_and_preset(args)
    result = evaluate(args.qrels, {**runs, **conditions}, measures, baseline=baseline,
                      missing_as_zero=args.missing_as_zero, judged_only=args.judged_only, preset=preset,
                      topics=args.topics, aggregate=args.aggregate)
    turns = None
    if args.by_turn:
        turns = result.by_turn(args.by_turn, overwrite=args.overwrite)
    print(result.table(args.format, per_query=args.per_query, turns=turns), flush=True)
    if args.by_turn:
        logger.info("wrote %s", args.by_turn)
    if args.save_eval is not None:
        for path in result.write_eval_files(args.save_eval or None):
            logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
