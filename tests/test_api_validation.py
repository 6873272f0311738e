"""Arguments are checked when an object is built or a function is called, not at first use: a wrong encoder name,
device, batch size or truncation, or a bad significance setting, is one UserError naming the parameter (from the
command line: its flag), before any model is loaded or any input is read."""
import pytest

import convdr_pyserini as cp
from conftest import small_indexes
from convdr_pyserini.errors import UserError

MINI = "convdr/cast20/mini"


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    small_indexes(root, 16, "--max-length", "16")
    return root / "dense"


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if an encoder's weights are loaded."""
    from convdr_pyserini.encode import models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(models, "load_encoder", refuse)


def test_a_good_dense_retriever_builds(dense, no_model_loads):
    retriever = cp.DenseRetriever(dense, encoder="minilm", batch_size=8, truncate="keep-current")
    assert retriever.batch_size == 8 and retriever.name == "minilm"


@pytest.mark.parametrize("change, message", [
    ({"encoder": "no-such-encoder"}, r"unknown encoder card 'no-such-encoder'"),
    ({"batch_size": 0}, r"^batch_size must be a positive integer, got 0"),
    ({"batch_size": "8"}, r"^batch_size must be a positive integer, got '8'"),
    ({"batch_size": True}, r"^batch_size must be a positive integer, got True"),
    ({"truncate": "middle"}, r"^truncate must be convdr or keep-current, not 'middle'"),
    ({"device": "tpu"}, r"^device must be cpu or cuda\[:N\], not 'tpu'"),
])
def test_dense_retriever_checks_its_arguments_when_built(dense, no_model_loads, change, message):
    with pytest.raises(UserError, match=message):
        cp.DenseRetriever(dense, **{"encoder": "minilm", **change})


@pytest.mark.parametrize("change, message", [
    ({"encoder": "no-such-encoder"}, r"unknown encoder card 'no-such-encoder'"),
    ({"device": "tpu"}, r"^device must be cpu or cuda\[:N\], not 'tpu'"),
    ({"batch_size": 0}, r"^batch_size must be a positive integer"),
])
def test_dense_index_config_checks_its_arguments_when_built(tmp_path, no_model_loads, change, message):
    with pytest.raises(UserError, match=message):
        cp.DenseIndexConfig(**{"collection": MINI, "encoder": "minilm", "output": str(tmp_path / "x"), **change})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("change, message", [
    ({"permutations": 0}, r"^permutations must be a positive integer, got 0"),
    ({"permutations": 2.5}, r"^permutations must be a positive integer, got 2.5"),
    ({"seed": "1"}, r"^seed must be an integer, got '1'"),
])
def test_evaluate_checks_its_significance_settings_when_called(change, message):
    with pytest.raises(UserError, match=message):
        cp.evaluate(MINI, {"a": {"81_1": {"d": 1.0}}, "b": {"81_1": {"d": 2.0}}}, "nDCG@3", baseline="a", **change)


def test_the_command_line_names_the_flag_before_loading_a_model(dense, no_model_loads, tmp_path, capsys):
    from convdr_pyserini.search.__main__ import main

    assert main(["--encoder", "no-such-encoder", "--topics", MINI, "--query", "raw", "--index", str(dense),
                 "--output", str(tmp_path / "run.trec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown encoder card 'no-such-encoder'" in err and "Traceback" not in err
    assert main(["--encoder", "minilm", "--batch-size", "0", "--topics", MINI, "--query", "raw", "--index",
                 str(dense), "--output", str(tmp_path / "run.trec")]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert not (tmp_path / "run.trec").exists()


def test_convdr_retriever_checks_each_fold_model_when_built(dense, tmp_path, no_model_loads):
    from convdr_pyserini.encode import resolve_card

    folds = tmp_path / "cv"
    for fold in range(5):
        (folds / f"fold-{fold}").mkdir(parents=True)
    for fold in range(4):
        (folds / f"fold-{fold}").rmdir()
        (folds / f"fold-{fold}").symlink_to(resolve_card("minilm").weights_location())
    with pytest.raises(UserError, match=r"fold-4 has neither encoder.yaml nor model weights"):
        cp.ConvDRRetriever(dense, folds=folds)
    (folds / "fold-4").rmdir()
    (folds / "fold-4").symlink_to(resolve_card("minilm").weights_location())
    assert cp.ConvDRRetriever(dense, folds=folds).name == "cv"
