"""Official CAsT passage ids (`MARCO_<pid>`, `CAR_<sha1>`) and ConvDR's integer ids, both ways.

ConvDR's `preprocess_cast19/20.py` keeps an MS MARCO pid as the integer itself and gives the TREC CAR
paragraph at position i of `paragraphCorpus` (TREC CAR's already-deduplicated
`dedup.articles-paragraphs.cbor`) the integer 10,000,000 + i. MARCO ids therefore convert by arithmetic;
CAR ids need a mapping, built from the CAR cbor order or from a line-aligned pair of qrels files
(official and integer), or read from a `official<TAB>integer` file written by `ids mapping`.

    python -m convdr_pyserini.ids mapping --from-qrels 2019qrels.txt qrels.tsv --output car-ids.tsv
    python -m convdr_pyserini.ids convert --mapping car-ids.tsv --direction to-official convdr.run official.run
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

from ._cli import atomic_output, cli_main
from .errors import UserError

CAR_BASE = 10_000_000
MARCO_PREFIX = "MARCO_"
CAR_PREFIX = "CAR_"
DIRECTIONS = ("to-official", "to-convdr")
UNKNOWN_POLICIES = ("error", "drop", "keep")
SHOWN_UNKNOWN = 5
_FIELDS = re.compile(r"(\s+)")
_CANONICAL_INT = re.compile(r"^(0|[1-9][0-9]*)$")


def _parse_int(text: str) -> int | None:
    """`int(text)` for a canonical non-negative decimal (no sign, no leading zeros), else None."""
    return int(text) if _CANONICAL_INT.match(text) else None


class IdMapping:
    """Converts passage ids between the official scheme and ConvDR's integers.

    MARCO ids convert arithmetically; CAR ids through the table given here, which must be one-to-one.
    """

    def __init__(self, car_ids: Iterable[tuple[str, int]] = ()):
        self._to_convdr: dict[str, int] = {}
        self._to_official: dict[int, str] = {}
        for official, convdr in car_ids:
            self.add(official, convdr)

    def add(self, official: str, convdr: int, where: str = "") -> None:
        """Record that CAR id `official` is ConvDR integer `convdr`; a contradiction is a UserError."""
        if not official.startswith(CAR_PREFIX) or convdr < CAR_BASE:
            raise UserError(f"{where or 'mapping'}: {official} -> {convdr} is not a CAR id -> integer >= {CAR_BASE:,} pair")
        known = self._to_official.get(convdr)
        if known is not None and known != official:
            raise UserError(f"{where or 'mapping'}: integer {convdr} maps to both {known} and {official}")
        number = self._to_convdr.get(official)
        if number is not None and number != convdr:
            raise UserError(f"{where or 'mapping'}: {official} maps to both {number} and {convdr}")
        self._to_official[convdr] = official
        self._to_convdr[official] = convdr

    def __len__(self) -> int:
        """Number of CAR ids the mapping knows."""
        return len(self._to_convdr)

    def car_items(self) -> list[tuple[str, int]]:
        """(official CAR id, integer) pairs, by integer."""
        return sorted(((official, convdr) for convdr, official in self._to_official.items()), key=lambda item: item[1])

    def to_official(self, convdr_id: int | str) -> str | None:
        """Official id of a ConvDR integer id, or None if it is not one or the mapping lacks it."""
        number = convdr_id if isinstance(convdr_id, int) else _parse_int(convdr_id)
        if number is None or number < 0:
            return None
        if number < CAR_BASE:
            return f"{MARCO_PREFIX}{number}"
        return self._to_official.get(number)

    def to_convdr(self, official_id: str) -> int | None:
        """ConvDR integer of an official id, or None if it is not one or the mapping lacks it."""
        if official_id.startswith(MARCO_PREFIX):
            pid = _parse_int(official_id[len(MARCO_PREFIX):])
            return pid if pid is not None and pid < CAR_BASE else None
        return self._to_convdr.get(official_id)

    def convert(self, doc_id: str, direction: str) -> str | None:
        """`doc_id` converted in `direction` ('to-official' or 'to-convdr'), or None if unknown."""
        if direction == "to-official":
            return self.to_official(doc_id)
        converted = self.to_convdr(doc_id)
        return None if converted is None else str(converted)

    def update(self, other: "IdMapping", where: str = "") -> "IdMapping":
        """Add every CAR pair of `other` (contradictions are errors); returns self."""
        for official, convdr in other.car_items():
            self.add(official, convdr, where)
        return self

    @classmethod
    def from_qrels_pair(cls, official_path: str | Path, integer_path: str | Path) -> "IdMapping":
        """Learn the CAR ids from two line-aligned qrels files, official ids and ConvDR integers.

        Every line must agree on query id and grade, and MARCO lines on the pid; a file that is not
        aligned is a UserError naming the first line where they differ.
        """
        mapping = cls()
        for line_number, (left, right) in enumerate(_aligned_lines(official_path, integer_path), 1):
            where = f"{official_path}:{line_number} / {integer_path}:{line_number}"
            left_fields = _qrels_fields(left, official_path, line_number)
            right_fields = _qrels_fields(right, integer_path, line_number)
            if left_fields is None or right_fields is None:
                if left_fields != right_fields:
                    raise UserError(f"{where}: a blank line on one side only; the files are not line-aligned")
                continue
            (qid, _, doc_id, grade), (qid2, _, number, grade2) = left_fields, right_fields
            if (qid, grade) != (qid2, grade2):
                raise UserError(f"{where}: query/grade {qid} {grade} vs {qid2} {grade2}; the files are not line-aligned")
            convdr = _parse_int(number)
            if convdr is None:
                raise UserError(f"{integer_path}:{line_number}: doc id {number!r} is not a ConvDR integer id")
            if doc_id.startswith(CAR_PREFIX):
                mapping.add(doc_id, convdr, where)
            elif mapping.to_convdr(doc_id) != convdr:
                raise UserError(f"{where}: {doc_id} vs {number}; the files are not line-aligned")
        return mapping

    @classmethod
    def from_car_cbor(cls, path: str | Path, wanted: set[str] | None = None) -> "IdMapping":
        """The CAR ids of a TREC CAR paragraph cbor by position (all of them, or only those in `wanted`)."""
        mapping = cls()
        with contextlib.closing(car_cbor_ids(path)) as numbered:
            for official, convdr in numbered:
                if wanted is None or official in wanted or str(convdr) in wanted:
                    mapping.add(official, convdr)
        return mapping

    @classmethod
    def from_tsv(cls, path: str | Path) -> "IdMapping":
        """Read an `official<TAB>integer` file, as written by `python -m convdr_pyserini.ids mapping`."""
        mapping = cls()
        for line_number, line in enumerate(text_lines(path), 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            convdr = _parse_int(parts[1]) if len(parts) == 2 else None
            if convdr is None:
                raise UserError(f"{path}:{line_number}: expected 'CAR_<id><TAB><integer>', got {line[:80]!r}")
            mapping.add(parts[0], convdr, f"{path}:{line_number}")
        return mapping


def car_cbor_ids(path: str | Path) -> Iterator[tuple[str, int]]:
    """(`CAR_<para_id>`, 10,000,000 + position) for every paragraph of a TREC CAR cbor, in file order."""
    from tqdm import tqdm

    from .collection.sources import car_paragraph_ids

    path = Path(path)
    with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, mininterval=1.0,
              desc=f"numbering {path.name}") as bar:
        for position, (para_id, end) in enumerate(car_paragraph_ids(path)):
            yield f"{CAR_PREFIX}{para_id}", CAR_BASE + position
            if position % 4096 == 0:
                bar.update(end.offset - bar.n)
        bar.update(bar.total - bar.n)


def _agreeing(pairs: Iterable[tuple[str, int]], known: IdMapping, source: str) -> Iterator[tuple[str, int]]:
    """`pairs`, checked against the CAR ids `known` already: every one must appear, with the same integer."""
    seen = 0
    for official, convdr in pairs:
        expected = known.to_convdr(official)
        if expected is not None:
            if expected != convdr:
                raise UserError(f"{source}: {official} is {convdr} by cbor position but {expected} in the qrels; "
                                "this is not the cbor ConvDR numbered")
            seen += 1
        yield official, convdr
    if seen != len(known):
        raise UserError(f"{source}: {len(known) - seen:,} CAR ids of the qrels are not in this cbor")


def looks_like_convdr_ids(doc_ids: Iterable[str]) -> bool:
    """True if every id is a plain non-negative integer (ConvDR's scheme), False if any is not or none given."""
    seen = False
    for doc_id in doc_ids:
        if _parse_int(doc_id) is None:
            return False
        seen = True
    return seen


def write_mapping_tsv(pairs: Iterable[tuple[str, int]], path: str | Path) -> int:
    """Write `official<TAB>integer` lines atomically; returns how many were written."""
    count = 0
    with atomic_output(path) as out:
        for official, convdr in pairs:
            out.write(f"{official}\t{convdr}\n")
            count += 1
    return count


def convert_lines(
    lines: Iterable[str], mapping: IdMapping, direction: str, source: str = "input"
) -> Iterator[tuple[str, str | None, str]]:
    """Yield (line, converted line or None if its id is unknown, doc id) for TREC run (6 columns) or qrels (4) lines.

    Only the doc id (third column) changes; separators and line endings are kept. Blank lines pass through.
    A line whose column count differs from 4 or 6, or from the file's first line, is a UserError.
    """
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    expected = None
    for line_number, line in enumerate(lines, 1):
        pieces = _FIELDS.split(line)  # fields at even indices, separators (and the line ending) at odd ones
        fields = [piece for piece in pieces[0::2] if piece]
        if not fields:
            yield line, line, ""
            continue
        if expected is None:
            if len(fields) not in (4, 6):
                raise UserError(
                    f"{source}:{line_number}: {len(fields)} columns; expected 4 (qrels: qid iter docid grade) "
                    "or 6 (run: qid Q0 docid rank score tag)"
                )
            expected = len(fields)
        elif len(fields) != expected:
            kind = "qrels" if expected == 4 else "run"
            raise UserError(f"{source}:{line_number}: {len(fields)} columns; this {kind} file has {expected} (see line 1)")
        doc_index = 4 if pieces[0] else 6  # the third field; a line with leading blanks starts with ''
        doc_id = pieces[doc_index]
        converted = mapping.convert(doc_id, direction)
        if converted is not None:
            pieces[doc_index] = converted
            converted = "".join(pieces)
        yield line, converted, doc_id


def convert_file(
    source: str | Path,
    target: str | Path,
    mapping: IdMapping,
    direction: str,
    unknown: str = "error",
) -> dict[str, int]:
    """Convert the doc ids of a TREC run or qrels file; write `target` atomically.

    `unknown` decides what happens to an id the mapping cannot convert: 'error' (a UserError that counts
    them and shows a few; nothing is written), 'drop' (leave the line out) or 'keep' (leave the id as it
    is). Returns counts of lines: read, converted, dropped, kept.
    """
    if unknown not in UNKNOWN_POLICIES:
        raise UserError(f"unknown-id policy {unknown!r}; expected one of {', '.join(UNKNOWN_POLICIES)}")
    counts = {"read": 0, "converted": 0, "dropped": 0, "kept": 0}
    unknown_ids: dict[str, None] = {}
    with atomic_output(target) as out:
        for line, converted, doc_id in convert_lines(text_lines(source), mapping, direction, str(source)):
            counts["read"] += 1
            if converted is not None:
                counts["converted"] += bool(doc_id)
                out.write(converted)
            elif unknown == "keep":
                counts["kept"] += 1
                unknown_ids.setdefault(doc_id)
                out.write(line)
            else:
                counts["dropped"] += 1
                unknown_ids.setdefault(doc_id)
        if unknown_ids and unknown == "error":
            shown = ", ".join(list(unknown_ids)[:SHOWN_UNKNOWN])
            raise UserError(
                f"{source}: {len(unknown_ids):,} doc ids on {counts['dropped']:,} lines cannot be converted {direction}, "
                f"e.g. {shown}; give a mapping that covers them, or --drop-unknown / --keep-unknown"
            )
    counts["unknown ids"] = len(unknown_ids)
    return counts


def text_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file with their endings; a missing file or bad byte is a UserError."""
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        for line_number, raw in enumerate(handle, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise UserError(f"{path}:{line_number}: not UTF-8 text ({error.reason} at column {error.start + 1})") from None


def _qrels_fields(line: str, path: str | Path, line_number: int) -> list[str] | None:
    fields = line.split()
    if not fields:
        return None
    if len(fields) != 4:
        raise UserError(f"{path}:{line_number}: qrels line has {len(fields)} columns, expected 4 (qid iter docid grade)")
    return fields


def _aligned_lines(official_path: str | Path, integer_path: str | Path) -> Iterator[tuple[str, str]]:
    """Pairs of lines of two files that must have the same number of lines."""
    sentinel = object()
    left_lines, right_lines = text_lines(official_path), text_lines(integer_path)
    line_number = 0
    while True:
        left, right = next(left_lines, sentinel), next(right_lines, sentinel)
        if left is sentinel and right is sentinel:
            return
        line_number += 1
        if left is sentinel or right is sentinel:
            shorter = official_path if left is sentinel else integer_path
            raise UserError(f"{shorter} ends at line {line_number - 1}, the other file goes on; the files are not line-aligned")
        yield left, right


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
    parser = argparse.ArgumentParser(
        prog="python -m convdr_pyserini.ids",
        description="Convert TREC run and qrels files between official CAsT ids (MARCO_<pid>, CAR_<sha1>) "
        "and ConvDR's integer ids.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mapping = commands.add_parser("mapping", help="write the CAR id <-> integer table as official<TAB>integer lines")
    _add_sources(mapping, with_tsv=False)
    mapping.add_argument("--output", required=True, type=Path, help="the TSV file to write")
    convert = commands.add_parser("convert", help="convert the doc ids of a run (6 columns) or qrels (4 columns) file")
    _add_sources(convert, with_tsv=True)
    convert.add_argument("--direction", required=True, choices=DIRECTIONS)
    policy = convert.add_mutually_exclusive_group()
    policy.add_argument("--drop-unknown", dest="unknown", action="store_const", const="drop", default="error",
                        help="leave out lines whose id cannot be converted (ranks of later lines are not renumbered)")
    policy.add_argument("--keep-unknown", dest="unknown", action="store_const", const="keep",
                        help="keep unconvertible ids as they are (for evaluation: an id missing from a qrels-built "
                        "mapping is unjudged, so keeping it leaves every metric unchanged while dropping does not)")
    convert.add_argument("input", type=Path, metavar="IN")
    convert.add_argument("output", type=Path, metavar="OUT")
    return parser


def _doc_ids(path: Path) -> set[str]:
    """Every doc id (third column) of a run or qrels file."""
    return {doc_id for _, _, doc_id in convert_lines(text_lines(path), IdMapping(), "to-official", str(path)) if doc_id}


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    if not (args.mapping or args.from_qrels or args.from_car):
        raise UserError("give at least one of --mapping, --from-qrels OFFICIAL INTEGER, --from-car CBOR")
    if args.command == "mapping":
        known = _mapping_from_args(args, with_car=False)
        if args.from_car:  # streamed, checked against the qrels given with it
            with contextlib.closing(car_cbor_ids(args.from_car)) as numbered:
                count = write_mapping_tsv(_agreeing(numbered, known, str(args.from_car)), args.output)
        else:
            count = write_mapping_tsv(known.car_items(), args.output)
        print(f"wrote {count:,} CAR ids to {args.output}", file=sys.stderr)
        return 0
    wanted = _doc_ids(args.input) if args.from_car else None
    counts = convert_file(args.input, args.output, _mapping_from_args(args, wanted), args.direction, args.unknown)
    summary = ", ".join(f"{count:,} {name}" for name, count in counts.items() if count or name == "converted")
    print(f"{args.output}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
