"""Running a matrix: fetch or produce each condition's runs (training once per seed where it trains), evaluate
them, and compare with the expected scores.

Everything it makes lives under its own folders (`runs_dir`, `models_dir`), keyed by matrix and condition, so a
rerun reuses what is finished: a run whose sidecar records the same search (and, for a trained condition, the
same training stages and seed: such a run is reused without training, even when its models are gone), a model
whose card records the same training (a reranker stage: also one that another condition trained with the same
settings and seed); anything else is made again. A condition whose required files are absent is skipped, naming
them.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInput, UserError
from .matrix import Condition, Expected, Matrix, substitute
from .models import train_or_reuse

logger = logging.getLogger(__name__)
OK, OKISH, ABOVE, FAIL, SKIPPED, MEASURED = "OK", "OKish", "ABOVE", "FAIL", "skipped", "measured"
UNREFERENCED = "measured (no published value entered)"
TOLERANCE = 0.0005
SEED = "{seed}"
FAILING = (FAIL, ABOVE)


def status_of(measured: float, expected: float | None, digits: int, allow_above: bool = False) -> str:
    """OK when `measured` rounds to `expected` at `digits`; OKish within 0.0005; ABOVE when higher by more
    (a failure unless the condition allows it: a large upward gap means leakage or the wrong qrels); else FAIL."""
    if expected is None:
        return UNREFERENCED
    if abs(measured - expected) <= 0.5 * 10 ** -digits + 1e-12:
        return OK
    if abs(measured - expected) <= TOLERANCE:
        return OKISH
    if measured > expected:
        return OKISH if allow_above else ABOVE
    return FAIL


@dataclass(frozen=True)
class Outcome:
    """One metric of one condition: measured value (None when skipped or failed to run) and status."""

    condition: str
    expected: Expected
    measured: float | None
    status: str
    reason: str = ""

    def expected_text(self) -> str:
        return "n/a" if self.expected.score is None else f"{self.expected.score:.{self.expected.digits}f}"

    def status_text(self) -> str:
        return f"{self.status} ({self.reason})" if self.reason else self.status


@dataclass
class ConditionRuns:
    """What a condition produced: its run files (one per seed; a document Run for an aggregated passage run),
    training time, or why it has none."""

    condition: Condition
    runs: list = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    nested: list[dict] = field(default_factory=list)  # per seed: nested CV's choice and score per outer fold
    skipped: str | None = None
    error: str | None = None


@dataclass
class MatrixResult:
    """A matrix run: each condition's runs, the evaluation of those that ran, and the metric outcomes."""

    matrix: Matrix
    conditions: list[ConditionRuns]
    outcomes: list[Outcome]
    evaluation: object | None = None  # an EvaluationResult over every condition that ran

    @property
    def failed(self) -> bool:
        return any(o.status in FAILING for o in self.outcomes) or any(c.error for c in self.conditions)


def seeded(condition: Condition) -> bool:
    """Whether the condition searches with models made once per seed outside the matrix (`train --seeds` writes
    OUTPUT/seed-S): its search names `{seed}`, and it runs once per matrix seed."""
    return condition.search is not None and not condition.trains and SEED in json.dumps(condition.search)


def with_seed(settings, seed: int):
    """`settings` (or a path) with `{seed}` replaced by `seed`."""
    return json.loads(json.dumps(settings).replace(SEED, str(seed)))


def missing_files(condition: Condition, seeds: list[int] = ()) -> list[str]:
    """The required paths that do not exist (a path naming `{seed}`: for any of `seeds`) and the required data
    files that cannot be resolved."""
    from .. import files

    paths = [with_seed(path, seed) for path in condition.requires for seed in (seeds if SEED in path else [0])]
    missing = list(dict.fromkeys(path for path in paths if not Path(path).exists()))
    for name in condition.requires_data:
        try:
            files.resolve(name)
        except UserError:
            missing.append(name)
    return missing


def fetch_run(condition: Condition) -> Path:
    """The local path of a published run, checked against the sha256 in the matrix."""
    from .. import files

    run = condition.run
    if "name" in run:
        path = files.resolve(run["name"])
    elif "path" in run:
        path = Path(run["path"])
        if not path.is_file():
            raise UserError(f"condition {condition.name}: run file {path} does not exist")
    else:
        url = run["url"]
        target = files.home() / "runs" / f"{run['sha256'][:16]}-{url.rsplit('/', 1)[-1]}"
        entry = files.DataFile(name=target.name, url=url, sha256=run["sha256"])
        path = target if target.is_file() else files.download(entry, target)  # checksummed download
    actual = files.sha256_of(path)
    if actual != run["sha256"]:
        raise UserError(f"condition {condition.name}: {path} has sha256 {actual}, the matrix expects {run['sha256']}")
    return path


