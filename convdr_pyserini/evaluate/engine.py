"""Scoring runs with ir_measures: per-query values, averages, comparisons against a baseline."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import UserError
from . import significance
from .inputs import InvalidInput, Qrels, Run, convert_convdr_ids, load_qrels, load_topics, read_run
from .presets import Preset, parse_measures

JUDGED_AVERAGING = "over judged queries in the run (trec_eval default)"
ALL_AVERAGING = "over all judged queries, a query missing from the run scores 0 (trec_eval -c)"


@dataclass
class RunScores:
    """One run's scores: `aggregate[measure]` and `per_query[measure][qid]`, measures as strings."""

    run: Run
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def queries(self) -> int:
        return len(next(iter(self.per_query.values()), {}))


@dataclass
class EvaluationResult:
    """Everything an evaluation produced, in the order the runs were given."""

    qrels: Qrels
    measures: list[str]
    runs: list[RunScores]
    missing_as_zero: bool = False
    judged_only: bool = False
    preset: Preset | None = None
    baseline: str | None = None
    comparisons: list[significance.Comparison] = field(default_factory=list)

    @property
    def averaging(self) -> str:
        return ALL_AVERAGING if self.missing_as_zero else JUDGED_AVERAGING

    def settings(self) -> list[str]:
        """Lines stating how the numbers were computed, printed above every table."""
        lines = [f"qrels: {self.qrels.source} ({len(self.qrels.judgments)} judged queries)"]
        if self.preset is not None:
            lines.append(f"preset {self.preset.name}: {self.preset.convention}")
        lines.append(f"measures (ir_measures): {' '.join(self.measures)}")
        lines.append(f"averaging: {self.averaging}")
        if self.judged_only:
            lines.append("judged only: unjudged documents removed from the runs before scoring (condensed lists)")
        for scores in self.runs:
            lines.extend(f"{scores.name}: {note}" for note in scores.run.notes)
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

    def to_dict(self, run: str | None = None, per_query: bool = True) -> dict:
        """A JSON-ready summary of every run, or of the run named `run`."""
        chosen = [s for s in self.runs if run is None or s.name == run]
        return {
            "qrels": self.qrels.source,
            "preset": None if self.preset is None else {"name": self.preset.name, "convention": self.preset.convention},
            "measures": self.measures,
            "averaging": self.averaging,
            "missing_as_zero": self.missing_as_zero,
            "judged_only": self.judged_only,
            "baseline": self.baseline,
            "runs": [
                {
                    "name": scores.name,
                    "path": None if scores.run.path is None else str(scores.run.path),
                    "notes": scores.run.notes,
                    "queries": scores.queries,
                    "aggregate": scores.aggregate,
                    **({"per_query": scores.per_query} if per_query else {}),
                }
                for scores in chosen
            ],
            "comparisons": [
                vars(comparison) | {"marks": comparison.marks()}
                for comparison in self.comparisons
                if run is None or comparison.run == run
            ],
        }

    def write_eval_files(self) -> list[str]:
        """Write `<run>.eval.json` next to each run read from a file (atomically); returns the paths."""
        from .._cli import atomic_output

        written = []
        for scores in self.runs:
            if scores.run.path is None:
                continue
            path = f"{scores.run.path}.eval.json"
            with atomic_output(path) as handle:
                json.dump(self.to_dict(run=scores.name), handle, indent=1, sort_keys=True)
                handle.write("\n")
            written.append(path)
        return written


def evaluate_runs(
    qrels: Qrels | str | os.PathLike,
    runs: dict[str, str | os.PathLike | dict],
    measures: str | list,
    baseline: str | None = None,
    missing_as_zero: bool = False,
    judged_only: bool = False,
    preset: Preset | None = None,
    topics: str | None = None,
    permutations: int = significance.PERMUTATIONS,
    seed: int = significance.SEED,
) -> EvaluationResult:
    """Score several runs with ir_measures and, with `baseline` (a key of `runs`), test each against it.

    `qrels` is a `Qrels`, an ir_datasets id or a qrels file; `runs` maps a display name to a run file
    or a dict `{qid: {docid: score}}`; `measures` is an ir_measures string (`"nDCG@3 RR(rel=2)"`)
    or a list of ir_measures objects. Every problem in the inputs is gathered into one `InvalidInput`.
    """
    problems = []
    if isinstance(measures, str):
        measures, problems = parse_measures(measures)
    if baseline is not None and baseline not in runs:
        problems.append(f"--baseline: {baseline} is not one of the evaluated runs ({', '.join(runs)})")
    if not isinstance(qrels, Qrels):
        try:
            qrels = load_qrels(qrels, topics)
        except InvalidInput as error:  # go on checking the runs against the topics alone
            problems = error.problems + problems
            qrels = Qrels(str(qrels), {}, load_topics(topics) if topics else None)
    loaded = []
    for name, run in runs.items():
        result, run_problems = read_run(name, run, qrels.topics)
        problems.extend(run_problems)
        loaded.append(result)
    if problems:
        raise InvalidInput(problems)
    for run in loaded:
        convert_convdr_ids(run, qrels)
    scored = [_score(run, qrels, measures, missing_as_zero, judged_only) for run in loaded]
    result = EvaluationResult(
        qrels=qrels,
        measures=[str(measure) for measure in measures],
        runs=scored,
        missing_as_zero=missing_as_zero,
        judged_only=judged_only,
        preset=preset,
        baseline=baseline,
    )
    if baseline is not None:
        reference = result.scores_of(baseline)
        result.comparisons = [
            significance.compare(
                measure, scores.name, baseline, scores.per_query[measure], reference.per_query[measure],
                permutations, seed,
            )
            for scores in scored
            if scores.name != baseline
            for measure in result.measures
        ]
    return result


def _score(run: Run, qrels: Qrels, measures: list, missing_as_zero: bool, judged_only: bool) -> RunScores:
    """ir_measures' per-query values and aggregates for one run.

    ir_measures gives every query of the qrels a value, a missing query its measure's default (0),
    which is trec_eval -c. For trec_eval's default the qrels are first restricted to the run's queries.
    """
    import ir_measures

    unjudged = sum(qid not in qrels.judgments for qid in run.scores)
    if unjudged:
        run.notes.append(f"{unjudged} of its {len(run.scores)} queries have no judgements and are not scored")
    judgments = qrels.judgments
    if not missing_as_zero:
        judgments = {qid: docs for qid, docs in judgments.items() if qid in run.scores}
    scores = run.scores
    if judged_only:
        scores = {
            qid: {docid: score for docid, score in docs.items() if docid in qrels.judgments.get(qid, {})}
            for qid, docs in scores.items()
        }
    per_query: dict[str, dict[str, float]] = {str(measure): {} for measure in measures}
    if not judgments:
        raise UserError(f"{run.name}: none of its queries is judged in {qrels.source}")
    try:
        calculated = ir_measures.evaluator(measures, judgments).calc(scores)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"ir_measures cannot compute {' '.join(map(str, measures))}: {error}") from None
    for metric in calculated.per_query:
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    per_query = {measure: dict(sorted(values.items())) for measure, values in per_query.items()}
    aggregate = {str(measure): float(value) for measure, value in calculated.aggregated.items()}
    return RunScores(run, {str(m): aggregate[str(m)] for m in measures}, per_query)
