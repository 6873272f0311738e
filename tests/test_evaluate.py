"""`python -m convdr_pyserini.evaluate` on the real published CAsT-20 runs, checked against pytrec_eval and scipy."""
import contextlib
import errno
import itertools
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import pytrec_eval
from scipy import stats

from convdr_pyserini.evaluate import evaluate_runs, paired_t_test, randomization_test, write_markdown_table
from convdr_pyserini.evaluate.__main__ import main

RUNS = "cast-20/runs-grill-qr-eval"
PUBLISHED = {  # shared data MANIFEST.md: published NDCG@3, the rest measured with pytrec_eval-terrier
    "Human_reranked_100.txt": {"nDCG@3": 0.4789, "RR": 0.7716, "RR(rel=2)": 0.6378, "R@100": 0.4077, "AP": 0.2604},
    "Original_reranked_100.txt": {"nDCG@3": 0.1536, "RR": 0.2834, "RR(rel=2)": 0.2024, "R@100": 0.1188, "AP": 0.0674},
}
# ir_measures measure -> (pytrec_eval measure, its key in pytrec_eval's results, relevance level)
PYTREC = {
    "nDCG@3": ("ndcg_cut.3", "ndcg_cut_3", 1),
    "RR": ("recip_rank", "recip_rank", 1),
    "RR(rel=2)": ("recip_rank", "recip_rank", 2),
    "R@100": ("recall.100", "recall_100", 1),
    "R(rel=2)@100": ("recall.100", "recall_100", 2),
    "AP": ("map", "map", 1),
}
MEASURES = " ".join(PYTREC)


def read_qrels(path):
    qrels = {}
    for line in open(path):
        qid, _, docid, grade = line.split()
        qrels.setdefault(qid, {})[docid] = int(grade)
    return qrels


def read_run(path):
    run = {}
    for line in open(path):
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    return run


def pytrec_per_query(qrels, run, measure, judged_only=False):
    request, key, level = PYTREC[measure]
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {request}, relevance_level=level, judged_docs_only_flag=judged_only)
    return {qid: values[key] for qid, values in evaluator.evaluate(run).items()}


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    """The two published runs copied to a writable folder (a saved .eval.json goes next to them)."""
    folder = tmp_path_factory.mktemp("runs")
    for name in PUBLISHED:
        shutil.copy(shared_data / RUNS / name, folder / name)
        (folder / name).chmod(0o644)
    return folder


@pytest.fixture(scope="module")
def qrels20(shared_data):
    return read_qrels(shared_data / "cast-20" / "2020qrels.txt")


@pytest.fixture(scope="module")
def result(runs):
    return evaluate_runs("convdr/cast20", {name: runs / name for name in PUBLISHED}, MEASURES,
                         baseline="Original_reranked_100.txt")


def test_published_numbers_reproduce_exactly(result):
    for name, expected in PUBLISHED.items():
        scores = result.scores_of(name)
        assert scores.queries == 208
        assert {m: round(scores.aggregate[m], 4) for m in expected} == expected


def test_every_measure_agrees_with_pytrec_eval_per_query(result, runs, qrels20):
    for name in PUBLISHED:
        run = read_run(runs / name)
        for measure in PYTREC:
            reference = pytrec_per_query(qrels20, run, measure)
            ours = result.scores_of(name).per_query[measure]
            assert ours.keys() == reference.keys()
            assert max(abs(ours[q] - reference[q]) for q in ours) < 1e-12
            assert result.scores_of(name).aggregate[measure] == pytest.approx(np.mean(list(reference.values())), abs=1e-12)


def test_cli_writes_eval_json_and_states_the_conventions(runs, capsys):
    human, original = runs / "Human_reranked_100.txt", runs / "Original_reranked_100.txt"
    assert main(["--qrels", "convdr/cast20", "--run", str(human), str(original)]) == 0
    out = capsys.readouterr().out
    assert "preset cast20" in out and "grade >= 2" in out
    assert "trec_eval default" in out
    assert not list(runs.glob("*.eval.json"))  # saving per-query results is asked for, never done by default
    assert main(["--qrels", "convdr/cast20", "--run", str(human), str(original), "--save-eval"]) == 0
    assert capsys.readouterr().out == out
    saved = json.loads((runs / "Human_reranked_100.txt.eval.json").read_text())
    assert saved["measures"] == ["nDCG@3", "RR(rel=2)", "R(rel=2)@100"]
    assert round(saved["runs"][0]["aggregate"]["nDCG@3"], 4) == 0.4789
    assert round(saved["runs"][0]["aggregate"]["RR(rel=2)"], 4) == 0.6378
    assert len(saved["runs"][0]["per_query"]["nDCG@3"]) == 208


