"""The full-scale guide as a dress rehearsal: every shell block of docs/full-scale.md runs verbatim, in order, on
miniature inputs in the original formats (tests/miniature.py), on the CPU, and ends in the three reproduction
tables, with every condition run and none skipped. 7 minutes on 2 idle cores: `make test-guide` (CI runs it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import miniature

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "full-scale.md"
MATRICES = ("cast19", "cast20", "orquac")
REHEARSAL = {"DEVICE": "cpu", "GPUS": "2", "LISTS": "16"}


def shell_blocks(markdown: str) -> list[str]:
    """The ```bash blocks of a Markdown text, in order."""
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The logical command lines of a shell block (backslash continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def rehearsal_script(blocks: list[str]) -> str:
    """One bash script running every command in order, stopping at the first that fails. `reproduce` exits with 1
    when a measured value misses a published one, which in miniature is expected; any other failure stops it."""
    lines = ["set -uo pipefail"]
    for command in (command for block in blocks for command in commands(block)):
        allowed = 1 if command.startswith("python -m convdr_pyserini.reproduce") else 0
        lines += [f"echo '+ {command[:150]}' >&2", command, "status=$?",
                  f'if [ $status -gt {allowed} ]; then echo "rehearsal: exit $status" >&2; exit $status; fi']
    return "\n".join(lines) + "\n"


def test_the_guide_has_the_documented_variables_and_every_step():
    """Cheap checks of the guide's shape, run in `make test`: the settings block, one command per step."""
    blocks = shell_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) == 6
    settings = blocks[0]
    for name in REHEARSAL:
        assert re.search(rf"^{name}=\$\{{{name}:-", settings, flags=re.M), name
    text = "\n".join(blocks)
    for matrix in MATRICES:
        assert f"python -m convdr_pyserini.reproduce {matrix}\n" in text
    assert "--nprobe $((LISTS / 4))" in text and "--topics convdr/orquac/train --teacher ance-msmarco-passage" in text


@pytest.mark.slow
def test_the_full_scale_guide_runs_verbatim_on_miniature_inputs(tmp_path, shared_data):
    work = tmp_path / "work"
    work.mkdir()
    miniature.build(work / "downloads", tmp_path / "hf" / "hub", shared_data)
    blocks = shell_blocks(GUIDE.read_text(encoding="utf-8"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVDR_PYSERINI_")}
    env.update(REHEARSAL, CONVDR_PYSERINI_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "rehearsal.log"
    with open(log, "w") as output:
        done = subprocess.run(["bash", "-c", rehearsal_script(blocks)], cwd=work, env=env, stdout=output,
                              stderr=subprocess.STDOUT, timeout=3600)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert done.returncode in (0, 1), text[-6000:]
    assert "Traceback" not in text, text[-6000:]

    from convdr_pyserini.reproduce.matrix import load_matrix

    for name in MATRICES:
        table = (work / f"{name}.md").read_text(encoding="utf-8")
        rows = [row for row in table.splitlines() if row.startswith("|  |") or row.startswith("| `")]
        assert rows and not any("skipped" in row or "error:" in row or " — |" in row for row in rows), table
        for condition in load_matrix(ROOT / "evaluation" / f"{name}.yaml").conditions:
            assert sum(row.startswith(f"| `{condition.name}` |") for row in rows) == 1, (condition.name, table)
    # every model of the guide was trained per seed and fold, and searched by its matrix
    for model in ("convdr-kd-cast19", "convdr-multi-cast19", "convdr-kd-cast20", "convdr-multi-cast20"):
        for seed in (1, 2, 3):
            assert all((work / "encoders" / model / f"seed-{seed}" / f"fold-{fold}" / "encoder.yaml").is_file()
                       for fold in range(5)), model
            assert (work / "runs/reproduce" / model.split("-")[-1] / f"{_condition(model)}.seed-{seed}.trec").is_file()
    # the released fold models are scored on their held-out topics only
    for matrix, condition, topics in (("cast19", "convdr-kd-released-fold1", range(41, 51)),
                                      ("cast20", "convdr-kd-released-fold2", range(91, 96))):
        run = work / "runs/reproduce" / matrix / f"{condition}.trec"
        scored = {int(line.split()[0].split("_")[0]) for line in run.read_text(encoding="utf-8").splitlines()}
        assert scored == set(topics), (condition, sorted(scored))
    # the checkpoints without a published sha256 were recorded at their first use, with one warning each
    assert (tmp_path / "home/encoders/ance-msmarco-passage/Passage_ANCE_FirstP_Checkpoint.zip.sha256").is_file()
    assert text.count("no published sha256 for Passage_ANCE_FirstP_Checkpoint.zip") == 1


def _condition(model: str) -> str:
    return "convdr-kd" if "-kd-" in model else "convdr-multitask"
