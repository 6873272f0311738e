"""Official CAsT passage ids (`MARCO_<pid>`, `CAR_<sha1>`) and ConvDR's integer ids, both ways.

ConvDR's `preprocess_cast19/20.py` keeps an MS MARCO pid as the integer itself and gives the TREC CAR
paragraph at position i of `paragraphCorpus` (TREC CAR's already-deduplicated
`dedup.articles-paragraphs.cbor`) the integer 10,000,000 + i. MARCO ids therefore convert by arithmetic;
CAR ids need a mapping, built from the CAR cbor order or from a line-aligned pair of qrels files
(official and integer), or read from a `official<TAB>integer` file written by `ids mapping`.

    from convdr_pyserini.ids import IdMapping, convert_file
    mapping = IdMapping.from_qrels_pair("2019qrels.txt", "qrels.tsv")
    convert_file("convdr.trec", "official.trec", mapping, "to-official")

`passages_to_docs` turns a passage run (CAsT-21 ids `<docid>-<n>`) into a document run (`Run.documents`).
The command line is `python -m convdr_pyserini.ids {mapping,convert,passages-to-docs}`.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InvalidInput, UserError
from ..io.atomic import atomic_output
from ..io.qrels import read_qrels_lines
from ..io.runs import read_run_lines
from ..io.text import read_lines

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

        Every judgement must agree on query id and grade, and MARCO lines on the pid; files that are not
        aligned are a UserError naming the first line where they differ.
        """
        mapping = cls()
        problems: list[str] = []
        sentinel = None
        left_lines, right_lines = read_qrels_lines(official_path, problems), read_qrels_lines(integer_path, problems)
        while True:
            left, right = next(left_lines, sentinel), next(right_lines, sentinel)
            if problems:
                raise InvalidInput(problems)
            if left is None and right is None:
                return mapping
            if left is None or right is None:
                shorter = official_path if left is None else integer_path
                raise UserError(f"{shorter} ends before the other file; the files are not line-aligned")
            where = f"{official_path}:{left.number} / {integer_path}:{right.number}"
            if (left.query_id, left.grade) != (right.query_id, right.grade):
                raise UserError(f"{where}: query/grade {left.query_id} {left.grade} vs {right.query_id} {right.grade}; "
                                "the files are not line-aligned")
            convdr = _parse_int(right.docid)
            if convdr is None:
                raise UserError(f"{integer_path}:{right.number}: doc id {right.docid!r} is not a ConvDR integer id")
            if left.docid.startswith(CAR_PREFIX):
                mapping.add(left.docid, convdr, where)
            elif mapping.to_convdr(left.docid) != convdr:
                raise UserError(f"{where}: {left.docid} vs {right.docid}; the files are not line-aligned")

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
        for line_number, line in read_lines(path):
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
    from .._progress import progress_bar
    from ..collection.sources import car_paragraph_ids

    path = Path(path)
    with progress_bar(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, mininterval=1.0,
                      desc=f"numbering {path.name}") as bar:
        for position, (para_id, end) in enumerate(car_paragraph_ids(path)):
            yield f"{CAR_PREFIX}{para_id}", CAR_BASE + position
            if position % 4096 == 0:
                bar.update(end.offset - bar.n)
        bar.update(bar.total - bar.n)


def agreeing(pairs: Iterable[tuple[str, int]], known: IdMapping, source: str) -> Iterator[tuple[str, int]]:
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


def write_mapping_tsv(pairs: Iterable[tuple[str, int]], path: str | Path, inputs: Iterable = (),
                      overwrite: bool = False) -> int:
    """Write `official<TAB>integer` lines atomically; returns how many were written."""
    count = 0
    with atomic_output(path, inputs=inputs, overwrite=overwrite) as out:
        for official, convdr in pairs:
            out.write(f"{official}\t{convdr}\n")
            count += 1
    return count


def file_kind(path: str | Path) -> str:
    """`run` (6 columns: qid Q0 docid rank score tag) or `qrels` (4: qid iter docid grade), by the first line."""
    for number, line in read_lines(path):
        fields = line.split()
        if fields:
            if len(fields) == 6:
                return "run"
            if len(fields) == 4:
                return "qrels"
            raise UserError(f"{path}:{number}: {len(fields)} columns; expected 4 (qrels: qid iter docid grade) "
                            "or 6 (run: qid Q0 docid rank score tag)")
    raise UserError(f"{path}: the file is empty")


def convert_lines(path: str | Path, mapping: IdMapping, direction: str) -> Iterator[tuple[str, str | None, str]]:
    """Yield (line, converted line or None if its id is unknown, doc id) for each line of a run or qrels file.

    The file is read by the strict run or qrels reader (its kind told by the first line); only the doc id
    (third column) changes, separators and line endings are kept. Blank lines pass through.
    """
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    problems: list[str] = []
    reader = read_run_lines if file_kind(path) == "run" else read_qrels_lines
    parsed = {line.number: line.docid for line in reader(path, problems)}
    if problems:
        raise InvalidInput(problems)
    for number, line in read_lines(path, keep_ends=True):
        if number not in parsed:
            yield line, line, ""
            continue
        pieces = _FIELDS.split(line)  # fields at even indices, separators (and the line ending) at odd ones
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
    overwrite: bool = False,
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
    with atomic_output(target, inputs=[source], overwrite=overwrite) as out:
        for line, converted, doc_id in convert_lines(source, mapping, direction):
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


def passages_to_docs(source: str | Path, output: str | Path, aggregate: str = "maxp", tag: str | None = None,
                     overwrite: bool = False) -> dict:
    """Read a passage run, aggregate it to documents and write it (with its sidecar); returns the counts."""
    from ..io.atomic import prepare_output
    from ..io.runs import Run

    source, output = Path(source), Path(output)
    prepare_output(output, [source], overwrite)
    documents = Run.read(source).documents(aggregate)
    return documents.write(output, tag=tag or source.name.replace(" ", "_"), overwrite=overwrite,
                           extra={"passage_run": str(source)})
