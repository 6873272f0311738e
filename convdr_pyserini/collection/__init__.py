"""Prepare the passage collections as Pyserini JsonCollection folders with official doc ids, in constant memory.

- CAsT-19/20: MS MARCO passages (`MARCO_<pid>`, less the ids the CAsT duplicate list drops) followed by
  the TREC CAR paragraphs (`CAR_<para_id>`, every paragraph of TREC CAR's deduplicated paragraphCorpus,
  in file order), as ConvDR and ir_datasets' `trec-cast/v1` build it;
- OR-QuAC: the passage blocks of `all_blocks.txt`, contents = title, newline, text.
"""
from __future__ import annotations

from pathlib import Path

from .. import files
from ..io.passages import TITLE_TEXT_FIELDS
from .build import DEFAULT_SHARD_SIZE, Source, build_collection
from .sources import car_paragraphs, marco_passages, orquac_blocks, read_duplicates

COLLECTIONS = ("cast", "orquac")


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


def prepare_orquac(blocks: Path, output: Path | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                   overwrite: bool = False) -> dict:
    """Write the OR-QuAC passage collection from `all_blocks.txt` (contents: title, newline, text); returns
    the summary."""
    sources = [Source("orquac", Path(blocks), orquac_blocks)]
    return build_collection(sources, output or default_output("orquac"), shard_size, description="OR-QuAC blocks",
                            fields=TITLE_TEXT_FIELDS, overwrite=overwrite)
