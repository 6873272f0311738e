"""ConvDR training: KD steps, loss decrease, the shared fold rule, seeded determinism, negative mining,
the CV output layout that `search --cv` reads, and the bad inputs (exit 2, one line, no output)."""
import argparse
import hashlib

import numpy as np
import pytest
import torch

from convdr_pyserini.datasets import load
from convdr_pyserini.folds import folds, topic_file_order
from convdr_pyserini.train.__main__ import main
from convdr_pyserini.train.data import mine_negatives, read_ranking_data
from test_encode import ance_state, write_transformers2_folder
from test_convdr_inputs import write_tiny_roberta_tokenizer

MINI = "convdr/cast20/mini"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random ANCE (rdot_nll) checkpoint, fast enough to train on all 216 CAsT-20 queries."""
    folder = tmp_path_factory.mktemp("tiny_ance")
    vocab = write_tiny_roberta_tokenizer(folder)
    return write_transformers2_folder(folder, ance_state(len(vocab)), len(vocab))


@pytest.fixture(scope="module")
def mini_queries():
    return list(load(MINI).queries_iter())


def state_of(model):
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def kd_examples(teacher, student, records, mode="no_res"):
    from convdr_pyserini.encode import conversational_input
    from convdr_pyserini.train.loop import Example

    targets = teacher.encode_queries([record.manual_rewritten_utterance for record in records])
    return [Example(record.query_id, student.query_token_ids(conversational_input(record, mode), mode), target)
            for record, target in zip(records, targets)]


def test_one_kd_step_changes_the_student_and_not_the_teacher(mini_queries):
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.train.loop import fit

    teacher, student = load_encoder("minilm"), load_encoder("minilm")
    teacher_before, student_before = state_of(teacher.model), state_of(student.model)
    examples = kd_examples(teacher, student, [q for q in mini_queries if q.turn_number > 2][:4])
    result = fit(student, examples, epochs=1, lr=1e-4, batch_size=4, seed=1, use_kd=True, use_ranking=False)
    assert len(result.step_losses) == 1 and result.step_losses[0] > 0
    changed = [key for key, value in state_of(student.model).items() if not torch.equal(value, student_before[key])]
    assert len(changed) > len(student_before) // 2
    assert all(torch.equal(value, teacher_before[key]) for key, value in state_of(teacher.model).items())


def test_kd_loss_decreases_on_a_tiny_set(mini_queries):
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.train.loop import fit, mean_kd_loss

    teacher, student = load_encoder("minilm"), load_encoder("minilm")
    examples = kd_examples(teacher, student, [q for q in mini_queries if q.topic_number == 82][:8])
    before = mean_kd_loss(student, examples)
    result = fit(student, examples, epochs=5, lr=2e-4, batch_size=4, seed=7, use_kd=True, use_ranking=False)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert mean_kd_loss(student, examples) < 0.5 * before


def test_attention_key_bias_gradient_is_rounding_noise(tiny_model, mini_queries):
    """Why bench/fidelity/run.py holds the attention key biases apart: adding q.b to every score of a query
    leaves the softmax unchanged, so their gradient is zero but for rounding, while every other tensor's is not."""
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.train.loop import batch_loss

    teacher, student = load_encoder(str(tiny_model)), load_encoder(str(tiny_model))
    examples = kd_examples(teacher, student, mini_queries[4:8])
    student.model.train()
    batch_loss(student, examples, None, True, False, len(examples)).backward()
    norms = {name: float(p.grad.abs().max()) for name, p in student.model.named_parameters() if p.grad is not None}
    key_biases = {name: norm for name, norm in norms.items() if name.endswith("attention.self.key.bias")}
    others = {name: norm for name, norm in norms.items() if name not in key_biases and "word_embeddings" not in name}
    assert len(key_biases) == 2 and max(key_biases.values()) < 1e-6 * min(others.values())


