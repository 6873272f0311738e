"""`python -m convdr_pyserini.demo` (what `make demo` runs): the whole ConvDR pipeline on `convdr/cast20/mini`.

1. BM25 (Lucene) and MiniLM dense indexes of the 1,426 real CAsT passages of `convdr/cast20/mini`;
2. ConvDR-KD (no_res input, MiniLM teacher and student initialisation), 5-fold cross-validation by topic;
3. runs: BM25 raw/manual/automatic, dense raw/manual/zero-shot no_res, ConvDR (per-fold models), RRF(BM25
   automatic, ConvDR);
4. the comparison table (NDCG@3, RR(rel=2), R@100; significance against dense raw);
5. `evaluation/cast20-mini.md` and the NDCG@3-by-turn plot `evaluation/cast20-mini-by-turn.png`;
6. the run explorer `evaluation/cast20-mini.html` (BM25 automatic, dense raw, dense manual, ConvDR-KD against dense
   raw, with the mini collection's texts) and its screenshot `evaluation/cast20-mini-explorer.png` (headless
   Chromium; skipped, saying so, where there is none).

Every step calls the library and is skipped when its output already exists, so a rerun only re-evaluates
(the report and plot are regenerated). Outputs go under `--workdir` (default: the current directory).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ._cli import ArgumentParser, cli_main, positive_float, positive_int

logger = logging.getLogger("convdr_pyserini.demo")
TOPICS = "convdr/cast20/mini"
MEASURES = "nDCG@3 RR(rel=2) R@100"
BASELINE = "dense raw"
HITS = 100
# ConvDR-KD on 216 queries with MiniLM: see docs/training.md for how these were chosen
EPOCHS = 3
LR = 1e-4
SEED = 42
# the runs in the by-turn plot, with short legend labels
PLOTTED = {"BM25 automatic": "BM25 auto", "dense raw": "dense raw", "dense manual": "dense manual",
           "dense no_res (zero-shot)": "zero-shot", "ConvDR-KD no_res (5-fold CV)": "ConvDR-KD",
           "RRF(BM25 automatic, ConvDR)": "RRF"}
# the runs on the explorer page, with their names there
EXPLORED = {"BM25 automatic": "BM25 automatic", "dense raw": "dense raw", "dense manual": "dense manual",
            "ConvDR-KD no_res (5-fold CV)": "ConvDR-KD"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m convdr_pyserini.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="folder for indexes/, encoders/, runs/, evaluation/ (default .)")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS, help=f"ConvDR-KD epochs per fold (default {EPOCHS})")
    parser.add_argument("--lr", type=positive_float, default=LR, help=f"ConvDR-KD learning rate (default {LR:g})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"training seed (default {SEED})")
    return parser


def _searches(work: Path) -> dict:
    """{display name: (run path, SearchSpec)} in table order."""
    from .search import SearchSpec

    lucene, dense = str(work / "indexes/cast20-mini.lucene"), str(work / "indexes/cast20-mini.minilm")
    run = lambda name: work / "runs" / f"cast20-mini.{name}.trec"  # noqa: E731
    common = {"topics": TOPICS, "hits": HITS}
    bm25 = lambda query: SearchSpec(retriever="bm25", query=query, index=[lucene], **common)  # noqa: E731
    minilm = lambda query: SearchSpec(retriever="dense", encoder="minilm", query=query, index=[dense], **common)  # noqa: E731
    specs = {
        "BM25 raw": (run("bm25-raw"), bm25("raw")),
        "BM25 manual": (run("bm25-manual"), bm25("manual")),
        "BM25 automatic": (run("bm25-automatic"), bm25("automatic")),
        "dense raw": (run("minilm-raw"), minilm("raw")),
        "dense manual": (run("minilm-manual"), minilm("manual")),
        "dense no_res (zero-shot)": (run("minilm-no_res"), minilm("no_res")),
        "ConvDR-KD no_res (5-fold CV)": (run("convdr-kd-no_res"), SearchSpec(
            retriever="convdr", cv=str(work / "encoders/convdr-kd-cast20-mini"), query="no_res", index=[dense],
            **common)),
    }
    specs["RRF(BM25 automatic, ConvDR)"] = (run("rrf-bm25-automatic-convdr"), SearchSpec(
        retriever="rrf", runs=[str(specs["BM25 automatic"][0]), str(specs["ConvDR-KD no_res (5-fold CV)"][0])],
        **common))
    return specs


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Run the pipeline; print the dataset summary first and the comparison table last."""
    from .datasets.__main__ import format_summary, summarize
    from .index import DenseIndexConfig, build_dense_index, build_lucene_index
    from .train import TrainConfig, train

    started = time.time()
    work = Path(args.workdir)
    print(format_summary(summarize(TOPICS)), flush=True)
    timings = {}

    def step(name: str, output: Path, make) -> None:
        if output.exists():
            print(f"\n== {name}: reusing {output}", flush=True)
            return
        print(f"\n== {name}: {output}", flush=True)
        begun = time.time()
        make()
        timings[name] = time.time() - begun

    lucene, dense = work / "indexes/cast20-mini.lucene", work / "indexes/cast20-mini.minilm"
    step("BM25 index", lucene, lambda: build_lucene_index(TOPICS, lucene))
    step("MiniLM dense index", dense, lambda: build_dense_index(DenseIndexConfig(TOPICS, "minilm", dense)))
    convdr = work / "encoders/convdr-kd-cast20-mini"
    step("ConvDR-KD training (5-fold CV)", convdr, lambda: train(TrainConfig(
        topics=TOPICS, output=str(convdr), teacher="minilm", query="no_res", loss="kd", epochs=args.epochs,
        lr=args.lr, batch_size=4, cv=5, seed=args.seed)))
    searches = _searches(work)
    for name, (path, spec) in searches.items():
        step(f"search: {name}", path, lambda path=path, spec=spec: spec.execute(path))
    table = evaluate(work, {name: str(path) for name, (path, _) in searches.items()})
    explore(work, {EXPLORED[name]: str(path) for name, (path, _) in searches.items() if name in EXPLORED})
    print("\n" + table)
    seconds = time.time() - started
    built = ", ".join(f"{name} {value:.0f} s" for name, value in timings.items()) or "everything reused"
    print(f"demo finished in {seconds:.0f} s ({built})")
    return 0


