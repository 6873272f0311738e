"""`evaluate()`, the public entry, and the `Report` it returns: the inputs are read (`inputs`), scored (`engine`),
and the result (`result`) renders (`report`), analyses itself by turn (`by_turn`) and saves per-query values."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from ..errors import InvalidInput, UserError
from ..io.qrels import Qrels
from ..io.runs import Run
from ..resolve import load_topics
from . import significance
from .by_turn import by_turn, plot_by_turn
from .engine import compare_with_baseline, score_condition, score_run
from .inputs import convert_convdr_ids, document_run, load_judgments, read_runs
from .presets import Preset, parse_measures
from .report import render, write_eval_files, write_markdown_table
from .result import EvaluationResult, TurnTable


class Report(EvaluationResult):
    """An `EvaluationResult` that prints, writes and plots itself."""

    def table(self, fmt: str = "table", per_query: bool = False, turns: TurnTable | None = None) -> str:
        """The report as the command line prints it: `table`, `tsv` or `json`."""
        return render(self, fmt, per_query=per_query, turns=turns)

    def markdown(self, path: str | os.PathLike | None = None, overwrite: bool = False) -> str:
        """The side-by-side scores as Markdown (with the settings as notes); written to `path` when given."""
        return write_markdown_table(self, path, overwrite)

    def by_turn(self, plot: str | os.PathLike | None = None, measures: list[str] | None = None, title: str = "",
                overwrite: bool = False) -> TurnTable:
        """The mean of each measure by turn number (a `TurnTable`); with `plot`, also a PNG of it."""
        table = by_turn(self)
        if plot is not None:
            inputs = [scores.run.path for scores in self.members() if scores.run is not None]
            plot_by_turn(table, plot, title=title or f"{self.qrels.source}: mean by turn number", measures=measures,
                         inputs=inputs + [self.qrels.path], overwrite=overwrite)
        return table

    def write_eval_files(self, folder: str | os.PathLike | None = None) -> list[str]:
        """Save each run's settings, averages and per-query values as `<run>.eval.json`: beside each run read from
        a file, or in `folder`. Only on request: evaluating never writes by itself."""
        return write_eval_files(self, folder)


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
) -> Report:
    """Score runs with ir_measures and, with `baseline` (a key of `runs`), test each against it.

    `qrels` is a `Qrels`, an ir_datasets id or a qrels file; `runs` maps a display name to a `Run`, a run
    file, a dict `{qid: {docid: score}}`, or a list of those (one condition over seeds); `measures` is an
    ir_measures string (`"nDCG@3 RR(rel=2)"`) or a list of ir_measures objects. `aggregate` (`maxp`, `firstp`,
    `sump`, `meanp`, `cast21-published`) scores passage runs (`<docid>-<n>`) against document qrels as document
    runs (`Run.documents`); a passage run against document qrels without it is refused. Every problem in the
    inputs is gathered into one `InvalidInput`.
    """
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a mapping of names to runs, not {type(runs).__name__}")
    if not runs:
        raise UserError("runs is empty: give at least one run to evaluate")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise UserError(f"{{permutations}} must be a positive integer, got {permutations!r}", "permutations")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{{seed}} must be an integer, got {seed!r}", "seed")
    problems = []
    if isinstance(measures, str):
        measures, rejected = parse_measures(measures)
        problems = [f"{{measures}}: {problem}" for problem in rejected]
    if baseline is not None and baseline not in runs:
        problems.append(f"{{baseline}} {baseline} is not one of the evaluated runs ({', '.join(runs)})")
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
        raise InvalidInput(problems, "measures", "baseline")
    scored = []
    for name, members in loaded.items():
        member_scores = []
        for run in members:
            convert_convdr_ids(run, qrels)
            run = document_run(run, qrels, aggregate)
            member_scores.append(score_run(run, qrels, measures, missing_as_zero, judged_only))
        scored.append(member_scores[0] if len(member_scores) == 1 else score_condition(name, member_scores))
    measure_names = [str(measure) for measure in measures]
    return Report(qrels=qrels, measures=measure_names, runs=scored, topics=known, missing_as_zero=missing_as_zero,
                  judged_only=judged_only, preset=preset, baseline=baseline,
                  comparisons=[] if baseline is None else
                  compare_with_baseline(scored, baseline, measure_names, permutations, seed),
                  tests=significance.describe(permutations, seed))


evaluate_runs = evaluate
