"""Fold audit: the cross-validation fold maps of the original ConvDR code against this package's, topic by topic.

    python bench/fidelity/fold_audit.py [--convdr ../shared/reference/thunlp-ConvDR] [--markdown FILE]

ConvDR builds its CAsT folds in two places. The preprocessing scripts (`data/preprocess_cast19.py`,
`preprocess_cast20.py`) write the evaluation and KD files `eval_topics.jsonl.K` by topic; `tests/test_released_folds.py`
runs them as an oracle and checks that they equal `convdr_pyserini.folds` for every fold of both years. The
ranking-data generator (`data/gen_ranking_data.py`) writes the multi-task training files `*.rank.jsonl.K` from a
hand-written query -> fold table, `qid_to_fold_test`, which this script reads from the checkout's source. For every
topic it prints the three folds, the judged turns (official qrels) that a model is evaluated on after training on
them, and whether `convdr_pyserini.folds`' named map `convdr-ranking-data` is the original's. The checkout is verified
first: a `git` checkout must have no local changes, else its files must match the sha256 list beside it
(`<checkout>.sha256`). The last line printed is one JSON object; the exit status is 1 when our named map differs from
the original's or the checkout is not the original.
"""
from __future__ import annotations

import argparse
import ast
import collections
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKOUT = ROOT.parent / "shared" / "reference" / "thunlp-ConvDR"


def verify_checkout(checkout: Path) -> str:
    """The checkout's identity (its commit, or the sha256 list it matches); SystemExit if it was changed."""
    if (checkout / ".git").exists():
        changes = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain"], capture_output=True,
                                 text=True, check=True).stdout
        if changes.strip():
            raise SystemExit(f"error: {checkout} has local changes:\n{changes}")
        return "git " + subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, check=True).stdout.strip()
    listing = checkout.with_name(checkout.name + ".sha256")
    if not listing.is_file():
        raise SystemExit(f"error: {checkout} is neither a git checkout nor beside a sha256 list ({listing})")
    for line in listing.read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        path = checkout.parent / name.lstrip("*")
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise SystemExit(f"error: {path} does not match {listing}")
    return f"files matching {listing.name}"


def ranking_data_folds(checkout: Path) -> dict[str, int]:
    """`qid_to_fold_test` of the original `data/gen_ranking_data.py`, read from its source."""
    tree = ast.parse((checkout / "data" / "gen_ranking_data.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "qid_to_fold_test" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("error: gen_ranking_data.py defines no qid_to_fold_test")


def audit(checkout: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from convdr_pyserini import datasets
    from convdr_pyserini.folds import folds, seen_held_out_topics, topic_file_order, training_folds

    identity = verify_checkout(checkout)
    by_query = ranking_data_folds(checkout)
    by_topic: dict[int, set[int]] = collections.defaultdict(set)
    for query_id, fold in by_query.items():
        by_topic[int(query_id.split("_")[0])].add(fold)
    split = sorted(topic for topic, found in by_topic.items() if len(found) > 1)
    original = {topic: min(found) for topic, found in by_topic.items()}
    judged = {qrel.query_id for qrel in datasets.load("convdr/cast19").qrels_iter()}
    judged_turns = collections.Counter(int(query_id.split("_")[0]) for query_id in judged)
    evaluation = folds("convdr/cast19", topic_file_order("convdr/cast19"))
    ours = training_folds("convdr-ranking-data", "convdr/cast19", evaluation)
    rows = [{"topic": topic, "evaluation_fold": evaluation[topic], "ranking_data_fold": original.get(topic),
             "named_map_fold": ours[topic], "judged_turns": judged_turns[topic]} for topic in sorted(evaluation)]
    seen = seen_held_out_topics(evaluation, {topic: fold for topic, fold in original.items()})
    cast20_queries = sorted(query_id for query_id in by_query if int(query_id.split("_")[0]) >= 81)
    return {
        "checkout": str(checkout), "identity": identity, "queries_in_ranking_map": len(by_query),
        "topics_split_across_folds": split,
        "differing_topics": [row for row in rows if row["evaluation_fold"] != row["ranking_data_fold"]],
        "seen_held_out": {str(fold): topics for fold, topics in seen.items()},
        "seen_held_out_judged_turns": sum(judged_turns[t] for topics in seen.values() for t in topics),
        "judged_turns": sum(judged_turns.values()),
        "cast20_queries_in_ranking_map": len(cast20_queries),
        "named_map_is_original": all(row["named_map_fold"] == row["ranking_data_fold"] for row in rows),
    }


def markdown(result: dict) -> str:
    lines = ["| topic | evaluation / KD fold (`eval_topics.jsonl.K`) | ranking-data fold (`qid_to_fold_test`) | "
             "judged turns |", "|---|---|---|---|"]
    lines += [f"| {row['topic']} | {row['evaluation_fold']} | {row['ranking_data_fold']} | {row['judged_turns']} |"
              for row in result["differing_topics"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--convdr", type=Path, default=DEFAULT_CHECKOUT, help="the original ConvDR code")
    parser.add_argument("--markdown", type=Path, help="also write the table of differing topics to this file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = audit(args.convdr.resolve())
    table = markdown(result)
    print(table, end="")
    for fold, topics in result["seen_held_out"].items():
        print(f"fold {fold}'s model trains on its held-out topics {', '.join(map(str, topics))} in ConvDR's "
              "multi-task training")
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    print(json.dumps(result, sort_keys=True))
    return 0 if result["named_map_is_original"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
