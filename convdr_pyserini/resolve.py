"""The one place where "a dataset id or a file" becomes topics, qrels or a collection.

`convdr_pyserini.io` parses files and knows nothing of dataset ids; `convdr_pyserini.datasets` defines the ids.
Every caller that takes either (the retrievers, evaluation, training, the index builders, the commands) goes through
the functions here, so an existing path always wins, then a declared data file name, then a dataset id; a name that
is none of them is one error naming both possibilities.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .errors import UserError
from .files import local_path
from .io.collections import CollectionSource, collection_files, count_documents, passages_of
from .io.passages import Passage, collection_fields
from .io.qrels import Qrels
from .io.text import first_character, plain_name
from .io.topics import Topics, looks_like_file, tsv_topic_queries

MINI = "convdr/cast20/mini"  # holds every CAsT-20 canonical passage: the responses of topics from a file


def dataset(kind: str, source: str):
    """The ir_datasets dataset `source` names; a name that is not one is an error saying it is not a file either."""
    from . import datasets

    try:
        return datasets.load(source)
    except UserError as error:
        raise UserError(f"{kind} {source!r} is neither a file nor a known dataset id: {error}") from None


def load_topics(source: "str | os.PathLike | Topics") -> Topics:
    """Topics from an ir_datasets id, a topics TSV or a CAsT JSON topics file (an existing path wins; a declared
    data file such as `cast-20/2020_manual_evaluation_topics_v1.0.json` is found like every upstream file)."""
    if isinstance(source, Topics):
        if not len(source):
            raise UserError(f"{{topics}} {source.source!r} hold no queries: give at least one query", "topics")
        return source
    _check_type("topics", source)
    path = local_path(source)
    if path is not None:
        if path.is_dir():
            raise UserError(f"topics {path} is a directory; give a topics file or a dataset id")
        from .datasets.cast import cast_json_queries

        first = first_character(path)
        is_json = plain_name(path).endswith(".json") or (first != "" and first in "[{")
        queries = cast_json_queries(path) if is_json else tsv_topic_queries(path)
        return Topics(queries, str(path), path=path)
    source = str(source)
    if looks_like_file(source):
        raise UserError(f"topics file {source} does not exist")
    found = dataset("topics", source)
    queries = list(found.queries_iter()) if found.has_queries() else []
    if not queries:
        raise UserError(f"{source} has no queries")
    return Topics(queries, source, dataset_id=source)


def load_qrels(source: "str | os.PathLike | Qrels") -> Qrels:
    """Qrels from a TREC qrels file or an ir_datasets id (a path that exists wins)."""
    if isinstance(source, Qrels):
        return source
    _check_type("qrels", source)
    if os.path.exists(source):
        return Qrels.read(source)
    return dataset_qrels(dataset("qrels", str(source)), str(source))


def dataset_qrels(found, dataset_id: str) -> Qrels:
    """The qrels of a loaded ir_datasets dataset (this package's `convdr/...` ids included)."""
    if not found.has_qrels():
        raise UserError(f"{dataset_id} has no qrels")
    judgments: dict[str, dict[str, int]] = {}
    for qrel in found.qrels_iter():
        judgments.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    return Qrels(judgments, dataset_id)


def topics_dataset(topics: Topics):
    """The ir_datasets dataset behind topics, or None for topics read from a file."""
    return None if topics.dataset_id is None else dataset("topics", topics.dataset_id)


def topics_qrels(topics: Topics) -> Qrels | None:
    """The qrels of the topics' dataset, or None (topics from a file, or a dataset without qrels)."""
    found = topics_dataset(topics)
    if found is None or not found.has_qrels():
        return None
    return dataset_qrels(found, topics.dataset_id)


def response_lookup(topics: Topics) -> Callable[[str], str]:
    """doc_id -> text of canonical responses: the topics' own in-memory docstore, else the mini collection,
    which holds every CAsT-20 canonical passage (the full CAsT collection is too large to hold)."""
    found = topics_dataset(topics)
    store = None
    if found is not None and found.has_docs():
        try:
            store = found.docs_store()
        except UserError:
            store = None
    if store is None:
        store = dataset("topics", MINI).docs_store()
    return lambda doc_id: store.get(doc_id).text


def open_collection(spec: "str | os.PathLike") -> CollectionSource:
    """A JsonCollection folder or file, or an ir_datasets id (its JsonCollection when it has one)."""
    _check_type("collection", spec)
    path = Path(spec)
    if path.exists():
        files = collection_files(path)
        fields = collection_fields(path)
        return CollectionSource(str(path.resolve()), passages_of(files, fields), count_documents(files), files, fields,
                                path if path.is_dir() else None)
    from . import datasets

    spec = str(spec)
    found = dataset("collection", spec)
    if not found.has_docs():
        raise UserError(f"dataset {spec} has no documents to index")
    folder = datasets.json_collection_folder(spec)
    if folder is not None:
        files = collection_files(folder)
        fields = collection_fields(folder)
        return CollectionSource(spec, passages_of(files, fields), count_documents(files), files, fields, folder)
    try:
        count = found.docs_count()
    except NotImplementedError:  # ir_datasets docs without count metadata
        count = None
    return CollectionSource(spec, lambda: (Passage.from_doc(doc) for doc in found.docs_iter()), count, [])


def _check_type(parameter: str, value: object) -> None:
    """A value that can be neither a path nor an id (None, a number) is a programming error, not bad input."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{parameter} must be a dataset id or a path, not {type(value).__name__}")
    if not str(value).strip():
        raise UserError(f"{{{parameter}}} is empty: give a dataset id or a path", parameter)
