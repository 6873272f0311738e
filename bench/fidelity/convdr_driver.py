"""Runs the original ConvDR code (a checkout of thunlp/ConvDR) under its own environment, for the fidelity harness.

Started by `bench/fidelity/run.py` with the old environment's Python (transformers 2.3.0); it imports nothing
from convdr_pyserini. Training calls ConvDR's own `drivers/run_convdr_train.py` `main()` unchanged, with its
command-line flags; only its TensorBoard writer is replaced by one that records the logged loss of every step.
Inference calls ConvDR's `ConvSearchDataset` and `evaluate` (drivers/run_convdr_inference.py) for the queries,
and `tokenize_to_file`/`PassagePreprocessingFn`/`GetProcessingFn` (data/tokenizing.py) and the model's
`body_emb` for the passages, as `drivers/gen_passage_embeddings.py` does.

    python convdr_driver.py --convdr CHECKOUT --spec spec.json --output result.json
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
import torch

PASSAGE_LENGTH = 512  # data/tokenizing.py --max_seq_length default


class StepRecorder:
    """Stands in for tensorboardX's SummaryWriter: keeps every scalar ConvDR logs."""

    scalars = []

    def __init__(self, log_dir=None, **_):
        self.log_dir = log_dir

    def add_scalar(self, tag, value, step):
        StepRecorder.scalars.append((tag, float(value), int(step)))

    def close(self):
        pass


def train(run):
    """ConvDR's training main() with the run's flags; returns the loss ConvDR logged at each step."""
    import drivers.run_convdr_train as convdr_train

    StepRecorder.scalars = []
    convdr_train.SummaryWriter = StepRecorder
    sys.argv = ["run_convdr_train.py"] + run["argv"]
    convdr_train.main()
    losses = [value for tag, value, _ in StepRecorder.scalars if tag == "0/loss"]
    return {"losses": losses, "weights": os.path.join(run["output_dir"], "pytorch_model.bin")}


def query_embeddings(checkpoint, eval_file, query, max_concat_length):
    """ConvDR inference's query embeddings of `eval_file` with `--query query`, in file order."""
    from drivers.run_convdr_inference import evaluate
    from utils.util import ConvSearchDataset, load_model

    args = argparse.Namespace(model_type="rdot_nll", cache_dir=None, device=torch.device("cpu"), n_gpu=0, seed=42,
                              query=query, max_concat_length=max_concat_length, max_query_length=64,
                              per_gpu_eval_batch_size=8, ranking_task=False)
    _, tokenizer, model = load_model(args, checkpoint)
    args.max_concat_length = min(args.max_concat_length, tokenizer.max_len_single_sentence)
    dataset = ConvSearchDataset([eval_file], tokenizer, args, mode="inference")
    embeddings, ids, _ = evaluate(args, dataset, model, logging.getLogger("convdr"))
    return ids, embeddings


def passage_embeddings(checkpoint, collection_tsv, work):
    """ConvDR's passage embeddings: data/tokenizing.py's tokenization, the model's body_emb."""
    from data.tokenizing import GetProcessingFn, PassagePreprocessingFn
    from utils.util import load_model, tokenize_to_file

    args = argparse.Namespace(model_type="rdot_nll", model_name_or_path=checkpoint, cache_dir=None,
                              device=torch.device("cpu"), collection=collection_tsv, max_seq_length=PASSAGE_LENGTH,
                              max_doc_character=10000, max_query_length=64)
    out_path = os.path.join(work, "passages")
    tokenize_to_file(args, 0, 1, collection_tsv, out_path, PassagePreprocessingFn)
    _, _, model = load_model(args, checkpoint)
    model.eval()
    record = 8 + 4 + PASSAGE_LENGTH * 4
    raw = open(out_path + "_split0", "rb").read()
    ids, vectors = [], []
    for start in range(0, len(raw), record):
        chunk = raw[start:start + record]
        passage_id = int.from_bytes(chunk[:8], "big")
        length = int.from_bytes(chunk[8:12], "big")
        tokens = np.frombuffer(chunk[12:], dtype=np.int32).tolist()
        input_ids, attention_mask, _, _ = GetProcessingFn(args, query=False)((length, tokens), passage_id)[0]
        with torch.no_grad():
            vectors.append(model.body_emb(input_ids.long()[None], attention_mask.long()[None])[0].numpy())
        ids.append(passage_id)
    return ids, np.stack(vectors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convdr", required=True, help="checkout of thunlp/ConvDR")
    parser.add_argument("--spec", required=True, help="what to run (written by run.py)")
    parser.add_argument("--output", required=True, help="JSON results; embeddings go beside it as .npz")
    options = parser.parse_args()
    sys.path.insert(0, os.path.abspath(options.convdr))
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    spec = json.load(open(options.spec, encoding="utf-8"))
    results = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "train": {}}
    for name, run in spec.get("train", {}).items():
        results["train"][name] = train(run)
    arrays = {}
    infer = spec.get("infer")
    if infer:
        for mode, query in infer["modes"].items():
            ids, vectors = query_embeddings(infer["checkpoint"], infer["eval_file"], query, infer["max_concat_length"])
            results.setdefault("query_ids", {})[mode] = list(ids)
            arrays[f"query:{mode}"] = vectors
        ids, vectors = passage_embeddings(infer["checkpoint"], infer["collection_tsv"], infer["work"])
        results["passage_ids"] = ids
        arrays["passages"] = vectors
    np.savez(options.output + ".npz", **arrays)
    with open(options.output, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
