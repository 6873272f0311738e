"""Fidelity harness: the project's ConvDR training and inference against the original code, step for step.

    python bench/fidelity/run.py --convdr /path/to/ConvDR --old-venv .venv-convdr-orig [--write-results FILE]

`--convdr` is a checkout of thunlp/ConvDR; `--old-venv` the environment `make fidelity-env` builds from the
package index (transformers 2.3.0). Both sides get the same tiny randomly initialised ANCE checkpoint
(RoBERTa -> first token -> Linear(768) -> LayerNorm, ConvDR's `RobertaDot_NLL_LN`), written once in the
transformers 2.x layout ConvDR loads and once in the project's format (safetensors + `encoder.yaml`), the same
20 CAsT-20 turns (topics 81-84, turns 1-5, from the official topic files), the same ranking passages, seed,
learning rate, batch size and epochs. ConvDR trains with its own `run_convdr_train.py` (see convdr_driver.py),
the project with `convdr_pyserini.train`; the harness compares the loss at each of the 10 steps and every
parameter afterwards, for KD, ranking and multi-task (and KD on `man_can`), then the query embeddings of
the 20 turns in every input mode and the passage embeddings, all float32 on CPU with one thread.

The last line printed is one JSON object; the exit status is 1 when a comparison exceeds the tolerance.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
TOPICS = (81, 82, 83, 84)
TURNS_PER_TOPIC = 5
NEGATIVES = 9
SEED, LR, BATCH, EPOCHS, MAX_CONCAT = 42, 1e-4, 4, 2, 256
# name: (student input, project loss, ConvDR flags)
TRAINING_RUNS = {
    "kd": ("no_res", "kd", []),
    "ranking": ("no_res", "ranking", ["--ranking_task", "--no_mse"]),
    "multi-task": ("no_res", "kd+ranking", ["--ranking_task"]),
    "kd-man_can": ("man_can", "kd", []),
}
RESULTS_HEADER = ("# Fidelity: the project against the original ConvDR code\n\nWritten by `make fidelity` "
                  "(bench/fidelity/run.py); what the columns mean and what was changed to get here: "
                  "docs/training.md, section *Fidelity to the original code*.\n\n")
# project query mode -> ConvDR's --query
# Attention key biases add the same q.b to every score of a query, which the softmax ignores: their gradient is
# zero in exact arithmetic, so they move only by rounding noise that Adam scales up to ~lr-sized steps, in either
# implementation. They are reported apart and not held to the tolerance (tests/test_train.py shows the gradient).
SHIFT_INVARIANT = re.compile(r"attention\.self\.key\.bias$")
QUERY_MODES = {"raw": "raw", "manual": "target", "automatic": "output", "no_res": "no_res", "man_can": "man_can",
               "auto_can": "auto_can"}


def write_checkpoints(work: Path, dropout: float) -> tuple[Path, Path]:
    """The tiny ANCE checkpoint in ConvDR's transformers 2.x layout and in the project's format."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_convdr_inputs import write_tiny_roberta_tokenizer
    from test_encode import ance_state, write_transformers2_folder

    from convdr_pyserini.encode import load_encoder

    shape = dict(max_position_embeddings=514, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    original = work / "checkpoint-convdr"
    vocab = write_tiny_roberta_tokenizer(original, response_token=True)  # as ConvDR's trained checkpoints
    (original / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "max_len": 512}),
                                                    encoding="utf-8")
    write_transformers2_folder(original, ance_state(len(vocab), dimension=768, seed=SEED, **shape), len(vocab),
                               **shape)
    ours = work / "checkpoint-project"
    load_encoder(str(original)).save(ours, name="fidelity-tiny-ance")
    return original, ours


