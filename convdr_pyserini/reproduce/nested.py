"""Nested cross-validation: choosing among named training recipes without looking at the test folds.

    import convdr_pyserini as cp
    result = cp.nested_cv(cp.NestedCVConfig(topics="convdr/cast20/mini", output="encoders/nested", seed=1,
        candidates=[cp.Candidate("kd-no_res", train=[{...TrainConfig settings...}],
                                 search={"query": "no_res", "index": "indexes/cast20-mini.minilm", "hits": 100}),
                    ...]))

For each outer fold k of the topics (the shared fold rule, `convdr_pyserini.folds`), every candidate is
cross-validated on the outer training topics alone: its last training stage runs once per inner fold j (the
other outer folds), each inner model searches the inner validation topics it did not train on, and the
candidate's score is `measure` (nDCG@3) over all those queries. The best candidate (ties: the first listed)
is retrained on all outer training topics, and only that model searches fold k. The outer folds' runs
together are the nested-CV run, in which no query influenced the choice of its recipe or its weights.
Earlier training stages (a warm-up on other data) are trained once per seed and shared by every fold.

Each model is the candidate's last stage trained (`topic_numbers`, seeded, deterministic) on the topics of
all folds but one or two, `<candidate>/excluding-folds-<j>-<k>`: the inner model of (outer k, inner j) is the
same training as that of (outer j, inner k), so it is trained once and used for both, which halves the inner
trainings. (It equals the fold-j model of `train(cv=...)` on fold k's complement up to float rounding: the
teacher's targets are encoded in batches with other queries there.)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

logger = logging.getLogger(__name__)
SUMMARY = "nested-cv.yaml"
RUN = "nested-cv.trec"


@dataclass(frozen=True)
class Candidate:
    """A recipe named in advance: training stages (TrainConfig settings without `output` and `seed`; a later
    stage may use an earlier one's model as "{stage-name}") and how its model searches (`query`, `index`,
    `hits`, and any other `DenseRetriever` option). The last stage is the one nested CV trains per fold."""

    name: str
    train: list[dict]
    search: dict

    def __post_init__(self) -> None:
        if not self.train or not all(isinstance(stage, dict) for stage in self.train):
            raise UserError(f"candidate {self.name}: give its training stages as a non-empty list of settings")
        missing = [key for key in ("query", "index") if key not in self.search]
        if missing:
            raise UserError(f"candidate {self.name}: its search settings lack {', '.join(missing)}")


@dataclass
class NestedCVConfig:
    """Nested CV of `candidates` on `topics` (or only its `topic_numbers`) for one `seed`, scored by `measure`
    (models and runs under `output`); `qrels` defaults to the topics' own."""

    topics: str
    candidates: list[Candidate]
    output: str
    seed: int = 42
    measure: str = "nDCG@3"
    qrels: str | None = None
    topic_numbers: list[int] | None = None  # only these topics (conversations) of `topics`

    def __post_init__(self) -> None:
        names = [candidate.name for candidate in self.candidates]
        if len(names) < 2:
            raise UserError("nested cross-validation needs at least two candidate recipes to choose from")
        if len(set(names)) != len(names):
            raise UserError(f"candidate names must be distinct: {names}")


@dataclass
class OuterFold:
    """One outer fold: its test topics, each candidate's inner-validation score, the choice, its test score."""

    fold: int
    test_topics: list[int]
    inner_scores: dict[str, float]
    chosen: str
    test_score: float


@dataclass
class NestedCVResult:
    measure: str
    folds: list[OuterFold]
    run_path: Path
    score: float  # `measure` of the whole nested-CV run
    seconds: dict = field(default_factory=dict)

    def to_mapping(self) -> dict:
        return {"measure": self.measure, "score": self.score, "run": str(self.run_path),
                "folds": [dataclasses.asdict(fold) for fold in self.folds]}


def nested_cv(config: NestedCVConfig) -> NestedCVResult:
    """Run nested cross-validation (see the module docstring); resumable: finished models are reused."""
    from ..folds import fold_assignment, only_topics
    from ..io.runs import Run
    from ..resolve import load_topics

    topics = load_topics(config.topics)
    if config.topic_numbers is not None:
        topics = only_topics(topics, config.topic_numbers)
    qrels = _qrels(config, topics)
    fold_of = fold_assignment(topics)
    fold_numbers = sorted(set(fold_of.values()))
    if len(fold_numbers) < 3:
        raise UserError(f"{topics.source}: nested cross-validation needs at least 3 folds, the fold rule gives "
                        f"{len(fold_numbers)}")
    output = Path(config.output)
    shared = {candidate.name: _shared_stages(candidate, output, config.seed) for candidate in config.candidates}
    folds, hits = [], {}
    for fold in fold_numbers:
        test_topics = sorted(topic for topic, number in fold_of.items() if number == fold)
        inner = {}
        for candidate in config.candidates:
            found = {}
            for inner_fold in (number for number in fold_numbers if number != fold):
                model = _model_without(candidate, shared[candidate.name], fold_of, {fold, inner_fold}, output,
                                       config.seed)
                validation = [topic for topic, number in fold_of.items() if number == inner_fold]
                found.update(_search(candidate, only_topics(topics, validation), model).hits)
            inner[candidate.name] = _score(Run(found), qrels, config.measure)
        chosen = max(config.candidates, key=lambda candidate: inner[candidate.name])  # first of equals wins
        model = _model_without(chosen, shared[chosen.name], fold_of, {fold}, output, config.seed)
        run = _search(chosen, only_topics(topics, test_topics), model)
        hits.update(run.hits)
        folds.append(OuterFold(fold, test_topics, inner, chosen.name, _score(run, qrels, config.measure)))
        logger.info("nested CV fold %d: chose %s (inner %s), test %s %.4f", fold, chosen.name,
                    ", ".join(f"{name} {score:.4f}" for name, score in inner.items()), config.measure,
                    folds[-1].test_score)
    combined = Run({query.query_id: hits[query.query_id] for query in topics if query.query_id in hits},
                   name="nested-cv", tag="nested-cv", metadata={"nested_cv": _describe(config)})
    run_path = output / RUN
    combined.write(run_path, overwrite=True)
    result = NestedCVResult(config.measure, folds, run_path, _score(combined, qrels, config.measure))
    _write_summary(output / SUMMARY, config, result)
    return result


