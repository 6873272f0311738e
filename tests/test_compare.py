"""The conversational run explorer (`convdr_pyserini.compare`) on the committed runs of `convdr/cast20/mini` (the
reranking matrix's runs, in evaluation/runs/): every number against `evaluate`, the hits against the run files and
the qrels, the command's errors, escaping and determinism. The page in a real browser: test_compare_browser.py."""
import json
import math
import re
from itertools import combinations

import pytest

import convdr_pyserini as cp
from convdr_pyserini.compare import Explorer, overlap_at, rbo
from convdr_pyserini.compare.__main__ import main
from convdr_pyserini.compare.page import embedded_json
from convdr_pyserini.evaluate import holm, randomization_test, paired_t_test
from convdr_pyserini.io.runs import Run

TOPICS = "convdr/cast20/mini"
RUNS_DIR = "evaluation/runs/cast20-mini-rerank"
RUNS = {"BM25 automatic": f"{RUNS_DIR}/bm25-automatic.trec", "ConvDR-KD": f"{RUNS_DIR}/convdr-kd.trec",
        "teacher raw": f"{RUNS_DIR}/convdr-teacher-raw.seed-1.trec",
        "student KD": f"{RUNS_DIR}/convdr-student-kd.seed-1.trec"}
BASELINE = "ConvDR-KD"
MEASURES = "nDCG@3 RR(rel=2) R@100"


def page_data(path) -> dict:
    """The JSON embedded in a written page, as the page's script reads it."""
    text = open(path, encoding="utf-8").read()
    found = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def explorer(shared_data):
    return cp.compare(TOPICS, RUNS, qrels=TOPICS, texts=TOPICS, baseline=BASELINE, measures=MEASURES)


@pytest.fixture(scope="module")
def report(shared_data):
    return cp.evaluate(TOPICS, RUNS, MEASURES, baseline=BASELINE)


def test_per_turn_values_are_evaluates_per_query_values(explorer, report, tmp_path):
    written = page_data(explorer.write(tmp_path / "page.html"))
    qrels = cp.load_qrels(TOPICS)
    assert [turn["id"] for turn in written["turns"]] == cp.load_topics(TOPICS).ids()
    checked = 0
    for turn in written["turns"]:
        assert turn["judged"] == (turn["id"] in qrels.judgments)
        for name in RUNS:
            for measure in report.measures:
                value = turn["runs"][name]["values"][measure]
                expected = report.scores_of(name).per_query[measure].get(turn["id"])
                assert value == expected  # None exactly where evaluate has no value: an unjudged turn, never 0
                checked += expected is not None
    assert checked == 208 * len(RUNS) * 3
    assert written["unjudged"] == [turn["id"] for turn in written["turns"] if turn["id"] not in qrels.judgments]
    assert len(written["unjudged"]) == 8
    for name in RUNS:  # the overview's means at the turn unit are evaluate's averages
        for measure in report.measures:
            assert written["overview"]["turn"][name][measure]["mean"] == report.scores_of(name).aggregate[measure]
    by_turn = report.by_turn()
    assert written["by_turn"]["means"]["student KD"]["nDCG@3"]["3"] == by_turn.means["student KD"]["nDCG@3"][3]


def test_significance_is_evaluates_tests_corrected_by_holm(explorer, report):
    others = [name for name in RUNS if name != BASELINE]
    for measure in report.measures:
        rows = explorer.data["overview"]["turn"]
        tests = [report.comparison(name, measure) for name in others]
        assert [rows[name][measure]["t_p"] for name in others] == [test.t_test_p for test in tests]
        assert [rows[name][measure]["rand_p"] for name in others] == [test.randomization_p for test in tests]
        assert [rows[name][measure]["t_p_holm"] for name in others] == holm([test.t_test_p for test in tests])
        for name in others:
            row, values = rows[name][measure], report.scores_of(name).per_query[measure]
            base = report.scores_of(BASELINE).per_query[measure]
            differences = [values[qid] - base[qid] for qid in values]
            assert (row["win"], row["tie"], row["loss"]) == (sum(d > 0 for d in differences),
                                                            sum(d == 0 for d in differences),
                                                            sum(d < 0 for d in differences))
            assert row["win"] + row["tie"] + row["loss"] == 208