def write_topics(work: Path) -> tuple[Path, list[dict]]:
    """A CAsT-20 topics file of the chosen turns (manual and automatic fields merged) and the raw turns."""
    from convdr_pyserini.files import local_path

    manual = json.loads(local_path("cast-20/2020_manual_evaluation_topics_v1.0.json").read_text(encoding="utf-8"))
    automatic = json.loads(local_path("cast-20/2020_automatic_evaluation_topics_v1.0.json").read_text(encoding="utf-8"))
    automatic = {topic["number"]: topic for topic in automatic}
    topics = []
    for topic in manual:
        if topic["number"] in TOPICS:
            turns = [{**auto_turn, **turn} for turn, auto_turn in
                     zip(topic["turn"][:TURNS_PER_TOPIC], automatic[topic["number"]]["turn"])]
            topics.append({**topic, "turn": turns})
    path = work / "topics.json"
    path.write_text(json.dumps(topics), encoding="utf-8")
    return path, topics


def write_ranking_data(work: Path, topics_path: Path) -> tuple[Path, dict]:
    """Per turn, among the passages of the mini collection: the highest-graded relevant one and 9 negatives (the
    judged non-relevant ones by docid, then unjudged ones in store order); returns the file and the texts."""
    from convdr_pyserini.datasets import load
    from convdr_pyserini.io.passages import Passage
    from convdr_pyserini.resolve import load_topics, topics_qrels
    from convdr_pyserini.train.data import RankingExample, best_positive

    dataset = load("convdr/cast20/mini")
    store = dataset.docs_store()
    judgments = topics_qrels(load_topics("convdr/cast20/mini")).judgments
    fillers = [doc.doc_id for _, doc in zip(range(400), dataset.docs_iter())]
    lines, texts = [], {}
    for record in load_topics(str(topics_path)):
        judged = judgments[record.query_id]
        available = {doc_id: judged[doc_id] for doc_id in store.get_many(list(judged))}
        positive, grade = best_positive(available)
        pool = sorted(doc_id for doc_id, value in available.items() if value <= 0)
        pool += [doc_id for doc_id in fillers if doc_id not in judged]
        example = RankingExample(record.query_id, positive, grade, tuple(pool[:NEGATIVES]))
        lines.append(example.to_json())
        for doc_id in (example.positive, *example.negatives):
            texts[doc_id] = Passage.from_doc(store.get(doc_id)).encoder_input()
    path = work / "ranking.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, texts