def test_missing_as_zero_is_trec_eval_c(runs, qrels20, tmp_path):
    """Drop the judged turns of topics 81-85: the default averages over the rest, -c counts them as 0."""
    partial = tmp_path / "partial.trec"
    lines = [line for line in open(runs / "Human_reranked_100.txt") if int(line.split("_")[0]) > 85]
    partial.write_text("".join(lines))
    reference = pytrec_per_query(qrels20, read_run(partial), "nDCG@3")
    default = evaluate_runs("convdr/cast20", {"p": partial}, "nDCG@3")
    complete = evaluate_runs("convdr/cast20", {"p": partial}, "nDCG@3", missing_as_zero=True)
    assert default.runs[0].queries == len(reference) < 208
    assert default.runs[0].aggregate["nDCG@3"] == pytest.approx(np.mean(list(reference.values())), abs=1e-12)
    assert complete.runs[0].queries == 208
    assert complete.runs[0].aggregate["nDCG@3"] == pytest.approx(sum(reference.values()) / 208, abs=1e-12)
    assert "trec_eval -c" in complete.averaging


def test_judged_only_agrees_with_pytrec_eval_condensed_lists(runs, qrels20):
    result = evaluate_runs("convdr/cast20", {"h": runs / "Human_reranked_100.txt"}, "nDCG@3 AP", judged_only=True)
    run = read_run(runs / "Human_reranked_100.txt")
    for measure in ("nDCG@3", "AP"):
        reference = pytrec_per_query(qrels20, run, measure, judged_only=True)
        assert result.runs[0].aggregate[measure] == pytest.approx(np.mean(list(reference.values())), abs=1e-12)
    plain = evaluate_runs("convdr/cast20", {"h": runs / "Human_reranked_100.txt"}, "nDCG@3")
    assert result.runs[0].aggregate["nDCG@3"] > plain.runs[0].aggregate["nDCG@3"]


def test_significance_tests_match_scipy_and_exact_enumeration():
    a = np.array([0.61, 0.42, 0.80, 0.33, 0.57, 0.71, 0.28, 0.66, 0.49, 0.90])
    b = np.array([0.52, 0.40, 0.62, 0.35, 0.41, 0.70, 0.30, 0.51, 0.47, 0.71])
    assert paired_t_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    differences = a - b
    flips = np.array(list(itertools.product([1, -1], repeat=len(a))))
    exact = np.mean(np.abs((flips * differences).mean(axis=1)) >= abs(differences.mean()) - 1e-12)
    assert randomization_test(a, b) == pytest.approx(exact, abs=1e-12)  # 2^10 <= 10,000: exact
    rng = np.random.default_rng(7)
    c, d = rng.random(16), rng.random(16) * 0.9
    flips = np.array(list(itertools.product([1, -1], repeat=16)))
    exact = np.mean(np.abs((flips * (c - d)).mean(axis=1)) >= abs((c - d).mean()) - 1e-12)
    sampled = randomization_test(c, d)
    assert sampled == randomization_test(c, d)  # seeded
    assert sampled == pytest.approx(exact, abs=0.015)  # 10,000 resamples: standard error <= 0.005
    assert paired_t_test(a, a) == 1.0 and randomization_test(a, a) == 1.0


def test_comparison_marks_and_markdown(result):
    comparison = result.comparison("Human_reranked_100.txt", "nDCG@3")
    assert comparison.queries == 208
    assert comparison.mean_difference == pytest.approx(0.4789 - 0.1536, abs=1e-3)
    assert comparison.t_test_p < 0.05 and comparison.randomization_p < 0.05
    assert comparison.marks() == "*\u2020"
    assert result.comparison("Original_reranked_100.txt", "nDCG@3") is None  # the baseline itself
    table = write_markdown_table(result)
    assert "| Human_reranked_100.txt | 208 | 0.4789*\u2020 |" in table
    assert "paired two-sided t-test" in table


