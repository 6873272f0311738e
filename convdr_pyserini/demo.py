"""`python -m convdr_pyserini.demo` (what `make demo` runs): the whole ConvDR pipeline on `convdr/cast20/mini`.

1. BM25 (Lucene) and MiniLM dense indexes of the 1,426 real CAsT passages of `convdr/cast20/mini`;
2. ConvDR-KD (no_res input, MiniLM teacher and student initialisation), 5-fold cross-validation by topic;
3. runs: BM25 raw/manual/automatic, dense raw/manual/zero-shot no_res, ConvDR (--cv), RRF(BM25 automatic, ConvDR);
4. the comparison table (NDCG@3, RR(rel=2), R@100; significance against dense raw);
5. `evaluation/cast20-mini.md` and the NDCG@3-by-turn plot `evaluation/cast20-mini-by-turn.png`.

Every step calls a command's `main([...])` in-process and is skipped when its output already exists, so a
rerun only re-evaluates. Outputs go under `--workdir` (default: the current directory).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._cli import atomic_output, cli_main
from .errors import UserError

TOPICS = "convdr/cast20/mini"
MEASURES = "nDCG@3 RR(rel=2) R@100"
BASELINE = "dense raw"
HITS = "100"
# ConvDR-KD on 216 queries with MiniLM: see the README (training section) for how these were chosen
EPOCHS = 3
LR = 1e-4
SEED = 42
# the runs in the by-turn plot, with short legend labels
PLOTTED = {"BM25 automatic": "BM25 auto", "dense raw": "dense raw", "dense manual": "dense manual",
           "dense no_res (zero-shot)": "zero-shot", "ConvDR-KD no_res (5-fold CV)": "ConvDR-KD",
           "RRF(BM25 automatic, ConvDR)": "RRF"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convdr_pyserini.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="folder for indexes/, encoders/, runs/, evaluation/ (default .)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"ConvDR-KD epochs per fold (default {EPOCHS})")
    parser.add_argument("--lr", type=float, default=LR, help=f"ConvDR-KD learning rate (default {LR:g})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"training seed (default {SEED})")
    return parser


def _call(step: str, main, argv: list[str]) -> None:
    print(f"\n== {step}: python -m {main.__module__.removesuffix('.__main__')} {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise UserError(f"demo step {step!r} failed with exit code {code}")


def _runs(work: Path) -> dict[str, tuple]:
    """{display name: (run path, search arguments)} in table order."""
    lucene, dense = str(work / "indexes/cast20-mini.lucene"), str(work / "indexes/cast20-mini.minilm")
    convdr = str(work / "encoders/convdr-kd-cast20-mini")
    run = lambda name: work / "runs" / f"cast20-mini.{name}.trec"  # noqa: E731
    common = ["--topics", TOPICS, "--hits", HITS]
    specs = {
        "BM25 raw": (run("bm25-raw"), [*common, "--bm25", "--query", "raw", "--index", lucene]),
        "BM25 manual": (run("bm25-manual"), [*common, "--bm25", "--query", "manual", "--index", lucene]),
        "BM25 automatic": (run("bm25-automatic"), [*common, "--bm25", "--query", "automatic", "--index", lucene]),
        "dense raw": (run("minilm-raw"), [*common, "--encoder", "minilm", "--query", "raw", "--index", dense]),
        "dense manual": (run("minilm-manual"), [*common, "--encoder", "minilm", "--query", "manual", "--index", dense]),
        "dense no_res (zero-shot)": (run("minilm-no_res"),
                                     [*common, "--encoder", "minilm", "--query", "no_res", "--index", dense]),
        "ConvDR-KD no_res (5-fold CV)": (run("convdr-kd-no_res"),
                                         [*common, "--cv", convdr, "--query", "no_res", "--index", dense]),
    }
    specs["RRF(BM25 automatic, ConvDR)"] = (run("rrf-bm25-automatic-convdr"), [
        "--fusion", "rrf", "--topics", TOPICS, "--hits", HITS, "--runs",
        str(specs["BM25 automatic"][0]), str(specs["ConvDR-KD no_res (5-fold CV)"][0])])
    return specs


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Run the pipeline; print the dataset summary first and the comparison table last."""
    from .datasets.__main__ import format_summary, summarize

    started = time.time()
    work = Path(args.workdir)
    print(format_summary(summarize(TOPICS)), flush=True)
    timings = {}

    def step(name: str, output: Path, module_main, argv: list[str]) -> None:
        if output.exists():
            print(f"\n== {name}: reusing {output}", flush=True)
            return
        begun = time.time()
        _call(name, module_main, argv)
        timings[name] = time.time() - begun

    from .index.__main__ import main as index_main
    from .search.__main__ import main as search_main
    from .train.__main__ import main as train_main

    lucene, dense = work / "indexes/cast20-mini.lucene", work / "indexes/cast20-mini.minilm"
    step("BM25 index", lucene, index_main, ["lucene", "--collection", TOPICS, "--output", str(lucene)])
    step("MiniLM dense index", dense, index_main, ["dense", "--collection", TOPICS, "--encoder", "minilm",
                                                    "--output", str(dense)])
    convdr = work / "encoders/convdr-kd-cast20-mini"
    step("ConvDR-KD training (5-fold CV)", convdr, train_main, [
        "--topics", TOPICS, "--teacher", "minilm", "--query", "no_res", "--loss", "kd", "--epochs", str(args.epochs),
        "--lr", f"{args.lr:g}", "--batch-size", "4", "--cv", "5", "--seed", str(args.seed), "--output", str(convdr)])
    runs = _runs(work)
    for name, (path, argv) in runs.items():
        step(f"search: {name}", path, search_main, [*argv, "--output", str(path)])
    table = evaluate(work, {name: str(path) for name, (path, _) in runs.items()})
    print("\n" + table)
    seconds = time.time() - started
    built = ", ".join(f"{name} {value:.0f} s" for name, value in timings.items()) or "everything reused"
    print(f"demo finished in {seconds:.0f} s ({built})")
    return 0


def evaluate(work: Path, runs: dict[str, str]) -> str:
    """Score the runs, write the Markdown report and the by-turn plot; returns the printed table."""
    from .evaluate import TurnTable, by_turn, evaluate_runs, plot_by_turn, render, write_markdown_table

    result = evaluate_runs(TOPICS, runs, MEASURES, baseline=BASELINE)
    report = work / "evaluation/cast20-mini.md"
    plot = work / "evaluation/cast20-mini-by-turn.png"
    turns = by_turn(result)
    plotted = TurnTable(turns.turns, turns.queries,
                        {label: turns.means[name] for name, label in PLOTTED.items() if name in turns.means})
    plot_by_turn(plotted, plot, title="convdr/cast20/mini: NDCG@3 by turn", measures=["nDCG@3"])
    with atomic_output(report) as handle:
        handle.write("# convdr/cast20/mini: BM25, MiniLM dense and ConvDR-KD (5-fold CV)\n\n"
                     "Produced by `make demo` (`python -m convdr_pyserini.demo`). Significance marks are "
                     f"against `{BASELINE}`.\n\n")
        handle.write(write_markdown_table(result))
        handle.write(f"\nNDCG@3 by turn depth: ![by turn]({plot.name})\n")
    print(f"wrote {report} and {plot}")
    return render(result)


if __name__ == "__main__":
    raise SystemExit(main())
