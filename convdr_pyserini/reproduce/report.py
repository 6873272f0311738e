"""The generated tables of a matrix run: the reproduction table (expected vs measured, status per metric) and,
for an experiment matrix, the table of conditions (mean ± std over seeds, each seed, significance against the
baselines, training time) with a by-turn plot. Both are written to the matrix's `.md` file."""
from __future__ import annotations

import os
from pathlib import Path

from .matrix import Matrix
from .runner import OK, OKISH, TOLERANCE, MatrixResult, Outcome


def _sources(outcomes: list[Outcome]) -> list[str]:
    return list(dict.fromkeys(o.expected.source for o in outcomes))


def reproduction_table(matrix: Matrix, outcomes: list[Outcome]) -> str:
    """Expected against measured, one row per metric; sources are numbered notes under the table."""
    from ..evaluate.report import markdown

    descriptions = {c.name: c.description for c in matrix.conditions}
    sources = _sources(outcomes)
    rows, previous = [], None
    for o in outcomes:
        first = o.condition != previous
        previous = o.condition
        rows.append([
            f"`{o.condition}`" if first else "",
            descriptions[o.condition] if first else "",
            o.expected.measure,
            o.expected_text(),
            "—" if o.measured is None else f"{o.measured:.4f}",
            o.status_text(),
            f"[{sources.index(o.expected.source) + 1}]",
        ])
    header = ["condition", "description", "measure", "expected", "measured", "status", "source"]
    notes = "\n".join(f"{number}. {source}" for number, source in enumerate(sources, start=1))
    return markdown(header, rows) + "\n\nSources:\n\n" + notes + "\n"


def experiment_table(result: MatrixResult) -> str:
    """Conditions over seeds: mean ± std of each measure, each seed's first measure, p-values of the first
    measure against each baseline (paired t-test / randomization test on per-query means over seeds), the
    share of each declared gap a condition recovers, and training time."""
    from ..evaluate import significance
    from ..evaluate.report import markdown

    matrix, evaluation = result.matrix, result.evaluation
    if evaluation is None:
        return "No condition ran.\n"
    measures = evaluation.measures
    first = measures[0]
    seeded = any(condition.trains for condition in matrix.conditions)  # else every condition is one run
    header = ["condition", *(f"{m} (mean ± std)" if seeded else m for m in measures),
              *([f"{first} per seed"] if seeded else []), *(f"p vs {b} (t / rand.)" for b in matrix.baselines),
              *([f"share of the {first} gap"] if matrix.gaps else []), *(["training s (per seed)"] if seeded else [])]
    ran = {entry.condition.name for entry in result.conditions if entry.runs}
    rows = []
    for entry in result.conditions:
        name = entry.condition.name
        if entry.skipped or entry.error:
            rows.append([f"`{name}`", *(["—"] * (len(header) - 2)), entry.skipped or f"error: {entry.error}"])
            continue
        scores = evaluation.scores_of(name)
        cells = [f"`{name}`"]
        for measure in measures:
            std = f" ± {scores.std[measure]:.4f}" if scores.seeds else ""
            cells.append(f"{scores.aggregate[measure]:.4f}{std}")
        if seeded:
            cells.append(" / ".join(f"{member.aggregate[first]:.4f}" for member in scores.seeds or [scores]))
        for baseline in matrix.baselines:
            if baseline == name or baseline not in ran:
                cells.append("—")
                continue
            reference = evaluation.scores_of(baseline)
            test = significance.compare(first, name, baseline, scores.per_query[first], reference.per_query[first])
            cells.append(f"{_p(test.t_test_p)} / {_p(test.randomization_p)}")
        if matrix.gaps:
            cells.append(_gap_share(matrix, evaluation, ran, name, first))
        if seeded:
            cells.append(" / ".join(f"{s:.0f}" for s in entry.train_seconds) if entry.train_seconds else "—")
        rows.append(cells)
    descriptions = "\n".join(f"- `{entry.condition.name}`: {entry.condition.description}" for entry in result.conditions
                             if entry.condition.description)
    settings = "\n".join(f"- {line}" for line in evaluation.settings(notes=False))
    return (markdown(header, rows) + "\n\nConditions:\n\n" + descriptions + "\n\nHow the numbers were computed:\n\n"
            + settings + (f"\n- seeds: {', '.join(map(str, matrix.seeds))}; p-values compare the per-query means "
                          "over the seeds" if seeded else "\n- p-values compare the per-query scores")
            + " (paired two-sided t-test / paired randomization test, 10,000 resamples)" + _gap_notes(matrix, first)
            + "\n")


