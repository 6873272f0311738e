"""Document-level evaluation of passage runs (CAsT-21) and the id audit by source, on the organizers' real runs."""
import collections
import shutil

import ir_measures
import pytest

import convdr_pyserini as cp
from convdr_pyserini.errors import UserError
from convdr_pyserini.evaluate.__main__ import main
from convdr_pyserini.evaluate.inputs import source_of

RUNS = "cast-21/runs-organizers"
MEASURES = "nDCG@3 RR(rel=2) R@100 AP"


@pytest.fixture
def ance(shared_data, tmp_path):
    """A copy of the organizers' ANCE passage run (the evaluation writes <run>.eval.json beside it)."""
    path = tmp_path / "org_manual_ance.trec"
    shutil.copy(shared_data / RUNS / "org_manual_ance.trec", path)
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_passage_run_against_document_qrels_needs_aggregate(ance, capsys):
    assert main(["--qrels", "convdr/cast21", "--run", str(ance), "--measures", MEASURES, "--save-eval"]) == 2
    line = _error(capsys)
    assert "ids are passages <docid>-<n>" in line and "--aggregate maxp" in line
    assert not ance.with_name(ance.name + ".eval.json").exists()


def test_aggregate_maxp_scores_documents_and_says_so(ance, capsys):
    assert main(["--qrels", "convdr/cast21", "--run", str(ance), "--preset", "cast21", "--aggregate", "maxp"]) == 0
    out = capsys.readouterr().out
    assert "passages aggregated to documents by maxp" in out
    assert "org_manual_ance.trec  158      0.5482  0.7271     0.4514  0.2760" in out


def test_library_evaluate_with_aggregate_equals_the_document_run(shared_data, ance):
    report = cp.evaluate("convdr/cast21", {"ance": str(ance)}, MEASURES, aggregate="cast21-published")
    published = cp.evaluate("convdr/cast21", {"pub": str(shared_data / RUNS / "document_runs/org_manual_ance.run")},
                            MEASURES)
    assert report.scores_of("ance").aggregate == published.scores_of("pub").aggregate
    assert round(report.scores_of("ance").aggregate["nDCG@3"], 4) == 0.5300
    maxp = cp.evaluate("convdr/cast21", {"ance": cp.Run.read(ance).documents("maxp")}, MEASURES)
    assert round(maxp.scores_of("ance").aggregate["nDCG@3"], 4) == 0.5482


def test_aggregate_refuses_document_runs_and_mixed_ids(shared_data, tmp_path, capsys):
    documents = shared_data / RUNS / "document_runs/org_manual_ance.run"
    copy = tmp_path / "docs.run"
    shutil.copy(documents, copy)
    assert main(["--qrels", "convdr/cast21", "--run", str(copy), "--measures", "nDCG@3", "--aggregate", "maxp"]) == 2
    assert "the ids are document ids" in _error(capsys)
    mixed = tmp_path / "mixed.trec"
    lines = (shared_data / RUNS / "org_manual_ance.trec").read_text().splitlines()[:50]
    lines[3] = lines[3].replace("-1 ", " ", 1) if "-1 " in lines[3] else lines[3].replace(lines[3].split()[2],
                                                                                     lines[3].split()[2].rsplit("-", 1)[0])
    mixed.write_text("\n".join(lines) + "\n")
    assert main(["--qrels", "convdr/cast21", "--run", str(mixed), "--measures", "nDCG@3", "--aggregate", "sump"]) == 2
    assert "1 of 50 ids are not passage ids" in _error(capsys)
    with pytest.raises(UserError, match="unknown aggregation"):
        cp.evaluate("convdr/cast21", {"x": str(mixed)}, "nDCG@3", aggregate="best")


def test_id_audit_by_source_matches_ir_measures(shared_data, ance, capsys):
    report = cp.evaluate("convdr/cast21", {"ance": str(ance)}, MEASURES, aggregate="maxp")
    scores = report.scores_of("ance")
    audit = next(note for note in scores.notes if note.startswith("ids by source"))
    documents = cp.Run.read(ance).documents("maxp")
    qrels = {}
    for line in (shared_data / "cast-21/trec-cast-qrels-docs.2021.qrel").read_text().splitlines():
        query_id, _, doc_id, grade = line.split()
        qrels.setdefault(query_id, {})[doc_id] = int(grade)
    by_source = collections.defaultdict(dict)
    for query_id, hits in documents.items():
        if query_id in qrels:
            for doc_id, score in hits:
                by_source[doc_id.split("_")[0] + ("_D" if doc_id.startswith("MARCO_D") else "_")].setdefault(
                    query_id, {})[doc_id] = score
    assert sorted(by_source) == ["KILT_", "MARCO_D", "WAPO_"]
    for source, run in by_source.items():
        judged = ir_measures.calc_aggregate([ir_measures.Judged @ 10], {q: qrels[q] for q in run}, run)
        assert f"{source} " in audit and f"Judged@10 {judged[ir_measures.Judged @ 10]:.3f}" in audit.split(source)[1]
    assert "MARCO_D 5,497 ids (2,591 in the qrels)" in audit
    assert source_of("MARCO_123") == "MARCO_" and source_of("MARCO_D12") == "MARCO_D" and source_of("x") == "other"


def test_a_source_judged_far_less_than_the_others_is_warned_of(ance, tmp_path, caplog):
    renamed = tmp_path / "renamed.trec"
    renamed.write_text(ance.read_text().replace("KILT_", "KILT_9"))  # KILT ids no qrels hold
    report = cp.evaluate("convdr/cast21", {"renamed": str(renamed)}, "nDCG@3", aggregate="maxp")
    warning = [note for note in report.scores_of("renamed").notes if note.startswith("warning: KILT_")]
    assert len(warning) == 1 and "Judged@10 0.000 vs" in warning[0] and "MARCO_D" in warning[0]
    plain = cp.evaluate("convdr/cast21", {"ance": str(ance)}, "nDCG@3", aggregate="maxp")
    assert not [note for note in plain.scores_of("ance").notes if note.startswith("warning")]


def test_the_audit_is_in_cast20_reports_too(shared_data):
    report = cp.evaluate("convdr/cast20", {"human": str(shared_data / "cast-20/runs-grill-qr-eval/Human_reranked_100.txt")},
                         "nDCG@3")
    audit = next(note for note in report.scores_of("human").notes if note.startswith("ids by source"))
    assert "CAR_ " in audit and "MARCO_ " in audit
