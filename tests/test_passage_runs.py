"""Passage runs to document runs (CAsT-21): the aggregations, the organizers' published rule reproduced line for line
on their real runs, and the refusals."""
import ir_measures
import pytest
from ir_measures import AP, R, RR, nDCG

from convdr_pyserini.errors import UserError
from convdr_pyserini.ids.__main__ import main
from convdr_pyserini.io.passage_runs import AGGREGATIONS, split_passage_id
from convdr_pyserini.io.runs import Run

RUNS = ("bm25", "ance", "ance_bert")
QRELS = "cast-21/trec-cast-qrels-docs.2021.qrel"
MEASURES = [nDCG @ 3, RR(rel=2), R @ 100, AP]


def passage_run(shared_data, name) -> Run:
    return Run.read(shared_data / f"cast-21/runs-organizers/org_manual_{name}.trec")


def published(shared_data, name) -> Run:
    return Run.read(shared_data / f"cast-21/runs-organizers/document_runs/org_manual_{name}.run")


def test_aggregations_and_their_tie_break():
    run = Run.from_hits({"1_1": [("D1-0", 1.0), ("D1-3", 4.0), ("D2-1", 4.0), ("D3-2", 2.0), ("D3-5", 2.0),
                                 ("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751-2", 0.5)]})
    expected = {
        "maxp": [("D1", 4.0), ("D2", 4.0), ("D3", 2.0), ("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751", 0.5)],
        "firstp": [("D2", 4.0), ("D3", 2.0), ("D1", 1.0), ("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751", 0.5)],
        "sump": [("D1", 5.0), ("D2", 4.0), ("D3", 4.0), ("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751", 0.5)],
        "meanp": [("D2", 4.0), ("D1", 2.5), ("D3", 2.0), ("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751", 0.5)],
        "cast21-published": [("D1", 4.0), ("D2", 4.0), ("D3", 2.0), ("WAPO_1cf6896e", 0.5)],
    }
    assert set(expected) == set(AGGREGATIONS)
    for aggregate, hits in expected.items():
        assert run.documents(aggregate)["1_1"] == hits, aggregate  # equal scores: document id ascending
    assert split_passage_id("WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751") is None  # a UUID's last group is no number
    assert split_passage_id("MARCO_D59865-7") == ("MARCO_D59865", 7)


@pytest.mark.parametrize("name", RUNS)
def test_the_published_document_runs_follow_the_first_dash_rule_line_for_line(shared_data, name):
    ours, theirs = passage_run(shared_data, name).documents("cast21-published"), published(shared_data, name)
    assert ours.ranked_docids() == theirs.ranked_docids()
    assert {q: [f"{s:.8f}" for _, s in hits] for q, hits in ours.items()} == {
        q: [f"{s:.8f}" for _, s in hits] for q, hits in theirs.items()}


def test_maxp_differs_from_the_published_runs_only_by_the_wapo_uuid_ids(shared_data):
    qrels = list(ir_measures.read_trec_qrels(str(shared_data / QRELS)))
    scores = {}
    for name in RUNS:
        passages = passage_run(shared_data, name)
        maxp, first_dash = passages.documents("maxp"), passages.documents("cast21-published")
        scores[name] = [ir_measures.calc_aggregate(MEASURES, qrels, run.scores())[nDCG @ 3]
                        for run in (maxp, first_dash, published(shared_data, name))]
        renamed = {doc for doc in maxp.docids() if doc.split("-", 1)[0] != doc}
        assert renamed and all(doc.startswith("WAPO_") and doc.count("-") == 4 for doc in renamed)
    assert [round(value, 4) for value in scores["ance"]] == [0.5482, 0.5300, 0.5300]
    assert [round(value, 4) for value in scores["bm25"]] == [0.4069, 0.3974, 0.3974]
    assert [round(value, 4) for value in scores["ance_bert"]] == [0.5399, 0.5196, 0.5196]


def test_refusals_name_what_the_ids_are():
    documents = Run.from_hits({"1": [("MARCO_D1", 1.0), ("KILT_2", 0.5)]}, name="doc.run")
    with pytest.raises(UserError, match="doc.run: the ids are document ids.*needs no --aggregate maxp"):
        documents.documents("maxp")
    mixed = Run.from_hits({"1": [("MARCO_D1-0", 1.0), ("KILT_2", 0.5), ("MARCO_D3-x", 0.2)]}, name="mixed.run")
    with pytest.raises(UserError, match=r"mixed.run: 2 of 3 ids are not passage ids .*KILT_2, MARCO_D3-x"):
        mixed.documents("sump")
    with pytest.raises(UserError, match="unknown aggregation 'best'"):
        Run.from_hits({"1": [("D1-0", 1.0)]}).documents("best")


def test_passages_to_docs_cli(shared_data, tmp_path, capsys):
    source = shared_data / "cast-21/runs-organizers/org_manual_ance.trec"
    output = tmp_path / "ance.docs.trec"
    assert main(["passages-to-docs", "--aggregate", "maxp", str(source), str(output)]) == 0
    written = Run.read(output)
    assert written.ranked_docids() == passage_run(shared_data, "ance").documents("maxp").ranked_docids()
    assert output.read_text().splitlines()[0] == "106_1 Q0 MARCO_D2992106 1 199.000000 org_manual_ance.trec"
    assert (tmp_path / "ance.docs.trec.json").is_file()
    assert main(["passages-to-docs", "--aggregate", "maxp", str(source), str(output)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["passages-to-docs", "--aggregate", "firstp", str(output), str(tmp_path / "again.trec")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "document ids" in err and "Traceback" not in err
    assert not (tmp_path / "again.trec").exists()
