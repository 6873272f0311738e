"""`python -m convdr_pyserini.ids {mapping,convert,passages-to-docs}`: convert run and qrels files between official
CAsT ids and ConvDR's integers (the library is `convdr_pyserini.ids`), and passage runs into document runs."""
from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from .._cli import ArgumentParser, cli_main
from ..errors import UserError
from ..io.passage_runs import AGGREGATIONS
from . import DIRECTIONS, IdMapping, passages_to_docs, agreeing, car_cbor_ids, convert_file, convert_lines, write_mapping_tsv

logger = logging.getLogger("convdr_pyserini.ids")


def _mapping_from_args(args: argparse.Namespace, wanted: set[str] | None = None, with_car: bool = True) -> IdMapping:
    """The union of the mapping sources given on the command line (the cbor only if `with_car`)."""
    mapping = IdMapping()
    for path in args.mapping or ():
        mapping.update(IdMapping.from_tsv(path), str(path))
    for official, integer in args.from_qrels or ():
        mapping.update(IdMapping.from_qrels_pair(official, integer), f"{official} / {integer}")
    if args.from_car and with_car:
        mapping.update(IdMapping.from_car_cbor(args.from_car, wanted), str(args.from_car))
    return mapping


def _add_sources(parser: argparse.ArgumentParser, with_tsv: bool) -> None:
    sources = parser.add_argument_group("where the CAR ids come from (at least one; several are merged)")
    parser.set_defaults(mapping=None)
    if with_tsv:
        sources.add_argument("--mapping", action="append", type=Path, metavar="TSV",
                             help="an official<TAB>integer file written by `ids mapping` (repeatable)")
    sources.add_argument("--from-qrels", action="append", nargs=2, type=Path, metavar=("OFFICIAL", "INTEGER"),
                         help="a line-aligned pair of qrels files, official ids and ConvDR integers, e.g. "
                         "cast-19/2019qrels.txt cast-19/coted-preprocessed/qrels.tsv (repeatable)")
    sources.add_argument("--from-car", type=Path, metavar="CBOR",
                         help="the TREC CAR paragraphCorpus cbor ConvDR numbered (CAR id = 10,000,000 + position); "
                         "`mapping` streams it and checks it against any --from-qrels given with it")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.ids",
        description="Convert TREC run and qrels files between official CAsT ids (MARCO_<pid>, CAR_<sha1>) "
        "and ConvDR's integer ids.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mapping = commands.add_parser("mapping", help="write the CAR id <-> integer table as official<TAB>integer lines")
    _add_sources(mapping, with_tsv=False)
    mapping.add_argument("--output", required=True, type=Path, help="the TSV file to write")
    mapping.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    convert = commands.add_parser("convert", help="convert the doc ids of a run (6 columns) or qrels (4 columns) file")
    _add_sources(convert, with_tsv=True)
    convert.add_argument("--direction", required=True, choices=DIRECTIONS)
    policy = convert.add_mutually_exclusive_group()
    policy.add_argument("--drop-unknown", dest="unknown", action="store_const", const="drop", default="error",
                        help="leave out lines whose id cannot be converted (ranks of later lines are not renumbered)")
    policy.add_argument("--keep-unknown", dest="unknown", action="store_const", const="keep",
                        help="keep unconvertible ids as they are (for evaluation: an id missing from a qrels-built "
                        "mapping is unjudged, so keeping it leaves every metric unchanged while dropping does not)")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    convert.add_argument("input", type=Path, metavar="IN")
    convert.add_argument("output", type=Path, metavar="OUT")
    to_docs = commands.add_parser("passages-to-docs", help="write the document run of a passage run (ids "
                                  "<docid>-<n>, as in CAsT-21) as a TREC run, documents scored by --aggregate")
    to_docs.add_argument("--aggregate", required=True, choices=AGGREGATIONS,
                         help="maxp: best passage; firstp: lowest-numbered retrieved passage; sump / meanp: sum / "
                         "mean of the retrieved passages; cast21-published: the CAsT-21 organizers' rule (MaxP with the "
                         "id cut at the first '-', which breaks WaPo UUID ids; only to reproduce their numbers)")
    to_docs.add_argument("--tag", help="run tag of OUT (default: the input's file name)")
    to_docs.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    to_docs.add_argument("input", type=Path, metavar="IN")
    to_docs.add_argument("output", type=Path, metavar="OUT")
    return parser


def _doc_ids(path: Path) -> set[str]:
    """Every doc id (third column) of a run or qrels file."""
    return {doc_id for _, _, doc_id in convert_lines(path, IdMapping(), "to-official") if doc_id}


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    if args.command == "passages-to-docs":
        counts = passages_to_docs(args.input, args.output, args.aggregate, args.tag, args.overwrite)
        logger.info("%s: %s documents for %s queries (%s)", args.output, f"{counts['hits']:,}", counts["queries"],
                    args.aggregate)
        return 0
    if not (args.mapping or args.from_qrels or args.from_car):
        raise UserError("give at least one of --mapping, --from-qrels OFFICIAL INTEGER, --from-car CBOR")
    inputs = [*(args.mapping or ()), *(path for pair in args.from_qrels or () for path in pair), args.from_car]
    if args.command == "mapping":
        known = _mapping_from_args(args, with_car=False)
        if args.from_car:  # streamed, checked against the qrels given with it
            with contextlib.closing(car_cbor_ids(args.from_car)) as numbered:
                count = write_mapping_tsv(agreeing(numbered, known, str(args.from_car)), args.output, inputs,
                                          args.overwrite)
        else:
            count = write_mapping_tsv(known.car_items(), args.output, inputs, args.overwrite)
        logger.info("wrote %s CAR ids to %s", f"{count:,}", args.output)
        return 0
    wanted = _doc_ids(args.input) if args.from_car else None
    from ..io.atomic import prepare_output

    prepare_output(args.output, [args.input, *inputs], args.overwrite)
    counts = convert_file(args.input, args.output, _mapping_from_args(args, wanted), args.direction, args.unknown,
                          args.overwrite)
    summary = ", ".join(f"{count:,} {name}" for name, count in counts.items() if count or name == "converted")
    logger.info("%s: %s", args.output, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