def _shared_stages(candidate: Candidate, output: Path, seed: int) -> dict[str, str]:
    """Train the stages before the last once (they use no topics of the folds); {stage name: model}."""
    from .matrix import substitute
    from .models import train_or_reuse

    models: dict[str, str] = {}
    for number, stage in enumerate(candidate.train[:-1]):
        settings = dict(stage)
        name = str(settings.pop("name", f"stage-{number}"))
        where = f"candidate {candidate.name}, stage {name}"
        model = output / "shared" / candidate.name / name
        train_or_reuse(substitute(settings, models, where), model, seed, where)
        models[name] = str(model)
    return models


def _last_stage(candidate: Candidate, models: dict[str, str]) -> dict:
    from .matrix import substitute

    settings = dict(candidate.train[-1])
    settings.pop("name", None)
    return substitute(settings, models, f"candidate {candidate.name}")


def _model_without(candidate: Candidate, shared: dict[str, str], fold_of: dict[int, int], excluded: set[int],
                   output: Path, seed: int) -> Path:
    """The candidate's last stage trained (or reused) on the topics of every fold but `excluded`."""
    from .models import train_or_reuse

    model = output / candidate.name / f"excluding-folds-{'-'.join(map(str, sorted(excluded)))}"
    settings = {**_last_stage(candidate, shared),
                "topic_numbers": sorted(topic for topic, number in fold_of.items() if number not in excluded)}
    settings.pop("cv", None)
    train_or_reuse(settings, model, seed, f"nested CV, {candidate.name} without folds {sorted(excluded)}")
    return model


def _search(candidate: Candidate, topics, encoder: Path):
    """The candidate's search of `topics` with the model `encoder`."""
    from ..search.dense import DenseRetriever

    options = {key: value for key, value in candidate.search.items()
               if key not in ("query", "index", "hits", "retriever", "topics", "cv", "encoder")}
    index, query, hits = candidate.search["index"], candidate.search["query"], candidate.search.get("hits", 100)
    return DenseRetriever(index, encoder=str(encoder), **options).search(topics, query=query, hits=hits)


def _qrels(config: NestedCVConfig, topics):
    from ..resolve import load_qrels, topics_qrels

    qrels = topics_qrels(topics) if config.qrels is None else load_qrels(config.qrels)
    if qrels is None:
        raise UserError(f"{topics.source} has no qrels; give qrels to score the candidates")
    return qrels


def _score(run, qrels, measure: str) -> float:
    """`measure` of `run` over its own judged queries (the qrels restricted to them)."""
    from ..evaluate import evaluate
    from ..io.qrels import Qrels

    judged = {query_id: qrels.judgments[query_id] for query_id in run.hits if query_id in qrels.judgments}
    if not judged:
        raise UserError(f"none of the {len(run.hits)} queries searched has judgments in {qrels.source}")
    subset = Qrels(judged, f"{qrels.source} ({len(judged)} queries)")
    return float(evaluate(subset, {"run": run}, measure).scores_of("run").aggregate[measure])


def _describe(config: NestedCVConfig) -> dict:
    return {"topics": config.topics, "topic_numbers": config.topic_numbers, "seed": config.seed, "measure": config.measure,
            "candidates": [dataclasses.asdict(candidate) for candidate in config.candidates]}


def _write_summary(path: Path, config: NestedCVConfig, result: NestedCVResult) -> None:
    import yaml

    from ..io.atomic import atomic_output

    with atomic_output(path, overwrite=True) as handle:
        yaml.safe_dump({**_describe(config), **json.loads(json.dumps(result.to_mapping()))}, handle,
                       sort_keys=False)


def read_summary(folder: str | os.PathLike) -> dict | None:
    """The summary `nested_cv` wrote into `folder`, or None."""
    from ..io.text import read_yaml

    path = Path(folder) / SUMMARY
    return read_yaml(path) if path.is_file() else None
