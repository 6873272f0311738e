"""Reproduction and experiment matrices: YAML files that declare conditions and what to expect of them.

    title: TREC CAsT-20
    qrels: convdr/cast20                 # ir_datasets id or qrels file
    measures: nDCG@3 RR(rel=2) R@100     # optional: measured for every condition (experiments)
    seeds: [1, 2, 3]                     # optional: conditions that train run once per seed
    baselines: [dense-raw]               # optional: significance of every condition against these
    gaps:                                # optional: share of a low-to-high gap that conditions recover
    - {low: dense-raw, high: dense-manual}               # (of: [names] limits it to those conditions)
    prepare:                             # optional: shared steps, referenced as "{name}" in later settings
    - name: teacher-manual-run
      search: {retriever: dense, topics: convdr/cast20/mini, encoder: minilm, query: manual, index: ..., hits: 100}
    - name: ranking-data
      negatives: {topics: convdr/cast20/mini, run: "{teacher-manual-run}"}
    conditions:
    - name: grill-human-reranked
      run: {name: cast-20/runs-grill-qr-eval/Human_reranked_100.txt, sha256: 9f5f...}   # a published run
    - name: org-manual-ance-maxp          # a published passage run, scored as documents (CAsT-21)
      run: {name: cast-21/runs-organizers/org_manual_ance.trec, sha256: a8c0..., aggregate: maxp}
      expected: [{source: ..., digits: 4, scores: {nDCG@3: 0.4789}}]
    - name: bm25-raw
      requires: [indexes/cast20-mini.lucene/meta.json]
      search: {retriever: bm25, topics: convdr/cast20/mini, query: raw, index: indexes/cast20-mini.lucene, hits: 100}
    - name: kd-no_res
      train:                             # one or more stages; a later stage may use "{stage-name}"
      - {name: kd, topics: convdr/cast20/mini, teacher: minilm, query: no_res, loss: kd, epochs: 3, lr: 0.0001, cv: 5}
      search: {retriever: convdr, topics: convdr/cast20/mini, query: no_res, index: indexes/cast20-mini.minilm}
    - name: nested-cv                    # chooses among trained conditions per outer fold (reproduce/nested.py)
      nested: {candidates: [kd-no_res, multitask-no_res], measure: nDCG@3}

A search, training or preparation setting is exactly what `SearchSpec`, `TrainConfig` or
`mine_ranking_data` take. Paths are relative to the working directory.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import UserError

MATRIX_SUFFIXES = (".yaml", ".yml")
REFERENCE = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class Expected:
    """An expected score; `score` is None where the matrix records no verified published value."""

    measure: str
    score: float | None
    digits: int
    source: str


@dataclass(frozen=True)
class Step:
    """A preparation step: a search whose run later steps use, or ranking data mined from a run."""

    name: str
    search: dict | None = None
    negatives: dict | None = None


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    expected: list[Expected]
    run: dict | None = None
    search: dict | None = None
    train: list[dict] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    requires_data: list[str] = field(default_factory=list)
    allow_above: bool = False
    nested: dict | None = None  # {candidates: [trained condition names], measure, topic_numbers}

    @property
    def trains(self) -> bool:
        return bool(self.train)


@dataclass(frozen=True)
class Gap:
    """A low-to-high range of the first measure (e.g. raw to manual rewrites): the table reports the share of it
    that each condition recovers, `(condition - low) / (high - low)` of the means; `of` limits it to those
    conditions (default: every other condition)."""

    low: str
    high: str
    of: tuple[str, ...] | None = None

    def covers(self, name: str) -> bool:
        return name not in (self.low, self.high) and (self.of is None or name in self.of)


@dataclass(frozen=True)
class Matrix:
    path: Path
    title: str
    qrels: str
    conditions: list[Condition]
    measures: str | None = None
    seeds: list[int] = field(default_factory=lambda: [42])
    baselines: list[str] = field(default_factory=list)
    prepare: list[Step] = field(default_factory=list)
    plot: dict | None = None
    notes: str = ""
    gaps: list[Gap] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return self.path.stem

    @property
    def is_experiment(self) -> bool:
        return self.measures is not None

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise UserError(f"{self.path}: no condition named {name!r}; conditions: "
                        f"{', '.join(c.name for c in self.conditions)}")


def packaged_matrices() -> dict[str, Path]:
    """The matrices shipped with the package, by name (`cast19`, `cast20`, ...)."""
    folder = Path(str(resources.files("convdr_pyserini") / "data" / "matrices"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def matrix_path(name_or_path: str | os.PathLike) -> Path:
    """A matrix file: an existing path, or the name of a packaged matrix."""
    path = Path(name_or_path)
    if path.exists():
        if path.is_dir():
            raise UserError(f"{path}: is a directory, not a matrix file")
        return path
    packaged = packaged_matrices()
    if str(name_or_path) in packaged:
        return packaged[str(name_or_path)]
    raise UserError(f"{name_or_path}: no such matrix file, and not a packaged matrix ({', '.join(packaged)})")


def load_matrix(name_or_path: str | os.PathLike) -> Matrix:
    """Read and check a matrix; every problem raises a UserError naming the file and condition."""
    from ..io.text import read_yaml

    path = matrix_path(name_or_path)
    if path.suffix not in MATRIX_SUFFIXES:
        raise UserError(f"{path}: a matrix is a YAML file (.yaml)")
    document = read_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("conditions"), list):
        raise UserError(f"{path}: expected a mapping with 'title', 'qrels' and a list of 'conditions'")
    for key in ("title", "qrels"):
        if not isinstance(document.get(key), str):
            raise UserError(f"{path}: '{key}' is missing or not a string")
    known = {"title", "qrels", "conditions", "measures", "seeds", "baselines", "prepare", "plot", "notes", "gaps"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}")
    measures = document.get("measures")
    if measures is not None and not isinstance(measures, str):
        raise UserError(f"{path}: 'measures' must be a measure string such as \"nDCG@3 RR(rel=2)\"")
    seeds = document.get("seeds", [42])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise UserError(f"{path}: 'seeds' must be a non-empty list of distinct integers")
    prepare = [_step(path, entry) for entry in document.get("prepare") or []]
    conditions = [_condition(path, entry, experiment=measures is not None) for entry in document["conditions"]]
    names = [condition.name for condition in conditions] + [step.name for step in prepare]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"{path}: the name {name!r} is used twice")
    for condition in conditions:
        if condition.nested is not None:
            _check_candidates(path, condition, conditions)
    baselines = document.get("baselines") or []
    for baseline in baselines:
        if baseline not in [condition.name for condition in conditions]:
            raise UserError(f"{path}: baseline {baseline!r} is not a condition")
    plot = document.get("plot")
    if plot is not None and not isinstance(plot, dict):
        raise UserError(f"{path}: 'plot' must be a mapping")
    gaps = _gaps(path, document.get("gaps") or [], [condition.name for condition in conditions])
    return Matrix(path, document["title"], document["qrels"], conditions, measures, seeds, list(baselines), prepare,
                  plot, str(document.get("notes", "")), gaps)


def _gaps(path: Path, entries, names: list[str]) -> list[Gap]:
    if not isinstance(entries, list):
        raise UserError(f"{path}: 'gaps' must be a list of {{low, high[, of]}} mappings")
    gaps = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - {"low", "high", "of"} or not {"low", "high"} <= set(entry):
            raise UserError(f"{path}: every gap is a mapping with 'low', 'high' and optionally 'of', got {entry!r}")
        of = entry.get("of")
        if of is not None and (not isinstance(of, list) or not of):
            raise UserError(f"{path}: a gap's 'of' must be a non-empty list of conditions")
        gap = Gap(entry["low"], entry["high"], tuple(of) if of else None)
        for name in (gap.low, gap.high, *(gap.of or ())):
            if name not in names:
                raise UserError(f"{path}: gap names {name!r}, which is not a condition")
        if gap.low == gap.high:
            raise UserError(f"{path}: a gap's 'low' and 'high' must differ, both are {gap.low!r}")
        gaps.append(gap)
    covered = [name for gap in gaps for name in (gap.of or names) if name not in (gap.low, gap.high)]
    for name in covered:
        if covered.count(name) > 1:
            raise UserError(f"{path}: condition {name!r} is in more than one gap")
    return gaps


def _step(path: Path, entry) -> Step:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UserError(f"{path}: every 'prepare' step needs a 'name'")
    kinds = [key for key in ("search", "negatives") if key in entry]
    if len(kinds) != 1 or not isinstance(entry[kinds[0]], dict) or set(entry) - {"name", "search", "negatives"}:
        raise UserError(f"{path}: prepare step {entry['name']}: give exactly one of 'search' or 'negatives' (a mapping)")
    return Step(entry["name"], entry.get("search"), entry.get("negatives"))


def _condition(path: Path, entry, experiment: bool) -> Condition:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UserError(f"{path}: every condition needs a 'name'")
    where = f"{path}: condition {entry['name']}"
    known = {"name", "description", "expected", "run", "search", "train", "requires", "requires_data", "allow_above",
             "nested"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}")
    run, search, train, nested = entry.get("run"), entry.get("search"), entry.get("train"), entry.get("nested")
    if sum(value is not None for value in (run, search, nested)) != 1:
        raise UserError(f"{where}: give exactly one of 'run' (a published run), 'search' (a search) or 'nested' "
                        "(nested cross-validation over trained conditions)")
    if nested is not None and (not isinstance(nested, dict) or set(nested) - {"candidates", "measure", "topic_numbers"}
                               or not isinstance(nested.get("candidates"), list) or train is not None):
        raise UserError(f"{where}: 'nested' must be a mapping with 'candidates' (condition names) and optionally "
                        "'measure' and 'topic_numbers', without 'train'")
    if run is not None:
        sources = [key for key in ("name", "url", "path") if key in run] if isinstance(run, dict) else []
        if len(sources) != 1 or not isinstance(run.get("sha256"), str):
            raise UserError(f"{where}: 'run' needs exactly one of name/url/path and a sha256")
        from ..io.passage_runs import AGGREGATIONS

        if run.get("aggregate", AGGREGATIONS[0]) not in AGGREGATIONS:
            raise UserError(f"{where}: 'aggregate' must be one of {', '.join(AGGREGATIONS)}, got {run['aggregate']!r}")
    if search is not None and not isinstance(search, dict):
        raise UserError(f"{where}: 'search' must be a mapping of search settings (retriever, topics, query, ...)")
    if isinstance(train, dict):
        train = [train]
    if train is not None and not (isinstance(train, list) and all(isinstance(stage, dict) for stage in train)):
        raise UserError(f"{where}: 'train' must be a mapping of training settings, or a list of them (stages)")
    expected = _expected(where, entry.get("expected"))
    if not expected and not experiment:
        raise UserError(f"{where}: no expected scores")
    for key in ("requires", "requires_data"):
        if not isinstance(entry.get(key) or [], list):
            raise UserError(f"{where}: '{key}' must be a list")
    if not isinstance(entry.get("allow_above", False), bool):
        raise UserError(f"{where}: 'allow_above' must be true or false")
    return Condition(
        name=entry["name"], description=str(entry.get("description", "")), expected=expected, run=run,
        search=search, train=list(train or []), requires=[str(p) for p in entry.get("requires") or []],
        requires_data=[str(n) for n in entry.get("requires_data") or []],
        allow_above=entry.get("allow_above", False), nested=nested,
    )


def _check_candidates(path: Path, condition: Condition, conditions: list[Condition]) -> None:
    """Nested CV candidates must be distinct conditions that train with cross-validation and search."""
    by_name = {entry.name: entry for entry in conditions}
    names = condition.nested["candidates"]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"{path}: condition {condition.name}: 'nested' needs at least two distinct candidates")
    for name in names:
        candidate = by_name.get(name)
        if candidate is None or not candidate.trains or "cv" not in candidate.train[-1] or candidate.search is None:
            raise UserError(f"{path}: condition {condition.name}: candidate {name!r} is not a condition of this "
                            "matrix that trains with cross-validation ('cv') and searches")


def _expected(where: str, blocks) -> list[Expected]:
    expected = []
    if blocks is not None and not isinstance(blocks, list):
        raise UserError(f"{where}: 'expected' must be a list of blocks with 'source', 'digits' and 'scores'")
    for block in blocks or []:
        scores = block.get("scores") if isinstance(block, dict) else None
        if not isinstance(scores, dict) or not isinstance(block.get("source"), str):
            raise UserError(f"{where}: each 'expected' block needs a 'source' and a 'scores' mapping")
        digits = block.get("digits", 4)
        if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 10:
            raise UserError(f"{where}: 'digits' is {digits!r}, expected an integer from 0 to 10")
        for measure, score in scores.items():
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not math.isfinite(score)):
                raise UserError(f"{where}: expected {measure} score {score!r} is not a finite number (or null)")
            expected.append(Expected(canonical_measure(measure, where), None if score is None else float(score),
                                     digits, block["source"]))
    return expected


def canonical_measure(text: str, where: str) -> str:
    """The ir_measures spelling of a measure string (`RR(rel=2)`); one ir_measures rejects is a UserError."""
    import ir_measures

    try:
        return str(ir_measures.parse_measure(str(text)))
    except Exception as error:  # noqa: BLE001  (ir_measures raises NameError/ValueError)
        raise UserError(f"{where}: measure {text!r} is rejected by ir_measures ({error})") from None


def substitute(settings, outputs: dict[str, str], where: str):
    """`settings` with every "{name}" replaced by the output path of the step or stage `name`."""
    if isinstance(settings, dict):
        return {key: substitute(value, outputs, where) for key, value in settings.items()}
    if isinstance(settings, list):
        return [substitute(value, outputs, where) for value in settings]
    if isinstance(settings, str):
        def replace(match):
            if match.group(1) not in outputs:
                raise UserError(f"{where}: '{{{match.group(1)}}}' names no earlier step or stage")
            return outputs[match.group(1)]

        return REFERENCE.sub(replace, settings)
    return settings

