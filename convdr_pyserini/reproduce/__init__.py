"""Reproduction and experiment matrices: produce each condition's runs, evaluate them, compare, report.

    import convdr_pyserini as cp
    result = cp.reproduce(cp.load_matrix("cast20"))          # a packaged matrix, or a path to a YAML file
    for outcome in result.outcomes:
        print(outcome.condition, outcome.expected.measure, outcome.measured, outcome.status)

See `convdr_pyserini.reproduce.matrix` for the file format. The command line is
`python -m convdr_pyserini.reproduce MATRIX`.
"""
from .._callable import make_module_callable
from .matrix import Condition, Expected, Gap, Matrix, load_matrix, packaged_matrices
from .nested import Candidate, NestedCVConfig, nested_cv
from .report import markdown_report
from .runner import (ABOVE, FAIL, MEASURED, OK, OKISH, SKIPPED, TOLERANCE, UNREFERENCED, MatrixResult, Outcome,
                     reproduce, status_of)

__all__ = [
    "ABOVE", "FAIL", "MEASURED", "OK", "OKISH", "SKIPPED", "TOLERANCE", "UNREFERENCED", "Candidate", "Condition",
    "Expected", "Gap", "Matrix", "MatrixResult", "NestedCVConfig", "Outcome", "load_matrix", "markdown_report", "nested_cv",
    "packaged_matrices", "reproduce", "status_of",
]

make_module_callable(__name__, "reproduce")
