"""The run explorer's page: build time, size, and time to the first rendered view in headless Chromium.

The page is the demo's (`make demo`: BM25 automatic, dense raw, dense manual and ConvDR-KD on convdr/cast20/mini,
baseline dense raw, the mini collection's texts); without the demo's runs, the committed runs of the reranking
matrix stand in (said in the output). Timed:

- build, cold: `python -m convdr_pyserini.compare` as a user runs it, in a fresh process (imports included: torch
  and the ConvDR model for the `no_res` input its encoder saw);
- build, warm: `cp.compare(...)` and writing the page, against the reference `cp.evaluate(...)` of the same runs and
  measures (the scoring the page is built on), best of `--repeat` rounds calling each in turn: the ratio says
  what the page costs on top of evaluating;
- first view: the page opened from file:// in headless Chromium (selenium, Debian's chromedriver, network off),
  `--repeat` times in a fresh tab: the time from navigation start to the end of the page's first drawing (the
  script's `performance.now()`), and to the first contentful paint; best and median.

Goals (issue 34): page <= 8 MB, built in <= 10 s, first view <= 1 s. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dense_search import alternating  # noqa: E402  (the one alternating timer of bench/)

TOPICS = "convdr/cast20/mini"
MEASURES = "nDCG@3 RR(rel=2) R@100"
DEMO = {"BM25 automatic": "runs/cast20-mini.bm25-automatic.trec", "dense raw": "runs/cast20-mini.minilm-raw.trec",
        "dense manual": "runs/cast20-mini.minilm-manual.trec", "ConvDR-KD": "runs/cast20-mini.convdr-kd-no_res.trec"}
COMMITTED = {"BM25 automatic": "evaluation/runs/cast20-mini-rerank/bm25-automatic.trec",
             "dense raw": "evaluation/runs/cast20-mini-rerank/convdr-teacher-raw.seed-1.trec",
             "dense manual": "evaluation/runs/cast20-mini-rerank/convdr-teacher-manual.seed-1.trec",
             "ConvDR-KD": "evaluation/runs/cast20-mini-rerank/convdr-kd.trec"}
GOALS = {"page_mb": 8.0, "build_s": 10.0, "first_view_s": 1.0}


def first_views(page: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds to the end of the first drawing and to the first contentful paint, `repeat` fresh loads."""
    from convdr_pyserini.compare.browser import headless_driver

    drawn, painted = [], []
    driver = headless_driver()
    try:
        for _ in range(repeat + 1):  # the first load warms the browser up and is not counted
            driver.get("about:blank")
            driver.get(page.resolve().as_uri())
            body = driver.find_element("css selector", "body[data-ready]")
            drawn.append(float(body.get_attribute("data-rendered-ms")) / 1000)
            paint = driver.execute_script(
                "var e = performance.getEntriesByName('first-contentful-paint'); return e.length ? e[0].startTime : null")
            painted.append(None if paint is None else paint / 1000)
    finally:
        driver.quit()
    return drawn[1:], [p for p in painted[1:] if p is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import convdr_pyserini as cp

    demo = all(Path(path).is_file() for path in DEMO.values())
    runs = DEMO if demo else COMMITTED
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "cast20-mini.html"

        def build():
            cp.compare(TOPICS, runs, qrels=TOPICS, texts=TOPICS, baseline="dense raw",
                       measures=MEASURES).write(page, overwrite=True)

        def evaluate():
            cp.evaluate(TOPICS, runs, MEASURES, baseline="dense raw")

        command = [sys.executable, "-m", "convdr_pyserini.compare", "--topics", TOPICS, "--qrels", TOPICS, "--texts",
                   TOPICS, *(f"--run={name}={path}" for name, path in runs.items()), "--baseline", "dense raw",
                   "--measures", MEASURES, "--output", str(Path(tmp) / "cold.html"), "-q"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        cold = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cold_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        best = alternating(args.repeat, {"build": build, "evaluate": evaluate})
        size = page.stat().st_size
        drawn, painted = first_views(page, args.repeat)
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else []
    ratio = best["build"] / best["evaluate"]
    source = "the demo's runs (make demo)" if demo else "the committed runs of the reranking matrix (no make demo here)"
    print(f"page of {len(runs)} runs on {TOPICS} from {source}; {os.cpu_count()} CPUs; load average {' '.join(load)}")
    print(f"  page size      {size / 1e6:8.2f} MB   (goal <= {GOALS['page_mb']:g} MB)")
    print(f"  build, cold    {cold:8.2f} s    (goal <= {GOALS['build_s']:g} s; the command in a fresh process; "
          f"{cold_cpu:.2f} s of CPU time)")
    print(f"  build, warm    {best['build']:8.2f} s    (best of {args.repeat}, in one process)")
    print(f"  evaluate alone {best['evaluate']:8.2f} s    (the reference: page build / evaluate = {ratio:.2f})")
    print(f"  first view     {min(drawn):8.3f} s    best, median {statistics.median(drawn):.3f} s "
          f"(goal <= {GOALS['first_view_s']:g} s; end of the first drawing, {len(drawn)} loads)")
    if painted:
        print(f"  first paint    {min(painted):8.3f} s    best, median {statistics.median(painted):.3f} s")
    print(json.dumps({"bench": "compare", "runs": "demo" if demo else "committed", "cpus": os.cpu_count(),
                      "loadavg": load, "page_bytes": size, "build_seconds_cold": round(cold, 3),
                      "build_cpu_seconds_cold": round(cold_cpu, 3),
                      "build_seconds": round(best["build"], 3),
                      "evaluate_seconds": round(best["evaluate"], 3), "ratio_build_to_evaluate": round(ratio, 3),
                      "first_view_seconds": {"best": round(min(drawn), 4), "median": round(statistics.median(drawn), 4)},
                      "first_paint_seconds": None if not painted else
                      {"best": round(min(painted), 4), "median": round(statistics.median(painted), 4)},
                      "goals": GOALS,
                      "goals_met": {"page_mb": size / 1e6 <= GOALS["page_mb"], "build_s": cold <= GOALS["build_s"],
                                    "first_view_s": statistics.median(drawn) <= GOALS["first_view_s"]}}))


if __name__ == "__main__":
    main()
