"""Scoring runs with ir_measures: per-query values, averages, conditions over seeds, tests against a baseline.

    import convdr_pyserini as cp
    report = cp.evaluate("convdr/cast20/mini", {"dense raw": "runs/raw.trec",
                                                "ConvDR-KD": ["runs/kd.seed1.trec", "runs/kd.seed2.trec"]},
                         "nDCG@3 RR(rel=2) R@100", baseline="dense raw")
    print(report.table())          # the table the command line prints; a list of runs is one condition over seeds
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import InvalidInput, UserError
from ..io.qrels import Qrels
from ..io.runs import Run
from ..io.topics import Topics, load_topics
from . import significance
from .inputs import check_overlap, convert_convdr_ids, document_run, id_audit, load_judgments, read_runs
from .presets import Preset, parse_measures

logger = logging.getLogger(__name__)
JUDGED_AVERAGING = "over judged queries in the run (trec_eval default)"
ALL_AVERAGING = "over all judged queries, a query missing from the run scores 0 (trec_eval -c)"


@dataclass
class RunScores:
    """One run's (or one condition's) scores: `aggregate[measure]` and `per_query[measure][qid]`.

    For a condition over seeds, `seeds` holds each run's scores, `per_query` is the mean over the seeds,
    `aggregate` the mean of the seeds' aggregates and `std` their sample standard deviation.
    """

    name: str
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run: Run | None = None
    seeds: list["RunScores"] = field(default_factory=list)
    std: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def queries(self) -> int:
        return len(next(iter(self.per_query.values()), {}))


@dataclass
class EvaluationResult:
    """Everything an evaluation produced, in the order the runs were given (`Report` is this class)."""

    qrels: Qrels
    measures: list[str]
    runs: list[RunScores]
    topics: Topics | None = None
    missing_as_zero: bool = False
    judged_only: bool = False
    preset: Preset | None = None
    baseline: str | None = None
    comparisons: list[significance.Comparison] = field(default_factory=list)

    @property
    def averaging(self) -> str:
        return ALL_AVERAGING if self.missing_as_zero else JUDGED_AVERAGING

    def turn_of(self, query_id: str) -> int | None:
        """Turn number of a query: from the topics, else the trailing number of its id (`81_3` -> 3)."""
        import re

        turn = None if self.topics is None else self.topics.turn_of(query_id)
        if turn is not None:
            return turn
        match = re.search(r"(\d+)$", query_id)
        return int(match.group(1)) if match else None

    def settings(self, notes: bool = True) -> list[str]:
        """Lines stating how the numbers were computed, printed above every table (with each run's notes)."""
        lines = [f"qrels: {self.qrels.source} ({len(self.qrels.judgments)} judged queries)"]
        if self.preset is not None:
            lines.append(f"preset {self.preset.name}: {self.preset.convention}")
        lines.append(f"measures (ir_measures): {' '.join(self.measures)}")
        lines.append(f"averaging: {self.averaging}")
        if self.judged_only:
            lines.append("judged only: unjudged documents removed from the runs before scoring (condensed lists)")
        if any(scores.seeds for scores in self.runs):
            lines.append("a condition over several runs (seeds): mean ± sample standard deviation of the runs' "
                         "scores; its significance tests use the per-query mean over the runs")
        for scores in self.runs if notes else []:
            lines.extend(f"{scores.name}: {note}" for note in scores.notes)
        if self.baseline is not None:
            lines.append(
                f"significance against {self.baseline}: paired two-sided t-test ({significance.T_TEST_MARK}) and "
                f"paired randomization test ({significance.RANDOMIZATION_MARK}, {significance.PERMUTATIONS:,} "
                f"resamples, seed {significance.SEED}), marked at p < {significance.ALPHA}"
            )
        return lines

    def scores_of(self, name: str) -> RunScores:
        for scores in self.runs:
            if scores.name == name:
                return scores
        raise KeyError(name)

    def comparison(self, run: str, measure: str) -> significance.Comparison | None:
        for comparison in self.comparisons:
            if comparison.run == run and comparison.measure == measure:
                return comparison
        return None

    # -- the report --------------------------------------------------------------------------------------
    def table(self, fmt: str = "table", per_query: bool = False, turns=None) -> str:
        """The report as the command line prints it: `table`, `tsv` or `json`."""
        from .report import render

        return render(self, fmt, per_query=per_query, turns=turns)

    def markdown(self, path: str | os.PathLike | None = None, overwrite: bool = False) -> str:
        """The side-by-side scores as Markdown (with the settings as notes); written to `path` when given."""
        from .report import write_markdown_table

        return write_markdown_table(self, path, overwrite)

    def by_turn(self, plot: str | os.PathLike | None = None, measures: list[str] | None = None, title: str = "",
                overwrite: bool = False):
        """The mean of each measure by turn number (a `TurnTable`); with `plot`, also a PNG of it."""
        from .by_turn import by_turn, plot_by_turn

        table = by_turn(self)
        if plot is not None:
            inputs = [scores.run.path for scores in self._all_runs() if scores.run is not None]
            plot_by_turn(table, plot, title=title or f"{self.qrels.source}: mean by turn number", measures=measures,
                         inputs=inputs + [self.qrels.path], overwrite=overwrite)
        return table

    def _all_runs(self) -> list[RunScores]:
        return [member for scores in self.runs for member in (scores.seeds or [scores])]

    def to_dict(self, run: str | None = None, per_query: bool = True) -> dict:
        """A JSON-ready summary of every run (or condition), or of the one named `run`."""
        chosen = [s for s in self.runs if run is None or s.name == run]
        return {
            "qrels": self.qrels.source,
            "preset": None if self.preset is None else {"name": self.preset.name, "convention": self.preset.convention},
            "measures": self.measures,
            "averaging": self.averaging,
            "missing_as_zero": self.missing_as_zero,
            "judged_only": self.judged_only,
            "baseline": self.baseline,
            "runs": [_scores_dict(scores, per_query) for scores in chosen],
            "comparisons": [
                vars(comparison) | {"marks": comparison.marks()}
                for comparison in self.comparisons
                if run is None or comparison.run == run
            ],
        }

    def write_eval_files(self) -> list[str]:
        """Write `<run>.eval.json` next to each run read from a file (atomically, replacing an older one)."""
        from ..io.atomic import atomic_output

        written = []
        for scores in self.runs:
            for member in scores.seeds or [scores]:
                if member.run is None or member.run.path is None:
                    continue
                path = f"{member.run.path}.eval.json"
                record = self.to_dict(run=scores.name) if not scores.seeds else \
                    {**self.to_dict(run=scores.name, per_query=False), "run": _scores_dict(member, True)}
                with atomic_output(path, inputs=[member.run.path, self.qrels.path], overwrite=True) as handle:
                    json.dump(record, handle, indent=1, sort_keys=True)
                    handle.write("\n")
                written.append(path)
        return written


Report = EvaluationResult


def _scores_dict(scores: RunScores, per_query: bool) -> dict:
    record = {
        "name": scores.name,
        "path": None if scores.run is None or scores.run.path is None else str(scores.run.path),
        "notes": scores.notes,
        "queries": scores.queries,
        "aggregate": scores.aggregate,
        **({"per_query": scores.per_query} if per_query else {}),
    }
    if scores.seeds:
        record["std"] = scores.std
        record["seeds"] = [_scores_dict(member, False) for member in scores.seeds]
    return record


def evaluate(
    qrels: "Qrels | str | os.PathLike",
    runs: Mapping[str, "Run | str | os.PathLike | Mapping | Sequence"],
    measures: str | list = "nDCG@3",
    baseline: str | None = None,
    missing_as_zero: bool = False,
    judged_only: bool = False,
    preset: Preset | None = None,
    topics: str | None = None,
    permutations: int = significance.PERMUTATIONS,
    seed: int = significance.SEED,
    aggregate: str | None = None,
) -> EvaluationResult:
    """Score runs with ir_measures and, with `baseline` (a key of `runs`), test each against it.

    `qrels` is a `Qrels`, an ir_datasets id or a qrels file; `runs` maps a display name to a `Run`, a run
    file, a dict `{qid: {docid: score}}`, or a list of those (one condition over seeds); `measures` is an
    ir_measures string (`"nDCG@3 RR(rel=2)"`) or a list of ir_measures objects. `aggregate` (`maxp`, `firstp`,
    `sump`, `meanp`, `cast21-published`) scores passage runs (`<docid>-<n>`) against document qrels as document
    runs (`Run.documents`); a passage run against document qrels without it is refused. Every problem in the
    inputs is gathered into one `InvalidInput`.
    """
    problems = []
    if isinstance(measures, str):
        measures, problems = parse_measures(measures)
    if baseline is not None and baseline not in runs:
        problems.append(f"--baseline: {baseline} is not one of the evaluated runs ({', '.join(runs)})")
    known = None
    try:
        qrels, known = load_judgments(qrels, topics)
    except InvalidInput as error:  # go on checking the runs too, against the topics when given
        problems = error.problems + problems
        known = load_topics(topics) if topics else None
    try:
        loaded = read_runs(runs, known)
    except InvalidInput as error:
        problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)
    scored = []
    for name, members in loaded.items():
        member_scores = []
        for run in members:
            convert_convdr_ids(run, qrels)
            run = document_run(run, qrels, aggregate)
            member_scores.append(_score(run, qrels, measures, missing_as_zero, judged_only))
        scored.append(member_scores[0] if len(member_scores) == 1 else _condition(name, member_scores))
    result = EvaluationResult(qrels=qrels, measures=[str(measure) for measure in measures], runs=scored,
                              topics=known, missing_as_zero=missing_as_zero, judged_only=judged_only,
                              preset=preset, baseline=baseline)
    if baseline is not None:
        reference = result.scores_of(baseline)
        result.comparisons = [
            significance.compare(measure, scores.name, baseline, scores.per_query[measure],
                                 reference.per_query[measure], permutations, seed)
            for scores in scored if scores.name != baseline for measure in result.measures
        ]
    return result


evaluate_runs = evaluate


def _condition(name: str, members: list[RunScores]) -> RunScores:
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


def _score(run: Run, qrels: Qrels, measures: list, missing_as_zero: bool, judged_only: bool) -> RunScores:
    """ir_measures' per-query values and aggregates for one run.

    ir_measures gives every query of the qrels a value, a missing query its measure's default (0),
    which is trec_eval -c. For trec_eval's default the qrels are first restricted to the run's queries.
    """
    import ir_measures

    notes = list(run.notes)
    unjudged = sum(qid not in qrels.judgments for qid in run)
    if unjudged:
        notes.append(f"{unjudged} of its {len(run)} queries have no judgements and are not scored")
    audit, audit_warning = id_audit(run, qrels)
    notes.extend(audit)
    for warning in (check_overlap(run, qrels), audit_warning):
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