def test_by_turn_table_and_plot(runs, qrels20, tmp_path, capsys):
    plot = tmp_path / "turns.png"
    human = runs / "Human_reranked_100.txt"
    code = main(["--qrels", "convdr/cast20", "--run", str(human), "--measures", "nDCG@3",
                 "--by-turn", str(plot), "--format", "json"])
    assert code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    document = json.loads(capsys.readouterr().out)
    reference = pytrec_per_query(qrels20, read_run(human), "nDCG@3")
    first_turns = [value for qid, value in reference.items() if qid.endswith("_1")]
    by_turn = document["by_turn"]
    assert by_turn["queries"]["1"] == len(first_turns) == 25
    assert by_turn["means"]["Human_reranked_100.txt"]["nDCG@3"]["1"] == pytest.approx(np.mean(first_turns), abs=1e-12)
    assert sum(by_turn["queries"].values()) == 208


def test_tsv_and_per_query(runs, capsys):
    human = runs / "Human_reranked_100.txt"
    assert main(["--qrels", "convdr/cast20", "--run", str(human), "--measures", "nDCG@3",
                 "--per-query", "--format", "tsv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "# averaging: over judged queries in the run (trec_eval default)" in lines
    assert "Human_reranked_100.txt\t208\t0.4789" in lines
    assert sum(line.startswith("Human_reranked_100.txt\t81_") for line in lines) == 8


def test_bad_inputs_are_all_listed_with_exit_2(runs, tmp_path, capsys):
    good = open(runs / "Human_reranked_100.txt").read().splitlines(keepends=True)
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text(
        "".join(good[:3])
        + "81_1 Q0 MARCO_1 4 high tag\n"                 # line 4: non-numeric score
        + "81_1 Q0 MARCO_2 5 0.5\n"                      # line 5: 5 columns
        + good[0]                                        # line 6: docid repeated within 81_1
        + "999_1 Q0 MARCO_3 1 0.1 tag\n"                 # line 7: query not in the topics
    )
    bad_qrels = tmp_path / "bad.qrels"
    bad_qrels.write_text("81_1 0 MARCO_1 1\n81_1 0 MARCO_2 high\n81_1 0 MARCO_3\n")
    code = main(["--qrels", str(bad_qrels), "--topics", "convdr/cast20", "--run", str(bad_run),
                 "--measures", "nDCG@3 fooo@3 nDCG@x", "--save-eval"])  # asked to save, and still nothing saved
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    expected = [
        f"error: {bad_qrels}:2: grade 'high' is not an integer",
        f"error: {bad_qrels}:3: expected 4 columns (qid iteration docid grade), found 3",
        f"error: {bad_run}:4: score 'high' is not a finite number",
        f"error: {bad_run}:5: expected 6 columns (qid Q0 docid rank score tag), found 5",
        f"error: {bad_run}:6: document MARCO_1900270 repeated within query 81_1 (first on line 1)",
        f"error: {bad_run}:7: query 999_1 is not in the topics of convdr/cast20",
    ]
    for line in expected:
        assert line in err
    assert sum("--measures: 'fooo@3'" in line for line in err) == 1
    assert sum("--measures: 'nDCG@x'" in line for line in err) == 1
    assert len(err) == len(expected) + 2
    assert not (tmp_path / "bad.trec.eval.json").exists()


def test_qrels_conflicting_grades_and_unknown_source(tmp_path, capsys):
    qrels = tmp_path / "conflict.qrels"
    qrels.write_text("81_1 0 MARCO_1 1\n81_1 0 MARCO_1 3\n")
    run = tmp_path / "run.trec"
    run.write_text("81_1 Q0 MARCO_1 1 1.0 t\n")
    assert main(["--qrels", str(qrels), "--run", str(run), "--measures", "RR"]) == 2
    assert f"{qrels}:2: document MARCO_1 of query 81_1 is graded 3 here but 1 on line 1" in capsys.readouterr().err
    assert main(["--qrels", "convdr/cast22", "--run", str(run), "--measures", "RR"]) == 2
    assert "neither a file nor a known dataset id" in capsys.readouterr().err


def test_baseline_not_among_runs_is_added(runs, capsys):
    human, original = runs / "Human_reranked_100.txt", runs / "Original_reranked_100.txt"
    assert main(["--qrels", "convdr/cast20", "--run", str(human), "--baseline", str(original),
                 "--measures", "nDCG@3"]) == 0
    out = capsys.readouterr().out
    assert "paired tests against Original_reranked_100.txt" in out
    assert "0.4789*\u2020" in out


def test_convdr_integer_ids_are_converted_before_scoring(runs, shared_data, tmp_path, result):
    """Rewrite the published run into ConvDR's integer ids; evaluation must give the same numbers."""
    to_integer = {}
    for year, official in (("cast-19", "2019qrels.txt"), ("cast-20", "2020qrels.txt")):
        pairs = zip(open(shared_data / year / official), open(shared_data / year / "coted-preprocessed" / "qrels.tsv"))
        to_integer.update((left.split()[2], right.split()[2]) for left, right in pairs)
    unjudged_car = iter(range(90_000_000, 100_000_000))  # CAR ids outside the judged mapping stay unknown

    def integer(docid):
        if docid.startswith("MARCO_"):
            return docid[len("MARCO_"):]
        return to_integer.get(docid) or str(next(unjudged_car))

    converted = tmp_path / "integer.trec"
    with open(converted, "w") as out:
        for line in open(runs / "Human_reranked_100.txt"):
            qid, q0, docid, rank, score, tag = line.split()
            out.write(f"{qid} {q0} {integer(docid)} {rank} {score} {tag}\n")
    scored = evaluate_runs("convdr/cast20", {"integer": converted}, MEASURES).runs[0]
    assert any("ConvDR integer ids converted" in note for note in scored.run.notes)
    assert scored.per_query == result.scores_of("Human_reranked_100.txt").per_query


@contextlib.contextmanager
def read_only(folder, monkeypatch):
    """`folder` where nothing can be written: a read-only bind mount of it when the test runs as root (as CI does),
    the folder without write permission otherwise; where neither can be had, the OS refusing to create files there
    (EROFS at `os.open`)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    view = folder.with_name(folder.name + "-read-only")
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True).returncode == 0
    try:
        if mounted and subprocess.run(["mount", "-o", "remount,ro,bind", str(view)],
                                      capture_output=True).returncode == 0:
            yield view
            return
        real_open = os.open

        def refusing_open(path, flags, *args, **kwargs):
            if str(path).startswith(str(folder)) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(view)], check=True)


def test_runs_in_a_read_only_folder_are_scored_and_saving_is_one_line(runs, tmp_path, capsys, monkeypatch):
    """Evaluating reads only: a run on a read-only file system is scored (exit 0) and nothing is written; asked to
    save per-query results there, it prints the scores first, then one line saying what could not be saved."""
    folder = tmp_path / "published"
    folder.mkdir()
    shutil.copy(runs / "Human_reranked_100.txt", folder / "Human_reranked_100.txt")
    with read_only(folder, monkeypatch) as shared:
        run = str(shared / "Human_reranked_100.txt")
        assert main(["--qrels", "convdr/cast20", "--run", run]) == 0
        scored = capsys.readouterr()
        assert "Human_reranked_100.txt  208" in scored.out and "error" not in scored.err
        assert main(["--qrels", "convdr/cast20", "--run", run, "--save-eval"]) == 2
        refused = capsys.readouterr()
        assert refused.out == scored.out
        lines = refused.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: per-query results not saved: ") and \
            f"{run}.eval.json" in lines[0], refused.err
        assert main(["--qrels", "convdr/cast20", "--run", run, "--save-eval", str(tmp_path / "saved")]) == 0
        assert capsys.readouterr().out == scored.out
    assert sorted(path.name for path in folder.iterdir()) == ["Human_reranked_100.txt"]
    saved = json.loads((tmp_path / "saved" / "Human_reranked_100.txt.eval.json").read_text())
    assert len(saved["runs"][0]["per_query"]["nDCG@3"]) == 208
