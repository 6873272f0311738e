"""Reproduction matrices (`evaluation/<dataset>.yaml`): run or fetch each condition, evaluate, compare.

A matrix file::

    title: TREC CAsT-20
    qrels: convdr/cast20                 # ir_datasets id or qrels file
    conditions:
    - name: grill-human-reranked
      description: ...
      run:                               # a published run: exactly one of name / url / path, plus sha256
        name: cast-20/runs-grill-qr-eval/Human_reranked_100.txt   # resolved by convdr_pyserini.files
        sha256: 5d1c...
      expected:
      - source: where the numbers were published
        digits: 4                        # the precision they were published with
        scores: {nDCG@3: 0.4789}         # ir_measures strings -> value (null: no verified published value)
    - name: convdr-kd
      requires: [indexes/cast-ance-msmarco]        # paths (relative to the working directory)
      requires_data: [orquac/qrels.txt]            # names declared in convdr_pyserini/data/files.yaml
      search: [--topics, convdr/cast20, ...]       # arguments of `python -m convdr_pyserini.search`
      expected: [...]

A metric is OK when the measured value rounds to the expected one at its published precision,
OKish when it is within 0.0005 of it or higher, and FAIL otherwise. A condition whose required files
are absent is skipped, and says which files are missing; a skip never counts as a pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

OK, OKISH, FAIL, SKIPPED = "OK", "OKish", "FAIL", "skipped"
UNREFERENCED = "measured (no published value entered)"
TOLERANCE = 0.0005


@dataclass(frozen=True)
class Expected:
    """An expected score; `score` is None where the matrix records no verified published value."""

    measure: str
    score: float | None
    digits: int
    source: str


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    expected: list[Expected]
    run: dict | None = None
    search: list[str] | None = None
    requires: list[str] = field(default_factory=list)
    requires_data: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Matrix:
    path: Path
    title: str
    qrels: str
    conditions: list[Condition]

    @property
    def dataset(self) -> str:
        return self.path.stem


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


def status_of(measured: float, expected: float | None, digits: int) -> str:
    """OK when `measured` rounds to `expected` at `digits`; OKish within 0.0005 or higher; else FAIL."""
    if expected is None:
        return UNREFERENCED
    if abs(measured - expected) <= 0.5 * 10 ** -digits + 1e-12:
        return OK
    if measured > expected or abs(measured - expected) <= TOLERANCE:
        return OKISH
    return FAIL


def load_matrix(path: str | os.PathLike) -> Matrix:
    """Read and check a matrix file; every problem raises a UserError naming the file and condition."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such matrix file") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None
    if not isinstance(document, dict) or not isinstance(document.get("conditions"), list):
        raise UserError(f"{path}: expected a mapping with 'title', 'qrels' and a list of 'conditions'")
    for key in ("title", "qrels"):
        if not isinstance(document.get(key), str):
            raise UserError(f"{path}: '{key}' is missing or not a string")
    conditions = [_condition(path, entry) for entry in document["conditions"]]
    names = [condition.name for condition in conditions]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"{path}: condition name {name!r} is used twice")
    return Matrix(path, document["title"], document["qrels"], conditions)


def _condition(path: Path, entry) -> Condition:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UserError(f"{path}: every condition needs a 'name'")
    where = f"{path}: condition {entry['name']}"
    run, search = entry.get("run"), entry.get("search")
    if (run is None) == (search is None):
        raise UserError(f"{where}: give exactly one of 'run' (a published run) or 'search' (a command)")
    if run is not None:
        sources = [key for key in ("name", "url", "path") if key in run] if isinstance(run, dict) else []
        if len(sources) != 1 or not isinstance(run.get("sha256"), str):
            raise UserError(f"{where}: 'run' needs exactly one of name/url/path and a sha256")
    if search is not None and not (isinstance(search, list) and all(isinstance(a, (str, int, float)) for a in search)):
        raise UserError(f"{where}: 'search' must be a list of command-line arguments")
    expected = []
    for block in entry.get("expected") or []:
        scores = block.get("scores") if isinstance(block, dict) else None
        if not isinstance(scores, dict) or not isinstance(block.get("source"), str):
            raise UserError(f"{where}: each 'expected' block needs a 'source' and a 'scores' mapping")
        digits = int(block.get("digits", 4))
        for measure, score in scores.items():
            if score is not None and not isinstance(score, (int, float)):
                raise UserError(f"{where}: expected {measure} score {score!r} is not a number (or null)")
            measure = _canonical_measure(measure, where)
            expected.append(Expected(measure, None if score is None else float(score), digits, block["source"]))
    if not expected:
        raise UserError(f"{where}: no expected scores")
    return Condition(
        name=entry["name"],
        description=str(entry.get("description", "")),
        expected=expected,
        run=run,
        search=None if search is None else [str(argument) for argument in search],
        requires=[str(p) for p in entry.get("requires") or []],
        requires_data=[str(n) for n in entry.get("requires_data") or []],
    )


