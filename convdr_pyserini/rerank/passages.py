"""Passage texts for reranking: from the collection a run was made on.

A collection is a Lucene index built by `index lucene` (its stored raw contents), a Pyserini JsonCollection
(folder or file), an ir_datasets id with a docstore, or a dense index folder, whose `meta.json` names the
collection it was built from. Without one, a run's sidecar says which index it was searched on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..io.passages import Passage

Lookup = Callable[[Sequence[str]], dict[str, Passage]]


def passage_lookup(collection: str) -> Lookup:
    """{docids} -> {docid: Passage} over `collection` (see the module docstring); absent docids are left out."""
    from ..io.collections import collection_files
    from ..io.passages import collection_fields
    from ..train.data import passage_lookup as index_or_dataset_lookup

    path = Path(collection)
    if path.is_dir() and any(path.glob("segments_*")):
        return index_or_dataset_lookup(str(collection))  # a Lucene index: its stored raw contents
    if path.is_dir() and (path / "meta.json").is_file():
        from ..index.lucene import index_meta

        built_from = index_meta(path).get("collection")
        if not built_from:
            raise UserError(f"index {path}: its meta.json names no collection; give {{collection}}", "collection")
        return passage_lookup(built_from)
    if not path.exists():
        return index_or_dataset_lookup(str(collection))
    files, fields = collection_files(path), collection_fields(path)

    def json_collection_passages(doc_ids):
        from ..io.collections import read_documents

        wanted = set(doc_ids)
        return {doc.docid: Passage.from_contents(doc.docid, doc.contents, fields)
                for doc in read_documents(files) if doc.docid in wanted}

    return json_collection_passages


def run_collection(run) -> str | None:
    """The index a run was searched on, from its sidecar record (`Run.metadata`); None if unknown."""
    search = run.metadata.get("search") or (run.metadata.get("first_stage") or {}).get("search") or {}
    indexes = search.get("index") or []
    return str(indexes[0]) if indexes else None


def passages_of(doc_ids: Sequence[str], collection: str) -> dict[str, Passage]:
    """The passages of `doc_ids`; one missing from the collection is a UserError naming it."""
    found = passage_lookup(collection)(sorted(set(doc_ids)))
    missing = sorted(set(doc_ids) - set(found))
    if missing:
        raise UserError(f"{len(missing)} passage(s) of the run are missing from the collection {collection} "
                        f"(e.g. {', '.join(missing[:3])}); give the collection the run was made on as {{collection}}",
                        "collection")
    return found


def pair_text(passage: Passage) -> str:
    """The passage side of a query-passage pair: the text, after the title when there is one."""
    return passage.text if passage.title is None else f"{passage.title} {passage.text}"


