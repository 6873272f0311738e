"""Runs: the `Run` type, its one strict reader and its one writer (trec, msmarco, openmatch) plus sidecar.

A run holds, per query, hits ranked by score descending then docid ascending, each docid once; so a run
written twice gives the same bytes. Reading is strict: every malformed line is reported (`InvalidInput`
lists them all), and a score that is not a finite number, a docid repeated within a query, a query id not
in the given topics, a BOM or binary data are refused rather than silently changing a ranking.

A run read from a file is held as the `{query_id: {docid: score}}` dicts that ir_measures scores (`ScoredHits`),
parsed a block of lines at a time; a query's ranked list is built only when asked for. A file that is not
well-formed is read again line by line to report every problem with its line number.

A search's hits can stay in arrays (`HitArrays`: docid row numbers and float32 scores) up to the file: the
(docid, score) lists are built only for the queries a caller looks at, and `Run.write` formats trec lines
from the arrays without them, byte for byte as it formats the lists.
"""
from __future__ import annotations

import json
import math
import platform
from collections import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

from ..errors import InvalidInput, UserError, writing
from .atomic import PathLike, atomic_output
from .text import read_lines, read_query_table

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


class DocidLookup(Protocol):
    """Docids by row number (a dense index's docid file): as strings, or as NUL-padded UTF-8 byte rows."""

    def get(self, rows: np.ndarray) -> list[str]: ...

    def padded(self, rows: np.ndarray) -> np.ndarray | None:
        """(len(rows), width) uint8: each docid's UTF-8 bytes then NULs; None when a docid holds a NUL itself."""


class HitArrays(abc.Mapping):
    """Ranked hits of many queries held as arrays: row i holds the first `counts[i]` entries of `rows` (keys
    into `docids`) and `scores` for `query_ids[i]`, ranked. A query's (docid, score) list is built on first
    access and kept."""

    def __init__(self, query_ids: Sequence[str], rows: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                 docids: DocidLookup):
        self.query_ids = [str(query_id) for query_id in query_ids]
        self._position = {query_id: i for i, query_id in enumerate(self.query_ids)}
        if len(self._position) != len(self.query_ids):
            raise ValueError("query ids repeat")
        if not (len(rows) == len(scores) == len(counts) == len(self.query_ids)):
            raise ValueError(f"{len(self.query_ids)} query ids but {len(rows)} rows of hits")
        self.rows, self.scores, self.counts, self.docids = rows, scores, np.asarray(counts, dtype=np.int64), docids
        self._lists: dict[str, list[Hit]] = {}

    def __getitem__(self, query_id: str) -> list[Hit]:
        found = self._lists.get(query_id)
        if found is None:
            i = self._position[query_id]
            count = int(self.counts[i])
            found = list(zip(self.docids.get(self.rows[i, :count]), self.scores[i, :count].tolist()))
            self._lists[query_id] = found
        return found

    def __contains__(self, query_id) -> bool:
        return query_id in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self.query_ids)

    def __len__(self) -> int:
        return len(self.query_ids)

    def trec_chunks(self, tag: str, queries_per_chunk: int = 256) -> Iterator[bytes]:
        """The trec lines of every query, as `_line` writes them, a few hundred queries per chunk."""
        for first in range(0, len(self.query_ids), queries_per_chunk):
            last = min(first + queries_per_chunk, len(self.query_ids))
            chunk = _trec_bytes(self.query_ids[first:last], self.rows[first:last], self.scores[first:last],
                                self.counts[first:last], self.docids, tag)
            if chunk is None:  # a NUL in an id or a score past 10**12: format line by line
                chunk = "".join(_line("trec", query_id, docid, rank, score, tag, None, None, None)
                                for query_id in self.query_ids[first:last]
                                for rank, (docid, score) in enumerate(self[query_id], 1)).encode("utf-8")
            yield chunk


class ScoredHits(abc.Mapping):
    """Hits of many queries held as `{query_id: {docid: score}}` (`by_query`, a run file as read): a query's
    ranked (docid, score) list is built on first access and kept."""

    def __init__(self, by_query: dict[str, dict[str, float]]):
        self.by_query = by_query
        self._lists: dict[str, list[Hit]] = {}
        self._docids: set[str] | None = None

    def docids(self) -> set[str]:
        """The distinct docids of all queries (kept: the dicts are not changed)."""
        if self._docids is None:
            self._docids = set().union(*self.by_query.values())
        return self._docids

    def __getitem__(self, query_id: str) -> list[Hit]:
        found = self._lists.get(query_id)
        if found is None:
            found = self._lists[query_id] = ranked(self.by_query[query_id].items())
        return found

    def __contains__(self, query_id) -> bool:
        return query_id in self.by_query

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_query)

    def __len__(self) -> int:
        return len(self.by_query)


def _read_trec_fast(path: Path, topics: Collection[str] | None) -> dict[str, dict[str, float]] | None:
    """`{query_id: {docid: score}}` of a trec run file in which every line is well-formed (six columns, a finite
    score, no docid twice in a query, every query id in `topics`, no blank line), read a block at a time
    (`read_query_table`); None for any other file (msmarco, empty, or with a problem: `Run.read` then reads it
    line by line and reports every problem)."""
    found = read_query_table(path, TREC_COLUMNS, 4, float)
    if found is None or not all(all(map(math.isfinite, hits.values())) for hits in found.values()):
        return None
    if topics is not None and not all(map(topics.__contains__, found)):
        return None
    return found