def test_schedule_and_order_are_convdrs(tiny_model, mini_queries):
    """ConvDR's loop: batches from a RandomSampler drawn after seeding, the learning rate decaying linearly to 0
    (LambdaLR), Adam's eps added before the bias correction (transformers 2.x AdamW); checked step for step
    against the original code by bench/fidelity/run.py, here against a plain re-statement of those rules."""
    from torch.utils.data import DataLoader, RandomSampler

    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.train import loop

    teacher, student = load_encoder(str(tiny_model)), load_encoder(str(tiny_model))
    examples = kd_examples(teacher, student, mini_queries[:6])
    rates, batches = [], []
    real_step, real_loss = torch.optim.AdamW.step, loop.batch_loss

    def recording_step(optimizer, *args, **kwargs):
        rates.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["eps"]))
        return real_step(optimizer, *args, **kwargs)

    def recording_loss(student, batch, *args):
        batches.append([example.query_id for example in batch])
        return real_loss(student, batch, *args)

    try:
        torch.optim.AdamW.step, loop.batch_loss = recording_step, recording_loss
        loop.fit(student, examples, epochs=2, lr=1e-3, batch_size=4, seed=5, use_kd=True, use_ranking=False)
    finally:
        torch.optim.AdamW.step, loop.batch_loss = real_step, real_loss
    assert [rate for rate, _ in rates] == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])
    assert [eps for _, eps in rates] == pytest.approx([1e-8 / (1 - 0.999 ** t) ** 0.5 for t in (1, 2, 3, 4)])
    torch.manual_seed(5)  # the first epoch's order (dropout draws from the same generator before the second)
    indices = range(len(examples))
    loader = DataLoader(indices, sampler=RandomSampler(indices), batch_size=4, collate_fn=list)
    assert batches[:2] == [[examples[i].query_id for i in batch] for batch in loader]
    assert batches[:2] != [[example.query_id for example in examples[:4]], [example.query_id for example in examples[4:]]]


