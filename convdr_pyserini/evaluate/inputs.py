"""The inputs of an evaluation: qrels, the topics' query ids and turns, runs; and the id-scheme checks.

Runs and qrels are read by the one strict reader of each format (`convdr_pyserini.io`), which reports every
problem at once. Two traps are caught here: ConvDR integer docids in a run scored against official-id qrels
(converted, as far as the judged CAR mapping goes), and a run that shares almost no docid with the qrels
(passage ids against document qrels, or another id scheme), which would silently score 0.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InvalidInput, UserError
from ..io.qrels import Qrels
from ..io.runs import Run
from ..io.topics import Topics
from ..resolve import load_qrels, load_topics

logger = logging.getLogger(__name__)
RunInput = "Run | str | os.PathLike | Mapping[str, Mapping[str, float]]"
OVERLAP_WARNING = 0.01  # share of a run's docids (judged queries) found in the qrels below which we warn


def load_judgments(qrels: "Qrels | str | os.PathLike", topics: str | None = None) -> tuple[Qrels, Topics | None]:
    """The qrels and the topics whose query ids runs may use: `topics`, else the qrels' own dataset's."""
    qrels = load_qrels(qrels)
    source = topics or (None if qrels.path is not None else qrels.source)
    known = None
    if source is not None:
        try:
            known = load_topics(source)
        except UserError:
            if topics is not None:
                raise
    return qrels, known


def read_run(name: str, run: RunInput, topics: Topics | None) -> Run:
    """A `Run` from a run file, a `Run` or a dict `{qid: {docid: score}}`, checked against the topics."""
    if isinstance(run, Run):
        result = Run(dict(run.hits), name=name, path=run.path, sources=run.sources, notes=list(run.notes))
    elif isinstance(run, Mapping):
        problems = [f"{name}: score {score!r} of document {docid} in query {qid} is not a finite number"
                    for qid, docs in run.items() for docid, score in docs.items()
                    if not isinstance(score, (int, float)) or score != score or score in (float("inf"), float("-inf"))]
        if problems:
            raise InvalidInput(problems)
        result = Run.from_hits({str(qid): docs.items() for qid, docs in run.items()}, name=name)
    else:
        return Run.read(run, topics=topics, name=name)
    if topics is not None:
        stray = [qid for qid in result if qid not in topics]
        if stray:
            raise InvalidInput([f"{name}: query {qid} is not in the topics of {topics.source}" for qid in stray])
    return result


def read_runs(runs: Mapping[str, "RunInput | Sequence[RunInput]"], topics: Topics | None) -> dict[str, list[Run]]:
    """{name: [run, ...]} (several runs for a condition over seeds); every problem is gathered."""
    loaded: dict[str, list[Run]] = {}
    problems: list[str] = []
    for name, given in runs.items():
        members = list(given) if isinstance(given, (list, tuple)) else [given]
        if not members:
            problems.append(f"{name}: no runs given")
        for number, member in enumerate(members, 1):
            label = name if len(members) == 1 else f"{name} #{number}"
            try:
                loaded.setdefault(name, []).append(read_run(label, member, topics))
            except InvalidInput as error:
                problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)
    return loaded


_MAPPING_PAIRS = (
    ("cast-19/2019qrels.txt", "cast-19/coted-preprocessed/qrels.tsv"),
    ("cast-20/2020qrels.txt", "cast-20/coted-preprocessed/qrels.tsv"),
)


def convert_convdr_ids(run: Run, qrels: Qrels) -> None:
    """Rewrite ConvDR integer docids to official ids when the qrels use official ones.

    MARCO integers convert by arithmetic, CAR integers through the mapping learnt from the line-aligned
    official/integer CAsT qrels of both years (`convdr_pyserini.ids`). A run that mixes both schemes (e.g.
    from `ids convert --keep-unknown`) has its integers converted too. Integers outside the mapping (unjudged
    CAR passages) are kept as they are: no qrels line names them, so they count as unjudged, exactly as their
    official ids would, and every measure is unchanged.
    """
    from .. import files, ids

    docids = run.docids()
    integers = {docid for docid in docids if ids.looks_like_convdr_ids([docid])}
    if not integers or any(ids.looks_like_convdr_ids([docid]) for docid in qrels.docids()):
        return
    mapping = ids.IdMapping()
    for official, integer in _MAPPING_PAIRS:
        mapping.update(ids.IdMapping.from_qrels_pair(files.resolve(official), files.resolve(integer)))
    official_of = {docid: mapping.to_official(docid) for docid in integers}
    unmapped = sum(official is None for official in official_of.values())
    run.hits = Run.from_hits({qid: [(official_of.get(docid) or docid, score) for docid, score in found]
                              for qid, found in run.items()}).hits
    note = (f"ConvDR integer ids converted to official ids ({len(integers) - unmapped} of {len(integers)} integer "
            "docids" + ("; the run also holds official ids" if len(integers) < len(docids) else ""))
    run.notes.append(note + (f"; {unmapped} outside the judged CAR mapping kept, so unjudged)" if unmapped else ")"))


def check_overlap(run: Run, qrels: Qrels) -> str | None:
    """A warning when almost none of the docids a run retrieves for judged queries appear in the qrels."""
    judged = qrels.docids()
    retrieved = {docid for qid, found in run.items() if qid in qrels.judgments for docid, _ in found}
    if len(retrieved) < 20:
        return None
    shared = len(retrieved & judged)
    if shared >= OVERLAP_WARNING * len(retrieved):
        return None
    return (f"only {shared} of the {len(retrieved):,} documents it retrieves for judged queries appear in the qrels "
            f"({Path(str(qrels.source)).name}): are the docids of the same kind (passages vs documents, official ids "
            "vs ConvDR integers)? It will score near 0")
