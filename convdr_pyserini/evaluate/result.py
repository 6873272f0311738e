"""What an evaluation produces: each run's scores, the whole result, the means by turn. Plain data that imports no
other module of `evaluate`: the computing (`engine`), the rendering (`report`) and the analysis by turn (`by_turn`)
each import it, and none of them imports another."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..io.qrels import Qrels
from ..io.runs import Run
from ..io.topics import Topics

if TYPE_CHECKING:
    from .presets import Preset
    from .significance import Comparison

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
    """Everything an evaluation produced, in the order the runs were given. `tests` states how the comparisons
    with the baseline were tested (`significance.describe`)."""

    qrels: Qrels
    measures: list[str]
    runs: list[RunScores]
    topics: Topics | None = None
    missing_as_zero: bool = False
    judged_only: bool = False
    preset: "Preset | None" = None
    baseline: str | None = None
    comparisons: list["Comparison"] = field(default_factory=list)
    tests: str | None = None

    @property
    def averaging(self) -> str:
        return ALL_AVERAGING if self.missing_as_zero else JUDGED_AVERAGING

    def turn_of(self, query_id: str) -> int | None:
        """Turn number of a query: from the topics, else the trailing number of its id (`81_3` -> 3)."""
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
        if self.baseline is not None and self.tests:
            lines.append(f"significance against {self.baseline}: {self.tests}")
        return lines

    def scores_of(self, name: str) -> RunScores:
        for scores in self.runs:
            if scores.name == name:
                return scores
        raise KeyError(name)

    def comparison(self, run: str, measure: str) -> "Comparison | None":
        for comparison in self.comparisons:
            if comparison.run == run and comparison.measure == measure:
                return comparison
        return None

    def members(self) -> list[RunScores]:
        """Every scored run: the runs, and each run of each condition over seeds."""
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
            "runs": [scores_record(scores, per_query) for scores in chosen],
            "comparisons": [
                vars(comparison) | {"marks": comparison.marks()}
                for comparison in self.comparisons
                if run is None or comparison.run == run
            ],
        }


def scores_record(scores: RunScores, per_query: bool) -> dict:
    """One run's (or condition's) scores as JSON-ready data."""
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
        record["seeds"] = [scores_record(member, False) for member in scores.seeds]
    return record


@dataclass(frozen=True)
class TurnTable:
    """`means[run][measure][turn]` over the queries of that turn, and `queries[turn]` (their count)."""

    turns: list[int]
    queries: dict[int, int]
    means: dict[str, dict[str, dict[int, float]]]

    def to_dict(self) -> dict:
        return {
            "turns": self.turns,
            "queries": {str(turn): count for turn, count in self.queries.items()},
            "means": {
                run: {measure: {str(turn): value for turn, value in by_turn.items()} for measure, by_turn in measures.items()}
                for run, measures in self.means.items()
            },
        }
