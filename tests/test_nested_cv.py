"""Nested cross-validation (reproduce/nested.py) on a tiny configuration: a tiny random ANCE as teacher and
student, two KD recipes that differ only in the learning rate, a dense index of 300 mini passages, the 15 CAsT-20
topics 81-95 (three folds). Checks that no outer test topic reaches any model that chose or became its recipe, that the
winner is the inner-validation best, that each training (a recipe on all folds but one or two) happens once, and that
the table reports the choice and the outer-fold scores."""
import pytest
import yaml

from convdr_pyserini.errors import UserError
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.io.runs import Run
from convdr_pyserini.reproduce.__main__ import main as reproduce_main
from convdr_pyserini.reproduce.nested import Candidate, NestedCVConfig
from test_convdr_inputs import write_tiny_roberta_tokenizer
from test_encode import ance_state, write_transformers2_folder

MINI = "convdr/cast20/mini"


def test_a_nested_cv_needs_two_named_candidates():
    one = Candidate("kd", [{"topics": MINI, "teacher": "minilm", "cv": 5}], {"query": "no_res", "index": "x"})
    with pytest.raises(UserError, match="at least two"):
        NestedCVConfig(topics=MINI, candidates=[one], output="out")
    with pytest.raises(UserError, match="distinct"):
        NestedCVConfig(topics=MINI, candidates=[one, one], output="out")
    with pytest.raises(UserError, match="lack index"):
        Candidate("kd", [{"topics": MINI}], {"query": "no_res"})


@pytest.mark.slow
def test_nested_cv_chooses_per_outer_fold_without_seeing_it(tmp_path, monkeypatch, shared_data):
    from convdr_pyserini import datasets
    from convdr_pyserini.evaluate import evaluate
    from convdr_pyserini.io.qrels import Qrels
    from convdr_pyserini.resolve import load_qrels

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "tiny"
    vocab = write_tiny_roberta_tokenizer(model)
    write_transformers2_folder(model, ance_state(len(vocab)), len(vocab))
    (tmp_path / "collection").mkdir()
    lines = (datasets.collection_jsonl(MINI) / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    (tmp_path / "collection" / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert index_main(["dense", "--collection", "collection", "--encoder", str(model), "--output", "index"]) == 0
    stage = {"name": "kd", "topics": MINI, "teacher": str(model), "query": "no_res", "loss": "kd", "epochs": 1,
             "batch_size": 16, "cv": 5}
    search = {"retriever": "convdr", "topics": MINI, "query": "no_res", "index": "index", "hits": 20}
    matrix = {"title": "nested", "qrels": MINI, "measures": "nDCG@3", "seeds": [1], "conditions": [
        {"name": "kd-fast", "train": [{**stage, "lr": 1e-3}], "search": search},
        {"name": "kd-slow", "train": [{**stage, "lr": 1e-6}], "search": search},
        {"name": "nested", "nested": {"candidates": ["kd-fast", "kd-slow"], "measure": "nDCG@3",
                                      "topic_numbers": list(range(81, 96))}}]}
    (tmp_path / "nested.yaml").write_text(yaml.safe_dump(matrix))
    assert reproduce_main(["nested.yaml"]) == 0
    table = (tmp_path / "nested.md").read_text()
    assert "Nested cross-validation `nested`" in table and "all (the nested-CV run)" in table
    summary = yaml.safe_load((tmp_path / "encoders/reproduce/nested/nested/seed-1/nested-cv.yaml").read_text())
    qrels = load_qrels(MINI)
    run = Run.read(tmp_path / "runs/reproduce/nested/nested.seed-1.trec")
    assert set(run.hits) == {query.query_id for query in datasets.load(MINI).queries_iter() if query.topic_number < 96}
    assert [fold["fold"] for fold in summary["folds"]] == [0, 1, 2]
    models = tmp_path / "encoders/reproduce/nested/nested/seed-1"
    for fold in summary["folds"]:
        test = set(fold["test_topics"])
        assert fold["chosen"] == max(["kd-fast", "kd-slow"], key=lambda name: fold["inner_scores"][name])
        others = [other for other in (0, 1, 2) if other != fold["fold"]]
        used = [models / name / f"excluding-folds-{'-'.join(map(str, sorted((fold['fold'], other))))}"
                for name in ("kd-fast", "kd-slow") for other in others]
        final = models / fold["chosen"] / f"excluding-folds-{fold['fold']}"
        cards = [yaml.safe_load((path / "encoder.yaml").read_text())["training"] for path in [*used, final]]
        assert all(not test & set(card["train_topics"]) for card in cards)
        assert sorted(cards[-1]["train_topics"]) == sorted(set(range(81, 96)) - test)
        queries = {qid: hits for qid, hits in run.hits.items() if int(qid.split("_")[0]) in test}
        judged = Qrels({qid: qrels.judgments[qid] for qid in queries if qid in qrels.judgments}, "fold")
        score = evaluate(judged, {"fold": Run(queries)}, "nDCG@3").scores_of("fold").aggregate["nDCG@3"]
        assert score == pytest.approx(fold["test_score"])
    # each pair of folds left out is one training, shared by the two outer folds whose inner fold it serves
    trained = sorted(str(path.parent.relative_to(models)) for path in models.rglob("encoder.yaml"))
    pairs = [f"{name}/excluding-folds-{a}-{b}" for name in ("kd-fast", "kd-slow") for a, b in ((0, 1), (0, 2), (1, 2))]
    finals = [f"{fold['chosen']}/excluding-folds-{fold['fold']}" for fold in summary["folds"]]
    assert trained == sorted(pairs + finals)
