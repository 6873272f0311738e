"""`python -m convdr_pyserini.datasets {list,summary,export}`: what the registered datasets hold, and their records
exported as `ir_datasets export` writes them."""
from __future__ import annotations

import argparse
import collections

from .._cli import ArgumentParser, cli_main
from ..errors import UserError
from .export import FORMATS, PARTS


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m convdr_pyserini.datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the dataset ids this package registers")
    summary = commands.add_parser("summary", help="count docs, queries, judged queries and qrels by grade")
    summary.add_argument("dataset_id")
    export = commands.add_parser("export", help="write docs, queries or qrels to stdout with ir_datasets' exporters "
                                 "(`python -m ir_datasets export` semantics, for the convdr/ ids too)")
    export.add_argument("dataset_id")
    export.add_argument("part", choices=PARTS)
    export.add_argument("--format", choices=sorted({name for names in FORMATS.values() for name in names}),
                        help="tsv (default for docs and queries), jsonl, or trec (qrels only; their default)")
    export.add_argument("--fields", nargs="+", help="the record fields to write, in this order (default: all)")
    return parser


def summarize(dataset_id: str) -> dict:
    """Counts of a dataset: documents, queries, judged queries, qrels by grade (what exists of them)."""
    from . import load

    dataset = load(dataset_id)
    counts: dict = {"dataset": dataset_id}
    if dataset.has_docs():
        try:
            counts["documents"] = dataset.docs_count()
        except UserError as missing:  # a collection the user has not prepared yet: still summarise the rest
            counts["documents"] = f"not available: {missing}"
    if dataset.has_queries():
        counts["queries"] = sum(1 for _ in dataset.queries_iter())
    if dataset.has_qrels():
        qrels = list(dataset.qrels_iter())
        counts["judged queries"] = len({qrel.query_id for qrel in qrels})
        counts["qrels"] = len(qrels)
        grades = collections.Counter(qrel.relevance for qrel in qrels)
        counts["qrels by grade"] = dict(sorted(grades.items()))
    return counts


def format_summary(counts: dict) -> str:
    lines = []
    for key, value in counts.items():
        if isinstance(value, dict):
            value = "  ".join(f"{grade}:{count:,}" for grade, count in value.items())
        elif isinstance(value, int):
            value = f"{value:,}"
        lines.append(f"{key:>16}  {value}")
    return "\n".join(lines)


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    if args.command == "list":
        from . import dataset_ids

        print("\n".join(dataset_ids()))
    elif args.command == "summary":
        print(format_summary(summarize(args.dataset_id)))
    else:
        import sys

        from .export import export

        try:
            export(args.dataset_id, args.part, sys.stdout, args.format, args.fields)
            sys.stdout.flush()
        except BrokenPipeError:  # `... | head`: the reader has what it wanted
            sys.stderr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
