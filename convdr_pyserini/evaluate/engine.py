"""Computing scores with ir_measures: one run's per-query values and averages, a condition over seeds, the tests
of each run against a baseline. `api.evaluate` puts these together; the results are `result` types."""
from __future__ import annotations

import logging
import math

from ..errors import UserError
from ..io.qrels import Qrels
from ..io.runs import Run
from . import significance
from .inputs import check_overlap, id_audit, judged_retrieved
from .result import RunScores

logger = logging.getLogger(__name__)


def score_run(run: Run, qrels: Qrels, measures: list, missing_as_zero: bool, judged_only: bool) -> RunScores:
    """ir_measures' per-query values and aggregates for one run.

    ir_measures gives every query of the qrels a value, a missing query its measure's default (0),
    which is trec_eval -c. For trec_eval's default the qrels are first restricted to the run's queries.
    """
    import ir_measures

    notes = list(run.notes)
    unjudged = sum(qid not in qrels.judgments for qid in run)
    if unjudged:
        notes.append(f"{unjudged} of its {len(run)} queries have no judgements and are not scored")
    retrieved = judged_retrieved(run, qrels)
    audit, audit_warning = id_audit(run, qrels, retrieved)
    notes.extend(audit)
    for warning in (check_overlap(run, qrels, retrieved), audit_warning):
        if warning:
            logger.warning("%s: %s", run.name, warning)
            notes.append(f"warning: {warning}")
    judgments = qrels.judgments
    if not missing_as_zero:
        judgments = {qid: docs for qid, docs in judgments.items() if qid in run.hits}
    scores = run.scores()
    if judged_only:
        scores = {qid: {docid: score for docid, score in docs.items() if docid in qrels.judgments.get(qid, {})}
                  for qid, docs in scores.items()}
    if not judgments:
        raise UserError(f"{run.name}: none of its queries is judged in {qrels.source}")
    try:
        calculated = ir_measures.evaluator(measures, judgments).calc(scores)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"ir_measures cannot compute {' '.join(map(str, measures))}: {error}") from None
    per_query: dict[str, dict[str, float]] = {str(measure): {} for measure in measures}
    for metric in calculated.per_query:
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    per_query = {measure: dict(sorted(values.items())) for measure, values in per_query.items()}
    aggregate = {str(measure): float(value) for measure, value in calculated.aggregated.items()}
    return RunScores(run.name, {str(m): aggregate[str(m)] for m in measures}, per_query, run=run, notes=notes)


def score_condition(name: str, members: list[RunScores]) -> RunScores:
    """A condition over seeds: per-query means, the mean and sample std of the members' aggregates."""
    measures = list(members[0].aggregate)
    per_query = {}
    for measure in measures:
        values: dict[str, list[float]] = {}
        for member in members:
            for qid, value in member.per_query[measure].items():
                values.setdefault(qid, []).append(value)
        per_query[measure] = {qid: sum(found) / len(found) for qid, found in sorted(values.items())}
    aggregate, std = {}, {}
    for measure in measures:
        points = [member.aggregate[measure] for member in members]
        mean = sum(points) / len(points)
        aggregate[measure] = mean
        std[measure] = math.sqrt(sum((p - mean) ** 2 for p in points) / (len(points) - 1))
    notes = [f"{len(members)} runs (seeds): " + ", ".join(str(member.run.path or member.name) for member in members)]
    for member in members:
        notes.extend(member.notes)
    return RunScores(name, aggregate, per_query, seeds=members, std=std, notes=notes)


def compare_with_baseline(scored: list[RunScores], baseline: str, measures: list[str], permutations: int,
                          seed: int) -> list[significance.Comparison]:
    """Both paired tests of every other run against the baseline, on every measure."""
    reference = next(scores for scores in scored if scores.name == baseline)
    return [significance.compare(measure, scores.name, baseline, scores.per_query[measure],
                                 reference.per_query[measure], permutations, seed)
            for scores in scored if scores.name != baseline for measure in measures]
