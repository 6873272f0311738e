"""Run files (trec, msmarco, openmatch) and their `<run>.json` sidecars, shared by every retriever.

Within a query a docid appears once (its best score kept) and hits are ordered by score descending,
then docid ascending, so a rerun writes the same bytes. Files are written atomically.
"""
from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .._cli import atomic_output
from ..errors import UserError

OUTPUT_FORMATS = ("trec", "msmarco", "openmatch")
Results = Mapping[str, Iterable[tuple[str, float]]]


def ranked(hits: Iterable[tuple[str, float]], depth: int | None = None) -> list[tuple[str, float]]:
    """`hits` without repeated docids (best score kept), by score descending then docid ascending."""
    best: dict[str, float] = {}
    for docid, score in hits:
        score = float(score)
        if docid not in best or score > best[docid]:
            best[docid] = score
    order = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return order if depth is None else order[:depth]


def write_run(path: str | os.PathLike, results: Results, *, tag: str, output_format: str = "trec",
              queries: Mapping[str, str] | None = None, qrels: Mapping[str, Mapping[str, int]] | None = None,
              doc_text: Callable[[str], str] | None = None) -> dict:
    """Write `results` ({query_id: [(docid, score), ...]}) to `path`; returns counts for the summary line.

    Queries are written in the order of `results`. `openmatch` needs `queries` (id -> text) and
    `doc_text`; its `label` is the qrels grade (0 if unjudged) when `qrels` are given, else null.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}")
    if output_format == "openmatch" and (queries is None or doc_text is None):
        raise ValueError("the openmatch format needs the query texts and a doc_text lookup")
    counts = {"queries": 0, "hits": 0, "queries_without_hits": 0}
    with atomic_output(path) as out:
        for query_id, hits in results.items():
            hits = ranked(hits)
            counts["queries"] += 1
            counts["hits"] += len(hits)
            counts["queries_without_hits"] += not hits
            for rank, (docid, score) in enumerate(hits, 1):
                out.write(_line(output_format, query_id, docid, rank, score, tag, queries, qrels, doc_text))
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


def sidecar_path(run_path: str | os.PathLike) -> Path:
    """`<run>.json`, the file beside a run that records how it was made."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + ".json")


def write_sidecar(run_path: str | os.PathLike, params: dict) -> Path:
    """Write `params` plus the package versions to `<run>.json` (atomically); returns its path."""
    record = dict(params)
    record.setdefault("run", str(run_path))
    record["versions"] = package_versions()
    path = sidecar_path(run_path)
    with atomic_output(path) as out:
        out.write(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def package_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries a run depends on (absent ones left out)."""
    from .. import __version__

    versions = {"python": platform.python_version(), "convdr_pyserini": __version__}
    for name in ("pyserini", "ir_datasets", "ir_measures", "torch", "transformers", "faiss-cpu"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from .. import _java
    from ..errors import UserError

    try:
        versions["anserini"] = _java.anserini_version()
    except UserError:
        pass
    return versions


def read_run(path: str | os.PathLike) -> dict[str, list[tuple[str, float]]]:
    """{query_id: [(docid, score), ...]} from a trec run (`qid Q0 docid rank score tag`) or an msmarco
    run (`qid docid rank`, scored by -rank); a malformed line is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"run file {path} does not exist")
    run: dict[str, list[tuple[str, float]]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) == 6:
                    query_id, docid, score = fields[0], fields[2], float(fields[4])
                elif len(fields) == 3:
                    query_id, docid, score = fields[0], fields[1], -float(int(fields[2]))
                else:
                    raise ValueError(f"expected 6 (trec) or 3 (msmarco) fields, got {len(fields)}")
            except ValueError as error:
                raise UserError(f"{path}:{number}: not a run line ({error})") from None
            run.setdefault(query_id, []).append((docid, score))
    if not run:
        raise UserError(f"run file {path} is empty")
    return run
