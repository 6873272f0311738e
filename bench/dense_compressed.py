"""Compressed dense indexes against the flat index: recall@1000, queries/s and size, in one process.

Vectors (`--source`):
  clustered (default): a clustered synthetic set shaped like MiniLM embeddings of real text: unit vectors in
      384 dimensions, a covariance spectrum decaying as i^-0.8 (fitted on the `minilm` set below: half the
      variance in ~46 directions), a shared mean direction (|mean| ~0.2), 1,024 topics per 262,144 vectors,
      x 16 subtopics with Pareto(2) sizes; queries are noisier draws around the same subtopics. No model
      needed, seconds. Fitted so that, at 262,144 vectors, it is about as hard as the `minilm` set
      (minilm / clustered): mean score of the 1st hit 0.65 / 0.69 and of the 1000th 0.338 / 0.336;
      recall@1000 of IVF1024,Flat at nprobe 64 0.863 / 0.874 and of PQ192x4fs 0.825 / 0.808.
  minilm: all-MiniLM-L6-v2 (card `minilm`) encodings of real text: every sentence of the `convdr/cast20/mini`
      passages and of the CANARD dev answers, then 6-22 word windows sliding over the same texts (max 32
      tokens); queries are CANARD dev questions (manual rewrites). Encoding 262,144 snippets takes 20-60 min
      on 2 cores the first time; the vectors are cached under $CONVDR_PYSERINI_HOME/bench.

Four searches are timed on the same queries, in alternating rounds (one warm-up call each, then `--repeat`
rounds calling each in turn, so that a slow spell on a shared machine hits every side; the best time of each
counts): faiss's `IndexFlatIP.search` on the vectors in memory (which also gives the exact top `--hits`), our
`DenseSearcher.search_arrays` on the flat folder (docids and tie-breaking included), the compressed index's
own faiss `search`, and `DenseSearcher.search_arrays` on the compressed folder. Columns: "x flat" is faiss
compressed against faiss flat, "x ours" ours compressed against ours flat, "ours/faiss" ours against raw faiss
on the same compressed index. Each compressed type is built from the flat folder with
`convdr_pyserini.index.compress.build_compressed` (seeded training sample) and searched with nprobe / efSearch /
refine set as `search --nprobe/--ef-search/--refine` sets them. `refine=F` re-scores the top F x hits
candidates exactly from the flat file, memory-mapped: the compressed index is what must fit in RAM, the flat
file stays on disk (both sizes are printed). `--quick` runs a smaller set (65,536 vectors, one IVF-PQ setting
with and without refine, one HNSW setting). Ends with one JSON line.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads stall
# faiss (training PQ codebooks took 57 s instead of 1 s on 2 busy cores). Must be set before faiss/torch load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

MINILM_MAX_LENGTH = 32  # tokens per encoded text (sentences and 6-22 word windows fit)


def real_texts(count: int, seed: int = 0) -> list[str]:
    """`count` distinct real English snippets: every sentence of the `convdr/cast20/mini` passages and of the
    CANARD dev answers, then word windows (6-22 words) sliding over the same texts."""
    from convdr_pyserini import datasets, files

    sources = [doc.text for doc in datasets.load("convdr/cast20/mini").docs_iter()]
    dialogs = json.loads(files.resolve("orquac/canard/dev.json").read_text(encoding="utf-8"))
    questions = {text for turn in dialogs for text in (turn["Question"], turn["Rewrite"])}
    sources += sorted({text for turn in dialogs for text in turn["History"][2:] if text not in questions
                       and len(text.split()) >= 6})
    texts: dict[str, None] = {}
    for source in sources:
        for sentence in re.split(r"(?<=[.!?])\s+", source):
            if len(sentence.split()) >= 4:
                texts.setdefault(sentence.strip(), None)
    rng = random.Random(seed)
    words = [source.split() for source in sources]
    for _ in range(8):  # passes of windows at every start position, with random lengths
        for tokens in words:
            for start in range(0, max(1, len(tokens) - 5)):
                window = " ".join(tokens[start:start + rng.randint(6, 22)])
                texts.setdefault(window, None)
                if len(texts) >= count:
                    return list(texts)[:count]
    raise SystemExit(f"only {len(texts)} distinct snippets available, asked for {count}")


def minilm_vectors(count: int, cache: Path, seed: int = 0, chunk: int = 8192) -> np.ndarray:
    """MiniLM (card `minilm`) passage embeddings of `real_texts(count)`, float32 (count, 384), unit length.

    Encoded chunk by chunk into `cache` (one .npy per chunk), so an interrupted first run resumes and
    later runs only read the files back."""
    texts = real_texts(count, seed)
    key = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:12]
    folder = cache / f"minilm-snippets-{count}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    encoder = None
    parts = []
    for number, start in enumerate(range(0, count, chunk)):
        part = folder / f"part-{number:04d}.npy"
        if not part.is_file():
            if encoder is None:
                from convdr_pyserini.encode import load_encoder

                encoder = load_encoder("minilm")
                print(f"encoding {count:,} snippets with MiniLM into {folder} (once; later runs read it back)",
                      file=sys.stderr)
            started = time.perf_counter()
            vectors = encoder.encode_passages(texts[start:start + chunk], batch_size=256, max_length=MINILM_MAX_LENGTH)
            np.save(folder / f".{part.name}", vectors)
            os.replace(folder / f".{part.name}", part)
            print(f"  {start + len(vectors):,}/{count:,} ({len(vectors) / (time.perf_counter() - started):.0f}/s)",
                  file=sys.stderr)
        parts.append(np.load(part))
    return np.concatenate(parts)


def minilm_queries(count: int, seed: int = 0) -> np.ndarray:
    """MiniLM query embeddings of `count` CANARD dev questions (the manual rewrites), picked at random."""
    from convdr_pyserini import files
    from convdr_pyserini.encode import load_encoder

    dialogs = json.loads(files.resolve("orquac/canard/dev.json").read_text(encoding="utf-8"))
    rewrites = sorted({turn["Rewrite"] for turn in dialogs})
    picked = random.Random(seed).sample(rewrites, count)
    return load_encoder("minilm").encode_queries(picked, batch_size=128)


def clustered_vectors(count: int, queries: int, dim: int = 384, seed: int = 0, topics: int | None = None,
                      subtopics: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(count x dim documents, queries x dim queries), float32 unit vectors; see the module docstring.

    The number of topics grows with the collection (1,024 per 262,144 vectors: 16 vectors per subtopic on
    average), so a larger set is denser and wider, not just 8x as crowded around the same centres."""
    rng = np.random.default_rng(seed)
    topics = topics or max(64, round(1024 * count / 262_144))
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -0.8
    spectrum /= spectrum.sum()
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    shape = (np.sqrt(spectrum)[:, None] * basis.T).astype(np.float32)  # z @ shape has covariance B diag(s) B^T
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)

    def noise(rows: int, scale: float) -> np.ndarray:
        return scale * (rng.standard_normal((rows, dim), dtype=np.float32) @ shape)

    centers = np.repeat(noise(topics, 1.0), subtopics, axis=0) + noise(topics * subtopics, 0.6)
    weights = rng.pareto(2.0, len(centers)) + 1
    weights /= weights.sum()
    docs = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 65536):
        rows = min(65536, count - start)
        block = 0.25 * mean + centers[rng.choice(len(centers), rows, p=weights)] + noise(rows, 0.7)
        docs[start:start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    block = 0.5 * mean + centers[rng.choice(len(centers), queries, p=weights)] + noise(queries, 1.2)
    return docs, (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


# Each type: a faiss factory string and its search settings (lists are swept; refine 0 = none).
DEFAULT_TYPES = (
    "IVF1024,PQ128x4fsr nprobe=128,256 refine=0,3",
    "IVF1024,PQ384x4fsr nprobe=64,128",
    "IVF256,PQ192x4fsr nprobe=64 refine=2",
    "PQ192x4fs refine=0,2",
    "IVF1024,SQ8 nprobe=128",
    "HNSW32 ef=64,256",
)
QUICK_TYPES = ("IVF256,PQ128x4fsr nprobe=64 refine=0,3", "HNSW32 ef=128")  # --quick, with 65,536 vectors
SIZE_GOAL, SIZE_RECALL = 1 / 16, 0.95
SPEED_GOAL, SPEED_RECALL = 5.0, 0.90


def parse_type(spec: str) -> tuple[str, list[dict]]:
    """'FACTORY nprobe=a,b refine=c' -> (factory, [settings...]) (all combinations)."""
    factory, *options = spec.split()
    settings = [{}]
    names = {"nprobe": "nprobe", "ef": "ef_search", "ef_search": "ef_search", "refine": "refine"}
    for option in options:
        name, _, values = option.partition("=")
        if name not in names or not values:
            raise SystemExit(f"bad option {option!r} in --type {spec!r} (nprobe=, ef=, refine=)")
        parsed = [float(v) if names[name] == "refine" else int(v) for v in values.split(",")]
        settings = [dict(s, **{names[name]: v}) for s in settings for v in parsed]
    return factory, settings


def alternating(repeat: int, functions: dict) -> tuple[dict[str, float], dict]:
    """(best seconds, last result) of each function: one warm-up call each, then `repeat` rounds calling them
    in turn, so that a slow spell on a shared machine hits every side."""
    results = {name: function() for name, function in functions.items()}
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            started = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}, results


def recall_at(exact: np.ndarray, found: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(e, f[f >= 0], assume_unique=False)) / k for e, f in zip(exact, found)]))


