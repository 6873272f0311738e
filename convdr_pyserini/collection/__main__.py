"""`python -m convdr_pyserini.collection {cast,cast21,orquac}`: prepare a passage collection as JsonCollection shards."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .._cli import ArgumentParser, cli_main, positive_int
from .build import DEFAULT_SHARD_SIZE

logger = logging.getLogger("convdr_pyserini.collection")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.collection",
        description="Write a passage collection as Pyserini JsonCollection shards ({\"id\", \"contents\"} lines) "
        "with official ids, streaming in constant memory. An interrupted run resumes when run again.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cast = commands.add_parser("cast", help="the CAsT-19/20 collection: MS MARCO passages and TREC CAR paragraphs")
    cast.add_argument("--msmarco", required=True, type=Path, help="MS MARCO passage collection.tsv (pid<TAB>text)")
    cast.add_argument("--car", required=True, type=Path, help="TREC CAR paragraphCorpus cbor (v2.0)")
    cast.add_argument("--duplicates", required=True, type=Path, help="CAsT duplicate_list_v1.0.txt")
    cast21 = commands.add_parser("cast21", help="the CAsT-21 collection: MS MARCO v1 documents, KILT and the "
                                 "Washington Post v4 cut into passages <docid>-<n> by the organizers' 2021 rule")
    cast21.add_argument("--msmarco-docs", type=Path, help="MS MARCO v1 msmarco-docs.tsv (docid, url, title, body)")
    cast21.add_argument("--kilt", type=Path, help="KILT kilt_knowledgesource.json (JSON lines)")
    cast21.add_argument("--wapo", type=Path, help="TREC_Washington_Post_collection.v4.jl (JSON lines)")
    cast21.add_argument("--duplicates", type=Path, help="the organizers' marco_duplicates.txt (needed with --msmarco-docs)")
    orquac = commands.add_parser("orquac", help="the OR-QuAC collection: all_blocks.txt")
    orquac.add_argument("--blocks", required=True, type=Path, help="OR-QuAC all_blocks.txt (JSON lines id, title, text)")
    for command, name in ((cast, "cast"), (cast21, "cast21"), (orquac, "orquac")):
        command.add_argument("--output", type=Path,
                             help=f"output folder (default: $CONVDR_PYSERINI_HOME/collections/{name})")
        command.add_argument("--shard-size", type=positive_int, default=DEFAULT_SHARD_SIZE,
                             help=f"documents per .jsonl shard (default {DEFAULT_SHARD_SIZE:,})")
        command.add_argument("--overwrite", action="store_true",
                             help="replace a collection at OUTPUT that was built from other inputs or options")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    from . import default_output, prepare_cast, prepare_cast21, prepare_orquac

    output = args.output or default_output(args.command)
    if args.command == "cast":
        summary = prepare_cast(args.msmarco, args.car, args.duplicates, output, args.shard_size, args.overwrite)
    elif args.command == "cast21":
        summary = prepare_cast21(args.msmarco_docs, args.kilt, args.wapo, args.duplicates, output, args.shard_size,
                                 args.overwrite)
    else:
        summary = prepare_orquac(args.blocks, output, args.shard_size, args.overwrite)
    counts = summary["counts"]
    excluded = sum(counts["excluded"].values())
    logger.info("%s: %s documents in %d shards%s", output, f"{counts['documents']:,}", counts["shards"],
                f" ({excluded:,} duplicates left out)" if excluded else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
