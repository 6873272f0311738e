"""`python -m convdr_pyserini.index {lucene,dense,merge} ...`: build Lucene (BM25) and dense (faiss) indexes."""
from __future__ import annotations

import argparse

from .._cli import cli_main
from . import dense, lucene, merge


def build_parser() -> argparse.ArgumentParser:
    """The `index` command with one subcommand per index kind."""
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.index",
        description="Build a Lucene index for BM25 or a dense faiss index for ConvDR-style retrieval.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{lucene,dense,merge}")
    lucene.add_subparser(subparsers)
    dense.add_subparser(subparsers)
    merge.add_subparser(subparsers)
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Run the chosen subcommand."""
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
