"""Prepare the passage collections as Pyserini JsonCollection folders with official doc ids, in constant memory.

- CAsT-19/20: MS MARCO passages (`MARCO_<pid>`, less the ids the CAsT duplicate list drops) followed by
  the TREC CAR paragraphs (`CAR_<para_id>`, every paragraph of TREC CAR's deduplicated paragraphCorpus,
  in file order), as ConvDR and ir_datasets' `trec-cast/v1` build it;
- CAsT-21: MS MARCO v1 documents (less the documents `marco_duplicates.txt` lists), KILT Wikipedia and the
  Washington Post v4, each document cut into passages `<docid>-<n>` by the organizers' 2021 rule
  (`segment.py`), contents = document title, newline, passage text;
- OR-QuAC: the passage blocks of `all_blocks.txt`, contents = title, newline, text.
"""
from __future__ import annotations

from pathlib import Path

from .. import files
from ..io.passages import TITLE_TEXT_FIELDS
from ..errors import UserError
from ..io.passages import Passage
from .build import DEFAULT_SHARD_SIZE, Source, build_collection
from .segment import passage_id, passages
from .sources import (Record, car_paragraphs, kilt_documents, marco_documents, marco_passages, orquac_blocks,
                      read_duplicates, wapo_documents)

COLLECTIONS = ("cast", "cast21", "orquac")


def default_output(name: str) -> Path:
    """Where a prepared collection lives unless told otherwise: `<CONVDR_PYSERINI_HOME>/collections/<name>`."""
    if name not in COLLECTIONS:
        raise ValueError(f"unknown collection {name!r}; expected one of {', '.join(COLLECTIONS)}")
    return files.home() / "collections" / name


def prepare_cast(msmarco: Path, car: Path, duplicates: Path, output: Path | None = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False) -> dict:
    """Write the CAsT-19/20 collection (MS MARCO without the listed duplicates, then TREC CAR); returns the summary."""
    msmarco, car, duplicates = Path(msmarco), Path(car), Path(duplicates)
    drop = read_duplicates(duplicates)
    sources = [Source("msmarco", msmarco, marco_passages, drop), Source("car", car, car_paragraphs)]
    return build_collection(sources, output or default_output("cast"), shard_size, {"duplicates": duplicates},
                            description="CAsT passages", overwrite=overwrite)


def document_passages(record: Record) -> list[tuple[str, str]]:
    """(`<docid>-<n>`, title + newline + passage text) of each passage of a document (none without text)."""
    if record.contents is None:
        return []
    return [(passage_id(record.doc_id, number), Passage(passage_id(record.doc_id, number), text, record.title).contents())
            for number, text in enumerate(passages(record.contents))]


def prepare_cast21(msmarco_docs: Path | None = None, kilt: Path | None = None, wapo: Path | None = None,
                   duplicates: Path | None = None, output: Path | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                   overwrite: bool = False) -> dict:
    """Write the CAsT-21 passage collection from the sources given (MARCO documents need `duplicates`);
    returns the summary."""
    if not (msmarco_docs or kilt or wapo):
        raise UserError("give at least one source collection: --msmarco-docs, --kilt or --wapo")
    if msmarco_docs and not duplicates:
        raise UserError("MS MARCO documents need the organizers' duplicate list (--duplicates marco_duplicates.txt)")
    sources, extra = [], {}
    if msmarco_docs:
        drop = read_duplicates(Path(duplicates), documents=True)
        sources.append(Source("msmarco-docs", Path(msmarco_docs), marco_documents, drop, document_passages))
        extra["duplicates"] = Path(duplicates)
    if kilt:
        sources.append(Source("kilt", Path(kilt), kilt_documents, split=document_passages))
    if wapo:
        sources.append(Source("wapo", Path(wapo), wapo_documents, split=document_passages))
    return build_collection(sources, output or default_output("cast21"), shard_size, extra,
                            description="CAsT-21 passages", fields=TITLE_TEXT_FIELDS, overwrite=overwrite)


def prepare_orquac(blocks: Path, output: Path | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                   overwrite: bool = False) -> dict:
    """Write the OR-QuAC passage collection from `all_blocks.txt` (contents: title, newline, text); returns
    the summary."""
    sources = [Source("orquac", Path(blocks), orquac_blocks)]
    return build_collection(sources, output or default_output("orquac"), shard_size, description="OR-QuAC blocks",
                            fields=TITLE_TEXT_FIELDS, overwrite=overwrite)
