"""`python -m convdr_pyserini.reproduce`: the committed matrices on the real published runs."""
from pathlib import Path

import pytest
import yaml

from convdr_pyserini.reproduce import ABOVE, FAIL, OK, OKISH, status_of
from convdr_pyserini.reproduce.__main__ import main

EVALUATION = Path(__file__).resolve().parents[1] / "evaluation"


def _full_scale_files_present() -> bool:
    """True where some full-scale file a matrix requires exists (the skip expectations then do not hold)."""
    root = EVALUATION.parent
    for name in ("cast19", "cast20", "orquac"):
        for condition in yaml.safe_load((EVALUATION / f"{name}.yaml").read_text())["conditions"]:
            if any((root / path.replace("{seed}", str(seed))).exists() for path in condition.get("requires", [])
                   for seed in (1, 2, 3, 42)):
                return True
    return False


needs_fresh_clone = pytest.mark.skipif(
    _full_scale_files_present(), reason="full-scale indexes or models are present: the matrix would run them"
)


def test_status_rules():
    assert status_of(0.47886, 0.4789, 4) == OK
    assert status_of(0.4660, 0.466, 3) == OK
    assert status_of(0.4785, 0.4789, 4) == OKISH  # within 0.0005
    assert status_of(0.4793, 0.4789, 4) == OKISH  # within 0.0005 above
    assert status_of(0.4900, 0.4789, 4) == ABOVE  # higher by more: leakage or the wrong qrels
    assert status_of(0.3059, 0.200, 3) == ABOVE
    assert status_of(0.4900, 0.4789, 4, allow_above=True) == OKISH
    assert status_of(0.4780, 0.4789, 4) == FAIL


def test_a_result_above_its_expected_value_fails_the_matrix_unless_allowed(tmp_path, capsys):
    matrix = _matrix(tmp_path, expected=[{"source": "test", "digits": 3, "scores": {"nDCG@3": 0.200}}])
    assert main([str(matrix), "--condition", "grill-human-reranked"]) == 1
    assert "measured 0.4789  ABOVE" in capsys.readouterr().out
    allowed = _matrix(tmp_path, expected=[{"source": "test", "digits": 3, "scores": {"nDCG@3": 0.200}}],
                      allow_above=True)
    assert main([str(allowed), "--condition", "grill-human-reranked"]) == 0


@needs_fresh_clone
def test_cast20_matrix_reproduces_published_runs_and_skips_full_scale(tmp_path, capsys):
    table = tmp_path / "cast20.md"
    assert main([str(EVALUATION / "cast20.yaml"), "--table", str(table)]) == 0
    out = capsys.readouterr().out.splitlines()
    grill = [line for line in out if line.startswith("grill-")]
    assert len(grill) == 10 and all(line.endswith(" OK") for line in grill)
    assert any(line.startswith("grill-human-reranked") and "nDCG@3" in line and "measured 0.4789" in line for line in grill)
    assert any(line.startswith("grill-original-reranked") and "nDCG@3" in line and "measured 0.1536" in line
               for line in grill)
    full_scale = [line for line in out if line.startswith(("ance-", "convdr-"))]
    missing = "skipped (missing: indexes/cast-ance-msmarco-passage.ivfpq/index"
    assert full_scale and all(missing in line for line in full_scale)
    assert out[-1] == "10 OK, 0 FAIL, 10 skipped"
    markdown = table.read_text()
    assert "| `grill-human-reranked` |" in markdown and "| nDCG@3 | 0.4789 | 0.4789 | OK |" in markdown
    assert markdown.count("skipped (missing:") == 10