class Runner:
    """Produces the runs of a matrix's conditions under `runs_dir` and `models_dir`."""

    def __init__(self, matrix: Matrix, runs_dir: str | os.PathLike = "runs/reproduce",
                 models_dir: str | os.PathLike = "encoders/reproduce"):
        self.matrix = matrix
        self.runs_dir = Path(runs_dir) / matrix.dataset
        self.models_dir = Path(models_dir) / matrix.dataset
        self.outputs: dict[str, str] = {}  # prepare step name -> its output

    def _candidate_references(self, condition: Condition) -> set[str]:
        names = (condition.nested or {}).get("candidates", [])
        return set().union(*(_references(self.matrix.condition(name)) for name in names)) if names else set()

    def search(self, settings: dict, output: Path, where: str, training: dict | None = None) -> Path:
        """Run a search (or reuse the run at `output` when its sidecar records the same search and `training`,
        the record of the training its model comes from); the sidecar records `training`."""
        from ..io.runs import sidecar_path, write_sidecar

        spec = self.search_spec(settings, where)
        recorded = _read_json(sidecar_path(output)) if output.is_file() else {}
        if _same_search(recorded.get("search"), spec) and recorded.get("training") == training:
            logger.info("[%s] reusing %s", where, output)
            return output
        logger.info("[%s] searching: %s", where, _describe(spec))
        spec.execute(output, overwrite=True)
        if training is not None:
            write_sidecar(output, {**_read_json(sidecar_path(output)), "training": training}, inputs=spec.inputs())
        return output

    def search_spec(self, settings: dict, where: str):
        """The `SearchSpec` of a matrix's search settings, the prepared steps' outputs put in."""
        from ..search import SearchSpec

        return SearchSpec.from_mapping(substitute(settings, self.outputs, where), where)

    def training_record(self, condition: Condition, seed: int, seconds: float | None = None) -> dict:
        """What a trained condition's run depends on besides its search: its stages as the matrix gives them
        (the prepared inputs located, earlier stages named) and the seed; `seconds`, the time the training took."""
        names = [str(stage.get("name", f"stage-{n}")) for n, stage in enumerate(condition.train)]
        named = {name: "{%s}" % name for name in names}
        stages = substitute(condition.train, {**self.outputs, **named}, f"{self.matrix.path}: {condition.name}")
        return _plain({"stages": stages, "seed": seed, **({} if seconds is None else {"seconds": seconds})})

    def finished_run(self, condition: Condition, seed: int) -> tuple[Path, float] | None:
        """(run, training seconds) when the condition's run of `seed` is finished: its sidecar records the same
        training and the same search with the model it trained (wherever that model was); else None."""
        from ..io.runs import sidecar_path

        run = self.run_path(condition, seed)
        recorded = _read_json(sidecar_path(run)) if run.is_file() else {}
        training, search = recorded.get("training"), recorded.get("search")
        if not isinstance(training, dict) or not isinstance(search, dict):
            return None
        seconds = training.get("seconds", 0.0)
        try:
            spec = self.search_spec(_trained_search(condition, search.get(_model_setting(condition))), condition.name)
        except UserError:
            return None
        same = self.training_record(condition, seed, seconds) == training and _same_search(search, spec)
        return (run, float(seconds)) if same else None

    def run_path(self, condition: Condition, seed: int) -> Path:
        return self.runs_dir / f"{condition.name}.seed-{seed}.trec"

    def prepare(self, names: set[str]) -> None:
        """Run the preparation steps named in `names` (and those they use) that have not run yet."""
        from ..train.data import mine_ranking_data
        from .matrix import REFERENCE

        needed = set(names)
        for step in reversed(self.matrix.prepare):  # a step may only use earlier ones
            if step.name in needed:
                needed |= set(REFERENCE.findall(json.dumps([step.search, step.negatives])))
        for step in self.matrix.prepare:
            if step.name not in needed or step.name in self.outputs:
                continue
            where = f"{self.matrix.path}: prepare {step.name}"
            if step.search is not None:
                output = self.runs_dir / "prepare" / f"{step.name}.trec"
                self.outputs[step.name] = str(self.search(step.search, output, where))
            else:
                output = self.runs_dir / "prepare" / f"{step.name}.jsonl"
                settings = substitute(step.negatives, self.outputs, where)
                if not output.is_file():
                    logger.info("[%s] mining ranking data", where)
                    mine_ranking_data(output=output, **settings)
                self.outputs[step.name] = str(output)

    def produce(self, condition: Condition) -> ConditionRuns:
        """The condition's runs: fetched, searched, or trained then searched once per seed."""
        result = ConditionRuns(condition)
        missing = missing_files(condition, self.matrix.seeds)
        if missing:
            result.skipped = "missing: " + ", ".join(missing)
            return result
        try:
            self.prepare(_references(condition) | self._candidate_references(condition))
            if condition.run is not None:
                result.runs = [fetch_run(condition)]
                if "aggregate" in condition.run:  # a passage run scored as documents
                    from ..io.runs import Run

                    result.runs = [Run.read(result.runs[0]).documents(condition.run["aggregate"])]
            elif condition.nested is not None:
                for seed in self.matrix.seeds:
                    summary = self.nested(condition, seed)
                    result.runs.append(Path(summary["run"]))
                    result.nested.append({"seed": seed, **summary})
            elif seeded(condition):
                result.runs = [self.search(with_seed(condition.search, seed), self.run_path(condition, seed),
                                           f"{condition.name} seed {seed}") for seed in self.matrix.seeds]
            elif not condition.trains:
                result.runs = [self.search(condition.search, self.runs_dir / f"{condition.name}.trec", condition.name)]
            else:
                for seed in self.matrix.seeds:
                    finished = self.finished_run(condition, seed)
                    if finished is not None:
                        logger.info("[%s seed %d] reusing %s (trained as the matrix says)", condition.name, seed,
                                    finished[0])
                        run, seconds = finished
                    else:
                        model, seconds = self.train(condition, seed)
                        run = self.search(_trained_search(condition, model), self.run_path(condition, seed),
                                          f"{condition.name} seed {seed}", self.training_record(condition, seed, seconds))
                    result.runs.append(run)
                    result.train_seconds.append(seconds)
        except InvalidInput as error:
            result.error = f"{len(error.problems)} problem(s) in the inputs, the first: {error.problems[0]}"
        except UserError as error:
            result.error = str(error)
        return result

    def train(self, condition: Condition, seed: int) -> tuple[str, float]:
        """Train the condition's stages for one seed (reusing finished ones); (last model, training seconds)."""
        outputs = dict(self.outputs)
        seconds = 0.0
        model = None
        for number, stage in enumerate(condition.train):
            settings = dict(stage)
            name = str(settings.pop("name", f"stage-{number}"))
            if settings.pop("kind", "encoder") == "reranker":
                model, spent = self.train_reranker(condition, seed, name, settings, outputs)
                seconds += spent
                outputs[name] = model
                continue
            where = f"{self.matrix.path}: condition {condition.name}, stage {name}"
            settings = substitute(settings, outputs, where)
            output = self.models_dir / condition.name / f"seed-{seed}" / name
            seconds += train_or_reuse(settings, output, seed, where)
            outputs[name] = model = str(output)
        return model, seconds

    def train_reranker(self, condition: Condition, seed: int, name: str, settings: dict,
                       outputs: dict) -> tuple[str, float]:
        """One `kind: reranker` stage (`convdr_pyserini.rerank.training`); `use: teacher` hands on the teachers."""
        from ..rerank.training import TEACHER_FOLDER, RerankTrainConfig, train_reranker, trained_command, \
            training_seconds

        where = f"{self.matrix.path}: condition {condition.name}, stage {name}"
        use = settings.pop("use", "student")
        settings = substitute(settings, outputs, where)
        output = self.models_dir / condition.name / f"seed-{seed}" / name
        record = json.dumps({**settings, "seed": seed}, sort_keys=True)
        # A stage with the same settings, seed and name trained for another condition is the same model (training
        # is deterministic): conditions that rerank with one teacher in two ways share it.
        finished = [output, *sorted(self.models_dir.glob(f"*/seed-{seed}/{name}"))]
        found = next((folder for folder in finished if trained_command(folder) == record), None)
        if found is None:
            logger.info("[%s seed %d] training reranker stage %s", condition.name, seed, name)
            try:
                config = RerankTrainConfig(**settings, output=str(output), seed=seed, overwrite=True, command=record)
            except TypeError as error:
                raise UserError(f"{where}: {error}") from None
            train_reranker(config)
            found = output
        elif found != output:
            logger.info("[%s seed %d] reranker stage %s: reusing %s", condition.name, seed, name, found)
        return str(found / TEACHER_FOLDER if use == "teacher" else found), training_seconds(found)

    def nested(self, condition: Condition, seed: int) -> dict:
        """Nested cross-validation over the condition's candidates for one seed; its summary (folds, run)."""
        from ..io.runs import Run
        from .nested import Candidate, NestedCVConfig, nested_cv

        candidates = []
        for name in condition.nested["candidates"]:
            entry = self.matrix.condition(name)
            kept = {str(stage.get("name")): "{" + str(stage.get("name")) + "}" for stage in entry.train}  # for nested_cv
            stages = [substitute(stage, {**self.outputs, **kept}, f"{condition.name}: candidate {name}")
                      for stage in entry.train]
            candidates.append(Candidate(name, stages, substitute(entry.search, self.outputs, condition.name)))
        topics = candidates[0].train[-1].get("topics") or self.matrix.qrels
        config = NestedCVConfig(topics=topics, candidates=candidates, seed=seed, qrels=self.matrix.qrels,
                                output=str(self.models_dir / condition.name / f"seed-{seed}"),
                                measure=condition.nested.get("measure", "nDCG@3"),
                                topic_numbers=condition.nested.get("topic_numbers"))
        result = nested_cv(config)
        run = self.runs_dir / f"{condition.name}.seed-{seed}.trec"
        Run.read(result.run_path).write(run, overwrite=True, tag=condition.name)
        return {**result.to_mapping(), "run": str(run)}


