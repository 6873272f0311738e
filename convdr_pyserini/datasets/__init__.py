"""ir_datasets loaders: `convdr/cast19`, `convdr/cast20`, `convdr/cast20/mini`, `convdr/cast21`, OR-QuAC, CANARD, the
CAsT collections.

Importing this package (`import convdr_pyserini.datasets`) registers every id below with ir_datasets, so that
`ir_datasets.load("convdr/cast20/mini")` works; `import convdr_pyserini` alone stays cheap and registers nothing.
Upstream files are found through `convdr_pyserini.files.resolve` (mirror, cache, checksummed download).
"""
from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Callable, Iterator

import ir_datasets
from ir_datasets.datasets.base import Dataset
from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, GenericDoc

from .. import files
from ..errors import InvalidInput, UserError
from ..io.qrels import read_qrels_lines
from ..io.collections import collection_files, read_documents
from . import cast, mini, quac

NAMESPACE = "convdr"
CAST_QREL_DEFS = {
    0: "Fails to meet: not relevant",
    1: "Slightly meets: on topic but does not satisfy the information need",
    2: "Moderately meets: partially satisfies the information need",
    3: "Highly meets: satisfies the information need",
    4: "Fully meets: the ideal answer",
}


class _Queries(BaseQueries):
    def __init__(self, load: Callable[[], list], cls: type):
        self._load = load
        self._cls = cls

    def queries_iter(self):
        return iter(self._load())

    def queries_cls(self):
        return self._cls

    def queries_namespace(self):
        return NAMESPACE

    def queries_lang(self):
        return "en"


class _Qrels(BaseQrels):
    def __init__(self, load: Callable[[], list], definitions: dict[int, str]):
        self._load = load
        self._definitions = definitions

    def qrels_iter(self):
        return iter(self._load())

    def qrels_defs(self):
        return self._definitions

    def qrels_cls(self):
        return ir_datasets.formats.TrecQrel


class DictDocstore:
    """Random access to a collection small enough to keep in memory."""

    def __init__(self, docs: dict):
        self._docs = docs

    def get(self, doc_id: str):
        try:
            return self._docs[doc_id]
        except KeyError:
            raise UserError(f"unknown doc id {doc_id}") from None

    def get_many(self, doc_ids) -> dict:
        return {doc_id: self._docs[doc_id] for doc_id in doc_ids if doc_id in self._docs}


class _JsonCollectionDocs(BaseDocs):
    """Docs read from a Pyserini JsonCollection folder (`*.jsonl` lines of {"id", "contents"})."""

    def __init__(self, folder: Callable[[], Path], in_memory: bool):
        self._folder = folder
        self._in_memory = in_memory

    def docs_iter(self) -> Iterator[GenericDoc]:
        for doc in read_documents(collection_files(self._folder())):
            yield GenericDoc(doc.docid, doc.contents)

    @functools.lru_cache(maxsize=1)
    def docs_count(self) -> int:
        return sum(1 for _ in self.docs_iter())

    def docs_cls(self):
        return GenericDoc

    def docs_store(self) -> DictDocstore:
        if not self._in_memory:
            raise UserError("this collection is too large for an in-memory docstore; index it with Pyserini instead")
        return _cached_docstore(self)

    def docs_namespace(self):
        return NAMESPACE

    def docs_lang(self):
        return "en"

    def collection_dir(self) -> Path:
        return self._folder()


@functools.lru_cache(maxsize=None)
def _cached_docstore(docs: _JsonCollectionDocs) -> DictDocstore:
    return DictDocstore({doc.doc_id: doc for doc in docs.docs_iter()})


class _OrquacDocs(BaseDocs):
    def docs_iter(self):
        return quac.orquac_docs(files.resolve("orquac/all_blocks.txt"))

    def docs_cls(self):
        return quac.OrquacDoc

    def docs_namespace(self):
        return NAMESPACE

    def docs_lang(self):
        return "en"


def _prepared_collection(name: str, command: str) -> Callable[[], Path]:
    """The folder of a prepared collection, checked when first needed (a UserError saying how to prepare it)."""

    def folder() -> Path:
        from ..collection import default_output

        found = default_output(name)
        if not any(found.glob("*.jsonl")):
            raise UserError(f"the {name} collection is not prepared at {found}: run `python -m "
                            f"convdr_pyserini.collection {name} {command}`")
        return found

    return folder


_cast_collection_dir = _prepared_collection(
    "cast", "--msmarco collection.tsv --car paragraphCorpus.cbor --duplicates duplicate_list_v1.0.txt")
_cast21_collection_dir = _prepared_collection(
    "cast21", "--msmarco-docs msmarco-docs.tsv --kilt kilt_knowledgesource.json "
    "--wapo TREC_Washington_Post_collection.v4.jl --duplicates marco_duplicates.txt")


def read_trec_qrels(path: Path) -> list[ir_datasets.formats.TrecQrel]:
    """The qrels of a TREC qrels file as ir_datasets records, read by the one strict qrels reader."""
    problems: list[str] = []
    qrels = [ir_datasets.formats.TrecQrel(line.query_id, line.docid, line.grade, line.iteration)
             for line in read_qrels_lines(path, problems)]
    if problems:
        raise InvalidInput(problems)
    return qrels


def _judged_only(queries: Callable[[], list], qrels: Callable[[], list]) -> Callable[[], list]:
    def load():
        judged = {qrel.query_id for qrel in qrels()}
        return [query for query in queries() if query.query_id in judged]

    return load