def test_fold_rule_for_both_years():
    cast20 = folds("convdr/cast20", range(81, 106))
    assert cast20 == {topic: (topic - 81) // 5 for topic in range(81, 106)}
    order = topic_file_order("convdr/cast19")
    assert len(order) == 50
    cast19 = folds("convdr/cast19", order)
    assert [cast19[topic] for topic in order] == [position // 10 for position in range(50)]
    # the judged subset keeps the full file's folds
    judged = sorted({q.topic_number for q in load("convdr/cast19/judged").queries_iter()})
    assert folds("convdr/cast19/judged", judged) == {topic: cast19[topic] for topic in judged}


def test_cv_layout_cards_determinism_and_search_agree(tmp_path, tiny_model, mini_queries):
    """5-fold CV on all 216 queries with a tiny model: fold-0..4 with cards; a rerun gives identical weights;
    search --cv picks, for each topic, the fold model that did not train on it."""
    import yaml

    from convdr_pyserini.resolve import load_topics
    from convdr_pyserini.search.dense import ConvDRRetriever

    outputs = [tmp_path / "a", tmp_path / "b"]
    for output in outputs:
        assert main(["--topics", MINI, "--teacher", str(tiny_model), "--epochs", "1", "--lr", "1e-3",
                     "--cv", "5", "--seed", "3", "--output", str(output)]) == 0
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    for fold in range(5):
        a, b = outputs[0] / f"fold-{fold}", outputs[1] / f"fold-{fold}"
        assert digest(a / "model.safetensors") == digest(b / "model.safetensors")
        card = yaml.safe_load((a / "encoder.yaml").read_text())
        training = card["training"]
        assert training["fold"] == fold and training["seed"] == 3 and training["loss"] == "kd"
        assert training["heldout_topics"] == list(range(81 + 5 * fold, 86 + 5 * fold))
        assert not set(training["train_topics"]) & set(training["heldout_topics"])
        assert training["metrics"]["train_queries"] + training["metrics"]["heldout_queries"] == 216
        assert (a / "losses.tsv").read_text().count("\n") == training["metrics"]["steps"] + 1
    assert digest(outputs[0] / "fold-0" / "model.safetensors") != digest(outputs[0] / "fold-1" / "model.safetensors")
    groups = ConvDRRetriever._groups(argparse.Namespace(folds=outputs[0]), load_topics(MINI))
    for model, positions in groups:
        held_out = yaml.safe_load((tmp_path / model / "encoder.yaml").read_text())["training"]["heldout_topics"]
        assert {mini_queries[i].topic_number for i in positions} == set(held_out)


def fixed_run(path, dataset):
    """A deterministic run over the mini collection: every doc, in an order fixed by a hash of (qid, docid)."""
    doc_ids = sorted(doc.doc_id for doc in dataset.docs_iter())
    with open(path, "w") as out:
        for query in dataset.queries_iter():
            order = sorted(doc_ids, key=lambda d: hashlib.md5(f"{query.query_id}/{d}".encode()).hexdigest())[:100]
            out.writelines(f"{query.query_id} Q0 {d} {rank} {100 - rank} fixed\n" for rank, d in enumerate(order, 1))


def test_negative_mining_is_deterministic(tmp_path):
    dataset = load(MINI)
    fixed_run(tmp_path / "run.trec", dataset)
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "seed2.jsonl"]
    for path, seed in zip(files, ("42", "42", "2")):
        assert main(["negatives", "--topics", MINI, "--run", str(tmp_path / "run.trec"), "--output", str(path),
                     "--seed", seed]) == 0
    assert files[0].read_bytes() == files[1].read_bytes()
    assert files[0].read_bytes() != files[2].read_bytes()
    in_collection = {doc.doc_id for doc in dataset.docs_iter()}
    qrels = {}  # judged passages outside the mini collection are never chosen
    for qrel in dataset.qrels_iter():
        if qrel.doc_id in in_collection:
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
    examples = read_ranking_data(files[0])
    assert len(examples) == sum(1 for judged in qrels.values() if max(judged.values()) > 0) > 150
    for example in examples:
        assert {example.positive, *example.negatives} <= in_collection
        judged = qrels[example.query_id]
        assert example.positive_grade == judged[example.positive] == max(judged.values())
        assert len(example.negatives) == len(set(example.negatives)) == 9
        assert all(judged.get(doc_id, 0) <= 0 for doc_id in example.negatives)
        if sum(grade <= 0 for grade in judged.values()) >= 20:  # the pool is all judged non-relevant
            assert all(doc_id in judged for doc_id in example.negatives)
    # the sample of a query depends neither on the other queries nor on their order
    run = {}
    for line in open(tmp_path / "run.trec"):
        run.setdefault(line.split()[0], []).append(line.split()[2])
    ids = [example.query_id for example in examples]
    reverse, _ = mine_negatives(ids[::-1], qrels, run, 42)
    assert sorted(reverse, key=lambda e: e.query_id) == sorted(examples, key=lambda e: e.query_id)


def ranking_file(path, negatives):
    path.write_text('{"query_id": "81_1", "positive": "%s", "positive_grade": 2, "negatives": %s}\n'
                    % (negatives[0], str(negatives[1:]).replace("'", '"')))
    return path


@pytest.mark.parametrize("case", ["kd_without_rewrites", "dimensions", "cv_folds", "missing_passage"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, tiny_model, capsys):
    output = tmp_path / "model"
    doc_ids = sorted(doc.doc_id for doc in load(MINI).docs_iter())[:10]
    arguments = {
        "kd_without_rewrites": ["--topics", "convdr/cast19/train", "--teacher", "minilm"],
        "dimensions": ["--topics", MINI, "--teacher", "minilm", "--student-init", str(tiny_model)],
        "cv_folds": ["--topics", MINI, "--teacher", str(tiny_model), "--cv", "30"],
        "missing_passage": ["--topics", MINI, "--teacher", str(tiny_model), "--loss", "ranking", "--ranking-data",
                            str(ranking_file(tmp_path / "rank.jsonl", doc_ids[:9] + ["NO_SUCH_PASSAGE"]))],
    }[case]
    assert main([*arguments, "--output", str(output)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    expected = {"kd_without_rewrites": "manual rewrites", "dimensions": "dimensional", "cv_folds": "fewer than folds",
                "missing_passage": "NO_SUCH_PASSAGE"}[case]
    assert len(error) == 1 and error[0].startswith("error:") and expected in error[0]
    assert not output.exists()


def test_ranking_loss_trains_on_mined_negatives(tmp_path, tiny_model):
    """Multi-task (KD + ranking) on ranking data for a few real queries; the card records both losses."""
    import yaml

    dataset = load(MINI)
    fixed_run(tmp_path / "run.trec", dataset)
    assert main(["negatives", "--topics", MINI, "--run", str(tmp_path / "run.trec"),
                 "--output", str(tmp_path / "rank.jsonl")]) == 0
    lines = (tmp_path / "rank.jsonl").read_text().splitlines()[:12]
    (tmp_path / "few.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["--topics", MINI, "--teacher", str(tiny_model), "--loss", "kd+ranking", "--ranking-data",
                 str(tmp_path / "few.jsonl"), "--epochs", "2", "--output", str(tmp_path / "multi")]) == 0
    training = yaml.safe_load((tmp_path / "multi" / "encoder.yaml").read_text())["training"]
    assert training["loss"] == "kd+ranking" and training["metrics"]["train_queries"] == 12
    assert np.isfinite(training["metrics"]["train_loss_last_epoch"])
    # the ranking loss alone moves each query's mined positive up among its negatives (the teacher's passage
    # embeddings, as ConvDR scores them); a loss that pointed at another candidate would move it down
    assert main(["--topics", MINI, "--teacher", str(tiny_model), "--loss", "ranking", "--ranking-data",
                 str(tmp_path / "few.jsonl"), "--epochs", "10", "--lr", "1e-3", "--output", str(tmp_path / "rank")]) == 0
    metrics = yaml.safe_load((tmp_path / "rank" / "encoder.yaml").read_text())["training"]["metrics"]
    assert metrics["train_loss_last_epoch"] < 0.7 * metrics["train_loss_first_epoch"]
    before, after = (positive_ranks(tiny_model, student, read_ranking_data(tmp_path / "few.jsonl"), dataset)
                     for student in (tiny_model, tmp_path / "rank"))
    assert np.mean(1 / after) > np.mean(1 / before) + 0.15 and np.mean(after == 1) > np.mean(before == 1)


def positive_ranks(teacher, student, examples, dataset) -> np.ndarray:
    """The rank (1 = first) of each example's positive among its positive and negatives, by the student's query
    embedding (no_res) against the teacher's passage embeddings."""
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.train.data import student_input

    teacher, student = load_encoder(str(teacher)), load_encoder(str(student))
    store, records = dataset.docs_store(), {record.query_id: record for record in dataset.queries_iter()}
    ranks = []
    for example in examples:
        ids = student.query_token_ids(student_input(records[example.query_id], "no_res"), "no_res")
        query = student.encode_ids([ids])[0]
        candidates = teacher.encode_passages([store.get(doc_id).text for doc_id in (example.positive, *example.negatives)])
        scores = candidates @ query
        ranks.append(1 + int(np.sum(scores[1:] > scores[0])))
    return np.array(ranks)


def test_help_imports_neither_torch_nor_pyserini():
    import subprocess
    import sys

    code = ("import sys\nfrom convdr_pyserini.train.__main__ import main\n"
            "from convdr_pyserini.demo import main as demo\n"
            "assert main(['--help']) == 0 and main(['negatives', '--help']) == 0 and demo(['--help']) == 0\n"
            "print('torch' in sys.modules, 'pyserini' in sys.modules, 'jnius' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False False"