def _model_setting(condition: Condition) -> str:
    """The search setting that takes a trained condition's model."""
    last = condition.train[-1]
    return "rerank" if last.get("kind") == "reranker" else "cv" if "cv" in last else "encoder"


def _trained_search(condition: Condition, model: str | None) -> dict:
    """The condition's search with its trained model: a reranker reranks, a CV folder or encoder searches."""
    setting = _model_setting(condition)
    return {**condition.search, setting: model, **({"retriever": "dense"} if setting == "encoder" else {})}


def _plain(value):
    """`value` as JSON gives it back (paths as strings, tuples as lists): what a sidecar holds."""
    return json.loads(json.dumps(value, default=str))


def _spec_dict(spec) -> dict:
    import dataclasses

    return dataclasses.asdict(spec)


def _same_search(recorded, spec) -> bool:
    """Whether a sidecar's recorded search is `spec`'s; a setting added to `SearchSpec` after the run was made
    counts as recorded at its default."""
    import dataclasses

    if not isinstance(recorded, dict):
        return False
    defaults = {field.name: field.default if field.default is not dataclasses.MISSING else field.default_factory()
                for field in dataclasses.fields(spec)
                if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING}
    return {**_plain({name: value for name, value in defaults.items() if name not in recorded}), **recorded} \
        == _plain(_spec_dict(spec))


