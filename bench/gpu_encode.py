"""Passage encoding throughput of the real encoder code path on a GPU, for an ANCE-sized model.

    # on this machine: write the small inputs the GPU machine cannot make (it has no ir_datasets, faiss, Java)
    python bench/gpu_encode.py --export bench/gpu-data
    # on the GPU machine, with its own python3 (torch with CUDA, transformers, numpy) and this checkout:
    python3 bench/gpu_encode.py --data bench/gpu-data --device cuda
    # the CPU smoke test (make test-slow): tiny sizes, same code
    python bench/gpu_encode.py --data bench/gpu-data --device cpu --passages 64 --batch-sizes 16 --layers 2 --hidden 64

What it measures, with `convdr_pyserini.encode.DenseEncoder.encode_passages` (length-sorted batches under
`torch.inference_mode`, exactly what `index dense` runs):

- passages/s of a RoBERTa-base-shaped `rdot_nll` encoder (ANCE's architecture and size: 12 layers, hidden 768,
  first token -> Linear -> LayerNorm) with random weights built from its config, on real-length passages (the
  1,426 passages of convdr/cast20/mini, repeated), in fp32, fp16 and bf16, at batch sizes 128 to 1024;
- that a tiny model gives the same vectors on the CPU and on the device (fp32), and how close fp16/bf16 come;
- the device's peak memory per setting;
- the GPU-hours each setting implies for the 38.6M passages of the CAsT collection (an extrapolation).

The tokenizer is the MiniLM (BERT uncased) vocabulary carried in the data folder: ANCE's RoBERTa BPE files are
not on the GPU machine; the token counts of the two tokenizers on English text are close. The last line printed
is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CAST_PASSAGES = 38_622_444
MAX_LENGTH = 512  # ConvDR data/tokenizing.py --max_seq_length for the CAsT collection


def export(folder: Path) -> None:
    """Write the vocabulary and the mini passages (JSON lines) the GPU run needs."""
    import shutil

    from convdr_pyserini import datasets
    from convdr_pyserini.encode import resolve_card

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(resolve_card("minilm").weights_location()) / "vocab.txt", folder / "vocab.txt")
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as out:
        for doc in datasets.load("convdr/cast20/mini").docs_iter():
            out.write(json.dumps({"id": doc.doc_id, "contents": doc.text}, ensure_ascii=False) + "\n")
    print(f"wrote {folder}/vocab.txt and {folder}/passages.jsonl")


def build_encoder(data: Path, device: str, layers: int, hidden: int, precision: str = "fp32"):
    """A DenseEncoder of the `rdot_nll` architecture with random (seeded) weights and the carried vocabulary."""
    import torch
    from transformers import BertTokenizerFast, RobertaConfig

    from convdr_pyserini.encode.cards import EncoderCard
    from convdr_pyserini.encode.models import AnceModel, DenseEncoder

    tokenizer = BertTokenizerFast(vocab_file=str(data / "vocab.txt"), do_lower_case=True)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                           max_position_embeddings=MAX_LENGTH + 2, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AnceModel(config, hidden)
    card = EncoderCard(name=f"rdot_nll-random-{layers}x{hidden}", architecture="rdot_nll",
                       max_passage_length=MAX_LENGTH, truncate="convdr")
    return DenseEncoder(card, model, tokenizer, device=device, fp16=precision == "fp16", bf16=precision == "bf16")


def read_passages(data: Path, count: int) -> list[str]:
    texts = [json.loads(line)["contents"] for line in (data / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    return [texts[i % len(texts)] for i in range(count)]


def throughput(encoder, texts: list[str], batch_size: int, device: str) -> dict:
    import torch

    encoder.encode_passages(texts[:batch_size], batch_size=batch_size)  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    vectors = encoder.encode_passages(texts, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    finite = bool((vectors == vectors).all())
    return {"seconds": round(seconds, 3), "passages_per_second": round(len(texts) / seconds, 1),
            "peak_gib": None if peak is None else round(peak, 2), "finite": finite,
            "gpu_hours_for_cast": round(CAST_PASSAGES / (len(texts) / seconds) / 3600, 2)}


def equality(data: Path, device: str) -> dict:
    """A tiny model's vectors on the CPU and on `device` (fp32), and fp16/bf16 against fp32 on `device`."""
    import numpy as np

    texts = read_passages(data, 64)
    reference = build_encoder(data, "cpu", 2, 64).encode_passages(texts, batch_size=16)
    result = {}
    for precision in ("fp32", "fp16", "bf16"):
        if precision == "fp16" and not device.startswith("cuda"):
            continue
        vectors = build_encoder(data, device, 2, 64, precision).encode_passages(texts, batch_size=16)
        cosine = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
        result[precision] = {"max_abs_diff": float(np.abs(vectors - reference).max()), "min_cosine": float(cosine.min())}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="write the carried data folder and stop")
    parser.add_argument("--data", type=Path, default=Path("bench/gpu-data"), help="folder with vocab.txt, passages.jsonl")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--passages", type=int, default=20_000, help="passages per measurement (default 20,000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"], choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--layers", type=int, default=12, help="transformer layers (default 12: RoBERTa-base)")
    parser.add_argument("--hidden", type=int, default=768, help="hidden size (default 768: RoBERTa-base)")
    args = parser.parse_args()
    if args.export:
        export(args.export)
        return 0
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    texts = read_passages(args.data, args.passages)
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__} on {where}; {len(texts):,} passages; model {args.layers} layers x {args.hidden}")
    checks = equality(args.data, args.device)
    print("equality with the CPU (tiny model):", json.dumps(checks))
    results = {}
    for precision in args.precisions:
        if precision == "fp16" and not args.device.startswith("cuda"):
            continue
        encoder = build_encoder(args.data, args.device, args.layers, args.hidden, precision)
        for batch_size in args.batch_sizes:
            measured = throughput(encoder, texts, batch_size, args.device)
            results[f"{precision}/{batch_size}"] = measured
            print(f"{precision:5s} batch {batch_size:5d}: {measured['passages_per_second']:9.1f} passages/s, "
                  f"peak {measured['peak_gib']} GiB, {measured['gpu_hours_for_cast']} h for 38.6M passages")
        del encoder
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    best = max(results, key=lambda key: results[key]["passages_per_second"])
    print(json.dumps({"bench": "gpu_encode", "device": where, "torch": torch.__version__, "passages": len(texts),
                      "layers": args.layers, "hidden": args.hidden, "equality": checks, "results": results,
                      "best": best, "best_passages_per_second": results[best]["passages_per_second"],
                      "best_gpu_hours_for_cast": results[best]["gpu_hours_for_cast"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
