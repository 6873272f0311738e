"""`python -m convdr_pyserini.reproduce MATRIX [--condition NAME]`: run a reproduction or experiment matrix.

Prints OK / OKish / ABOVE / FAIL / skipped for every expected metric (and the measured means of an
experiment), exits with 1 on any FAIL or ABOVE, and (when the whole matrix ran) writes the generated table,
by default beside the matrix with the suffix .md. MATRIX is a matrix file or the name of a packaged matrix
(cast19, cast20, cast21, orquac, cast20-mini-baselines, cast20-mini-rewrites, cast20-mini-training,
cast20-mini-nested, cast20-mini-rerank).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from .._cli import ArgumentParser, add_ray_options, cli_main, ray_cluster
from ..errors import UserError

logger = logging.getLogger("convdr_pyserini.reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.reproduce",
        description="Produce every condition of a matrix (fetch a published run, search, or train then search per "
        "seed), evaluate it and compare with the expected scores (OK, OKish within 0.0005, ABOVE, FAIL, or skipped "
        "with the missing files). Finished runs and models are reused.",
    )
    parser.add_argument("matrix", help="a matrix file (e.g. evaluation/cast20.yaml) or a packaged matrix name")
    parser.add_argument("--condition", metavar="NAME", help="only this condition (the .md table is then not written)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="only this one of the matrix's seeds (the .md table is then not written): several "
                             "processes or machines can share a matrix's seeds, each with its own --seed")
    parser.add_argument("--table", metavar="FILE.md",
                        help="where to write the generated table (default: the matrix path with .md; for a packaged "
                             "matrix, NAME.md in the working directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing table (and plot)")
    parser.add_argument("--runs-dir", default="runs/reproduce", help="where runs are written (default runs/reproduce)")
    parser.add_argument("--models-dir", default="encoders/reproduce",
                        help="where trained models are written (default encoders/reproduce)")
    add_ray_options(parser, "the training, one task per condition and seed (the runs and models folders on a "
                            "filesystem every worker sees)")
    return parser


def _table_path(args: argparse.Namespace, matrix) -> Path | None:
    from .matrix import packaged_matrices

    if args.condition or args.seed is not None:
        return None
    if args.table:
        return Path(args.table)
    packaged = packaged_matrices().get(matrix.path.stem)
    return Path(f"{matrix.path.stem}.md") if packaged is not None and matrix.path == packaged else \
        matrix.path.with_suffix(".md")


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    from ..io.atomic import prepare_output, write_text
    from . import FAIL, OK, OKISH, SKIPPED, UNREFERENCED, load_matrix, markdown_report, reproduce
    from .report import by_turn_plot
    from .runner import ABOVE

    cluster = ray_cluster(args)
    matrix = load_matrix(args.matrix)
    if args.seed is not None:
        if args.seed not in matrix.seeds:
            raise UserError(f"--seed {args.seed}: {matrix.path} has the seeds {', '.join(map(str, matrix.seeds))}")
        matrix = dataclasses.replace(matrix, seeds=[args.seed])
    table = _table_path(args, matrix)
    plot = None
    if table is not None:
        prepare_output(table, [matrix.path], args.overwrite)
        if matrix.plot:
            plot = table.with_name(table.stem + "-by-turn.png")
            prepare_output(plot, [matrix.path], args.overwrite)
    if cluster is None:
        result = reproduce(matrix, only=args.condition, runs_dir=args.runs_dir, models_dir=args.models_dir)
    else:
        from .distributed import reproduce_on_ray

        result = reproduce_on_ray(matrix, cluster, only=args.condition, runs_dir=args.runs_dir,
                                  models_dir=args.models_dir)
    for entry in result.conditions:
        if entry.error:
            logger.error("%s: %s", entry.condition.name, entry.error)
    if result.evaluation is not None and matrix.is_experiment:
        print(result.evaluation.table())
    outcomes = result.outcomes
    if outcomes:
        width = max(len(o.condition) for o in outcomes)
        for o in outcomes:
            measured = "-" if o.measured is None else f"{o.measured:.4f}"
            print(f"{o.condition:<{width}}  {o.expected.measure:<14} expected {o.expected_text():<7}"
                  f"  measured {measured:<7} {o.status_text()}")
        counts = {status: sum(o.status == status for o in outcomes)
                  for status in (OK, OKISH, ABOVE, FAIL, SKIPPED, UNREFERENCED)}
        print(", ".join(f"{count} {status}" for status, count in counts.items() if count or status == FAIL))
    if table is not None:
        plotted = by_turn_plot(result, plot, args.overwrite) if plot is not None else None
        write_text(table, markdown_report(result, plotted), inputs=[matrix.path], overwrite=args.overwrite)
        logger.info("wrote %s", table)
    return 1 if result.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