def test_conversation_unit_tests_each_conversations_mean(explorer, report):
    values = report.scores_of("student KD").per_query["nDCG@3"]
    base = report.scores_of(BASELINE).per_query["nDCG@3"]
    topics = sorted({qid.split("_")[0] for qid in values})
    mean = lambda found, topic: sum(v for q, v in found.items() if q.split("_")[0] == topic) / \
        sum(q.split("_")[0] == topic for q in found)  # noqa: E731
    ours = [mean(values, topic) for topic in topics]
    theirs = [mean(base, topic) for topic in topics]
    row = explorer.data["overview"]["conversation"]["student KD"]["nDCG@3"]
    assert row["n"] == row["paired"] == len(topics) == 25
    assert math.isclose(row["mean"], sum(ours) / len(ours))
    assert math.isclose(row["delta"], sum(a - b for a, b in zip(ours, theirs)) / len(ours))
    assert row["t_p"] == paired_t_test(ours, theirs)
    assert row["rand_p"] == randomization_test(ours, theirs)


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5, None, 0.01]) == [0.5, None, 0.02]
    assert holm([0.6, 0.7]) == [1.0, 1.0]


def _rbo_by_definition(first, second, p=0.9):
    """Webber et al.'s equation 32 written out with set intersections at every depth."""
    short, long_ = sorted([first, second], key=len)
    s, l = len(short), len(long_)
    x = lambda d: len(set(short[:d]) & set(long_[:d]))  # noqa: E731
    total = sum(x(d) / d * p ** d for d in range(1, l + 1))
    total += sum(x(s) * (d - s) / (s * d) * p ** d for d in range(s + 1, l + 1))
    return (1 - p) / p * total + ((x(l) - x(s)) / l + x(s) / s) * p ** l


def test_rbo_and_overlap():
    a = list("abcdefghij")
    assert rbo(a, a) == pytest.approx(1.0)
    assert rbo(a, list("klmnopqrst")) == 0.0
    assert rbo(a, []) is None and overlap_at([], a, 10) is None
    for first, second in [(a, list("bacdxyzfgh")), (a, list("jihgfedcba")), (list("abcde"), list("xbyaqrstcd"))]:
        assert rbo(first, second) == pytest.approx(_rbo_by_definition(first, second))
        assert rbo(second, first) == pytest.approx(rbo(first, second))
    assert overlap_at(a, list("bacdxyzfgh"), 10) == 0.7


def test_turn_hits_grades_overlaps_and_missed_relevant(explorer):
    qrels = cp.load_qrels(TOPICS).judgments["81_3"]
    turn = explorer.turn("81_3")
    ranked = {}
    for name, path in RUNS.items():
        top = Run.read(path)["81_3"][:10]
        hits = turn["runs"][name]["hits"]
        assert [(docid, score) for docid, score, _, _ in hits] == top
        assert [grade for _, _, grade, _ in hits] == [qrels.get(docid) for docid, _ in top]
        ranked[name] = [docid for docid, _ in top]
    assert any(grade is None for name in RUNS for _, _, grade, _ in turn["runs"][name]["hits"])  # unjudged shown
    assert turn["overlap"]["pairs"] == [[a, b, rbo(ranked[a], ranked[b]), overlap_at(ranked[a], ranked[b], 10)]
                                        for a, b in combinations(RUNS, 2)]
    previous = {name: [docid for docid, _ in Run.read(path)["81_2"][:10]] for name, path in RUNS.items()}
    assert turn["overlap"]["previous"]["ConvDR-KD"] == [rbo(ranked["ConvDR-KD"], previous["ConvDR-KD"]),
                                                        overlap_at(ranked["ConvDR-KD"], previous["ConvDR-KD"], 10)]
    retrieved = {docid for docids in ranked.values() for docid in docids}
    assert {docid for docid, _ in turn["missed"]} == {d for d, g in qrels.items() if g >= 2 and d not in retrieved}
    assert turn["raw"] == "How much does it cost for someone to fix it?"
    assert turn["previous"] == [{"docid": "MARCO_3942603", "kinds": ["manual"]},
                                {"docid": "MARCO_5498474", "kinds": ["automatic"]}]
    assert explorer.data["texts"]["MARCO_3942603"].startswith("Most closing issues")
    assert explorer.turn("81_1")["overlap"]["previous"] == {}  # a first turn has no previous one