def write_convdr_inputs(work: Path, topics: list[dict], ranking_path: Path, texts: dict) -> tuple[Path, Path]:
    """ConvDR's eval_topics.jsonl for the turns, as data/preprocess_cast20.py writes it, and the same with the
    ranking fields data/gen_ranking_data.py adds (doc_pos, doc_negs)."""
    from convdr_pyserini.resolve import load_topics, response_lookup

    lookup = response_lookup(load_topics("convdr/cast20/mini"))
    ranking = {line["query_id"]: line for line in map(json.loads, ranking_path.read_text().splitlines())}
    plain, ranked = [], []
    for topic in topics:
        inputs, manual_responses, automatic_responses = [], [], []
        for turn in topic["turn"]:
            inputs.append(turn["raw_utterance"])
            manual_responses.append(lookup(turn["manual_canonical_result_id"]))
            automatic_responses.append(lookup(turn["automatic_canonical_result_id"]))
            record = {"topic_number": topic["number"], "query_number": turn["number"], "input": list(inputs),
                      "automatic_response": list(automatic_responses), "manual_response": list(manual_responses),
                      "target": turn["manual_rewritten_utterance"], "output": turn["automatic_rewritten_utterance"]}
            example = ranking[f"{topic['number']}_{turn['number']}"]
            plain.append(json.dumps(record))
            ranked.append(json.dumps({**record, "doc_pos": texts[example["positive"]],
                                      "doc_negs": [texts[doc_id] for doc_id in example["negatives"]]}))
    files = work / "eval_topics.jsonl", work / "eval_topics.rank.jsonl"
    for path, lines in zip(files, (plain, ranked)):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def run_original(convdr: Path, python: Path, work: Path, checkpoint: Path, files: tuple[Path, Path],
                 passages: list[str]) -> dict:
    """ConvDR's side (convdr_driver.py under the old environment)."""
    collection = work / "collection.tsv"
    collection.write_text("".join(f"{number}\t{text}\n" for number, text in enumerate(passages)), encoding="utf-8")
    runs = {}
    for name, (query, _, flags) in TRAINING_RUNS.items():
        output = work / f"convdr-{name}"
        runs[name] = {"output_dir": str(output), "argv": [
            "--output_dir", str(output), "--model_name_or_path", str(checkpoint),
            "--train_file", str(files[1] if "--ranking_task" in flags else files[0]), "--query", query,
            "--per_gpu_train_batch_size", str(BATCH), "--learning_rate", str(LR), "--num_train_epochs", str(EPOCHS),
            "--model_type", "rdot_nll", "--seed", str(SEED), "--max_concat_length", str(MAX_CONCAT),
            "--log_dir", str(work / "convdr-logs"), *flags]}
    spec = {"train": runs, "infer": {"checkpoint": str(checkpoint), "eval_file": str(files[0]), "modes": QUERY_MODES,
                                     "max_concat_length": MAX_CONCAT, "collection_tsv": str(collection),
                                     "work": str(work)}}
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    output = work / "convdr-result.json"
    environment = {**os.environ, "PYTHONPATH": str(convdr), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([str(python), str(Path(__file__).with_name("convdr_driver.py")), "--convdr",
                                str(convdr), "--spec", str(work / "spec.json"), "--output", str(output)],
                               env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"error: the original ConvDR code failed:\n{completed.stderr[-4000:]}")
    result = json.loads(output.read_text(encoding="utf-8"))
    with np.load(str(output) + ".npz") as arrays:
        result["arrays"] = {key: arrays[key] for key in arrays.files}
    return result


def run_project(work: Path, checkpoint: Path, topics_path: Path, ranking_path: Path, pad_like_convdr: bool) -> dict:
    """The project's side: `convdr_pyserini.train` per run. With `pad_like_convdr`, every batch is padded to
    ConvDR's fixed width (max_concat_length) instead of its longest input, so dropout masks have ConvDR's shape."""
    import convdr_pyserini as cp

    if pad_like_convdr:
        pad_to_convdr_width()
    runs = {}
    for name, (query, loss, _) in TRAINING_RUNS.items():
        output = work / f"project-{name}"
        cp.train(cp.TrainConfig(topics=str(topics_path), output=str(output), teacher=str(checkpoint), query=query,
                                loss=loss, ranking_data=str(ranking_path) if "ranking" in loss else None,
                                collection="convdr/cast20/mini", epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=SEED,
                                max_concat_length=MAX_CONCAT))
        losses = [float(line.split("\t")[1]) for line in (output / "losses.tsv").read_text().splitlines()[1:]]
        runs[name] = {"losses": losses, "weights": str(output / "model.safetensors")}
    return {"train": runs}


def pad_to_convdr_width() -> None:
    """Make DenseEncoder.pad pad to at least MAX_CONCAT ids, as ConvDR's pad_input_ids_with_mask does."""
    import torch

    from convdr_pyserini.encode.models import DenseEncoder

    own_width = DenseEncoder.pad

    def convdr_width(self, id_lists):
        input_ids, attention_mask = own_width(self, id_lists)
        extra = max(0, MAX_CONCAT - input_ids.shape[1])
        return (torch.nn.functional.pad(input_ids, (0, extra), value=self.tokenizer.pad_token_id),
                torch.nn.functional.pad(attention_mask, (0, extra)))

    DenseEncoder.pad = convdr_width


def project_embeddings(checkpoint: Path, topics_path: Path, passages: list) -> dict[str, np.ndarray]:
    from convdr_pyserini.encode import conversational_input, load_encoder
    from convdr_pyserini.resolve import load_topics, response_lookup

    encoder = load_encoder(str(checkpoint))
    topics = load_topics(str(topics_path))
    lookup = response_lookup(load_topics("convdr/cast20/mini"))
    arrays = {}
    for mode in QUERY_MODES:
        ids = [encoder.query_token_ids(conversational_input(record, mode, lookup), mode, max_concat_length=MAX_CONCAT)
               for record in topics]
        arrays[f"query:{mode}"] = encoder.encode_ids(ids, tower="query")
    arrays["passages"] = encoder.encode_passages(passages)
    return arrays


def load_weights(path: str) -> dict[str, np.ndarray]:
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {key: value.float().numpy() for key, value in state.items()}


def compare(original: dict, project: dict, initial: dict[str, np.ndarray], embeddings: dict) -> dict:
    """Largest differences: per training run the losses (relative to max(1, |loss|)) and the parameters (the
    attention key biases apart, see SHIFT_INVARIANT), then the embeddings (absolute)."""
    rows = {}
    for name in TRAINING_RUNS:
        ours, theirs = project["train"][name], original["train"][name]
        loss_gaps = [abs(a - b) / max(1.0, abs(b)) for a, b in zip(ours["losses"], theirs["losses"])]
        ours_weights, theirs_weights = load_weights(ours["weights"]), load_weights(theirs["weights"])
        shared = sorted(set(ours_weights) & set(theirs_weights))
        gaps = {key: float(np.abs(ours_weights[key] - theirs_weights[key]).max()) for key in shared}
        checked = [key for key in shared if not SHIFT_INVARIANT.search(key)]
        worst = max(checked, key=gaps.get)
        rows[name] = {"steps": [len(theirs["losses"]), len(ours["losses"])],
                      "first_losses": [theirs["losses"][0], ours["losses"][0]],
                      "loss_max_rel_diff": max(loss_gaps),
                      "loss_rel_diff_by_step": [float(f"{gap:.3g}") for gap in loss_gaps],
                      "param_max_abs_diff": gaps[worst], "param_worst": worst,
                      "param_max_change": max(float(np.abs(theirs_weights[key] - initial[key]).max()) for key in checked),
                      "key_bias_max_abs_diff": max(gaps[key] for key in shared if key not in checked),
                      "key_bias_max_change": max(float(np.abs(weights[key] - initial[key]).max())
                                                 for weights in (ours_weights, theirs_weights)
                                                 for key in shared if key not in checked),
                      "params_compared": len(checked)}
    for key, theirs in original["arrays"].items():
        rows[key] = {"max_abs_diff": float(np.abs(theirs - embeddings[key]).max()), "rows": int(theirs.shape[0]),
                     "max_abs_value": float(np.abs(theirs).max())}
    return rows


def passed(row: dict) -> bool:
    if "loss_max_rel_diff" in row:
        return (row["steps"][0] == row["steps"][1] == 10 and row["loss_max_rel_diff"] <= TOLERANCE
                and row["param_max_abs_diff"] <= TOLERANCE)
    return row["max_abs_diff"] <= TOLERANCE


def markdown(rows: dict, versions: dict, dropout: float, seconds: float) -> str:
    lines = [f"Original: thunlp/ConvDR {versions['commit']} under transformers {versions['transformers']}, torch "
             f"{versions['torch']}; project: transformers {versions['project_transformers']}, torch "
             f"{versions['project_torch']}. Tiny ANCE (hidden 32, 2 layers, 768-dimensional head, dropout {dropout}), "
             f"20 CAsT-20 turns, seed {SEED}, lr {LR:g}, batch {BATCH}, {EPOCHS} epochs = 10 steps, float32, CPU, "
             f"one thread; tolerance {TOLERANCE:g}; {seconds:.0f} s.", "",
             "| training run | steps (ConvDR / ours) | first loss (ConvDR / ours) | max loss diff / max(1, loss) "
             "| max param diff (where) | max param change | key-bias diff / change | agree |",
             "|---|---|---|---|---|---|---|---|"]
    for name in TRAINING_RUNS:
        row = rows[name]
        lines.append(f"| {name} | {row['steps'][0]} / {row['steps'][1]} | {row['first_losses'][0]:.6g} / "
                     f"{row['first_losses'][1]:.6g} | {row['loss_max_rel_diff']:.2e} | {row['param_max_abs_diff']:.2e} "
                     f"(`{row['param_worst']}`) | {row['param_max_change']:.2e} | {row['key_bias_max_abs_diff']:.1e} / "
                     f"{row['key_bias_max_change']:.1e} | {'yes' if passed(row) else 'NO'} |")
    lines += ["", "| embeddings | rows | max abs value | max abs diff | agree |", "|---|---|---|---|---|"]
    for key, row in rows.items():
        if key not in TRAINING_RUNS:
            lines.append(f"| {key} | {row['rows']} | {row['max_abs_value']:.3g} | {row['max_abs_diff']:.2e} | "
                         f"{'yes' if passed(row) else 'NO'} |")
    return "\n".join(lines) + "\n"


def run_once(options: argparse.Namespace, python: Path, work: Path, dropout: float) -> tuple[dict, dict]:
    """One comparison at one dropout: the rows and the original side's versions."""
    original_checkpoint, project_checkpoint = write_checkpoints(work, dropout)
    topics_path, topics = write_topics(work)
    ranking_path, texts = write_ranking_data(work, topics_path)
    files = write_convdr_inputs(work, topics, ranking_path, texts)
    passages = [texts[doc_id] for doc_id in sorted(texts)]
    original = run_original(options.convdr, python, work, original_checkpoint, files, passages)
    embeddings = project_embeddings(project_checkpoint, topics_path, passages)
    project = run_project(work, project_checkpoint, topics_path, ranking_path, dropout > 0)
    rows = compare(original, project, load_weights(str(original_checkpoint / "pytorch_model.bin")), embeddings)
    return rows, {"transformers": original["transformers"], "torch": original["torch"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convdr", required=True, type=Path, help="checkout of thunlp/ConvDR")
    parser.add_argument("--old-venv", required=True, type=Path, help="environment from `make fidelity-env`")
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.1],
                        help="dropout of the tiny checkpoint, one comparison each (default 0 and 0.1); above 0 the "
                             "project's training batches are padded to ConvDR's fixed width, so that both sides draw "
                             "dropout masks of the same shape")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--write-results", type=Path, help="write the markdown tables to this file")
    options = parser.parse_args(argv)
    python = options.old_venv / "bin" / "python"
    if not (options.convdr / "drivers" / "run_convdr_train.py").is_file():
        print(f"error: {options.convdr} is not a checkout of thunlp/ConvDR (no drivers/run_convdr_train.py)",
              file=sys.stderr)
        return 2
    if not python.is_file():
        print(f"error: {options.old_venv} has no bin/python (build it with `make fidelity-env`)", file=sys.stderr)
        return 2
    import torch
    import transformers

    torch.set_num_threads(1)
    commit = subprocess.run(["git", "-C", str(options.convdr), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "(not a git checkout)"
    tables, results = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for dropout in options.dropout:
            started = time.time()
            work = (options.work or Path(scratch)) / f"dropout-{dropout:g}"
            work.mkdir(parents=True, exist_ok=True)
            rows, versions = run_once(options, python, work, dropout)
            versions.update(commit=commit, project_transformers=transformers.__version__,
                            project_torch=torch.__version__)
            tables.append(markdown(rows, versions, dropout, time.time() - started))
            results[f"dropout-{dropout:g}"] = {"agree": all(passed(row) for row in rows.values()), "rows": rows}
            print(tables[-1], flush=True)
    if options.write_results:
        options.write_results.write_text(RESULTS_HEADER + "\n".join(tables), encoding="utf-8")
    ok = all(result["agree"] for result in results.values())
    print(json.dumps({"agree": ok, "tolerance": TOLERANCE, **versions, "runs": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