def _definitions() -> dict[str, Dataset]:
    resolve = files.resolve
    cast19 = lambda: cast.cast19_queries(  # noqa: E731
        resolve("cast-19/evaluation_topics_v1.0.json"), resolve("cast-19/evaluation_topics_annotated_resolved_v1.0.tsv")
    )
    cast19_train = lambda: cast.cast19_queries(  # noqa: E731
        resolve("cast-19/train_topics_v1.0.json"),
        resolve("cast-19/train_topic_sample_annotated_resolved_v1.0.tsv"),
        year="cast19-train",
    )
    cast20 = lambda: cast.cast20_queries(  # noqa: E731
        resolve("cast-20/2020_manual_evaluation_topics_v1.0.json"),
        resolve("cast-20/2020_automatic_evaluation_topics_v1.0.json"),
    )
    qrels19 = lambda: read_trec_qrels(resolve("cast-19/2019qrels.txt"))  # noqa: E731
    qrels19_train = lambda: read_trec_qrels(resolve("cast-19/train_topics_mod.qrel"))  # noqa: E731
    qrels20 = lambda: read_trec_qrels(resolve("cast-20/2020qrels.txt"))  # noqa: E731
    cast21 = lambda: cast.cast21_queries(  # noqa: E731
        resolve("cast-21/2021_manual_evaluation_topics_v1.0.json"),
        resolve("cast-21/2021_automatic_evaluation_topics_v1.0.json"),
    )
    qrels21 = lambda: read_trec_qrels(resolve("cast-21/trec-cast-qrels-docs.2021.qrel"))  # noqa: E731
    cast21_docs = _JsonCollectionDocs(_cast21_collection_dir, in_memory=False)
    cast_docs = _JsonCollectionDocs(_cast_collection_dir, in_memory=False)
    mini_docs = _JsonCollectionDocs(mini.mini_collection_dir, in_memory=True)
    orquac_docs = _OrquacDocs()
    orquac_qrels = _Qrels(lambda: quac.orquac_qrels(resolve("orquac/qrels.txt")), {1: "contains the answer span"})
    datasets = {
        "convdr/cast/collection": Dataset(cast_docs),
        "convdr/cast19": Dataset(cast_docs, _Queries(cast19, cast.Cast19Query), _Qrels(qrels19, CAST_QREL_DEFS)),
        "convdr/cast19/judged": Dataset(
            cast_docs, _Queries(_judged_only(cast19, qrels19), cast.Cast19Query), _Qrels(qrels19, CAST_QREL_DEFS)
        ),
        "convdr/cast19/train": Dataset(
            cast_docs, _Queries(cast19_train, cast.Cast19Query), _Qrels(qrels19_train, CAST_QREL_DEFS)
        ),
        "convdr/cast20": Dataset(cast_docs, _Queries(cast20, cast.Cast20Query), _Qrels(qrels20, CAST_QREL_DEFS)),
        "convdr/cast20/judged": Dataset(
            cast_docs, _Queries(_judged_only(cast20, qrels20), cast.Cast20Query), _Qrels(qrels20, CAST_QREL_DEFS)
        ),
        "convdr/cast21/collection": Dataset(cast21_docs),
        "convdr/cast21": Dataset(cast21_docs, _Queries(cast21, cast.Cast21Query), _Qrels(qrels21, CAST_QREL_DEFS)),
        "convdr/cast21/judged": Dataset(
            cast21_docs, _Queries(_judged_only(cast21, qrels21), cast.Cast21Query), _Qrels(qrels21, CAST_QREL_DEFS)
        ),
        "convdr/cast20/mini": Dataset(mini_docs, _Queries(cast20, cast.Cast20Query), _Qrels(qrels20, CAST_QREL_DEFS)),
        "convdr/canard/dev": Dataset(
            _Queries(lambda: quac.canard_queries(resolve("orquac/canard/dev.json")), quac.QuacQuery)
        ),
    }
    for split in ("train", "dev", "test"):
        load = functools.partial(lambda name: quac.orquac_queries(resolve(name)), f"orquac/preprocessed/{split}.txt")
        datasets[f"convdr/orquac/{split}"] = Dataset(orquac_docs, _Queries(load, quac.QuacQuery), orquac_qrels)
    return datasets


def register() -> None:
    """Register every `convdr/...` id with ir_datasets; calling it again is harmless."""
    for dataset_id, dataset in _definitions().items():
        if dataset_id not in ir_datasets.registry._registered:
            ir_datasets.registry.register(dataset_id, dataset)


def dataset_ids() -> list[str]:
    """The ids this package registers."""
    return sorted(_definitions())


def load(dataset_id: str):
    """`ir_datasets.load`, with an unknown id reported as a UserError that lists close matches."""
    register()
    if dataset_id not in ir_datasets.registry._registered:
        close = difflib.get_close_matches(dataset_id, list(ir_datasets.registry._registered), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids: {', '.join(dataset_ids())}"
        raise UserError(f"unknown dataset id {dataset_id!r}{hint}")
    return ir_datasets.load(dataset_id)


def json_collection_folder(dataset_id: str) -> Path | None:
    """The Pyserini JsonCollection folder holding the docs of `dataset_id`, or None if they are not one."""
    docs = load(dataset_id).docs_handler()
    return docs.collection_dir() if isinstance(docs, _JsonCollectionDocs) else None


def collection_jsonl(dataset_id: str) -> Path:
    """A Pyserini JsonCollection folder holding the docs of `dataset_id` (a UserError if there is none)."""
    folder = json_collection_folder(dataset_id)
    if folder is None:
        raise UserError(f"{dataset_id} has no JsonCollection docs; prepare them with `python -m convdr_pyserini.collection`")
    return folder


register()
