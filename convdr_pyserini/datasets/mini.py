"""The embedded default collection of `convdr/cast20/mini`: 1,426 real passages built from upstream files.

- every judged passage whose text is in the CAsT-snippets CSVs (974);
- every canonical passage of the extended CAsT-20 topic files not already included (254);
- distractors: the MS MARCO passage sample (100, `MARCO_<pid>`) and the TREC CAR sample (98, `CAR_<para_id>`).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterator

from .. import files
from ..collection.sources import car_paragraphs, marco_passages
from ..errors import UserError
from ..io.atomic import atomic_output
from ..io.passages import source_text
from ..io.text import read_json, read_lines, required_field as field

SNIPPET_FILES = [
    f"cast-20/cast-snippets-2020/group-{group}_batch-{batch}_paragraph_regular.csv"
    for group in "ABCDE"
    for batch in range(1, 6)
]
EXTENDED_TOPICS = [
    "cast-20/iai-ecir2023/2020_manual_evaluation_topics_v1.0_extended.json",
    "cast-20/iai-ecir2023/2020_automatic_evaluation_topics_v1.0_extended.json",
]
MARCO_SAMPLE = "collection-samples/ms_marco_passage_sample.tsv"
CAR_SAMPLE = "collection-samples/trec_car_paragraph_sample.cbor"
BUILD_VERSION = 2  # 2: ConvDR's passage text (whitespace runs kept), see convdr_pyserini.io.passages


def snippet_passages(path: Path) -> Iterator[tuple[str, str]]:
    """(passage id, text) rows of one CAsT-snippets CSV."""
    text = "".join(line for _, line in read_lines(path, keep_ends=True))
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        for name in ("Input.passage_id", "Input.passage"):
            if reader.fieldnames is None or name not in reader.fieldnames:
                raise UserError(f"{path}:1: missing column '{name}'")
        for row in reader:
            yield row["Input.passage_id"], row["Input.passage"]


def canonical_passages(path: Path) -> Iterator[tuple[str, str]]:
    """(canonical result id, text) of every turn of an extended CAsT-20 topic file."""
    for topic in read_json(path):
        for turn in field(topic, "turn", str(path)):
            where = f"{path}: turn {topic.get('number')}_{turn.get('number')}"
            doc_id = turn.get("manual_canonical_result_id") or turn.get("automatic_canonical_result_id")
            if doc_id is None:
                raise UserError(f"{where}: missing field 'manual_canonical_result_id'/'automatic_canonical_result_id'")
            yield doc_id, field(turn, "canonical_passage", where)


def mini_passages() -> dict[str, str]:
    """All passages of the mini collection; the first text seen for an id wins, sources in the order above."""
    sources = [snippet_passages(files.resolve(name)) for name in SNIPPET_FILES]
    sources += [canonical_passages(files.resolve(name)) for name in EXTENDED_TOPICS]
    sources += [
        ((record.doc_id, record.contents) for record in reader(files.resolve(name)))
        for reader, name in ((marco_passages, MARCO_SAMPLE), (car_paragraphs, CAR_SAMPLE))
    ]
    passages: dict[str, str] = {}
    for source in sources:
        for doc_id, text in source:
            passages.setdefault(doc_id, source_text(doc_id, text))
    return passages


def mini_collection_dir() -> Path:
    """A Pyserini JsonCollection folder holding the mini collection, built once into the cache."""
    folder = files.home() / "collections" / f"cast20-mini-v{BUILD_VERSION}"
    target = folder / "docs.jsonl"
    if target.is_file():
        return folder
    passages = mini_passages()
    with atomic_output(target, overwrite=True) as out:
        for doc_id in sorted(passages):
            out.write(json.dumps({"id": doc_id, "contents": passages[doc_id]}, ensure_ascii=False) + "\n")
    return folder
