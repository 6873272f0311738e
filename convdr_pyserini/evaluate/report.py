"""Rendering an evaluation as an aligned text table, TSV, JSON or Markdown, and saving its per-query values."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import UserError
from .result import EvaluationResult, TurnTable, scores_record

DIGITS = 4


def natural_key(query_id: str) -> list:
    """Sort key that puts `81_2` before `81_10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", query_id)]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.{DIGITS}f}"


def _p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{DIGITS}f}" if value >= 10**-DIGITS or value == 0 else f"{value:.1e}"


def summary_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """The side-by-side table: one row per run (a condition over seeds: mean ± std), one column per measure,
    marks from the significance tests."""
    header = ["run", "queries", *result.measures]
    rows = []
    for scores in result.runs:
        cells = [scores.name, str(scores.queries)]
        for measure in result.measures:
            comparison = result.comparison(scores.name, measure)
            value = _number(scores.aggregate[measure])
            if scores.seeds:
                value += f" ± {_number(scores.std[measure])}"
            cells.append(value + (comparison.marks() if comparison else ""))
        rows.append(cells)
    return header, rows


def seed_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Each run of each condition over seeds, one column per measure."""
    header = ["condition", "run", *result.measures]
    rows = [[scores.name, str(member.run.path or member.name) if member.run else member.name,
             *(_number(member.aggregate[m]) for m in result.measures)]
            for scores in result.runs for member in scores.seeds]
    return header, rows


def comparison_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    header = ["run", "measure", "queries", "difference", "t-test p", "randomization p"]
    rows = [
        [c.run, c.measure, str(c.queries), f"{c.mean_difference:+.{DIGITS}f}", _p_value(c.t_test_p), _p_value(c.randomization_p)]
        for c in result.comparisons
    ]
    return header, rows


def per_query_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    header = ["run", "query", *result.measures]
    rows = []
    for scores in result.runs:
        queries = sorted(next(iter(scores.per_query.values()), {}), key=natural_key)
        rows.extend([scores.name, qid, *(_number(scores.per_query[m][qid]) for m in result.measures)] for qid in queries)
    return header, rows


def turn_rows(table: TurnTable) -> tuple[list[str], list[list[str]]]:
    """One row per run and measure, one column per turn; the first row counts the queries of each turn."""
    header = ["run", "measure", *(f"turn {turn}" for turn in table.turns)]
    rows = [["", "queries", *(str(table.queries.get(turn, 0)) for turn in table.turns)]]
    for run, measures in table.means.items():
        rows.extend([run, measure, *(_number(by_turn.get(turn)) for turn in table.turns)] for measure, by_turn in measures.items())
    return header, rows


def sections(
    result: EvaluationResult, per_query: bool = False, turns: TurnTable | None = None
) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables to print, each as (title, header, rows)."""
    found = [("scores", *summary_rows(result))]
    if any(scores.seeds for scores in result.runs):
        found.append(("runs of each condition", *seed_rows(result)))
    if result.comparisons:
        found.append((f"paired tests against {result.baseline}", *comparison_rows(result)))
    if turns is not None:
        found.append(("mean by turn number", *turn_rows(turns)))
    if per_query:
        found.append(("per query", *per_query_rows(result)))
    return found


def aligned(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


def render(result: EvaluationResult, fmt: str = "table", per_query: bool = False, turns: TurnTable | None = None) -> str:
    """The whole report in `fmt` (table, tsv or json); the settings lines always come first."""
    if fmt == "json":
        document = {**result.to_dict(per_query=per_query), "settings": result.settings()}
        if turns is not None:
            document["by_turn"] = turns.to_dict()
        return json.dumps(document, indent=1, sort_keys=True)
    blocks = []
    if fmt == "tsv":
        blocks.append("\n".join(f"# {line}" for line in result.settings()))
        for title, header, rows in sections(result, per_query, turns):
            blocks.append("\n".join([f"# {title}", "\t".join(header), *("\t".join(row) for row in rows)]))
    else:
        blocks.append("\n".join(result.settings()))
        for title, header, rows in sections(result, per_query, turns):
            blocks.append(f"{title}:\n{aligned(header, rows)}")
    return "\n\n".join(blocks)


def write_markdown_table(result: EvaluationResult, path: str | os.PathLike | None = None,
                         overwrite: bool = False) -> str:
    """The side-by-side scores (with significance marks and the settings as a note) as Markdown.

    Written atomically to `path` when given; always returned.
    """
    header, rows = summary_rows(result)
    text = markdown(header, rows) + "\n\n" + "\n".join(f"- {line}" for line in result.settings()) + "\n"
    if path is not None:
        from ..io.atomic import write_text

        inputs = [member.run.path for scores in result.runs for member in scores.seeds or [scores] if member.run]
        write_text(path, text, inputs=inputs + [result.qrels.path], overwrite=overwrite)
    return text


def write_eval_files(result: EvaluationResult, folder: str | os.PathLike | None = None) -> list[str]:
    """Write `<run>.eval.json` (settings, averages, per-query values) for each run read from a file: beside the run,
    or in `folder`; atomically, replacing an older one. What cannot be written is one UserError naming each file
    and why, raised after the others are written."""
    from ..io.atomic import atomic_output

    planned: dict[Path, tuple] = {}
    for scores in result.runs:
        for member in scores.seeds or [scores]:
            if member.run is None or member.run.path is None:
                continue
            run_path = Path(member.run.path)
            path = (run_path.parent if folder is None else Path(folder)) / f"{run_path.name}.eval.json"
            if path in planned:
                raise UserError(f"two runs named {run_path.name} would both be saved as {path}")
            record = result.to_dict(run=scores.name) if not scores.seeds else \
                {**result.to_dict(run=scores.name, per_query=False), "run": scores_record(member, True)}
            planned[path] = (record, run_path)
    written, failed = [], []
    for path, (record, run_path) in planned.items():
        try:
            with atomic_output(path, inputs=[run_path, result.qrels.path], overwrite=True) as handle:
                json.dump(record, handle, indent=1, sort_keys=True)
                handle.write("\n")
        except UserError as error:  # it names the file
            failed.append(str(error))
            continue
        except OSError as error:
            failed.append(f"{path}: {error.strerror or error}")
            continue
        written.append(str(path))
    if failed:
        raise UserError(f"per-query results not saved: {'; '.join(failed)}")
    return written
