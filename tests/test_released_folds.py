"""ConvDR's released fold models, scored fairly: the topics each card says its fold held out are the ones the original
code (../shared/reference/thunlp-ConvDR, run as an oracle) puts into that fold, and search scores only those topics
unless told otherwise."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import miniature
from convdr_pyserini.encode import resolve_card
from convdr_pyserini.folds import folds, topic_file_order

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "thunlp-ConvDR"
RELEASED = {"convdr-kd-cast19": ("cast19", "cast-19", 1), "convdr-kd-cast20": ("cast20", "cast-20", 2)}


def original_folds(year: str, shared_data: Path, tmp_path: Path) -> dict[int, set[int]]:
    """{fold: topics} as the original `data/preprocess_<year>.py` writes them (`eval_topics.jsonl.<fold>`), run on
    the real topics with miniature collection files. `utils.util` is replaced by a module holding only `NUM_FOLD`,
    read from the original's source (the real one imports transformers 2.x)."""
    if not (REFERENCE / "data").is_dir():
        pytest.fail(f"the original ConvDR code is not at {REFERENCE} (see ../shared/reference/README.md)")
    tree = ast.parse((REFERENCE / "utils" / "util.py").read_text(encoding="utf-8"))
    num_fold = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                    and any(getattr(target, "id", None) == "NUM_FOLD" for target in node.targets))
    stub = tmp_path / "stub" / "utils"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("", encoding="utf-8")
    (stub / "util.py").write_text(f"NUM_FOLD = {num_fold!r}\n", encoding="utf-8")
    sources = miniature.write_cast_sources(tmp_path / "raw", shared_data)
    cast_dir = tmp_path / year
    cast_dir.mkdir()
    present = {line.split("\t")[0] for line in sources["msmarco"].read_text(encoding="utf-8").splitlines()}
    for path in (shared_data / year).iterdir():
        if path.is_file() and not path.name.endswith("qrels.txt"):
            (cast_dir / path.name).symlink_to(path)
    # the qrels of passages the miniature collection holds (the original asserts every judged CAR id is in it)
    qrels = next((shared_data / year).glob("20*qrels.txt"))
    kept = [line for line in qrels.read_text(encoding="utf-8").splitlines()
            if line.split()[2].startswith("MARCO_") and line.split()[2][6:] in present]
    (cast_dir / qrels.name).write_text("\n".join(kept) + "\n", encoding="utf-8")
    out_data, out_collection = tmp_path / "out-data", tmp_path / "out-collection"
    out_data.mkdir()
    out_collection.mkdir()
    script = REFERENCE / "data" / f"preprocess_{year.replace('-', '')}.py"
    done = subprocess.run(
        [sys.executable, str(script), f"--car_cbor={sources['car']}", f"--msmarco_collection={sources['msmarco']}",
         f"--duplicate_file={sources['duplicates']}", f"--cast_dir={cast_dir}/", f"--out_data_dir={out_data}",
         f"--out_collection_dir={out_collection}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "stub")}, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = {}
    for fold in range(num_fold):
        lines = (out_data / f"eval_topics.jsonl.{fold}").read_text(encoding="utf-8").splitlines()
        result[fold] = {int(json.loads(line)["topic_number"]) for line in lines}
    return result


@pytest.mark.parametrize("card_name", sorted(RELEASED))
def test_each_released_card_holds_out_the_topics_the_original_code_puts_in_its_fold(card_name, shared_data,
                                                                                      tmp_path):
    name, year, fold = RELEASED[card_name]
    original = original_folds(year, shared_data, tmp_path)
    card = resolve_card(card_name)
    trained_on, held_out = card.held_out_topics
    assert trained_on == f"convdr/{name}" and card.training["fold"] == fold
    assert set(held_out) == original[fold]
    # our fold rule, which training and ConvDR search use, is the original's for every fold
    ours = folds(f"convdr/{name}", topic_file_order(f"convdr/{name}"))
    assert {number: {t for t, f in ours.items() if f == number} for number in original} == original
    # and the original trains fold i on the other folds' files and saves it as <output_dir>-i (its released names)
    source = (REFERENCE / "drivers" / "run_convdr_train.py").read_text(encoding="utf-8")
    assert '"%s.%d" % (args.train_file, j) for j in range(NUM_FOLD)\n                if j != i' in source
    assert "output_dir = args.output_dir + '-' + str(i)" in source
    assert card.weights["url"].endswith(f"-{fold}.zip")


def test_search_with_a_released_fold_model_scores_its_held_out_topics_only(tmp_path, caplog):
    """The topics a `DenseRetriever` with such a card scores, without loading any weights."""
    import logging

    from convdr_pyserini.resolve import load_topics
    from convdr_pyserini.search.dense import DenseRetriever

    retriever = DenseRetriever.__new__(DenseRetriever)  # the topic choice needs only the card
    retriever.encoder_spec, retriever.all_topics = "convdr-kd-cast19", False
    with caplog.at_level(logging.INFO, logger="convdr_pyserini"):
        kept = retriever.scored_topics(load_topics("convdr/cast19"))
    assert {query.topic_number for query in kept} == set(range(41, 51))
    assert len(kept) == sum(1 for query in load_topics("convdr/cast19") if 41 <= query.topic_number <= 50)
    assert "fold 1 of convdr/cast19: scoring only the 10 topics it held out (41-50)" in caplog.text
    retriever.all_topics = True
    with caplog.at_level(logging.WARNING, logger="convdr_pyserini"):
        assert len(retriever.scored_topics(load_topics("convdr/cast19"))) == 479
    assert "most of these scores are on its own training topics" in caplog.text
    # another year's topics are not the ones it trained on: all are scored, silently
    assert len(retriever.scored_topics(load_topics("convdr/cast20"))) == 216
