"""Runs: the `Run` type, its one strict reader and its one writer (trec, msmarco, openmatch) plus sidecar.

A run holds, per query, hits ranked by score descending then docid ascending, each docid once; so a run
written twice gives the same bytes. Reading is strict: every malformed line is reported (`InvalidInput`
lists them all), and a score that is not a finite number, a docid repeated within a query, a query id not
in the given topics, a BOM or binary data are refused rather than silently changing a ranking.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Mapping, NamedTuple

from ..errors import InvalidInput, UserError
from .atomic import PathLike, atomic_output
from .text import read_lines

FORMATS = ("trec", "msmarco", "openmatch")
TREC_COLUMNS = 6  # qid Q0 docid rank score tag
MSMARCO_COLUMNS = 3  # qid docid rank
Hit = tuple[str, float]


class RunLine(NamedTuple):
    """One parsed line of a run file; `fields` are its whitespace-separated columns."""

    number: int
    query_id: str
    docid: str
    score: float
    fields: list[str]


def ranked(hits: Iterable[Hit], depth: int | None = None) -> list[Hit]:
    """`hits` without repeated docids (best score kept), by score descending then docid ascending."""
    best: dict[str, float] = {}
    for docid, score in hits:
        score = float(score)
        if docid not in best or score > best[docid]:
            best[docid] = score
    order = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return order if depth is None else order[:depth]


def read_run_lines(path: PathLike, problems: list[str]) -> Iterator[RunLine]:
    """The lines of a trec (6 columns) or msmarco (3 columns, scored by -rank) run file.

    The format is told by the first line; a line of another shape, or with a score that is not a finite
    number, is added to `problems` and skipped. File-level problems (missing, binary, BOM) raise UserError.
    """
    columns = None
    for number, line in read_lines(path):
        fields = line.split()
        if not fields:
            continue
        if columns is None:
            columns = len(fields) if len(fields) in (TREC_COLUMNS, MSMARCO_COLUMNS) else TREC_COLUMNS
        if len(fields) != columns:
            shape = "qid Q0 docid rank score tag" if columns == TREC_COLUMNS else "qid docid rank"
            problems.append(f"{path}:{number}: expected {columns} columns ({shape}), found {len(fields)}")
            continue
        if columns == TREC_COLUMNS:
            query_id, docid, score_text = fields[0], fields[2], fields[4]
            try:
                score = float(score_text)
            except ValueError:
                score = math.nan
            if not math.isfinite(score):
                problems.append(f"{path}:{number}: score {score_text!r} is not a finite number")
                continue
        else:
            query_id, docid, rank_text = fields
            if not rank_text.isdigit():
                problems.append(f"{path}:{number}: rank {rank_text!r} is not a positive integer")
                continue
            score = -float(int(rank_text))
        yield RunLine(number, query_id, docid, score, fields)


@dataclass
class Run:
    """Ranked hits per query: `hits[query_id] = [(docid, score), ...]`, score descending then docid ascending.

    `sources` are the files and folders the run was made from (index, topics, rewrites, fused runs); `write`
    refuses to write over any of them. `metadata` is how the run was made, written to the sidecar.
    """

    hits: dict[str, list[Hit]]
    name: str = "run"
    path: Path | None = None
    tag: str | None = None
    metadata: dict = field(default_factory=dict)
    sources: tuple[Path, ...] = ()
    query_texts: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_hits(cls, hits: Mapping[str, Iterable[Hit]], depth: int | None = None, **fields) -> "Run":
        """A run from unordered hits per query (repeated docids keep their best score)."""
        return cls({str(query_id): ranked(found, depth) for query_id, found in hits.items()}, **fields)

    @classmethod
    def read(cls, path: PathLike, topics: Collection[str] | None = None, name: str | None = None) -> "Run":
        """Read a trec or msmarco run file strictly; every problem is listed in the `InvalidInput` raised.

        With `topics` (query ids), a query id outside them is a problem too.
        """
        path = Path(path)
        problems: list[str] = []
        found: dict[str, dict[str, float]] = {}
        first_line: dict[tuple[str, str], int] = {}
        unknown: dict[str, int] = {}
        for line in read_run_lines(path, problems):
            key = (line.query_id, line.docid)
            if key in first_line:
                problems.append(f"{path}:{line.number}: document {line.docid} repeated within query "
                                f"{line.query_id} (first on line {first_line[key]})")
                continue
            first_line[key] = line.number
            if topics is not None and line.query_id not in topics:
                unknown.setdefault(line.query_id, line.number)
            found.setdefault(line.query_id, {})[line.docid] = line.score
        where = f" of {topics.source}" if hasattr(topics, "source") else ""
        problems.extend(f"{path}:{number}: query {query_id} is not in the topics{where}" for query_id, number in unknown.items())
        if not found and not problems:
            problems.append(f"{path}: the run file is empty")
        if problems:
            raise InvalidInput(problems)
        return cls.from_hits({query_id: scores.items() for query_id, scores in found.items()},
                             name=name or path.name, path=path, sources=(path,))

    # -- views ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):
        return iter(self.hits)

    def __getitem__(self, query_id: str) -> list[Hit]:
        return self.hits[query_id]

    def items(self):
        return self.hits.items()

    def scores(self) -> dict[str, dict[str, float]]:
        """`{query_id: {docid: score}}`, the shape ir_measures and trec_eval tools take."""
        return {query_id: dict(found) for query_id, found in self.hits.items()}

    def docids(self) -> set[str]:
        return {docid for found in self.hits.values() for docid, _ in found}

    def ranked_docids(self) -> dict[str, list[str]]:
        """`{query_id: [docid, ...]}` in rank order."""
        return {query_id: [docid for docid, _ in found] for query_id, found in self.hits.items()}

    def counts(self) -> dict[str, int]:
        return {"queries": len(self.hits), "hits": sum(map(len, self.hits.values())),
                "queries_without_hits": sum(not found for found in self.hits.values())}

    def documents(self, aggregate: str = "maxp") -> "Run":
        """The document run of a passage run (ids `<docid>-<n>`): each document scored by `aggregate` (`maxp`,
        `firstp`, `sump`, `meanp` or `cast21-published`; see `convdr_pyserini.io.passage_runs`), ranked by score
        then document id. Ids that are not all passage ids are a UserError."""
        from .passage_runs import aggregate_hits, check_aggregation, check_passage_ids

        check_aggregation(aggregate)
        check_passage_ids(self.docids(), str(self.path or self.name), aggregate)
        hits = {query_id: aggregate_hits(found, aggregate).items() for query_id, found in self.hits.items()}
        return Run.from_hits(hits, name=self.name, tag=self.tag, sources=self.sources,
                             metadata={**self.metadata, "aggregate": aggregate}, notes=list(self.notes))

    # -- writing -------------------------------------------------------------------------------------------
    def write(self, path: PathLike, *, tag: str | None = None, format: str = "trec", overwrite: bool = False,
              qrels: Mapping[str, Mapping[str, int]] | None = None, doc_text: Callable[[str], str] | None = None,
              sidecar: bool = True, inputs: Iterable[PathLike] = (), extra: Mapping | None = None) -> dict:
        """Write the run atomically (queries in their order) and, with `sidecar`, `<path>.json`; returns counts.

        `openmatch` lines need the query texts (`query_texts`) and a `doc_text(docid)` lookup; their `label`
        is the qrels grade (0 if unjudged) when `qrels` are given, else null.
        """
        if format not in FORMATS:
            raise UserError(f"unknown run format {format!r}; expected one of {', '.join(FORMATS)}")
        if format == "openmatch" and (self.query_texts is None or doc_text is None):
            raise UserError("the openmatch format needs the query texts and the passage texts")
        tag = tag or self.tag or self.name
        if any(ch.isspace() for ch in tag) or not tag:
            raise UserError(f"run tag {tag!r} must be a non-empty word without spaces")
        guarded = [*self.sources, *inputs]
        with atomic_output(path, inputs=guarded, overwrite=overwrite) as out:
            for query_id, found in self.hits.items():
                for rank, (docid, score) in enumerate(found, 1):
                    out.write(_line(format, query_id, docid, rank, score, tag, self.query_texts, qrels, doc_text))
        counts = self.counts()
        if sidecar:
            record = {**self.metadata, **(extra or {}), "tag": tag, "output": str(path), "output_format": format,
                      "summary": counts, "sources": [str(source) for source in self.sources]}
            write_sidecar(path, record, inputs=guarded)
        self.path, self.tag = Path(path), tag
        return counts


def _line(output_format, query_id, docid, rank, score, tag, queries, qrels, doc_text) -> str:
    if output_format == "trec":
        return f"{query_id} Q0 {docid} {rank} {score:.6f} {tag}\n"
    if output_format == "msmarco":
        return f"{query_id}\t{docid}\t{rank}\n"
    label = None if qrels is None else int(qrels.get(query_id, {}).get(docid, 0))
    record = {"query_id": query_id, "doc_id": docid, "query": queries[query_id], "doc": doc_text(docid),
              "retrieval_score": round(score, 6), "label": label}
    return json.dumps(record, ensure_ascii=False) + "\n"


def sidecar_path(run_path: PathLike) -> Path:
    """`<run>.json`, the file beside a run that records how it was made."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + ".json")


def write_sidecar(run_path: PathLike, params: Mapping, inputs: Iterable[PathLike] = ()) -> Path:
    """Write `params` plus the package versions to `<run>.json` (atomically, replacing an older one)."""
    record = dict(params)
    record.setdefault("run", str(run_path))
    record["versions"] = package_versions()
    path = sidecar_path(run_path)
    with atomic_output(path, inputs=inputs, overwrite=True) as out:
        out.write(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def package_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries a run depends on (absent ones left out)."""
    from .._version import __version__

    versions = {"python": platform.python_version(), "convdr_pyserini": __version__}
    for name in ("pyserini", "ir_datasets", "ir_measures", "torch", "transformers", "faiss-cpu"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from .. import _java

    try:
        versions["anserini"] = _java.anserini_version()
    except UserError:
        pass
    return versions


def read_runs(paths: Iterable[PathLike], topics: Collection[str] | None = None) -> list[Run]:
    """Several run files; the problems of all of them are reported together."""
    runs, problems = [], []
    for path in paths:
        try:
            runs.append(Run.read(path, topics))
        except InvalidInput as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)
    return runs