def evaluate(work: Path, runs: dict[str, str]) -> str:
    """Score the runs, write the Markdown report and the by-turn plot (replacing older ones); returns the table."""
    from .evaluate import TurnTable, evaluate, plot_by_turn
    from .io.atomic import write_text

    result = evaluate(TOPICS, runs, MEASURES, baseline=BASELINE)
    report = work / "evaluation/cast20-mini.md"
    plot = work / "evaluation/cast20-mini-by-turn.png"
    turns = result.by_turn()
    plotted = TurnTable(turns.turns, turns.queries,
                        {label: turns.means[name] for name, label in PLOTTED.items() if name in turns.means})
    plot_by_turn(plotted, plot, title="convdr/cast20/mini: NDCG@3 by turn", measures=["nDCG@3"],
                 inputs=list(runs.values()), overwrite=True)
    write_text(report, "# convdr/cast20/mini: BM25, MiniLM dense and ConvDR-KD (5-fold CV)\n\n"
               "Produced by `make demo` (`python -m convdr_pyserini.demo`). Significance marks are "
               f"against `{BASELINE}`.\n\n" + result.markdown() + f"\nNDCG@3 by turn depth: ![by turn]({plot.name})\n",
               inputs=list(runs.values()), overwrite=True)
    print(f"wrote {report} and {plot}")
    return result.table()


def explore(work: Path, runs: dict[str, str]) -> None:
    """Write the run explorer page and its screenshot (replacing older ones)."""
    from .compare import compare
    from .compare.browser import find_chromium, screenshot

    page, png = work / "evaluation/cast20-mini.html", work / "evaluation/cast20-mini-explorer.png"
    started = time.time()
    # what `python -m convdr_pyserini.compare` writes with these runs (the README shows the command)
    compare(TOPICS, runs, qrels=TOPICS, texts=TOPICS, baseline=BASELINE, measures=MEASURES).write(page, overwrite=True)
    print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB, {time.time() - started:.1f} s)")
    if find_chromium() is None:
        print(f"skipped {png}: no chromium here to take the screenshot (apt-get install chromium)")
        return
    screenshot(page, png)
    print(f"wrote {png}")


if __name__ == "__main__":
    raise SystemExit(main())
