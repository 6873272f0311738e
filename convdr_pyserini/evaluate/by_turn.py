"""Each measure by turn number (the ConvDR paper's analysis by turn depth): a table and a PNG plot."""
from __future__ import annotations

import os

from .result import EvaluationResult, TurnTable


def by_turn(result: EvaluationResult) -> TurnTable:
    """Average every run's per-query values by the turn number of the query.

    Turn numbers come from the topics (`turn_number`) or, without topics, from the trailing number of
    the query id. A condition over seeds contributes its per-query means. The query count per turn is that of the first run (all runs share it under
    `--missing-as-zero`; otherwise each run averages over its own judged queries).
    """
    means: dict[str, dict[str, dict[int, float]]] = {}
    queries: dict[int, int] = {}
    for index, scores in enumerate(result.runs):
        means[scores.name] = {}
        for measure, values in scores.per_query.items():
            grouped: dict[int, list[float]] = {}
            for qid, value in values.items():
                turn = result.turn_of(qid)
                if turn is not None:
                    grouped.setdefault(turn, []).append(value)
            means[scores.name][measure] = {turn: sum(v) / len(v) for turn, v in sorted(grouped.items())}
            if index == 0:
                queries = {turn: len(v) for turn, v in sorted(grouped.items())}
    turns = sorted({turn for measures in means.values() for by_turn in measures.values() for turn in by_turn})
    return TurnTable(turns, queries, means)


def plot_by_turn(
    table: TurnTable, path: str | os.PathLike, title: str = "", measures: list[str] | None = None,
    inputs: list = (), overwrite: bool = False,
) -> None:
    """Write a PNG with one panel per measure (all, or those named): the mean at each turn, one line per run.

    `inputs` (the runs and qrels behind the table) are never overwritten."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_output, prepare_output

    prepare_output(path, inputs, overwrite)
    measures = measures or list(next(iter(table.means.values())))
    columns = 2 if len(measures) == 4 else min(len(measures), 3)
    rows = -(-len(measures) // columns)
    # wide enough for a one-panel title and a legend of long run names
    figure, axes = plt.subplots(rows, columns, figsize=(max(7.5, 4.8 * columns), 3.6 * rows), squeeze=False)
    for axis, measure in zip(axes.flat, measures):
        for run, by_measure in table.means.items():
            points = by_measure[measure]
            axis.plot(list(points), list(points.values()), marker="o", markersize=3.5, linewidth=1.4, label=run)
        axis.set_title(measure)
        axis.set_xlabel("turn number (queries at that turn)")
        axis.set_ylabel(f"mean {measure}")
        axis.set_xticks(table.turns, [f"{turn}\n({table.queries.get(turn, 0)})" for turn in table.turns], fontsize="small")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(measures):]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize="small", frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 + 0.03 * ((len(labels) - 1) // 4), 1, 1))
    with atomic_output(path, "wb", inputs=inputs, overwrite=overwrite) as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
