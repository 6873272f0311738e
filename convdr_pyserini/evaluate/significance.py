"""Paired significance tests between two runs' per-query scores, both through scipy.

* Paired two-sided t-test: `scipy.stats.ttest_rel`.
* Paired randomization (sign-flip permutation) test of the mean difference:
  `scipy.stats.permutation_test` with `permutation_type="samples"` (each query's two scores are
  swapped or not), two-sided, 10,000 resamples drawn from `numpy.random.default_rng(seed)`, seed 0.
  When 2^n is at most the number of resamples, scipy enumerates every sign pattern (an exact test).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
PERMUTATIONS = 10_000
SEED = 0
T_TEST_MARK = "*"
RANDOMIZATION_MARK = "\u2020"  # dagger


@dataclass(frozen=True)
class Comparison:
    """A run against the baseline on one measure, over the queries both were evaluated on."""

    measure: str
    run: str
    baseline: str
    queries: int
    mean_difference: float
    t_test_p: float | None
    randomization_p: float | None

    def marks(self) -> str:
        """`*` when the t-test gives p < 0.05, a dagger when the randomization test does."""
        marks = ""
        if self.t_test_p is not None and self.t_test_p < ALPHA:
            marks += T_TEST_MARK
        if self.randomization_p is not None and self.randomization_p < ALPHA:
            marks += RANDOMIZATION_MARK
        return marks


def describe(permutations: int = PERMUTATIONS, seed: int = SEED) -> str:
    """How `compare` tests, as the report states it."""
    return (f"paired two-sided t-test ({T_TEST_MARK}) and paired randomization test ({RANDOMIZATION_MARK}, "
            f"{permutations:,} resamples, seed {seed}), marked at p < {ALPHA}")


def paired_t_test(scores: np.ndarray, baseline: np.ndarray) -> float | None:
    """Two-sided p-value of the paired t-test; 1.0 for identical scores, None under two queries."""
    from scipy import stats

    differences = np.asarray(scores, dtype=float) - np.asarray(baseline, dtype=float)
    if len(differences) < 2:
        return None
    if np.all(differences == differences[0]):
        return 1.0 if differences[0] == 0 else 0.0
    return float(stats.ttest_rel(scores, baseline).pvalue)


def randomization_test(
    scores: np.ndarray, baseline: np.ndarray, permutations: int = PERMUTATIONS, seed: int = SEED
) -> float | None:
    """Two-sided p-value of the paired randomization test on the mean difference (see module doc)."""
    from scipy import stats

    scores, baseline = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if len(scores) < 2:
        return None
    if np.all(scores == baseline):
        return 1.0

    def mean_difference(x, y, axis):
        return np.mean(x - y, axis=axis)

    result = stats.permutation_test(
        (scores, baseline),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=permutations,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def compare(
    measure: str,
    run: str,
    baseline: str,
    scores: dict[str, float],
    baseline_scores: dict[str, float],
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> Comparison:
    """Both tests for one measure over the queries present in both per-query score dicts."""
    queries = sorted(set(scores) & set(baseline_scores))
    a = np.array([scores[qid] for qid in queries], dtype=float)
    b = np.array([baseline_scores[qid] for qid in queries], dtype=float)
    return Comparison(
        measure=measure,
        run=run,
        baseline=baseline,
        queries=len(queries),
        mean_difference=float(np.mean(a - b)) if queries else 0.0,
        t_test_p=paired_t_test(a, b),
        randomization_p=randomization_test(a, b, permutations, seed),
    )


def holm(p_values: "list[float | None]") -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (e.g. each run against the baseline on one measure).

    The i-th smallest of the m given values becomes max over j <= i of min(1, (m - j + 1) * p_(j)); `None` (no test)
    stays `None` and is not counted in m. Ties keep their input order, so the result is deterministic."""
    order = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for position, (p, index) in enumerate(order):
        running = max(running, min(1.0, (len(order) - position) * p))
        adjusted[index] = running
    return adjusted