@needs_fresh_clone
@pytest.mark.parametrize("name", ["cast19", "orquac"])
def test_full_scale_matrices_skip_and_never_pass(name, tmp_path, capsys):
    assert main([str(EVALUATION / f"{name}.yaml"), "--table", str(tmp_path / "t.md")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all("skipped (missing: " in line for line in lines[:-1])
    assert " OK" not in "\n".join(lines)


@needs_fresh_clone
def test_committed_tables_are_what_the_matrices_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(EVALUATION.parent)  # the tables name the matrix by its path from the repository root
    for name in ("cast20", "cast19", "orquac", "cast21"):
        generated = tmp_path / f"{name}.md"
        main([f"evaluation/{name}.yaml", "--table", str(generated)])
        assert generated.read_text() == (EVALUATION / f"{name}.md").read_text()


def _matrix(tmp_path, **changes) -> Path:
    document = yaml.safe_load((EVALUATION / "cast20.yaml").read_text())
    condition = document["conditions"][0]
    condition.update(changes)
    for key in [key for key, value in changes.items() if value is None]:
        del condition[key]
    document["conditions"] = [condition]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_wrong_expected_score_fails_with_exit_1(tmp_path, capsys):
    matrix = _matrix(tmp_path, expected=[{"source": "test", "digits": 4, "scores": {"nDCG@3": 0.5}}])
    assert main([str(matrix), "--condition", "grill-human-reranked"]) == 1
    assert "measured 0.4789  FAIL" in capsys.readouterr().out
    assert not matrix.with_suffix(".md").exists()  # --condition leaves the table alone


def test_wrong_checksum_is_a_fail_not_a_pass(tmp_path, capsys):
    matrix = _matrix(tmp_path, run={"name": "cast-20/runs-grill-qr-eval/Human_reranked_100.txt", "sha256": "0" * 64})
    assert main([str(matrix)]) == 1
    out = capsys.readouterr().out
    assert "FAIL (condition grill-human-reranked:" in out and "the matrix expects 000" in out


def test_bad_matrix_files_exit_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("title: x\nqrels: convdr/cast20\nconditions:\n- name: a\n  expected: []\n")
    assert main([str(broken)]) == 2
    assert "give exactly one of 'run'" in capsys.readouterr().err
    assert main([str(_matrix(tmp_path)), "--condition", "nope"]) == 2
    assert "no condition named 'nope'" in capsys.readouterr().err
    bad_measure = _matrix(tmp_path, expected=[{"source": "test", "scores": {"fooo@3": 0.1}}])
    assert main([str(bad_measure)]) == 2
    assert "measure 'fooo@3' is rejected by ir_measures" in capsys.readouterr().err
    document = yaml.safe_load(_matrix(tmp_path).read_text())
    for gaps, message in [([{"low": "grill-human-reranked", "high": "nope"}], "gap names 'nope', which is not a"),
                          ([{"low": "grill-human-reranked"}], "every gap is a mapping with 'low', 'high'")]:
        (tmp_path / "gaps.yaml").write_text(yaml.safe_dump({**document, "gaps": gaps}))
        assert main([str(tmp_path / "gaps.yaml")]) == 2
        assert message in capsys.readouterr().err


def test_a_search_that_fails_is_a_fail(tmp_path, capsys):
    present = tmp_path / "index"
    present.mkdir()
    matrix = _matrix(tmp_path, run=None, requires=[str(present)],
                     search={"retriever": "bm25", "topics": "convdr/cast20", "query": "raw", "index": str(present)})
    assert main([str(matrix), "--runs-dir", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert "FAIL (" in out and "is not a Lucene index" in out
    assert "skipped" not in out


def test_a_search_setting_the_matrix_cannot_have_is_one_error_line(tmp_path, capsys):
    matrix = _matrix(tmp_path, run=None, search={"retriever": "bm25", "no_such_setting": 1})
    assert main([str(matrix)]) == 2 or "unknown search setting" in capsys.readouterr().out


def test_an_experiment_matrix_reuses_finished_runs(tmp_path, capsys, shared_data):
    from convdr_pyserini import datasets
    from convdr_pyserini.index.__main__ import main as index_main

    (tmp_path / "collection").mkdir()
    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "collection" / "docs.jsonl").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    assert index_main(["lucene", "--collection", str(tmp_path / "collection"), "--output", str(tmp_path / "idx")]) == 0
    search = {"retriever": "bm25", "topics": "convdr/cast20/mini", "index": str(tmp_path / "idx"), "hits": 10}
    matrix = tmp_path / "experiment.yaml"
    matrix.write_text(yaml.safe_dump({
        "title": "t", "qrels": "convdr/cast20/mini", "measures": "nDCG@3 R@10", "baselines": ["raw"],
        "gaps": [{"low": "raw", "high": "manual"}],
        "conditions": [{"name": "raw", "search": {**search, "query": "raw"}},
                       {"name": "manual", "search": {**search, "query": "manual"}},
                       {"name": "automatic", "search": {**search, "query": "automatic"}}]}))
    runs = tmp_path / "runs"
    assert main([str(matrix), "--runs-dir", str(runs)]) == 0
    first = capsys.readouterr()
    table = matrix.with_suffix(".md").read_text()
    assert "| `manual` |" in table and "p vs raw" in table and "nDCG@3" in first.out
    rows = {cells[0].strip("`"): cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                                     for line in table.splitlines() if line.startswith("| `"))}
    raw, manual, automatic = (float(rows[name][1]) for name in ("raw", "manual", "automatic"))
    assert rows["raw"][-1] == rows["manual"][-1] == "—"  # the gap's ends have no share
    assert abs(float(rows["automatic"][-1].rstrip("%")) - 100 * (automatic - raw) / (manual - raw)) <= 1
    assert "share of the gap: (condition - low) / (high - low) of the mean nDCG@3, low `raw`, high `manual`" in table
    made = (runs / "experiment" / "manual.trec").stat().st_mtime_ns
    assert main([str(matrix), "--runs-dir", str(runs)]) == 2  # the table exists: --overwrite to replace it
    assert main([str(matrix), "--runs-dir", str(runs), "--overwrite"]) == 0
    assert "reusing" in capsys.readouterr().err
    assert (runs / "experiment" / "manual.trec").stat().st_mtime_ns == made
    assert matrix.with_suffix(".md").read_text() == table


def test_cast21_table_matches_an_independent_ir_measures_computation(shared_data):
    """Every number of evaluation/cast21.md, recomputed from the organizers' files with plain Python (MaxP by the
    last '-', the published rule by the first) and ir_measures."""
    import collections

    import ir_measures

    def read(path):
        run = collections.defaultdict(dict)
        for line in (shared_data / path).read_text().splitlines():
            query_id, _, doc_id, _, score, _ = line.split()
            run[query_id][doc_id] = float(score)
        return run

    def best_passage(run, document_of):
        documents = {}
        for query_id, hits in run.items():
            best = documents.setdefault(query_id, {})
            for passage_id, score in hits.items():
                best[document_of(passage_id)] = max(score, best.get(document_of(passage_id), score))
        return documents

    qrels = list(ir_measures.read_trec_qrels(str(shared_data / "cast-21/trec-cast-qrels-docs.2021.qrel")))
    measures = [ir_measures.parse_measure(name) for name in ("nDCG@3", "RR(rel=2)", "R@100", "AP")]
    table = {}
    condition = None
    for line in (EVALUATION / "cast21.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 7 and cells[2] in {str(m) for m in measures}:
            condition = cells[0].strip("`") or condition
            table[condition, cells[2]] = float(cells[4])
    expected = {}
    for name in ("bm25", "ance", "ance_bert"):
        passages = read(f"cast-21/runs-organizers/org_manual_{name}.trec")
        runs = {"published": read(f"cast-21/runs-organizers/document_runs/org_manual_{name}.run"),
                "maxp": best_passage(passages, lambda passage: passage.rsplit("-", 1)[0]),
                "cast21-published": best_passage(passages, lambda passage: passage.split("-")[0])}
        for kind, run in runs.items():
            for measure, value in ir_measures.calc_aggregate(measures, qrels, run).items():
                expected[f"org-manual-{name.replace('_', '-')}-{kind}", str(measure)] = round(value, 4)
    assert len(table) == len(expected) == 36
    assert table == expected
    assert table["org-manual-ance-published", "nDCG@3"] == 0.5300 and table["org-manual-ance-maxp", "nDCG@3"] == 0.5482


def test_a_search_naming_seed_runs_once_per_seed_and_names_each_missing_model(tmp_path):
    """Models trained outside the matrix with `train --seeds` (OUTPUT/seed-S): `{seed}` in a condition's search and
    requires stands for each of the matrix's seeds."""
    from convdr_pyserini.reproduce.matrix import load_matrix
    from convdr_pyserini.reproduce.runner import missing_files, seeded, with_seed

    matrix = load_matrix(EVALUATION / "cast19.yaml")
    condition = matrix.condition("convdr-kd")
    assert seeded(condition) and not seeded(matrix.condition("ance-manual")) and matrix.seeds == [1, 2, 3]
    assert with_seed(condition.search, 2)["cv"] == "encoders/convdr-kd-cast19/seed-2"
    missing = missing_files(condition, matrix.seeds)
    assert [path for path in missing if path.startswith("encoders/")] == [
        f"encoders/convdr-kd-cast19/seed-{seed}/fold-0" for seed in (1, 2, 3)]