def test_topic_order_is_worst_delta_first(explorer):
    order = explorer.topic_order("student KD", "nDCG@3")
    deltas = {topic["id"]: topic["delta"]["student KD"]["nDCG@3"] for topic in explorer.data["topics"]}
    assert sorted(order) == sorted(deltas) and len(order) == 25
    assert [deltas[topic] for topic in order] == sorted(deltas.values())
    turns = [t for t in explorer.turns if t["topic"] == order[0]]
    found = [t["runs"]["student KD"]["delta"]["nDCG@3"] for t in turns if t["runs"]["student KD"]["delta"]["nDCG@3"] is not None]
    assert deltas[order[0]] == pytest.approx(sum(found) / len(found))


def test_without_qrels_and_texts_ids_and_ranks_only(shared_data, tmp_path):
    explorer = cp.compare(TOPICS, [RUNS["BM25 automatic"], RUNS["ConvDR-KD"]], depth=3)
    assert explorer.runs == ["bm25-automatic", "convdr-kd"]
    assert explorer.data["measures"] == [] and explorer.data["texts"] == {} and explorer.data["qrels_source"] is None
    hits = explorer.turn("81_3")["runs"]["convdr-kd"]["hits"]
    assert len(hits) == 3 and all(grade is None for _, _, grade, _ in hits)
    assert explorer.turn("81_3")["overlap"]["pairs"][0][3] is not None
    assert explorer.write(tmp_path / "ids.html").stat().st_size > 0


def test_passage_runs_against_document_qrels_show_documents_with_their_best_passage(shared_data):
    run = str(shared_data / "cast-21/runs-organizers/org_manual_bm25.trec")
    explorer = cp.compare("convdr/cast21", {"bm25": run}, qrels="convdr/cast21", aggregate="maxp", depth=5)
    report = cp.evaluate("convdr/cast21", {"bm25": run}, " ".join(explorer.data["measures"]), aggregate="maxp")
    passages = Run.read(run)
    for turn in explorer.turns[:40]:
        expected = report.scores_of("bm25").per_query["nDCG@3"].get(turn["id"])
        assert turn["runs"]["bm25"]["values"]["nDCG@3"] == expected
        scores = dict(passages[turn["id"]])
        for docid, score, _, passage in turn["runs"]["bm25"]["hits"]:
            own = [value for pid, value in scores.items() if pid.rsplit("-", 1)[0] == docid]
            assert passage.rsplit("-", 1)[0] == docid and score == scores[passage] == max(own)
    second = explorer.turn("106_2")["previous"]  # CAsT-21 topics carry the canonical passages' texts
    assert second == [{"docid": "MARCO_D59865-7", "kinds": ["manual", "automatic"],
                       "text": cp.load_topics("convdr/cast21")["106_2"].history_manual_canonical_passages[-1]}]


