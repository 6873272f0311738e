"""BM25 through `python -m convdr_pyserini.search` on convdr/cast20/mini, checked against the issue's
reference values (ir_measures) and against Pyserini's own LuceneSearcher."""
import json

import ir_measures
import pytest
from ir_measures import R, nDCG

from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.search.__main__ import main

# Issue 3: pyserini 1.6.0, BM25 k1=0.82 b=0.68, 100 hits, convdr/cast20/mini vs the CAsT-20 qrels.
REFERENCE = {"raw": (0.3708, 0.2754), "manual": (0.5420, 0.3535), "automatic": (0.4356, 0.3328)}


@pytest.fixture(scope="module")
def index(tmp_path_factory, shared_data):
    output = tmp_path_factory.mktemp("lucene") / "cast20-mini"
    assert index_main(["lucene", "--collection", "convdr/cast20/mini", "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def qrels(shared_data):
    return list(ir_measures.read_trec_qrels(str(shared_data / "cast-20" / "2020qrels.txt")))


@pytest.fixture(scope="module")
def topics():
    from convdr_pyserini.datasets import load

    return list(load("convdr/cast20/mini").queries_iter())


def search(index, output, *extra, query="raw", topics="convdr/cast20/mini"):
    argv = ["--topics", topics, "--query", query, "--index", str(index), "--bm25", "--output", str(output), *extra]
    return main(argv)


def pyserini_results(index, texts: dict, hits: int, rm3: bool = False):
    from convdr_pyserini import _java

    searcher = _java.pyserini("search.lucene").LuceneSearcher(str(index))
    searcher.set_bm25(0.82, 0.68)
    if rm3:
        searcher.set_rm3(10, 10, 0.5)
    found = searcher.batch_search(list(texts.values()), list(texts), k=hits, threads=1)
    return {qid: [(hit.docid, hit.score) for hit in found.get(qid, [])] for qid in texts}


def read_trec(path):
    run = {}
    for line in open(path):
        qid, _, docid, rank, score, tag = line.split()
        run.setdefault(qid, []).append((docid, int(rank), float(score), tag))
    return run


@pytest.mark.parametrize("query", sorted(REFERENCE))
def test_reference_values(index, qrels, tmp_path, capsys, query):
    output = tmp_path / f"{query}.trec"
    assert search(index, output, "--hits", "100", query=query) == 0
    measured = ir_measures.calc_aggregate([nDCG @ 3, R @ 100], qrels, ir_measures.read_trec_run(str(output)))
    ndcg, recall = REFERENCE[query]
    assert measured[nDCG @ 3] == pytest.approx(ndcg, abs=0.001)
    assert measured[R @ 100] == pytest.approx(recall, abs=0.001)
    captured = capsys.readouterr()
    assert "BM25 k1=0.82 b=0.68" in captured.err
    assert "216 queries" in captured.out and "0 queries with no hits" in captured.out
    run = read_trec(output)
    assert len(run) == 216 and all(len(hits) <= 100 for hits in run.values())
    assert {hit[3] for hits in run.values() for hit in hits} == {"bm25-k1_0.82-b_0.68"}


def test_sidecar_records_every_parameter(index, tmp_path):
    output = tmp_path / "run.trec"
    assert search(index, output, "--hits", "10", "--k1", "1.2", "--b", "0.75") == 0
    sidecar = json.loads((tmp_path / "run.trec.json").read_text())
    assert sidecar["bm25"] == {"k1": 1.2, "b": 0.75}
    assert sidecar["tag"] == "bm25-k1_1.2-b_0.75"
    assert sidecar["query_type"] == "raw" and sidecar["topics"]["source"] == "convdr/cast20/mini" and sidecar["hits"] == 10
    assert sidecar["index_meta"]["documents"] == 1426 and sidecar["index_meta"]["anserini_version"] == "1.7.1"
    assert sidecar["versions"]["pyserini"] == "1.6.0" and sidecar["versions"]["anserini"] == "1.7.1"
    assert sidecar["wall_seconds"] > 0
    assert sidecar["output_format"] == "trec" and sidecar["rm3"] is None
    assert sidecar["search"]["k1"] == 1.2 and sidecar["search"]["retriever"] == "bm25"
    assert sidecar["summary"] == {"queries": 216, "hits": 2160, "queries_without_hits": 0}


def test_a_sidecar_follows_its_run_and_is_replaced_with_it(index, tmp_path):
    """Replacing a run replaces its sidecar; a failed replacement leaves both as they were; a run written without
    a sidecar removes the old one, which would describe another run."""
    from convdr_pyserini.io.runs import Run

    output, sidecar = tmp_path / "run.trec", tmp_path / "run.trec.json"
    assert search(index, output, "--hits", "5", "--k1", "0.9") == 0
    assert json.loads(sidecar.read_text())["bm25"]["k1"] == 0.9
    assert search(index, output, "--hits", "5", "--k1", "1.2", "--overwrite") == 0
    recorded = json.loads(sidecar.read_text())
    assert recorded["bm25"]["k1"] == 1.2 and recorded["output"] == str(output)
    assert {line.split()[5] for line in output.read_text().splitlines()} == {recorded["tag"]}
    before = (output.read_bytes(), sidecar.read_bytes())
    assert search(index, output, "--hits", "5", "--query", "rewrite", "--rewrites", str(tmp_path / "none.tsv"),
                  "--overwrite") == 2
    assert (output.read_bytes(), sidecar.read_bytes()) == before
    Run.read(output).write(tmp_path / "copy.trec", sidecar=False)
    Run.read(tmp_path / "copy.trec").write(output, overwrite=True, sidecar=False)
    assert output.is_file() and not sidecar.exists()


def test_rerun_is_byte_identical(index, tmp_path):
    first, second = tmp_path / "a.trec", tmp_path / "b.trec"
    assert search(index, first, "--hits", "1000", "--batch-size", "7") == 0
    assert search(index, second, "--hits", "1000") == 0
    assert first.read_bytes() == second.read_bytes()


def test_same_hits_as_pyserini_at_1000(index, topics):
    """The bulk Lucene path gives Pyserini's docids, order and (tie-adjusted float32) scores exactly."""
    from convdr_pyserini.resolve import load_topics
    from convdr_pyserini.search.bm25 import BM25Searcher
    from convdr_pyserini.search.queries import sparse_texts

    texts, _ = sparse_texts(load_topics("convdr/cast20/mini"), "concat")
    texts.update({"empty": "", "stopwords-only": "the of and"})
    searcher = BM25Searcher(index)
    try:
        ours = searcher.search(texts, 1000, batch_size=50, progress=False)
    finally:
        searcher.close()
    assert ours == pyserini_results(index, texts, 1000)
    assert ours["empty"] == [] and ours["stopwords-only"] == []
    assert max(len(hits) for hits in ours.values()) > 1000 - 1  # deep lists, where ties matter


def test_rm3_same_as_pyserini_and_changes_the_run(index, topics, qrels, tmp_path):
    output = tmp_path / "rm3.trec"
    assert search(index, output, "--hits", "100", "--rm3", "--threads", "2", query="manual") == 0
    sidecar = json.loads((tmp_path / "rm3.trec.json").read_text())
    assert sidecar["rm3"] == {"fb_terms": 10, "fb_docs": 10, "original_query_weight": 0.5}
    assert sidecar["tag"] == "bm25-k1_0.82-b_0.68-rm3-10-10-0.5"
    texts = {t.query_id: t.manual_rewritten_utterance for t in topics}
    expected = pyserini_results(index, texts, 100, rm3=True)
    run = read_trec(output)
    assert {qid: [hit[0] for hit in hits] for qid, hits in run.items()} == \
        {qid: [docid for docid, _ in sorted(hits, key=lambda h: (-h[1], h[0]))] for qid, hits in expected.items()}
    plain = pyserini_results(index, texts, 100)
    assert any([d for d, _ in plain[qid]] != [d for d, _ in expected[qid]] for qid in texts)


def test_concat_window(index, topics, tmp_path):
    from convdr_pyserini.search.queries import concat_text

    turn = next(t for t in topics if len(t.history) >= 3)
    assert concat_text(turn) == " ".join([*turn.history, turn.raw_utterance])
    assert concat_text(turn, 1) == f"{turn.history[-1]} {turn.raw_utterance}"
    assert concat_text(turn, 0) == turn.raw_utterance
    outputs = {}
    for window in ("0", "2"):
        outputs[window] = tmp_path / f"concat{window}.trec"
        assert search(index, outputs[window], "--hits", "50", "--concat-window", window, query="concat") == 0
    raw = tmp_path / "raw.trec"
    assert search(index, raw, "--hits", "50") == 0
    assert outputs["0"].read_bytes() == raw.read_bytes()  # window 0 is the raw utterance
    assert outputs["2"].read_bytes() != raw.read_bytes()
    assert json.loads((tmp_path / "concat2.trec.json").read_text())["concat_window"] == 2


def test_msmarco_and_openmatch_formats(index, tmp_path, shared_data):
    trec, msmarco, openmatch = tmp_path / "r.trec", tmp_path / "r.tsv", tmp_path / "r.jsonl"
    assert search(index, trec, "--hits", "5", query="manual") == 0
    assert search(index, msmarco, "--hits", "5", "--output-format", "msmarco", query="manual") == 0
    assert search(index, openmatch, "--hits", "5", "--output-format", "openmatch", query="manual") == 0
    trec_rows = [line.split() for line in trec.read_text().splitlines()]
    assert [line.split("\t") for line in msmarco.read_text().splitlines()] == [[r[0], r[2], r[3]] for r in trec_rows]
    records = [json.loads(line) for line in openmatch.read_text().splitlines()]
    assert [(r["query_id"], r["doc_id"]) for r in records] == [(r[0], r[2]) for r in trec_rows]
    assert set(records[0]) == {"query_id", "doc_id", "query", "doc", "retrieval_score", "label"}
    grades = {}
    for line in (shared_data / "cast-20" / "2020qrels.txt").read_text().splitlines():
        qid, _, docid, grade = line.split()
        grades[(qid, docid)] = int(grade)
    assert [r["label"] for r in records] == [grades.get((r["query_id"], r["doc_id"]), 0) for r in records]
    assert any(r["label"] > 0 for r in records)
    from convdr_pyserini.datasets import load

    dataset = load("convdr/cast20/mini")
    store = dataset.docs_store()
    manual = {t.query_id: t.manual_rewritten_utterance for t in dataset.queries_iter()}
    for record in records[:20]:
        assert record["doc"] == store.get(record["doc_id"]).text
        assert record["query"] == manual[record["query_id"]]


def test_rrf_fusion(index, tmp_path):
    raw, manual, fused = tmp_path / "raw.trec", tmp_path / "manual.trec", tmp_path / "rrf.trec"
    assert search(index, raw, "--hits", "20") == 0
    assert search(index, manual, "--hits", "20", query="manual") == 0
    assert main(["--fusion", "rrf", "--runs", str(raw), str(manual), "--topics", "convdr/cast20/mini",
                 "--hits", "20", "--output", str(fused)]) == 0
    expected = {}
    for path in (raw, manual):
        for qid, hits in read_trec(path).items():
            for docid, rank, _, _ in hits:
                expected.setdefault(qid, {}).setdefault(docid, 0.0)
                expected[qid][docid] += 1 / (60 + rank)
    run = read_trec(fused)
    qid = "81_2"
    top = sorted(expected[qid].items(), key=lambda item: (-item[1], item[0]))[:20]
    assert [(docid, round(score, 6)) for docid, score in top] == [(h[0], h[2]) for h in run[qid]]
    assert {h[3] for hits in run.values() for h in hits} == {"rrf-k60"}


def test_ranked_dedupes_and_breaks_ties_by_docid():
    from convdr_pyserini.io.runs import ranked

    assert ranked([("b", 1.0), ("a", 1.0), ("c", 2.0), ("b", 0.5), ("a", 0.1)]) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]


def test_queries_without_hits_are_counted(tmp_path):
    from convdr_pyserini.io import Run

    counts = Run.from_hits({"q1": [("d1", 1.0)], "q2": []}).write(tmp_path / "r.trec", tag="t", sidecar=False)
    assert counts == {"queries": 2, "hits": 1, "queries_without_hits": 1}
    assert (tmp_path / "r.trec").read_text() == "q1 Q0 d1 1 1.000000 t\n"


def _single_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    return errors[0]


@pytest.mark.parametrize("extra, message", [
    (["--k1", "-0.5"], "argument --k1: expected a number >= 0 (finite), got '-0.5'"),
    (["--b", "1.5"], "argument --b: expected a number >= 0 and <= 1 (finite), got '1.5'"),
    (["--k1", "nan"], "argument --k1: expected a number >= 0 (finite), got 'nan'"),
])
def test_bad_bm25_parameters(index, tmp_path, capsys, extra, message):
    assert search(index, tmp_path / "run.trec", *extra) == 2
    assert message in _single_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_lists_close_matches(index, tmp_path, capsys):
    assert search(index, tmp_path / "run.trec", topics="convdr/cast20/mnii") == 2
    assert "convdr/cast20/mini" in _single_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_query_type_the_dataset_lacks(index, tmp_path, capsys):
    assert search(index, tmp_path / "run.trec", query="automatic", topics="convdr/cast19") == 2
    assert "convdr/cast19 has no automatic queries" in _single_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_index(tmp_path, capsys):
    out = tmp_path / "out"
    assert search(tmp_path / "nowhere", out / "run.trec") == 2
    assert "does not exist" in _single_error(capsys)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "segments_1").write_bytes(b"this is not a lucene segments file")
    assert search(corrupt, out / "run.trec") == 2
    assert "corrupt" in _single_error(capsys)
    not_an_index = tmp_path / "empty"
    not_an_index.mkdir()
    assert search(not_an_index, out / "run.trec") == 2
    assert "not a Lucene index" in _single_error(capsys)
    assert not any(out.iterdir()) if out.exists() else True


def test_unwritable_output(index, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert search(index, blocker / "run.trec") == 2
    assert "is not a directory" in _single_error(capsys)
    assert search(index, tmp_path) == 2
    assert "is a directory" in _single_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
