"""`python -m convdr_pyserini.evaluate`: score runs side by side with ir_measures.

    python -m convdr_pyserini.evaluate --qrels convdr/cast20 --run A.trec B.trec \\
        --measures "nDCG@3 RR(rel=2) R(rel=2)@100" --baseline A.trec --by-turn turns.png

Writes `<run>.eval.json` next to every run. Every problem in the inputs is reported on its own
line (`file:line: message`), then the exit code is 2.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._cli import check_writable, cli_main
from ..errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.evaluate",
        description="Evaluate TREC runs with ir_measures; several runs side by side, with paired significance "
        "tests against a baseline. Writes <run>.eval.json next to every run.",
    )
    parser.add_argument("--qrels", required=True, help="an ir_datasets id (e.g. convdr/cast20) or a TREC qrels file")
    parser.add_argument("--run", nargs="+", required=True, metavar="RUN", help="TREC run files (qid Q0 docid rank score tag)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--measures",
        help='ir_measures measure string, e.g. "nDCG@3 RR(rel=2) R@100 AP" (trec_eval names such as ndcg_cut.3 work too)',
    )
    choice.add_argument(
        "--preset",
        choices=["cast19", "cast20", "orquac"],
        help="a dataset's customary measures and relevance convention (default: from the qrels' dataset id)",
    )
    parser.add_argument("--topics", metavar="ID", help="ir_datasets id whose query ids the runs may use (for a qrels file)")
    parser.add_argument("--baseline", metavar="RUN", help="run to test the others against (added to the runs if absent)")
    parser.add_argument(
        "--missing-as-zero",
        action="store_true",
        help="average over every judged query, a query the run lacks scoring 0 (trec_eval -c); "
        "default: average over the judged queries present in the run (trec_eval's default)",
    )
    parser.add_argument("--judged-only", action="store_true", help="remove unjudged documents from the runs before scoring")
    parser.add_argument("--per-query", action="store_true", help="also print each query's values")
    parser.add_argument("--by-turn", metavar="PLOT.png", help="print each measure by turn number and plot it to this PNG")
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
    from .by_turn import by_turn, plot_by_turn
    from .engine import evaluate_runs
    from .inputs import InvalidInput
    from .report import render

    paths = list(dict.fromkeys(args.run))
    if args.baseline is not None and args.baseline not in paths:
        paths.insert(0, args.baseline)
    runs = _run_names(paths)
    baseline = None if args.baseline is None else next(name for name, path in runs.items() if path == args.baseline)
    for path in runs.values():
        check_writable(f"{path}.eval.json")
    if args.by_turn:
        check_writable(args.by_turn)
    measures, preset = _measures_and_preset(args)
    try:
        result = evaluate_runs(
            args.qrels,
            runs,
            measures,
            baseline=baseline,
            missing_as_zero=args.missing_as_zero,
            judged_only=args.judged_only,
            preset=preset,
            topics=args.topics,
        )
    except InvalidInput as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    turns = by_turn(result) if args.by_turn else None
    if turns is not None:
        plot_by_turn(turns, args.by_turn, title=f"{result.qrels.source}: mean by turn number")
    written = result.write_eval_files()
    print(render(result, args.format, per_query=args.per_query, turns=turns))
    for path in written + ([args.by_turn] if args.by_turn else []):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