def _gap_share(matrix, evaluation, ran: set[str], name: str, measure: str) -> str:
    gap = next((gap for gap in matrix.gaps if gap.covers(name)), None)
    if gap is None or not {gap.low, gap.high} <= ran:
        return "—"
    low, high = (evaluation.scores_of(end).aggregate[measure] for end in (gap.low, gap.high))
    if high == low:
        return "n/a"
    return f"{round(100 * (evaluation.scores_of(name).aggregate[measure] - low) / (high - low))}%"  # int: no "-0%"


def _gap_notes(matrix, measure: str) -> str:
    lines = []
    for gap in matrix.gaps:
        of = f" for {', '.join(f'`{name}`' for name in gap.of)}" if gap.of else ""
        lines.append(f"\n- share of the gap: (condition - low) / (high - low) of the mean {measure}, low `{gap.low}`, "
                     f"high `{gap.high}`{of}")
    return "".join(lines)


def nested_table(entry) -> str:
    """Nested cross-validation of a condition: per seed and outer fold, the candidates' inner scores, the recipe
    chosen and its score on the outer test fold."""
    from ..evaluate.report import markdown

    candidates = entry.condition.nested["candidates"]
    measure = entry.nested[0]["measure"]
    header = ["seed", "outer fold (test topics)", *[f"`{name}` inner {measure}" for name in candidates], "chosen",
              f"outer-fold {measure}"]
    rows = []
    for summary in entry.nested:
        for fold in summary["folds"]:
            topics = fold["test_topics"]
            rows.append([str(summary["seed"]), f"{fold['fold']} ({topics[0]}-{topics[-1]})",
                         *[f"{fold['inner_scores'][name]:.4f}" for name in candidates], f"`{fold['chosen']}`",
                         f"{fold['test_score']:.4f}"])
        rows.append([str(summary["seed"]), "all (the nested-CV run)", *[""] * len(candidates), "",
                     f"{summary['score']:.4f}"])
    return (f"\nNested cross-validation `{entry.condition.name}`: for each outer fold the candidates are "
            f"cross-validated on the other folds' topics only and scored by {measure} on those inner validation "
            "queries; the best is retrained on all of them and scored on the outer fold.\n\n"
            + markdown(header, rows) + "\n")


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def markdown_report(result: MatrixResult, plot: Path | None = None) -> str:
    """The whole generated `.md` file of a matrix run."""
    matrix = result.matrix
    command = f"python -m convdr_pyserini.reproduce {matrix.path.as_posix()}"
    parts = [f"# {matrix.title}: {'experiment' if matrix.is_experiment else 'reproduction matrix'}\n",
             f"Generated by `{command}` (do not edit by hand).\n"
             f"Qrels: `{matrix.qrels}`; measures by ir_measures, averaged over the judged queries in each run "
             f"(trec_eval default).\n"]
    if matrix.notes:
        parts.append(matrix.notes.strip() + "\n")
    if matrix.is_experiment:
        parts.append(experiment_table(result))
        parts.extend(nested_table(entry) for entry in result.conditions if entry.nested)
        if plot is not None:
            parts.append(f"\n{matrix.plot.get('measure', 'nDCG@3')} by turn: ![by turn]({plot.name})\n")
    if result.outcomes:
        parts.append(f"{OK}: equal at the published precision; {OKISH}: within {TOLERANCE}; ABOVE: higher by more "
                     "than that (a failure unless the condition allows it: leakage or the wrong qrels); FAIL: lower; "
                     "skipped: the files named are absent (never a pass).\n")
        parts.append(reproduction_table(matrix, result.outcomes))
    return "\n".join(parts)


def by_turn_plot(result: MatrixResult, path: str | os.PathLike, overwrite: bool) -> Path | None:
    """The experiment's by-turn plot: the `best` conditions by mean of the plotted measure, against the
    `reference` conditions (e.g. dense raw and manual)."""
    from ..evaluate import TurnTable, plot_by_turn

    spec, evaluation = result.matrix.plot, result.evaluation
    if not spec or evaluation is None:
        return None
    measure = spec.get("measure", evaluation.measures[0])
    ran = [scores.name for scores in evaluation.runs]
    reference = [name for name in spec.get("reference", []) if name in ran]
    candidates = [name for name in ran if name not in reference]
    best = sorted(candidates, key=lambda name: -evaluation.scores_of(name).aggregate[measure])[:int(spec.get("best", 3))]
    turns = evaluation.by_turn()
    chosen = TurnTable(turns.turns, turns.queries, {name: turns.means[name] for name in reference + best})
    plot_by_turn(chosen, path, title=f"{result.matrix.title}: {measure} by turn", measures=[measure],
                 inputs=[result.matrix.path], overwrite=overwrite)
    return Path(path)