def _nul_padded(texts: Sequence[bytes]) -> np.ndarray:
    """(len(texts), longest) uint8: each text then NULs."""
    width = max(map(len, texts), default=0)
    return np.frombuffer(b"".join(text.ljust(width, b"\0") for text in texts), dtype=np.uint8).reshape(len(texts), width)


_DIGITS3 = np.array([list(f"{n:03d}".encode()) for n in range(1000)], dtype=np.uint8)
_SCORE_LIMIT = 1e12  # |score| * 10**6 stays an exact int64


def _score_text(scores: np.ndarray) -> np.ndarray | None:
    """(n, width) uint8: f"{score:.6f}" of each float32 score, NUL-padded; None for other dtypes or past
    `_SCORE_LIMIT`.

    A float32 times 10**6 is exact in float64 (24 + 14 significant bits), so rounding it half to even gives the
    digits Python's correctly rounded formatting gives."""
    values = scores.astype(np.float64)
    if scores.dtype != np.float32 or not np.all(np.abs(values) < _SCORE_LIMIT):
        return None
    micro = np.rint(np.abs(values) * 1e6).astype(np.int64)
    whole, fraction = np.divmod(micro, 1_000_000)
    width = len(str(int(whole.max(initial=0))))
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (whole[:, None] // powers) % 10 + 48
    digits[(whole[:, None] < powers) & (powers > 1)] = 0  # no leading zeros (NULs are dropped)
    sign = np.where(np.signbit(values), ord("-"), 0)[:, None]
    point = np.full((len(values), 1), ord("."))
    return np.concatenate([sign, digits, point, _DIGITS3[fraction // 1000], _DIGITS3[fraction % 1000]],
                          axis=1).astype(np.uint8)


def _trec_bytes(query_ids: Sequence[str], rows: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                docids: DocidLookup, tag: str) -> bytes | None:
    """The trec lines of these queries, built as one NUL-padded byte matrix (a row per hit, a column block
    per field) whose NULs are then dropped; None where that cannot be exact (a NUL inside an id)."""
    if "\0" in tag or any("\0" in query_id for query_id in query_ids):
        return None
    valid = np.arange(rows.shape[1]) < counts[:, None]
    query, rank = np.nonzero(valid)
    docid = docids.padded(rows[valid])
    score = _score_text(scores[valid])
    if docid is None or score is None:
        return None
    prefix = _nul_padded([f"{query_id} Q0 ".encode("utf-8") for query_id in query_ids])
    ranks = _nul_padded([f" {number} ".encode() for number in range(1, rows.shape[1] + 1)])
    suffix = np.frombuffer(f" {tag}\n".encode("utf-8"), dtype=np.uint8)
    lines = np.concatenate([prefix[query], docid, ranks[rank], score,
                            np.broadcast_to(suffix, (len(query), len(suffix)))], axis=1)
    return lines[lines != 0].tobytes()


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

    hits: Mapping[str, list[Hit]]  # a dict, or `HitArrays` straight from a search
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
        fast = _read_trec_fast(path, topics)
        if fast is not None:
            return cls(ScoredHits(fast), name=name or path.name, path=path, sources=(path,))
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
        """`{query_id: {docid: score}}`, the shape ir_measures and trec_eval tools take (for a run read from a file,
        its own dicts: read them, do not change them)."""
        if isinstance(self.hits, ScoredHits):
            return dict(self.hits.by_query)
        return {query_id: dict(found) for query_id, found in self.hits.items()}

    def docids(self) -> set[str]:
        if isinstance(self.hits, ScoredHits):
            return set(self.hits.docids())
        return {docid for found in self.hits.values() for docid, _ in found}

    def ranked_docids(self) -> dict[str, list[str]]:
        """`{query_id: [docid, ...]}` in rank order."""
        return {query_id: [docid for docid, _ in found] for query_id, found in self.hits.items()}

    def counts(self) -> dict[str, int]:
        if isinstance(self.hits, HitArrays):
            per_query = self.hits.counts.tolist()
        elif isinstance(self.hits, ScoredHits):
            per_query = list(map(len, self.hits.by_query.values()))
        else:
            per_query = [len(found) for found in self.hits.values()]
        return {"queries": len(per_query), "hits": sum(per_query), "queries_without_hits": per_query.count(0)}

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
        if format == "trec" and isinstance(self.hits, HitArrays):
            with atomic_output(path, "wb", inputs=guarded, overwrite=overwrite) as out:
                for chunk in self.hits.trec_chunks(tag):
                    out.write(chunk)
        else:
            with atomic_output(path, inputs=guarded, overwrite=overwrite) as out:
                for query_id, found in self.hits.items():
                    for rank, (docid, score) in enumerate(found, 1):
                        out.write(_line(format, query_id, docid, rank, score, tag, self.query_texts, qrels, doc_text))
        counts = self.counts()
        if sidecar:
            record = {**self.metadata, **(extra or {}), "tag": tag, "output": str(path), "output_format": format,
                      "summary": counts, "sources": [str(source) for source in self.sources]}
            write_sidecar(path, record, inputs=guarded)
        elif sidecar_path(path).is_file():  # it described the run just replaced
            with writing(sidecar_path(path)):
                sidecar_path(path).unlink()
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
    from importlib import metadata

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