def test_texts_from_a_lucene_index_and_from_a_json_collection(shared_data, tmp_path):
    from convdr_pyserini import datasets
    from convdr_pyserini.index.__main__ import main as index_main

    lines = (datasets.collection_jsonl(TOPICS) / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    wanted = {docid for docid, _, _, _ in cp.compare(TOPICS, {"bm25": RUNS["BM25 automatic"]}, depth=3).turn("81_3")
              ["runs"]["bm25"]["hits"]}
    chosen = [line for line in lines if json.loads(line)["id"] in wanted] + lines[:20]
    (tmp_path / "collection").mkdir()
    (tmp_path / "collection" / "docs.jsonl").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    assert index_main(["lucene", "--collection", str(tmp_path / "collection"), "--output", str(tmp_path / "lucene")]) == 0
    expected = {json.loads(line)["id"]: json.loads(line)["contents"] for line in chosen}
    for texts in (tmp_path / "lucene", tmp_path / "collection" / "docs.jsonl", tmp_path / "collection", TOPICS):
        explorer = cp.compare(TOPICS, {"bm25": RUNS["BM25 automatic"]}, texts=texts, depth=3)
        shown = explorer.data["texts"]
        assert {docid: shown[docid] for docid in wanted} == {docid: expected[docid] for docid in wanted}, texts
        if texts != TOPICS:  # the small collections lack most of the other shown passages: counted in a note
            assert explorer.data["texts_note"].endswith(f"are not in {texts}: shown by id only")


def test_page_escapes_the_embedded_json():
    hostile = {"text": "</script><script>window.__x=1</script> <!-- & \u2028\u2029 >"}
    embedded = embedded_json(hostile)
    assert not set("<>&\u2028\u2029") & set(embedded)
    assert json.loads(embedded) == hostile


def test_command_writes_a_deterministic_page_and_refuses_to_replace_it(shared_data, tmp_path, capsys):
    out = tmp_path / "page.html"
    args = ["--topics", TOPICS, "--qrels", TOPICS, "--run", f"ConvDR-KD={RUNS['ConvDR-KD']}",
            "--run", RUNS["BM25 automatic"], "--baseline", "ConvDR-KD", "--measures", "nDCG@3", "--output", str(out)]
    assert main(args) == 0
    first = out.read_bytes()
    assert b"http://" not in first.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in first
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == first
    assert main(args + ["--overwrite"]) == 0 and out.read_bytes() == first
    data = page_data(out)
    assert data["runs"] == ["ConvDR-KD", "bm25-automatic"] and "generated" not in data
    assert main(args[:-2] + ["--output", RUNS["ConvDR-KD"], "--overwrite"]) == 2  # never over an input


@pytest.mark.parametrize("extra, message", [
    (["--run", "missing.trec"], "missing.trec"),
    (["--run", "A=" + RUNS["ConvDR-KD"], "--run", "A=" + RUNS["BM25 automatic"]], "two runs are named 'A'"),
    (["--run", RUNS["ConvDR-KD"], "--baseline", "nope"], "--baseline 'nope' is not one of the runs"),
    (["--run", RUNS["ConvDR-KD"], "--depth", "0"], "--depth 0 is below 1"),
    (["--run", RUNS["ConvDR-KD"], "--focus", "nope"], "--focus 'nope' is not one of the runs"),
])
def test_bad_input_is_one_line_and_exit_2(shared_data, tmp_path, capsys, extra, message):
    out = tmp_path / "page.html"
    assert main(["--topics", TOPICS, *extra, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not out.exists()


def test_run_queries_missing_from_the_topics_are_counted_in_one_warning(shared_data, tmp_path, capsys):
    run = tmp_path / "extra.trec"
    lines = open(RUNS["ConvDR-KD"]).read().splitlines()[:30]
    run.write_text("\n".join(lines + ["999_1 Q0 MARCO_1 1 5.0 x", "999_2 Q0 MARCO_1 1 5.0 x"]) + "\n")
    assert main(["--topics", TOPICS, "--run", str(run), "--output", str(tmp_path / "p.html")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: 2 queries of the runs are not in the topics of {TOPICS} and are left out (extra: 2)"]


def test_conversational_input_is_what_the_encoder_saw(shared_data, tmp_path):
    """A dense no_res run's sidecar names its encoder: the page shows the history-concatenated input, truncated
    as the search truncated it, decoded by the model's tokenizer."""
    run = tmp_path / "no_res.trec"
    run.write_text(open(RUNS["ConvDR-KD"]).read())
    (tmp_path / "no_res.trec.json").write_text(json.dumps({"search": {
        "retriever": "dense", "query": "no_res", "encoder": "minilm", "truncate": "keep-current",
        "max_concat_length": 24}}))
    explorer = cp.compare(TOPICS, {"no_res": str(run)}, depth=1)
    seen = explorer.turn("81_3")["runs"]["no_res"]["input"]
    assert seen.startswith("[CLS]") and seen.endswith("how much does it cost for someone to fix it? [SEP]")
    assert "garage door opener" not in seen  # the oldest turn is cut: 24 tokens keep the newest ones
    assert explorer.turn("81_1")["runs"]["no_res"]["input"] == "[CLS] how do you know when your garage door opener " \
        "is going bad? [SEP]"
    assert "keep-current" in explorer.data["input_notes"]["no_res"]
    assert "input" not in cp.compare(TOPICS, {"bm25": RUNS["BM25 automatic"]}, depth=1).turn("81_3")["runs"]["bm25"]


def test_library_name_and_plain_data(explorer):
    assert cp.compare is not None and isinstance(explorer, Explorer) and isinstance(cp.Explorer, type)
    json.dumps(explorer.turns)  # plain data
