"""Evaluate runs with ir_measures: dataset presets, trec_eval averaging, conditions over seeds, significance
tests, analysis by turn.

    import convdr_pyserini as cp
    report = cp.evaluate("convdr/cast20", {"raw": "runs/raw.trec", "convdr": "runs/convdr.trec"},
                         "nDCG@3 RR(rel=2)", baseline="raw")
    print(report.table())
    report.by_turn("turns.png")

The command line is `python -m convdr_pyserini.evaluate` (see `__main__.py`).
"""
from .._callable import make_module_callable
from .api import Report, evaluate, evaluate_runs
from .by_turn import by_turn, plot_by_turn
from .presets import PRESETS, Preset, parse_measures, preset_for_dataset
from .report import render, write_eval_files, write_markdown_table
from .result import ALL_AVERAGING, JUDGED_AVERAGING, EvaluationResult, RunScores, TurnTable
from .significance import Comparison, holm, paired_t_test, randomization_test

__all__ = [
    "ALL_AVERAGING", "JUDGED_AVERAGING", "PRESETS", "Comparison", "EvaluationResult", "Preset", "Report",
    "RunScores", "TurnTable", "by_turn", "evaluate", "evaluate_runs", "holm", "paired_t_test", "parse_measures",
    "plot_by_turn", "preset_for_dataset", "randomization_test", "render", "write_eval_files", "write_markdown_table",
]

make_module_callable(__name__, "evaluate")
