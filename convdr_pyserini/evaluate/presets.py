"""Measure strings (parsed by ir_measures) and the dataset conventions offered as presets."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A dataset's customary measures and the relevance convention behind them, stated in every output."""

    name: str
    measures: str
    convention: str


PRESETS = {
    "cast19": Preset(
        "cast19",
        "nDCG@3 RR R@100 AP",
        "TREC CAsT-19: binary relevance at grade >= 1 for RR, R@100 and AP; nDCG@3 uses the graded judgements (0-4)",
    ),
    "cast20": Preset(
        "cast20",
        "nDCG@3 RR(rel=2) R(rel=2)@100",
        "TREC CAsT-20: RR and recall at grade >= 2 as commonly reported (RR(rel=2), R(rel=2)@100); "
        "nDCG@3 uses the graded judgements (0-4)",
    ),
    "cast21": Preset(
        "cast21",
        "nDCG@3 RR(rel=2) R@100 AP",
        "TREC CAsT-21: document qrels (graded 0-4); RR at grade >= 2, R@100 and AP at grade >= 1; passage runs "
        "need --aggregate",
    ),
    "orquac": Preset(
        "orquac",
        "RR@5 R@5 AP@10",
        "OR-QuAC: MRR@5, Recall@5 and MAP@10 as in ConvDR's Table 2 (binary judgements)",
    ),
}


def preset_for_dataset(dataset_id: str) -> Preset | None:
    """The preset that fits an ir_datasets id (`convdr/cast20/judged` -> cast20), if any."""
    for name in ("cast19", "cast20", "cast21", "orquac"):
        if dataset_id.startswith(f"convdr/{name}"):
            return PRESETS[name]
    return None


def split_measure_string(text: str) -> list[str]:
    """Split on whitespace and commas outside parentheses: `"RR(rel=2, judged_only=True) nDCG@3"`."""
    tokens, current, depth = [], [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        if depth == 0 and (char.isspace() or char == ","):
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def parse_measures(text: str) -> tuple[list, list[str]]:
    """ir_measures objects for a measure string, and one problem line per token ir_measures rejects.

    Each token is read by `ir_measures.parse_measure` (`nDCG@3`, `RR(rel=2)`) and, failing that, by
    `ir_measures.parse_trec_measure` (trec_eval names such as `ndcg_cut.3`). Duplicates are dropped.
    """
    import ir_measures

    measures, problems = [], []
    tokens = split_measure_string(text)
    if not tokens:
        problems.append("no measure given")
    for token in tokens:
        try:
            parsed = [ir_measures.parse_measure(token)]
        except Exception as error:  # noqa: BLE001  (ir_measures raises NameError/ValueError/TypeError)
            try:
                parsed = list(ir_measures.parse_trec_measure(token))
            except Exception:  # noqa: BLE001
                problems.append(f"{token!r} is rejected by ir_measures ({error})")
                continue
        measures.extend(measure for measure in parsed if measure not in measures)
    return measures, problems
