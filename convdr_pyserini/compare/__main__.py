"""`python -m convdr_pyserini.compare`: the conversational run explorer, one offline HTML page.

    python -m convdr_pyserini.compare --topics convdr/cast20/mini --qrels convdr/cast20/mini \\
        --texts convdr/cast20/mini --run "dense raw=runs/cast20-mini.minilm-raw.trec" \\
        --run "ConvDR-KD=runs/cast20-mini.convdr-kd-no_res.trec" --baseline "dense raw" --output page.html

Writes the page atomically; an existing file is replaced only with --overwrite. Bad input is one `error:` line
per problem and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .._cli import ArgumentParser, cli_main
from ..io.passage_runs import AGGREGATIONS

logger = logging.getLogger("convdr_pyserini.compare")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.compare",
        description="The conversational run explorer: one self-contained HTML page (no network) with what every "
        "run did to every turn of every conversation: scores and significance against a baseline, each "
        "conversation as a timeline, each turn's hits side by side with grades and texts.")
    parser.add_argument("--topics", required=True, metavar="ID|FILE", help="an ir_datasets id or a topics file")
    parser.add_argument("--qrels", metavar="ID|FILE", help="an ir_datasets id or a TREC qrels file (optional: "
                        "without, the page shows ranks, texts and overlaps only)")
    parser.add_argument("--texts", metavar="ID|INDEX|JSONL", help="passage texts: a dataset id with docs, a Lucene "
                        "index with stored raw documents, or a JsonCollection (id, contents); optional: ids only")
    parser.add_argument("--run", dest="runs", action="append", required=True, metavar="NAME=PATH",
                        help="a run file (trec or msmarco), named NAME or by its file stem; 1 to 8 (repeatable)")
    parser.add_argument("--baseline", metavar="NAME", help="the run the others are compared with")
    parser.add_argument("--focus", metavar="NAME", help="the run the conversations are first sorted and coloured by "
                        "(default: the last run other than the baseline; the page offers the others)")
    parser.add_argument("--measures", help='an ir_measures string, e.g. "nDCG@3 RR(rel=2) R@100" (default: the '
                        "dataset's preset)")
    parser.add_argument("--depth", type=int, default=10, help="hits shown per turn (default 10)")
    parser.add_argument("--aggregate", choices=AGGREGATIONS, help="passage runs (<docid>-<n>) against document "
                        "qrels (CAsT-21): score and show documents, each with its best passage")
    parser.add_argument("--title", help="the page title (default: the topics and the number of runs)")
    parser.add_argument("--timestamp", action="store_true", help="write the generation time on the page (off by "
                        "default, so reruns give the same bytes)")
    parser.add_argument("--output", required=True, metavar="PAGE.html", help="the HTML file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    from ..io.atomic import prepare_output
    from .explorer import compare, run_names

    runs = run_names(args.runs)
    prepare_output(args.output, [*runs.values(), args.topics, args.qrels, args.texts], args.overwrite)
    explorer = compare(args.topics, runs, qrels=args.qrels, texts=args.texts, baseline=args.baseline,
                       measures=args.measures, depth=args.depth, aggregate=args.aggregate, title=args.title,
                       timestamp=args.timestamp, focus=args.focus)
    path = explorer.write(args.output, overwrite=args.overwrite)
    logger.info("wrote %s (%d turns, %d runs, %.1f MB)", path, len(explorer.turns), len(explorer.runs),
                path.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
