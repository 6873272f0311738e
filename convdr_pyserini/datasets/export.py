"""Export a registered dataset's docs, queries or qrels with ir_datasets' own exporters.

`python -m ir_datasets export` cannot see ids another package registers; this runs ir_datasets' export code
(`ir_datasets.commands.export`) after registering the `convdr/...` ids, so the output is byte for byte what
ir_datasets writes: TSV (tabs and newlines in values become spaces) or JSON lines for docs and queries, TREC
(`qid iteration docid relevance`), TSV or JSON lines for qrels.

ir_datasets exports the fields it can type (str, int, float, and tuples of them); this package's records declare
optional fields (`Optional[str]`, a value absent for some turns) and builtin `tuple[str, ...]`, so their types are
given to the exporters as the plain `str` and `Tuple[str, ...]` ir_datasets knows (an absent value is written as
`None` in TSV, `null` in JSON lines).
"""
from __future__ import annotations

import typing
from typing import TextIO

from ..errors import UserError

PARTS = ("docs", "queries", "qrels")
FORMATS = {"docs": ("tsv", "jsonl"), "queries": ("tsv", "jsonl"), "qrels": ("trec", "tsv", "jsonl")}
DEFAULT_FORMAT = {"docs": "tsv", "queries": "tsv", "qrels": "trec"}


def export(dataset_id: str, part: str, out: TextIO, format: str | None = None,
           fields: list[str] | None = None) -> None:
    """Write `part` of `dataset_id` to `out` as `ir_datasets export` does (`format` and `fields` likewise)."""
    from ir_datasets.commands import export as ir_export

    from . import load

    if part not in PARTS:
        raise UserError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    format = format or DEFAULT_FORMAT[part]
    if format not in FORMATS[part]:
        raise UserError(f"{part} cannot be exported as {format!r}; choose one of {', '.join(FORMATS[part])}")
    dataset = load(dataset_id)
    if not getattr(dataset, f"has_{part}")():
        raise UserError(f"{dataset_id} has no {part}")
    record_cls = getattr(dataset, f"{part}_cls")()
    unknown = [name for name in fields or () if name not in record_cls._fields]
    if unknown:
        raise UserError(f"{dataset_id} {part} have no field {', '.join(map(repr, unknown))}; "
                        f"choose --fields from {', '.join(record_cls._fields)}")
    exporters = ir_export.QRELS_EXPORTERS if part == "qrels" else ir_export.DEFAULT_EXPORTERS
    try:
        exporter = exporters[format](_exportable(record_cls), out, fields or None)
        for record in getattr(dataset, f"{part}_iter")():
            exporter.next(record)
        exporter.flush()
    except AssertionError as error:  # ir_datasets reports what it cannot export with assertions
        raise UserError(f"{dataset_id} {part}: {error or 'cannot be exported with these options'}") from None


def _exportable(record_cls: type) -> type:
    """A stand-in for `record_cls` with the field types ir_datasets' exporters understand."""
    hints = typing.get_type_hints(record_cls)
    plain = {name: _plain(hints.get(name, str)) for name in record_cls._fields}
    return type(record_cls.__name__, (), {"_fields": record_cls._fields, "__annotations__": plain})


def _plain(annotation):
    """`Optional[X]` -> X; `tuple[X, ...]` -> `Tuple[X, ...]` (ir_datasets recognises the typing form only)."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(arguments) == 1:
        return _plain(arguments[0])
    if typing.get_origin(annotation) is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        return typing.Tuple[arguments[0], ...]
    return annotation