def write_flat(folder: Path, vectors: np.ndarray) -> None:
    from convdr_pyserini.index import faiss_io

    folder.mkdir(parents=True)
    writer = faiss_io.FlatWriter(folder / faiss_io.INDEX, vectors.shape[1])
    for start in range(0, len(vectors), 65536):
        writer.append(vectors[start:start + 65536])
    writer.finish()
    (folder / faiss_io.DOCID).write_text("".join(f"p{row}\n" for row in range(len(vectors))), encoding="utf-8")
    faiss_io.write_meta(folder, {"index_type": "flat", "count": len(vectors),
                                 "dimension": vectors.shape[1]})


def faiss_index(folder, nprobe=None, ef_search=None, refine=None):
    """The faiss index of a compressed folder with the search settings `DenseSearcher` would give it."""
    from convdr_pyserini.index import compress

    index = folder.read_faiss()
    compress.set_search_parameters(index, nprobe, ef_search)
    if refine:
        index = compress.refined(index, compress.refine_source(folder), refine)
    return index


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["clustered", "minilm"], default="clustered")
    parser.add_argument("--docs", type=int, help="vectors in the index (default 262,144; 65,536 with --quick)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384, help="clustered source only (384 = MiniLM, 768 = ANCE)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds per search, best counts (default 2)")
    parser.add_argument("--type", action="append", dest="types", metavar="SPEC",
                        help="'FACTORY [nprobe=a,b] [ef=c] [refine=d,e]' (repeatable); default: "
                             + "; ".join(DEFAULT_TYPES))
    parser.add_argument("--seed", type=int, default=0, help="training-sample seed (default 0)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is not met")
    parser.add_argument("--quick", action="store_true",
                        help="65,536 vectors and one IVF-PQ (with and without refine) and one HNSW setting (~1 min)")
    args = parser.parse_args()
    args.docs = args.docs or (65_536 if args.quick else 262_144)
    import tempfile

    import faiss

    from convdr_pyserini import files
    from convdr_pyserini.index import compress, faiss_io
    from convdr_pyserini.search.dense import DenseSearcher

    faiss.omp_set_num_threads(args.threads)
    began = time.perf_counter()
    if args.source == "minilm":
        docs = minilm_vectors(args.docs, files.home() / "bench")
        queries = minilm_queries(args.queries)
        described = f"MiniLM encodings of {args.docs:,} real text snippets, {args.queries} CANARD questions"
    else:
        docs, queries = clustered_vectors(args.docs, args.queries, dim=args.dim)
        described = f"{args.docs:,} clustered synthetic vectors shaped like MiniLM's, {args.queries} queries"
    dim, hits = docs.shape[1], args.hits
    types = [parse_type(spec) for spec in (args.types or (QUICK_TYPES if args.quick else DEFAULT_TYPES))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_flat(tmp / "flat", docs)
        flat_dir = faiss_io.open_index_dir(tmp / "flat")
        flat_bytes = (tmp / "flat" / faiss_io.INDEX).stat().st_size
        exact_index = faiss.IndexFlatIP(dim)
        exact_index.add(docs)
        del docs
        ours_flat = DenseSearcher([tmp / "flat"])

        def flat_sides():
            return {"faiss flat": lambda: exact_index.search(queries, hits),
                    "ours flat": lambda: ours_flat.search_arrays(queries, hits)}

        seconds, results = alternating(args.repeat, flat_sides())
        exact = results["faiss flat"][1]
        ours_recall = recall_at(exact, results["ours flat"][0])
        flat_qps, ours_flat_qps = args.queries / seconds["faiss flat"], args.queries / seconds["ours flat"]
        print(f"{described}; dimension {dim}, top {hits}, {args.threads} threads, "
              f"best of {args.repeat} (data ready in {time.perf_counter() - began:.0f} s)")
        print(f"  flat, faiss IndexFlatIP.search (reference): {flat_qps:8.1f} queries/s, {flat_bytes / 2**20:.1f} MiB")
        print(f"  flat, our DenseSearcher.search_arrays: {ours_flat_qps:8.1f} queries/s (recall {ours_recall:.4f}), "
              f"{ours_flat_qps / flat_qps:.2f}x faiss")
        header = (f"  {'type':24s} {'search':22s} {'B/vec':>6s} {'RAM':>7s} {'disk':>7s} {'build s':>7s} "
                  f"{'recall@' + str(hits):>11s} {'q/s':>8s} {'x flat':>6s} {'x ours':>6s} {'ours/faiss':>10s}")
        print(header)
        for number, (factory, settings) in enumerate(types):
            target = tmp / f"index-{number}"
            target.mkdir()
            started = time.perf_counter()
            facts = compress.build_compressed(flat_dir, target / faiss_io.INDEX, factory, seed=args.seed)
            build_seconds = time.perf_counter() - started
            (target / faiss_io.DOCID).write_bytes((tmp / "flat" / faiss_io.DOCID).read_bytes())
            faiss_io.write_meta(target, {"count": flat_dir.count, "dimension": dim,
                                         "compressed_from": {"path": str(tmp / "flat")}})
            folder = faiss_io.open_index_dir(target)
            for setting in settings:
                refine = setting.get("refine") or None
                options = {"nprobe": setting.get("nprobe"), "ef_search": setting.get("ef_search"), "refine": refine}
                index = faiss_index(folder, **options)
                ours = DenseSearcher([target], **options)
                seconds, results = alternating(args.repeat, {
                    **flat_sides(), "faiss compressed": lambda: index.search(queries, hits),
                    "ours compressed": lambda: ours.search_arrays(queries, hits)})
                row = {
                    "type": factory, "nprobe": setting.get("nprobe"), "ef_search": setting.get("ef_search"),
                    "refine": refine, "bytes_per_vector": facts["bytes_per_vector"],
                    "size_ratio": facts["bytes"] / flat_bytes,
                    "disk_ratio": (facts["bytes"] + (flat_bytes if refine else 0)) / flat_bytes,
                    "build_seconds": build_seconds,
                    "train_sample": facts["train_sample"], "recall_at_1000": recall_at(exact, results["faiss compressed"][1]),
                    "qps": args.queries / seconds["faiss compressed"], "flat_qps": args.queries / seconds["faiss flat"],
                    "qps_ratio": seconds["faiss flat"] / seconds["faiss compressed"],
                    "ours_qps": args.queries / seconds["ours compressed"],
                    "ours_flat_qps": args.queries / seconds["ours flat"],
                    "ours_qps_ratio": seconds["ours flat"] / seconds["ours compressed"],
                    "ours_vs_faiss": seconds["faiss compressed"] / seconds["ours compressed"],
                }
                rows.append(row)
                search = ", ".join(f"{k}={v:g}" for k, v in setting.items() if v) or "-"
                print(f"  {factory:24s} {search:22s} {row['bytes_per_vector']:6.0f} 1/{1 / row['size_ratio']:5.1f} "
                      f"{row['disk_ratio']:7.3f} {row['build_seconds']:7.1f} "
                      f"{row['recall_at_1000']:11.4f} {row['qps']:8.1f} {row['qps_ratio']:6.2f} "
                      f"{row['ours_qps_ratio']:6.2f} {row['ours_vs_faiss']:10.2f}", flush=True)
    summarize(args, rows, flat_qps, ours_flat_qps, described, time.perf_counter() - began)


def summarize(args, rows: list[dict], flat_qps: float, ours_flat_qps: float, described: str, seconds: float) -> None:
    """Print which settings meet the two goals (or come closest) and the JSON line; exit 1 under --strict if one
    is not met."""
    def best(candidates, key):
        return max(candidates, key=key) if candidates else None

    qualifies = {
        "size": lambda r: r["size_ratio"] <= SIZE_GOAL and r["recall_at_1000"] >= SIZE_RECALL,
        "speed": lambda r: r["qps_ratio"] >= SPEED_GOAL and r["recall_at_1000"] >= SPEED_RECALL,
        "speed_ours": lambda r: r["ours_qps_ratio"] >= SPEED_GOAL and r["recall_at_1000"] >= SPEED_RECALL,
    }
    size_best = best([r for r in rows if qualifies["size"](r)], key=lambda r: r["qps"])
    speed_best = best([r for r in rows if qualifies["speed"](r)], key=lambda r: r["recall_at_1000"])
    speed_ours = best([r for r in rows if qualifies["speed_ours"](r)], key=lambda r: r["recall_at_1000"])
    pure = [r for r in rows if not r["refine"]]

    def name(row):
        settings = ", ".join(f"{k}={row[k]:g}" for k in ("nprobe", "ef_search", "refine") if row[k])
        return f"{row['type']} ({settings})" if settings else row["type"]

    def brief(row):
        return None if row is None else {
            "type": row["type"], "nprobe": row["nprobe"], "ef_search": row["ef_search"], "refine": row["refine"],
            "recall_at_1000": round(row["recall_at_1000"], 4), "size_ratio": round(row["size_ratio"], 5),
            "disk_ratio": round(row["disk_ratio"], 4), "qps_ratio": round(row["qps_ratio"], 2),
            "ours_qps_ratio": round(row["ours_qps_ratio"], 2), "ours_vs_faiss": round(row["ours_vs_faiss"], 2),
            "bytes_per_vector": row["bytes_per_vector"]}

    def line(row):
        return (f"{name(row)}: RAM 1/{1 / row['size_ratio']:.1f} (disk {row['disk_ratio']:.3f} of flat), recall "
                f"{row['recall_at_1000']:.4f}, {row['qps_ratio']:.2f}x faiss flat, {row['ours_qps_ratio']:.2f}x our flat")

    print(f"size goal (index in RAM <= 1/16 of flat, recall@{args.hits} >= {SIZE_RECALL}): "
          + (f"met by {line(size_best)}" if size_best else "not met"))
    small = [r for r in pure if r["size_ratio"] <= SIZE_GOAL]
    if small:
        print(f"  compressed index alone (no refine), best recall at <= 1/16: {line(best(small, lambda r: r['recall_at_1000']))}")
    print(f"speed goal (>= {SPEED_GOAL:g}x faiss flat queries/s, recall >= {SPEED_RECALL}): "
          + (f"met by {line(speed_best)}" if speed_best else "not met"))
    accurate = [r for r in rows if r["recall_at_1000"] >= SPEED_RECALL]
    if accurate and not speed_best:
        print(f"  fastest at recall >= {SPEED_RECALL}: {line(best(accurate, lambda r: r['qps_ratio']))}")
    print(f"  ours against ours (DenseSearcher, compressed vs flat), >= {SPEED_GOAL:g}x at recall >= {SPEED_RECALL}: "
          + (f"met by {line(speed_ours)}" if speed_ours else "not met"))
    slowest = min(rows, key=lambda r: r["ours_vs_faiss"]) if rows else None
    if slowest:
        print(f"ours against raw faiss on the same index (goal >= 0.9): flat {ours_flat_qps / flat_qps:.2f}, "
              f"lowest compressed {slowest['ours_vs_faiss']:.2f} ({name(slowest)})")
    recommended = size_best or best([r for r in rows if r["size_ratio"] <= SIZE_GOAL], lambda r: r["recall_at_1000"]) \
        or best(rows, lambda r: r["recall_at_1000"])
    print(json.dumps({
        "bench": "dense_compressed", "source": args.source, "docs": args.docs, "queries": args.queries,
        "hits": args.hits, "dim": args.dim if args.source == "clustered" else 384, "threads": args.threads,
        "flat_qps": round(flat_qps, 1), "ours_flat_qps": round(ours_flat_qps, 1),
        "flat_ours_vs_faiss": round(ours_flat_qps / flat_qps, 3),
        "min_ours_vs_faiss": round(slowest["ours_vs_faiss"], 3) if slowest else None,
        "loadavg": os.getloadavg()[0], **brief(recommended),
        "goals": {"size": brief(size_best), "speed": brief(speed_best), "speed_ours_vs_ours": brief(speed_ours)},
        "seconds": round(seconds, 1),
        "rows": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }))
    sys.exit(1 if args.strict and not (size_best and speed_best) else 0)


if __name__ == "__main__":
    main()
