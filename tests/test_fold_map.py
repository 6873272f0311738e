"""The original ConvDR's second fold map (its ranking data's, read by multi-task training), audited against the code
and offered as a named fold map that says which held-out topics it trains on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convdr_pyserini.errors import UserError
from convdr_pyserini.folds import folds, seen_held_out_topics, topic_file_order, training_folds
from convdr_pyserini.train import TrainConfig
from convdr_pyserini.train.__main__ import main
from test_train import tiny_model  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]


def test_the_audit_reads_the_original_ranking_data_folds_and_finds_three_moved_topics():
    done = subprocess.run([sys.executable, str(ROOT / "bench/fidelity/fold_audit.py")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["identity"].startswith(("files matching", "git "))
    assert result["queries_in_ranking_map"] == 479 and result["topics_split_across_folds"] == []
    assert [(row["topic"], row["evaluation_fold"], row["ranking_data_fold"]) for row in result["differing_topics"]] \
        == [(37, 0, 1), (40, 0, 1), (61, 3, 4)]
    assert result["seen_held_out"] == {"0": [37, 40], "3": [61]} and result["named_map_is_original"]
    assert result["cast20_queries_in_ranking_map"] == 0  # the original has no CAsT-20 ranking-data folds
    assert result["seen_held_out_judged_turns"] == 24 and result["judged_turns"] == 173
    # docs/fidelity.md quotes the table the audit prints
    table = done.stdout.split("fold 0's model")[0]
    assert table in (ROOT / "docs/fidelity.md").read_text(encoding="utf-8")


def test_named_maps_and_what_they_put_into_training():
    evaluation = folds("convdr/cast19", topic_file_order("convdr/cast19"))
    assert training_folds("convdr", "convdr/cast19", evaluation) == evaluation
    moved = training_folds("convdr-ranking-data", "convdr/cast19/judged", evaluation)
    assert {topic for topic in evaluation if moved[topic] != evaluation[topic]} == {37, 40, 61}
    assert seen_held_out_topics(evaluation, moved) == {0: [37, 40], 3: [61]}
    assert seen_held_out_topics(evaluation, evaluation) == {}
    cast20 = folds("convdr/cast20", range(81, 106))
    with pytest.raises(UserError, match="has no folds for convdr/cast20"):
        training_folds("convdr-ranking-data", "convdr/cast20", cast20)
    with pytest.raises(UserError, match="applies to cross-validation"):
        TrainConfig(topics="convdr/cast19", teacher="minilm", output="x", fold_map="convdr-ranking-data")
    with pytest.raises(UserError, match="is not one of convdr, convdr-ranking-data"):
        TrainConfig(topics="convdr/cast19", teacher="minilm", output="x", cv=5, fold_map="coted")


def test_training_with_the_ranking_data_map_trains_on_the_moved_topics_and_says_so(tmp_path, tiny_model, caplog):  # noqa: F811
    """Two topics per fold (the moved ones among them), so that it stays fast; folds are those of the whole year."""
    import logging

    from convdr_pyserini.train import train

    output = tmp_path / "model"
    config = TrainConfig(topics="convdr/cast19", teacher=str(tiny_model), epochs=1, lr=1e-3, cv=5,
                         fold_map="convdr-ranking-data", topic_numbers=[37, 40, 41, 42, 51, 52, 61, 62, 71, 72],
                         output=str(output))
    with caplog.at_level(logging.WARNING, logger="convdr_pyserini"):
        train(config)
    assert [record.getMessage() for record in caplog.records if "fold map" in record.getMessage()] == [
        "fold map convdr-ranking-data puts held-out topics into training: fold 0's model trains on 37, 40; fold 3's "
        "model trains on 61; their scores are not held out (as in ConvDR's own multi-task CAsT-19 training)"]
    cards = {fold: yaml.safe_load((output / f"fold-{fold}" / "encoder.yaml").read_text())["training"]
             for fold in range(5)}
    assert cards[0]["heldout_topics"] == [37, 40] and {37, 40} <= set(cards[0]["train_topics"])
    assert cards[1]["heldout_topics"] == [41, 42] and not {37, 40, 41, 42} & set(cards[1]["train_topics"])
    assert 61 in cards[3]["train_topics"] and cards[3]["heldout_topics"] == [61, 62]
    assert 61 not in cards[4]["train_topics"] and 62 in cards[4]["train_topics"]
    assert all(card["fold_map"] == "convdr-ranking-data" for card in cards.values())
    # the default map trains no model on a topic it is evaluated on
    default = TrainConfig(**{**config.to_mapping(), "fold_map": "convdr", "output": str(tmp_path / "default")})
    train(default)
    for fold in range(5):
        card = yaml.safe_load((tmp_path / "default" / f"fold-{fold}" / "encoder.yaml").read_text())["training"]
        assert not set(card["train_topics"]) & set(card["heldout_topics"]) and "fold_map" not in card


def test_the_ranking_data_map_for_another_year_is_one_error_line(tiny_model, tmp_path, capsys):  # noqa: F811
    assert main(["--topics", "convdr/cast20/mini", "--teacher", str(tiny_model), "--cv", "5", "--fold-map",
                 "convdr-ranking-data", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fold-map convdr-ranking-data is ConvDR's CAsT-19 ranking-data map" in err
