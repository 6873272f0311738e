"""`python -m convdr_pyserini.reproduce evaluation/cast20.yaml [--condition NAME]`.

Prints OK / OKish / FAIL / skipped for every metric of every condition, exits with 1 on any FAIL,
and (when the whole matrix ran) writes the generated table to `evaluation/<dataset>.md`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._cli import check_writable, cli_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.reproduce",
        description="Run or fetch every condition of a reproduction matrix, evaluate it and compare with the "
        "expected scores (OK, OKish within 0.0005 or higher, FAIL, or skipped with the missing files).",
    )
    parser.add_argument("matrix", help="a matrix file, e.g. evaluation/cast20.yaml")
    parser.add_argument("--condition", metavar="NAME", help="only this condition (the .md table is then not rewritten)")
    parser.add_argument(
        "--table", metavar="FILE.md", help="where to write the generated table (default: the matrix path with .md)"
    )
    parser.add_argument("--runs-dir", default="runs/reproduce", help="where search conditions write their runs")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    from .._cli import atomic_output
    from . import FAIL, OK, OKISH, SKIPPED, UNREFERENCED, load_matrix, markdown_table, reproduce

    matrix = load_matrix(args.matrix)
    table = None if args.condition else check_writable(args.table or Path(args.matrix).with_suffix(".md"))
    outcomes = reproduce(matrix, only=args.condition, output_dir=args.runs_dir)
    width = max(len(o.condition) for o in outcomes)
    for o in outcomes:
        measured = "-" if o.measured is None else f"{o.measured:.4f}"
        print(
            f"{o.condition:<{width}}  {o.expected.measure:<14} expected {o.expected_text():<7}"
            f"  measured {measured:<7} {o.status_text()}"
        )
    counts = {status: sum(o.status == status for o in outcomes) for status in (OK, OKISH, FAIL, SKIPPED, UNREFERENCED)}
    print(", ".join(f"{count} {status}" for status, count in counts.items() if count or status == FAIL))
    if table is not None:
        with atomic_output(table) as handle:
            handle.write(markdown_table(matrix, outcomes))
        print(f"wrote {table}", file=sys.stderr)
    return 1 if counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
