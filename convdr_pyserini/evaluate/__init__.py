"""Evaluate runs with ir_measures: dataset presets, trec_eval averaging, significance tests, analysis by turn.

Library use::

    from convdr_pyserini.evaluate import evaluate_runs, write_markdown_table
    result = evaluate_runs("convdr/cast20", {"raw": "runs/raw.trec", "convdr": "runs/convdr.trec"},
                           "nDCG@3 RR(rel=2)", baseline="raw")
    print(write_markdown_table(result))

The command line is `python -m convdr_pyserini.evaluate` (see `__main__.py`).
"""
from .by_turn import TurnTable, by_turn, plot_by_turn
from .engine import ALL_AVERAGING, JUDGED_AVERAGING, EvaluationResult, RunScores, evaluate_runs
from .inputs import InvalidInput, Qrels, Run, Topics, load_qrels, load_topics, read_qrels_file, read_run_file
from .presets import PRESETS, Preset, parse_measures, preset_for_dataset
from .report import render, write_markdown_table
from .significance import Comparison, paired_t_test, randomization_test

__all__ = [
    "ALL_AVERAGING",
    "JUDGED_AVERAGING",
    "PRESETS",
    "Comparison",
    "EvaluationResult",
    "InvalidInput",
    "Preset",
    "Qrels",
    "Run",
    "RunScores",
    "Topics",
    "TurnTable",
    "by_turn",
    "evaluate_runs",
    "load_qrels",
    "load_topics",
    "paired_t_test",
    "parse_measures",
    "plot_by_turn",
    "preset_for_dataset",
    "randomization_test",
    "read_qrels_file",
    "read_run_file",
    "render",
    "write_markdown_table",
]
