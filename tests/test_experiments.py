"""The training experiment matrix (evaluation/cast20-mini-training.yaml) runs end to end: a reduced version, one
seed of three variants with their real settings, from a MiniLM index of the mini collection (`make test-slow`)."""
import yaml
import pytest

from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.reproduce import load_matrix
from convdr_pyserini.reproduce.__main__ import main as reproduce_main

KEPT = ("dense-raw", "kd-no_res", "multitask-no_res")


def test_the_training_matrix_is_well_formed():
    matrix = load_matrix("cast20-mini-training")
    names = [condition.name for condition in matrix.conditions]
    for required in ("zero-shot-no_res", "kd-no_res", "kd-man_can", "kd-auto_can", "ranking-no_res",
                     "multitask-no_res", "warmup-kd-auto_can", "kd-no_res-lr1e-5"):
        assert required in names
    assert matrix.seeds == [1, 2, 3] and matrix.baselines == ["dense-raw", "kd-no_res"]
    warmup = matrix.condition("warmup-kd-auto_can").train
    assert warmup[0]["topics"] == "convdr/canard/dev" and warmup[1]["student_init"] == "{warmup}"


@pytest.mark.slow
def test_a_reduced_training_matrix_runs_end_to_end(tmp_path, monkeypatch, shared_data):
    monkeypatch.chdir(tmp_path)
    assert index_main(["dense", "--collection", "convdr/cast20/mini", "--encoder", "minilm", "--output",
                       "indexes/cast20-mini.minilm"]) == 0
    document = yaml.safe_load(load_matrix("cast20-mini-training").path.read_text())
    document["seeds"] = [1]
    document["baselines"] = ["dense-raw"]
    document.pop("plot")
    document["conditions"] = [condition for condition in document["conditions"] if condition["name"] in KEPT]
    (tmp_path / "reduced.yaml").write_text(yaml.safe_dump(document))
    assert reproduce_main(["reduced.yaml"]) == 0
    table = (tmp_path / "reduced.md").read_text()
    for name in KEPT:
        assert f"| `{name}` |" in table
    trained = sorted(path.parent.name for path in (tmp_path / "encoders/reproduce/reduced").rglob("encoder.yaml"))
    assert trained == sorted([f"fold-{fold}" for fold in range(5)] * 2)  # two conditions, five folds each
    card = yaml.safe_load(next((tmp_path / "encoders/reproduce/reduced/multitask-no_res").rglob("encoder.yaml"))
                          .read_text())
    assert card["training"]["loss_weights"] == {"kd_weight": 400.0, "ranking_weight": 1.0, "temperature": 0.05}