def _describe(spec) -> str:
    return ", ".join(f"{key}={value}" for key, value in _spec_dict(spec).items()
                     if value not in (None, [], False) and key in ("retriever", "topics", "query", "index", "encoder",
                                                                     "cv", "rewrites", "hits"))


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _references(condition: Condition) -> set[str]:
    from .matrix import REFERENCE

    text = json.dumps([condition.search, condition.train])
    return set(REFERENCE.findall(text))


def reproduce(matrix: Matrix, only: str | None = None, runs_dir: str | os.PathLike = "runs/reproduce",
              models_dir: str | os.PathLike = "encoders/reproduce") -> MatrixResult:
    """Produce and evaluate each condition (or only the one named `only`) against its expected scores."""
    from ..evaluate import evaluate

    conditions = [matrix.condition(only)] if only else matrix.conditions
    runner = Runner(matrix, runs_dir, models_dir)
    produced = [runner.produce(condition) for condition in conditions]
    ready = {entry.condition.name: entry.runs for entry in produced if entry.runs and not entry.error}
    from ..evaluate.presets import split_measure_string

    declared = split_measure_string(matrix.measures or "")
    measures = " ".join(dict.fromkeys(declared + [e.measure for c in conditions for e in c.expected]))
    evaluation = None
    if ready:
        try:
            evaluation = evaluate(matrix.qrels, {name: runs if len(runs) > 1 else runs[0] for name, runs in ready.items()},
                                  measures)
        except InvalidInput as error:
            for entry in produced:
                if entry.condition.name in ready:
                    entry.error = f"{len(error.problems)} problem(s) in the inputs, the first: {error.problems[0]}"
            ready = {}
    outcomes = []
    for entry in produced:
        condition = entry.condition
        for expected in condition.expected:
            if entry.skipped:
                outcomes.append(Outcome(condition.name, expected, None, SKIPPED, entry.skipped))
            elif entry.error or condition.name not in ready:
                outcomes.append(Outcome(condition.name, expected, None, FAIL, entry.error or "no run"))
            else:
                measured = evaluation.scores_of(condition.name).aggregate[expected.measure]
                status = status_of(measured, expected.score, expected.digits, condition.allow_above)
                outcomes.append(Outcome(condition.name, expected, measured, status))
    return MatrixResult(matrix, produced, outcomes, evaluation)
