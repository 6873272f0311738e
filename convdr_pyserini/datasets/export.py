"""Export a registered dataset's docs, queries or qrels with ir_datasets' own exporters.

`python -m ir_datasets export` cannot see ids another package registers; this runs ir_datasets' export code
(`ir_datasets.commands.export`) after registering the `convdr/...` ids, so the output is byte for byte what
ir_datasets writes: TSV (tabs and newlines in values become spaces) or JSON lines for docs and queries, TREC
(`qid iteration docid relevance`), TSV or JSON lines for qrels.
"""
from __future__ import annotations

from types import SimpleNamespace
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
    run = {"docs": ir_export.main_docs, "queries": ir_export.main_queries, "qrels": ir_export.main_qrels}[part]
    try:
        run(dataset, SimpleNamespace(dataset=dataset_id, format=format, fields=fields or None, out=out))
    except AssertionError as error:  # ir_datasets reports what it cannot export with assertions
        raise UserError(f"{dataset_id} {part}: {error or 'cannot be exported with these options'}") from None
