"""`python -m convdr_pyserini.index {lucene,dense,merge,compress} ...`: build Lucene (BM25) and dense (faiss) indexes."""
from __future__ import annotations

import argparse
import functools

from .._cli import ArgumentParser, add_ray_options, cli_main, non_negative_int, positive_int, ray_cluster
from ..errors import UserError

INDEX_TYPE_HELP = ("flat (default: exact inner product) or a faiss factory string, e.g. HNSW32, IVF4096,SQ8, "
                   "OPQ96,IVF65536,PQ96 (see docs/indexing.md for sizes and recall)")


def _shard(text: str) -> tuple[int, int]:
    try:
        shard, shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if shards < 1 or not 0 <= shard < shards:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= I < N")
    return shard, shards


def _add_index_type(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index type")
    kind = group.add_mutually_exclusive_group()
    kind.add_argument("--index-type", default="flat", metavar="FACTORY", help=INDEX_TYPE_HELP)
    kind.add_argument("--hnsw", nargs=2, type=positive_int, metavar=("M", "EF"), default=None,
                      help="an HNSW index with M links and efConstruction EF (same as --index-type HNSW<M>)")
    group.add_argument("--train-sample", type=positive_int, default=None, metavar="N",
                       help="train the index type on a seeded sample of N stored vectors (default: 40 per IVF list, within "
                            "65,536 and 4,194,304, at most the index)")
    group.add_argument("--seed", type=non_negative_int, default=0, help="seed of the training sample (default 0)")


def _index_type(args: argparse.Namespace) -> tuple[str, int | None]:
    if args.hnsw:
        return f"HNSW{args.hnsw[0]}", args.hnsw[1]
    return args.index_type, None


def build_parser() -> argparse.ArgumentParser:
    """The `index` command with one subcommand per index kind."""
    parser = ArgumentParser(
        prog="python -m convdr_pyserini.index",
        description="Build a Lucene index for BM25 or a dense faiss index for ConvDR-style retrieval.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{lucene,dense,merge,compress}")

    lucene = commands.add_parser("lucene", help="build a Lucene index (BM25, RM3) with Anserini",
                                 description="Index a collection with Anserini, storing positions, document "
                                             "vectors and raw text.")
    lucene.add_argument("--collection", required=True,
                        help="ir_datasets id (e.g. convdr/cast20/mini) or a JsonCollection folder of *.jsonl files")
    lucene.add_argument("--output", required=True, help="index folder to create, e.g. indexes/cast20-mini.lucene")
    lucene.add_argument("--threads", type=positive_int, default=None, help="indexing threads (default: min(4, CPUs))")
    lucene.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")

    dense = commands.add_parser("dense", help="encode a collection into a faiss index (Pyserini layout)",
                                description="Encode a collection into a faiss index folder (Pyserini layout: index, "
                                            "docid, plus meta.json). Killed builds resume when rerun.")
    dense.add_argument("--collection", required=True,
                       help="ir_datasets id (e.g. convdr/cast20/mini) or JsonCollection folder")
    dense.add_argument("--encoder", required=True, help="encoder card name, card file, model folder or checkpoint")
    dense.add_argument("--output", required=True, help="index folder to create, e.g. indexes/cast20-mini.minilm")
    dense.add_argument("--batch-size", type=positive_int, default=64, help="passages per forward pass (default 64)")
    dense.add_argument("--max-length", type=positive_int, default=None, help="passage token limit (default: the card's)")
    dense.add_argument("--chunk-size", type=positive_int, default=4096,
                       help="passages per length-sorted, checkpointed chunk; also the shard unit (default 4096)")
    dense.add_argument("--fp16", action="store_true", help="half-precision encoding (CUDA only); vectors stay float32")
    dense.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                       help="build piece I of N (0-based) into OUTPUT/shard-I-of-N; join with `index merge`")
    dense.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu)")
    dense.add_argument("--overwrite", action="store_true",
                       help="replace an existing index at OUTPUT, or discard a partial build made with other settings")
    _add_index_type(dense)
    ray = add_ray_options(dense, "the encoding (one piece per worker, merged into OUTPUT, on a filesystem every "
                                 "worker sees)")
    ray.add_argument("--ray-pieces", dest="merge", action="store_false",
                     help="leave OUTPUT as the pieces (OUTPUT/shard-I-of-N, as --shard writes them) instead of merging "
                          "them: what `search --ray` spreads over its workers")

    merge = commands.add_parser("merge", help="join the shard pieces of a dense build into one index",
                                description="Join the pieces written by `index dense --shard I/N` (or torchrun) into "
                                            "one faiss index folder.")
    merge.add_argument("--input", nargs="+", required=True,
                       help="piece folders, or the folder holding the shard-I-of-N pieces")
    merge.add_argument("--output", required=True, help="merged index folder to create")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")
    _add_index_type(merge)

    compress = commands.add_parser("compress", help="convert a flat dense index to a compressed faiss index type",
                                   description="Convert a flat index (from `index dense`) to another faiss index "
                                               "type, streaming its vectors, without re-encoding.")
    compress.add_argument("--input", required=True, help="flat dense index folder")
    compress.add_argument("--output", required=True, help="index folder to create")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing index at OUTPUT")
    compress.add_argument("--nprobe", type=positive_int, default=None,
                          help="IVF lists a search visits when it gives no --nprobe, stored in the index (default: "
                               "faiss's, 1); docs/full-scale.md uses a quarter of the lists")
    _add_index_type(compress)
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Build the index the arguments describe."""
    from . import DenseIndexConfig, build_dense_index, build_lucene_index, compress_index, merge_shards

    command = args.command_line
    if args.command == "lucene":
        build_lucene_index(args.collection, args.output, args.threads, args.overwrite, command)
        return 0
    index_type, ef_construction = _index_type(args)
    if args.command == "dense":
        cluster = ray_cluster(args)
        build = build_dense_index
        if cluster is not None:
            from .distributed import build_dense_index_on_ray

            build = functools.partial(build_dense_index_on_ray, cluster=cluster, merge=args.merge)
        elif not args.merge:
            raise UserError("--ray-pieces needs --ray")
        build(DenseIndexConfig(
            collection=args.collection, encoder=args.encoder, output=args.output, batch_size=args.batch_size,
            max_length=args.max_length, chunk_size=args.chunk_size, fp16=args.fp16, shard=args.shard,
            device=args.device, index_type=index_type, ef_construction=ef_construction,
            train_sample=args.train_sample, seed=args.seed, overwrite=args.overwrite, command=command))
    elif args.command == "merge":
        merge_shards(args.input, args.output, index_type, ef_construction, args.train_sample, args.seed,
                     args.overwrite, command)
    else:
        if index_type == "flat":
            raise UserError("index compress needs --index-type FACTORY (or --hnsw M EF)")
        compress_index(args.input, args.output, index_type, ef_construction, args.train_sample, args.seed,
                       args.overwrite, command, nprobe=args.nprobe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
