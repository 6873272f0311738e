"""The inputs of an evaluation: qrels, the topics' query ids and turns, runs; and the id-scheme checks.

Runs and qrels are read by the one strict reader of each format (`convdr_pyserini.io`), which reports every
problem at once. Two traps are caught here: ConvDR integer docids in a run scored against official-id qrels
(converted, as far as the judged CAR mapping goes), and a run that shares almost no docid with the qrels
(passage ids against document qrels, or another id scheme), which would silently score 0. A passage run
(`<docid>-<n>`, CAsT-21) against document qrels is scored through an explicit aggregation or refused; and every
report carries an audit of the run's ids by source (MARCO_, MARCO_D, CAR_, KILT_, WAPO_).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InvalidInput, UserError
from ..io.qrels import Qrels
from ..io.passage_runs import AGGREGATIONS, passage_share, split_passage_id
from ..io.runs import Run
from ..io.topics import Topics
from ..resolve import load_qrels, load_topics

logger = logging.getLogger(__name__)
RunInput = "Run | str | os.PathLike | Mapping[str, Mapping[str, float]]"
OVERLAP_WARNING = 0.01  # share of a run's docids (judged queries) found in the qrels below which we warn
SOURCE_PREFIXES = ("MARCO_D", "MARCO_", "CAR_", "KILT_", "WAPO_")  # longest first: MARCO_D before MARCO_
AUDIT_DEPTH = 10
AUDIT_WARNING = 1 / 3  # a source judged at less than this share of the best-judged source's Judged@10 is warned of
AUDIT_MINIMUM = 10  # top-10 ids a source needs before it is compared


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
    docids = run.docids()
    candidates = set(filter(str.isdigit, docids))  # a cheap first cut: every ConvDR id is made of digits
    if not candidates:
        return
    from .. import files, ids

    integers = {docid for docid in candidates if ids.looks_like_convdr_ids([docid])}
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


def judged_retrieved(run: Run, qrels: Qrels) -> set[str]:
    """The distinct docids a run retrieves for the queries the qrels judge."""
    return set().union(*(found for qid, found in run.scores().items() if qid in qrels.judgments))


def check_overlap(run: Run, qrels: Qrels, retrieved: set[str] | None = None) -> str | None:
    """A warning when almost none of the docids a run retrieves for judged queries appear in the qrels
    (`retrieved`: those docids, when already known)."""
    judged = qrels.docids()
    retrieved = judged_retrieved(run, qrels) if retrieved is None else retrieved
    if len(retrieved) < 20:
        return None
    shared = len(retrieved & judged)
    if shared >= OVERLAP_WARNING * len(retrieved):
        return None
    return (f"only {shared} of the {len(retrieved):,} documents it retrieves for judged queries appear in the qrels "
            f"({Path(str(qrels.source)).name}): are the docids of the same kind (passages vs documents, official ids "
            "vs ConvDR integers)? It will score near 0")


def document_run(run: Run, qrels: Qrels, aggregate: str | None) -> Run:
    """The run to score: with `aggregate`, its document run (passage ids required); without, the run itself,
    unless its ids are passages of documents the qrels judge (a UserError naming --aggregate: never silently 0)."""
    if aggregate is not None:
        documents = run.documents(aggregate)
        documents.name, documents.path = run.name, run.path
        documents.notes.append(f"passages aggregated to documents by {aggregate} (document id = passage id up to its "
                               f"{'first' if aggregate == 'cast21-published' else 'last'} '-'; ties by document id)")
        return documents
    passages, total, _ = passage_share(run.docids())
    if passages and not any(split_passage_id(docid) for docid in qrels.docids()):
        judged = qrels.docids()
        if any((split_passage_id(docid) or ("",))[0] in judged for docid in run.docids()):
            raise UserError(f"{run.name}: {passages:,} of its {total:,} ids are passages <docid>-<n> and the qrels "
                            f"({Path(str(qrels.source)).name}) judge documents; score it as documents with --aggregate "
                            f"{' / '.join(AGGREGATIONS[:4])} (aggregate='maxp' in Python)")
    return run


def source_of(docid: str) -> str:
    """The id source of a docid: its prefix among MARCO_D, MARCO_, CAR_, KILT_, WAPO_, else 'other'."""
    for prefix in SOURCE_PREFIXES:
        if docid.startswith(prefix) and (prefix != "MARCO_" or docid[6:7].isdigit()):
            return prefix
    return "other"


def _top_by_source(found: dict[str, float], source_of_id: dict[str, str], sources: int) -> dict[str, dict[str, float]]:
    """Per id source, a query's best hits of that source down to the `AUDIT_DEPTH`-th best score, ties kept
    (the walk down its ranking stops once all `sources` are past that score)."""
    tops: dict[str, dict[str, float]] = {}
    last: dict[str, float] = {}
    closed: set[str] = set()
    for docid in sorted(found, key=found.__getitem__, reverse=True):
        source, score = source_of_id[docid], found[docid]
        hits = tops.setdefault(source, {})
        if len(hits) < AUDIT_DEPTH or score == last[source]:
            hits[docid] = last[source] = score
        elif source not in closed:
            closed.add(source)
            if len(closed) == sources:
                break
    return tops


def id_audit(run: Run, qrels: Qrels, retrieved: set[str] | None = None) -> tuple[list[str], str | None]:
    """Per id source: distinct ids retrieved for judged queries, how many the qrels hold, and ir_measures' Judged@10
    of the run restricted to that source; plus a warning when a source is judged far less than the best one
    (`retrieved`: the docids retrieved for judged queries, when already known).

    The run's distinct docids are sorted by source once; ir_measures then scores each source's sub-run, cut to
    what can be in its top 10: each query's hits down to its tenth-best score of that source, ties at the cut
    kept, so the value is the one of the whole sub-run whatever the tie rule.
    """
    import ir_measures

    judged_docids = qrels.docids()
    source_of_id = {docid: source_of(docid)
                    for docid in (judged_retrieved(run, qrels) if retrieved is None else retrieved)}
    ids_of: dict[str, set[str]] = {}
    for docid, source in source_of_id.items():
        ids_of.setdefault(source, set()).add(docid)
    if set(ids_of) <= {"other"}:
        return [], None
    judged_at = ir_measures.Judged @ AUDIT_DEPTH
    tops: dict[str, dict[str, dict[str, float]]] = {source: {} for source in ids_of}
    for query_id, found in run.scores().items():
        if query_id in qrels.judgments:
            for source, hits in _top_by_source(found, source_of_id, len(ids_of)).items():
                tops[source][query_id] = hits
    lines, fractions = [], {}
    for source in sorted(ids_of):
        sub_run = tops[source]
        in_qrels = len(ids_of[source] & judged_docids)
        judgments = {qid: docs for qid, docs in qrels.judgments.items() if qid in sub_run}
        fraction = ir_measures.calc_aggregate([judged_at], judgments, sub_run)[judged_at]
        if sum(min(len(hits), AUDIT_DEPTH) for hits in sub_run.values()) >= AUDIT_MINIMUM:
            fractions[source] = fraction
        lines.append(f"{source} {len(ids_of[source]):,} ids ({in_qrels:,} in the qrels), Judged@{AUDIT_DEPTH} {fraction:.3f}")
    warning = None
    if len(fractions) > 1:
        best = max(fractions, key=lambda source: (fractions[source], source))
        low = [source for source, value in sorted(fractions.items()) if value < AUDIT_WARNING * fractions[best]]
        if low:
            warning = (f"{', '.join(low)} ids are judged far less than {best} ids (Judged@{AUDIT_DEPTH} "
                       f"{', '.join(f'{fractions[s]:.3f}' for s in low)} vs {fractions[best]:.3f}): do those ids match "
                       "the qrels' (truncated or re-numbered ids)?")
    return ["ids by source (judged queries): " + "; ".join(lines)], warning
