"""A search described as data: what the `search` command line, the reproduction matrices and the demo build.

    from convdr_pyserini import SearchSpec
    spec = SearchSpec(retriever="bm25", topics="convdr/cast20/mini", query="manual",
                      index=["indexes/cast20-mini.lucene"], hits=100)
    run = spec.execute("runs/bm25-manual.trec")     # searches, writes the run and its sidecar, returns the Run

A matrix condition writes the same thing as YAML (`search: {retriever: bm25, topics: ..., ...}`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io.atomic import prepare_output
from ..io.runs import FORMATS, Run, sidecar_path
from .bm25 import DEFAULT_B, DEFAULT_BATCH, DEFAULT_K1
from .queries import DENSE_QUERY_TYPES, MISSING_REWRITE, SPARSE_QUERY_TYPES

RETRIEVERS = ("bm25", "dense", "convdr", "rrf")
DEFAULT_DENSE_BATCH = 64


@dataclass
class SearchSpec:
    """One retrieval: the retriever and its settings, the topics and the query input."""

    retriever: str
    topics: str | None = None
    query: str | None = None
    rewrites: str | None = None
    missing_rewrite: str = "error"
    index: list[str] = field(default_factory=list)
    hits: int = 1000
    threads: int = 1
    batch_size: int | None = None
    # BM25
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    rm3: bool = False
    fb_terms: int = 10
    fb_docs: int = 10
    original_query_weight: float = 0.5
    concat_window: int | None = None
    # dense and ConvDR
    encoder: str | None = None
    cv: str | None = None
    device: str = "cpu"
    truncate: str | None = None
    max_concat_length: int | None = None
    all_topics: bool = False  # a fold model: score every topic, not only those its fold held out
    verify: bool = True
    nprobe: int | None = None
    ef_search: int | None = None
    refine: float | None = None
    refine_from: str | None = None
    # fusion
    runs: list[str] = field(default_factory=list)
    rrf_k: float = 60
    # second stage: a cross-encoder reranking the top `rerank_depth` hits (convdr_pyserini.rerank)
    rerank: str | None = None
    rerank_depth: int = 100
    rerank_query: str | None = None  # the reranker's query input; default: the search's

    def __post_init__(self) -> None:
        if isinstance(self.index, (str, os.PathLike)):
            self.index = [str(self.index)]
        self.index = [str(path) for path in self.index or []]
        self.runs = [str(path) for path in self.runs or []]
        self.validate()

    @classmethod
    def from_mapping(cls, mapping: dict, where: str = "search") -> "SearchSpec":
        """A spec from parsed YAML; unknown keys and wrong types are a UserError naming `where`."""
        if not isinstance(mapping, dict):
            raise UserError(f"{where}: expected a mapping of search settings")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - set(fields))
        if unknown:
            raise UserError(f"{where}: unknown search setting(s) {', '.join(unknown)}")
        values = {}
        for name, value in mapping.items():
            kind = _KINDS.get(name, str)
            if name in ("index", "runs") and isinstance(value, str):
                value = [value]
            if value is not None and not _is(value, kind):
                raise UserError(f"{where}: {name} is {value!r}, expected {_KIND_NAMES.get(kind, kind.__name__)}")
            values[name] = value
        if "retriever" not in values:
            raise UserError(f"{where}: missing 'retriever' ({', '.join(RETRIEVERS)})")
        try:
            return cls(**values)
        except UserError as error:
            raise UserError(f"{where}: {error}") from None

    def validate(self) -> None:
        """UserError for a setting that does not fit the retriever (checked before any work)."""
        from .bm25 import RM3, check_parameters

        if self.retriever not in RETRIEVERS:
            raise UserError(f"unknown retriever {self.retriever!r}; expected one of {', '.join(RETRIEVERS)}")
        if not isinstance(self.hits, int) or self.hits < 1:
            raise UserError(f"{{hits}} must be a positive integer, got {self.hits!r}", "hits")
        if self.missing_rewrite not in MISSING_REWRITE:
            raise UserError(f"{{missing_rewrite}} must be one of {', '.join(MISSING_REWRITE)}", "missing_rewrite")
        if (self.query == "rewrite") != (self.rewrites is not None):
            raise UserError("{query} rewrite and {rewrites} FILE go together", "query", "rewrites")
        if self.rerank is not None:
            if not isinstance(self.rerank_depth, int) or not 1 <= self.rerank_depth <= self.hits:
                raise UserError(f"{{rerank_depth}} must be between 1 and {{hits}} ({self.hits}), got "
                                f"{self.rerank_depth!r}", "rerank_depth", "hits")
            if self.retriever == "rrf" or (self.rerank_query or self.query) == "concat":
                raise UserError(f"{{rerank}} needs a query the reranker takes and an index holding the passages; "
                                f"not {self.retriever} with {{query}} {self.query}", "rerank", "query")
        if self.retriever == "rrf":
            if len(self.runs) < 2:
                raise UserError(f"fusion needs at least two runs, got {len(self.runs)}")
            self._refuse("rrf", index=self.index, query=self.query, encoder=self.encoder, cv=self.cv,
                         all_topics=self.all_topics)
            return
        if not self.topics or not self.query or not self.index:
            raise UserError(f"{self.retriever} search needs topics, a query type and an index")
        self._refuse(self.retriever, runs=self.runs)
        if self.retriever == "bm25":
            check_parameters(self.k1, self.b)
            if self.rm3:
                RM3(self.fb_terms, self.fb_docs, self.original_query_weight)
            if self.query not in SPARSE_QUERY_TYPES:
                raise UserError(f"{{query}} {self.query} is a dense (ConvDR) input; BM25 takes "
                                f"{', '.join(SPARSE_QUERY_TYPES)}", "query")
            if len(self.index) != 1:
                raise UserError(f"BM25 searches one Lucene index; got {len(self.index)}: {' '.join(self.index)}")
            self._refuse("bm25", encoder=self.encoder, cv=self.cv, nprobe=self.nprobe, ef_search=self.ef_search,
                         refine=self.refine, refine_from=self.refine_from, all_topics=self.all_topics)
            return
        if self.query not in DENSE_QUERY_TYPES:
            raise UserError(f"{{query}} {self.query} is a BM25 input; dense encoders take "
                            f"{', '.join(DENSE_QUERY_TYPES)}", "query")
        self._refuse(self.retriever, rm3=self.rm3, concat_window=self.concat_window,
                     **({"all_topics": self.all_topics} if self.retriever == "convdr" else {}))
        if self.retriever == "dense" and not self.encoder:
            raise UserError("dense search needs an encoder")
        if self.retriever == "convdr" and not self.cv:
            raise UserError("ConvDR search needs the folder of per-fold models (cv)")

    def _refuse(self, retriever: str, **settings) -> None:
        for name, value in settings.items():
            if value:
                raise UserError(f"--{name.replace('_', '-')} does not apply to {retriever}")

    def inputs(self) -> list[Path]:
        """The files and folders this search reads: an output must be none of them."""
        paths = [*self.index, *self.runs, self.rewrites, self.cv, self.encoder, self.topics, self.refine_from,
                 self.rerank]
        return [Path(path) for path in paths if path and Path(path).exists()]

    def check_output(self, output: str | os.PathLike, overwrite: bool = False) -> Path:
        """Fail before searching if `output` (or its sidecar) cannot be written."""
        prepare_output(sidecar_path(output), self.inputs(), overwrite=True)
        return prepare_output(output, self.inputs(), overwrite)

    def execute(self, output: str | os.PathLike | None = None, format: str = "trec", tag: str | None = None,
                overwrite: bool = False, progress: bool = True, cluster=None) -> Run:
        """Search; with `output`, also write the run (in `format`) and its sidecar. Returns the run. With
        `cluster` (a `RayCluster`), a dense or ConvDR search runs on Ray (same run)."""
        if format not in FORMATS:
            raise UserError(f"unknown run format {format!r}; expected one of {', '.join(FORMATS)}")
        if cluster is not None and self.retriever not in ("dense", "convdr"):
            raise UserError(f"--ray applies to dense and ConvDR search, not {self.retriever}")
        if output is not None:
            self.check_output(output, overwrite)
        if format == "openmatch" and not self.topics:
            raise UserError("the openmatch format needs {topics} (for the query texts and the qrels labels)", "topics")
        from ..resolve import load_topics, topics_dataset
        from .bm25 import RM3, BM25Retriever
        from .dense import ConvDRRetriever, DenseRetriever
        from .fusion import fuse_rrf

        topics = load_topics(self.topics) if self.topics else None
        query = self._query()
        doc_text = None
        if self.retriever == "bm25":
            rm3 = RM3(self.fb_terms, self.fb_docs, self.original_query_weight) if self.rm3 else None
            with BM25Retriever(self.index[0], self.k1, self.b, rm3, self.threads,
                               self.batch_size or DEFAULT_BATCH) as retriever:
                run = self._second_stage(topics, retriever.search(topics, query, self.hits, self.concat_window,
                                                                  self.missing_rewrite, progress), query)
                if output is not None:
                    return self._write(run, output, format, tag, overwrite, topics, retriever.doc_text)
                return run
        if self.retriever == "rrf":
            run = fuse_rrf(self.runs, self.rrf_k, self.hits, topics)
        else:
            searching = dict(verify=self.verify, nprobe=self.nprobe, ef_search=self.ef_search, refine=self.refine,
                             refine_from=self.refine_from)
            options = dict(device=self.device, batch_size=self.batch_size or DEFAULT_DENSE_BATCH,
                           truncate=self.truncate, max_concat_length=self.max_concat_length, **searching)
            if self.retriever == "dense":
                options["all_topics"] = self.all_topics
            if cluster is not None:
                from .distributed import RaySearcher

                options["searcher"] = RaySearcher(self.index, cluster, device=self.device, **searching)
            retriever = ConvDRRetriever(self.index, self.cv, **options) if self.retriever == "convdr" \
                else DenseRetriever(self.index, self.encoder, **options)
            run = self._second_stage(topics, retriever.search(topics, query, self.hits, self.missing_rewrite), query)
        if format == "openmatch":
            dataset = topics_dataset(topics)
            store = dataset.docs_store() if dataset is not None else None
            if store is None:
                raise UserError("the openmatch format with a topics file needs BM25 (its index stores the texts)")
            doc_text = lambda docid: store.get(docid).text  # noqa: E731
        if output is not None:
            return self._write(run, output, format, tag, overwrite, topics, doc_text)
        return run

    def _second_stage(self, topics, run: Run, query) -> Run:
        """The run reranked by the cross-encoder `rerank` (passages from the searched index), or as it is."""
        if self.rerank is None:
            return run
        query = self.rerank_query or query
        from ..rerank.reranker import CrossEncoderReranker, fold_models, rerank_with_folds

        if fold_models(self.rerank) is not None:  # cross-validated: each topic's held-out fold model
            return rerank_with_folds(self.rerank, topics, run, query=query, depth=self.rerank_depth,
                                     collection=self.index[0], device=self.device)
        reranker = CrossEncoderReranker(self.rerank, self.index[0], device=self.device)
        return reranker.rerank(topics, run, query=query, depth=self.rerank_depth)

    def _query(self):
        if self.query != "rewrite":
            return self.query
        from ..io.topics import load_rewrites

        return load_rewrites(self.rewrites)

    def _write(self, run: Run, output, format: str, tag: str | None, overwrite: bool, topics, doc_text) -> Run:
        from ..resolve import topics_qrels

        qrels = topics_qrels(topics) if format == "openmatch" and topics is not None else None
        run.write(output, tag=tag, format=format, overwrite=overwrite, doc_text=doc_text,
                  qrels=None if qrels is None else qrels.judgments, inputs=self.inputs(),
                  extra={"search": dataclasses.asdict(self)})
        return run


_KINDS = {"hits": int, "threads": int, "batch_size": int, "fb_terms": int, "fb_docs": int, "concat_window": int,
          "max_concat_length": int, "nprobe": int, "ef_search": int, "rerank_depth": int, "refine": float, "k1": float, "b": float,
          "original_query_weight": float, "rrf_k": float, "rm3": bool, "all_topics": bool, "verify": bool, "index": list, "runs": list}
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", list: "a list", str: "a string"}


def _is(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