def missing_files(condition: Condition) -> list[str]:
    """The required paths that do not exist and the required data files that cannot be resolved."""
    from .. import files

    missing = [path for path in condition.requires if not Path(path).exists()]
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


def search_run(matrix: Matrix, condition: Condition, output_dir: Path) -> Path:
    """Run `python -m convdr_pyserini.search` for a command condition; returns the run file it wrote."""
    output = output_dir / matrix.dataset / f"{condition.name}.trec"
    command = [sys.executable, "-m", "convdr_pyserini.search", *condition.search, "--output", str(output)]
    print(f"[{condition.name}] {' '.join(command[1:])}", file=sys.stderr)
    completed = subprocess.run(command, stdout=subprocess.DEVNULL)  # its progress bar and errors go to stderr
    if completed.returncode != 0:
        raise UserError(f"condition {condition.name}: search exited with code {completed.returncode} (its error is above)")
    return output


def reproduce(matrix: Matrix, only: str | None = None, output_dir: str | os.PathLike = "runs/reproduce") -> list[Outcome]:
    """Evaluate each condition (or only the one named `only`) against its expected scores."""
    from ..evaluate import InvalidInput, evaluate_runs, load_qrels

    conditions = [c for c in matrix.conditions if only is None or c.name == only]
    if not conditions:
        names = ", ".join(c.name for c in matrix.conditions)
        raise UserError(f"{matrix.path}: no condition named {only!r}; conditions: {names}")
    qrels = None
    outcomes = []
    for condition in conditions:
        missing = missing_files(condition)
        if missing:
            reason = "missing: " + ", ".join(missing)
            outcomes.extend(Outcome(condition.name, e, None, SKIPPED, reason) for e in condition.expected)
            continue
        try:
            path = fetch_run(condition) if condition.run is not None else search_run(matrix, condition, Path(output_dir))
            qrels = qrels or load_qrels(matrix.qrels)
            measures = " ".join(e.measure for e in condition.expected)
            aggregate = evaluate_runs(qrels, {condition.name: path}, measures).runs[0].aggregate
        except InvalidInput as error:
            reason = f"{len(error.problems)} problem(s) in the inputs, the first: {error.problems[0]}"
            outcomes.extend(Outcome(condition.name, e, None, FAIL, reason) for e in condition.expected)
            continue
        except UserError as error:
            outcomes.extend(Outcome(condition.name, e, None, FAIL, str(error)) for e in condition.expected)
            continue
        for e in condition.expected:
            measured = aggregate[e.measure]
            outcomes.append(Outcome(condition.name, e, measured, status_of(measured, e.score, e.digits)))
    return outcomes


def _canonical_measure(text: str, where: str) -> str:
    """The ir_measures spelling of a measure string (`RR(rel=2)`); one ir_measures rejects is a UserError."""
    import ir_measures

    try:
        return str(ir_measures.parse_measure(str(text)))
    except Exception as error:  # noqa: BLE001  (ir_measures raises NameError/ValueError)
        raise UserError(f"{where}: measure {text!r} is rejected by ir_measures ({error})") from None


def markdown_table(matrix: Matrix, outcomes: list[Outcome]) -> str:
    """The generated reproduction table, as committed in `evaluation/<dataset>.md`.

    A condition's name and description head its first row; sources are numbered notes under the table.
    """
    from ..evaluate.report import markdown

    descriptions = {c.name: c.description for c in matrix.conditions}
    sources: list[str] = []
    rows, previous = [], None
    for o in outcomes:
        if o.expected.source not in sources:
            sources.append(o.expected.source)
        first = o.condition != previous
        previous = o.condition
        rows.append([
            f"`{o.condition}`" if first else "",
            descriptions[o.condition] if first else "",
            o.expected.measure,
            o.expected_text(),
            "—" if o.measured is None else f"{o.measured:.4f}",
            o.status_text(),
            f"[{sources.index(o.expected.source) + 1}]",
        ])
    header = ["condition", "description", "measure", "expected", "measured", "status", "source"]
    notes = "\n".join(f"{number}. {source}" for number, source in enumerate(sources, start=1))
    return (
        f"# {matrix.title}: reproduction matrix\n\n"
        f"Generated by `python -m convdr_pyserini.reproduce {matrix.path.as_posix()}` (do not edit by hand).\n"
        f"Qrels: `{matrix.qrels}`; measures by ir_measures, averaged over the judged queries in each run "
        f"(trec_eval default). OK: equal at the published precision; OKish: within {TOLERANCE} or higher; "
        "skipped: the files named are absent (never a pass).\n\n" + markdown(header, rows) + "\n\nSources:\n\n" + notes + "\n"
    )
