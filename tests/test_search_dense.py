"""Dense search: exact top-k with docid tie-breaking across blocks and shards, the search CLI with
`--encoder` (raw, manual, man_can, --cv) on real CAsT-20 topics, bad indexes, and the CV fold rule.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from convdr_pyserini.folds import folds, topic_file_order
from convdr_pyserini.index import faiss_io
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.search.__main__ import main as search_main
from convdr_pyserini.search.dense import DenseSearcher

MINI = "convdr/cast20/mini"


def write_index(folder: Path, vectors: np.ndarray, docids: list[str]) -> Path:
    folder.mkdir(parents=True)
    writer = faiss_io.FlatWriter(folder / faiss_io.INDEX, vectors.shape[1])
    writer.append(vectors)
    writer.finish()
    (folder / faiss_io.DOCID).write_text("".join(docid + "\n" for docid in docids))
    return folder


def brute_force(vectors, docids, queries, k):
    scores = (vectors.astype(np.float64) @ queries.astype(np.float64).T).astype(np.float32).T
    return [sorted(zip(docids, row.tolist()), key=lambda hit: (-hit[1], hit[0]))[:k] for row in scores]


@pytest.fixture(scope="module")
def tied_collection(tmp_path_factory):
    """300 vectors, a third of them exact duplicates (exact ties), in one flat index and in 3 pieces."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((200, 16)).astype(np.float32)
    vectors = np.concatenate([base, base[rng.choice(200, 100)]])
    order = rng.permutation(300)
    vectors = vectors[order]
    docids = [f"doc{rng.integers(10**6):06d}_{i}" for i in range(300)]
    root = tmp_path_factory.mktemp("tied")
    flat = write_index(root / "flat", vectors, docids)
    pieces = [write_index(root / f"piece{i}", vectors[i::3], docids[i::3]) for i in range(3)]
    queries = np.concatenate([rng.standard_normal((20, 16)), vectors[:5]]).astype(np.float32)
    return vectors, docids, flat, pieces, queries


@pytest.mark.parametrize("k", [1, 10, 45, 400])
def test_exact_top_k_with_docid_ties_in_blocks_and_shards(tied_collection, k):
    vectors, docids, flat, pieces, queries = tied_collection
    expected = brute_force(vectors, docids, queries, k)
    assert DenseSearcher([flat]).search(queries, k) == expected
    assert DenseSearcher([flat], block_rows=7).search(queries, k) == expected
    assert DenseSearcher(pieces).search(queries, k) == expected
    assert DenseSearcher(pieces[::-1], block_rows=13).search(queries, k) == expected
    full = brute_force(vectors, docids, queries, len(docids))
    assert any(len({score for _, score in hits}) < len(hits) for hits in full), "the data should hold exact ties"


def test_array_path_writes_the_run_file_the_lists_give(tied_collection, tmp_path):
    """Hits kept as arrays from faiss to the writer give the bytes (docid, score) lists give, also where
    duplicates tie at the k-th score across blocks and shards (the smallest docids take the last places)."""
    from convdr_pyserini.io.runs import HitArrays, Run

    vectors, docids, flat, pieces, queries = tied_collection
    full = brute_force(vectors, docids, queries, len(docids))
    cuts = [(q, k) for q, hits in enumerate(full) for k in range(1, 60) if hits[k - 1][1] == hits[k][1]]
    query, k = next((q, k) for q, k in cuts if q >= 20)  # a query equal to an indexed (duplicated) vector
    tied = {docid for docid, score in full[query] if score == full[query][k - 1][1]}
    assert len(tied) > 1 and {docid for docid, _ in full[query][:k]} & tied != tied
    qids = [f"q{i}" for i in range(len(queries))]
    expected = Run(dict(zip(qids, brute_force(vectors, docids, queries, k))))
    expected.write(tmp_path / "lists.trec", tag="t", sidecar=False)
    for number, searcher in enumerate([DenseSearcher([flat]), DenseSearcher([flat], block_rows=7),
                                       DenseSearcher(pieces), DenseSearcher(pieces[::-1], block_rows=13)]):
        rows, scores, counts = searcher.search_arrays(queries, k)
        arrays = HitArrays(qids, rows, scores, counts, searcher.docids)
        Run(arrays).write(tmp_path / f"arrays{number}.trec", tag="t", sidecar=False)
        assert (tmp_path / f"arrays{number}.trec").read_bytes() == (tmp_path / "lists.trec").read_bytes()
        assert dict(arrays) == expected.hits and Run(arrays).counts() == expected.counts()


def test_docid_ranks_order_keys_as_their_docids(tmp_path):
    """The integer ranks that break ties of many hits sort keys exactly as their docid strings do (code point
    order, trailing whitespace stripped, equal docids equal), in one table and across shard pieces."""
    docids = ["b", "a", "ab", "a b", "é", "z", "Z", "a\u00a0", "10", "9", "a", "\u4e2d", "ab\t", "", "aé"]
    (tmp_path / "docid").write_text("".join(docid + "\n" for docid in docids), encoding="utf-8")
    (tmp_path / "docid2").write_text("".join(docid + "\n" for docid in docids[::-1]), encoding="utf-8")
    one = faiss_io.DocidTable(tmp_path / "docid")
    joined = faiss_io.JoinedDocids([one, faiss_io.DocidTable(tmp_path / "docid2")], np.array([0, len(docids)]))
    for table in (one, joined):
        assert table.ranks(build=False) is None
        ranks = table.ranks(build=True, chunk=4)  # several chunks of different widths
        names = table.get(np.arange(len(table)))
        assert sorted(range(len(names)), key=lambda key: (ranks[key], key)) == \
            sorted(range(len(names)), key=lambda key: (names[key], key))
        assert all((ranks[i] == ranks[j]) == (names[i] == names[j]) for i in range(len(names)) for j in range(i))


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, shared_data):
    """A MiniLM index (short inputs) of the 64 first passages of the mini collection."""
    from convdr_pyserini import datasets

    source = datasets.collection_jsonl(MINI) / "docs.jsonl"
    root = tmp_path_factory.mktemp("small_index")
    (root / "collection").mkdir()
    with open(source, encoding="utf-8") as handle:
        (root / "collection" / "docs.jsonl").write_text("".join(next(handle) for _ in range(64)), encoding="utf-8")
    output = root / "index"
    assert index_main(["dense", "--collection", str(root / "collection"), "--output", str(output), "--encoder", "minilm",
                       "--max-length", "24"]) == 0
    return output


def read_run(path):
    lines = [line.split() for line in Path(path).read_text().splitlines()]
    run = {}
    for qid, _, docid, rank, score, _ in lines:
        run.setdefault(qid, []).append((docid, float(score), int(rank)))
    return run


def test_search_cli_matches_direct_computation(tmp_path, small_index):
    from convdr_pyserini import datasets
    from convdr_pyserini.encode import ConvDRQueryEncoder, conversational_input

    output = tmp_path / "run.trec"
    argv = ["--topics", MINI, "--encoder", "minilm", "--query", "raw", "--index", str(small_index),
            "--hits", "10", "--output", str(output)]
    assert search_main(argv) == 0
    run = read_run(output)
    records = list(datasets.load(MINI).queries_iter())
    assert list(run) == [record.query_id for record in records] and len(run) == 216
    encoder = ConvDRQueryEncoder("minilm", mode="raw")
    embeddings = encoder.encode_batch([conversational_input(record, "raw") for record in records])
    expected = DenseSearcher([small_index]).search(embeddings, 10)
    for record, hits in zip(records, expected):
        assert [docid for docid, _, _ in run[record.query_id]] == [docid for docid, _ in hits]
        np.testing.assert_allclose([score for _, score, _ in run[record.query_id]], [s for _, s in hits], atol=1e-4)
    sidecar = json.loads((tmp_path / "run.trec.json").read_text())
    assert sidecar["query_type"] == "raw" and sidecar["encoder"] == "minilm"
    first = output.read_bytes()
    assert search_main(argv) == 2  # an existing run is kept unless --overwrite is given
    assert search_main([*argv, "--overwrite"]) == 0 and output.read_bytes() == first


def test_cv_routes_each_fold_to_its_model(tmp_path, small_index):
    """Five fold models with different weights: each topic's hits under --cv are exactly those of the model of its
    fold (searched alone), and the models rank differently, so a wrong routing would show."""
    from test_convdr_inputs import write_tiny_roberta_tokenizer
    from test_encode import ance_state, write_transformers2_folder

    cv = tmp_path / "cv"
    for fold in range(5):
        folder = cv / f"fold-{fold}"
        vocab = write_tiny_roberta_tokenizer(folder)
        write_transformers2_folder(folder, ance_state(len(vocab), dimension=384, seed=100 + fold), len(vocab))
    fold_of = folds(MINI.removesuffix("/mini"), range(81, 106))
    base = ["--topics", MINI, "--query", "manual", "--index", str(small_index), "--hits", "5", "--tag", "t"]
    assert search_main([*base, "--cv", str(cv), "--output", str(tmp_path / "cv.trec")]) == 0
    routed = read_run(tmp_path / "cv.trec")
    alone = {}
    for fold in range(5):
        assert search_main([*base, "--encoder", str(cv / f"fold-{fold}"), "--output", str(tmp_path / f"{fold}.trec")]) == 0
        alone[fold] = read_run(tmp_path / f"{fold}.trec")
    assert len(routed) == 216
    for qid, hits in routed.items():
        own = alone[fold_of[int(qid.split("_")[0])]][qid]
        assert [docid for docid, _, _ in hits] == [docid for docid, _, _ in own]
        np.testing.assert_allclose([s for _, s, _ in hits], [s for _, s, _ in own], rtol=1e-5, atol=1e-5)
    differing = [qid for qid in routed if len({tuple(d for d, _, _ in alone[f][qid]) for f in range(5)}) > 1]
    assert len(differing) > 100  # the fold models disagree on most queries
    # a conversational search records what each fold's encoder saw; the explorer shows exactly that, and what it
    # would compute again from the models for a run without the record is the same text
    from convdr_pyserini.compare.explorer import encoder_inputs
    from convdr_pyserini.io.runs import Run
    from convdr_pyserini.resolve import load_topics

    no_res = tmp_path / "no_res.trec"
    assert search_main([*base[:2], "--query", "no_res", *base[4:], "--cv", str(cv), "--output", str(no_res)]) == 0
    recorded = json.loads(no_res.with_name("no_res.trec.json").read_text())["encoder_input"]
    assert len(recorded["texts"]) == 216 and recorded["max_concat_length"] == 256
    shown, note = encoder_inputs(Run.read(no_res), load_topics(MINI))
    assert shown == recorded["texts"] and "at most 256 tokens, truncation convdr" in note
    sidecar = json.loads(no_res.with_name("no_res.trec.json").read_text())
    del sidecar["encoder_input"]
    no_res.with_name("no_res.trec.json").write_text(json.dumps(sidecar))
    assert encoder_inputs(Run.read(no_res), load_topics(MINI)) == (shown, note)
    # a single fold model whose card records its training scores its held-out topics only, unless --all-topics
    import yaml

    card = {"name": "fold-1", "architecture": "rdot_nll", "lowercase": True, "truncate": "convdr",
            "training": {"topics": MINI, "cv": 5, "fold": 1, "heldout_topics": [86, 87, 88, 89, 90]}}
    (cv / "fold-1" / "encoder.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    single = [*base, "--encoder", str(cv / "fold-1")]
    assert search_main([*single, "--output", str(tmp_path / "held.trec")]) == 0
    assert {qid.split("_")[0] for qid in read_run(tmp_path / "held.trec")} == {"86", "87", "88", "89", "90"}
    assert search_main([*single, "--all-topics", "--output", str(tmp_path / "all.trec")]) == 0
    assert len(read_run(tmp_path / "all.trec")) == 216
    assert search_main([*base[:6], "--bm25", "--all-topics", "--output", str(tmp_path / "b.trec")]) == 2
    import shutil

    shutil.rmtree(cv / "fold-3")
    assert search_main([*base, "--cv", str(cv), "--output", str(tmp_path / "x.trec")]) == 2


def test_bad_indexes_exit_2(tmp_path, small_index, capsys):
    rng = np.random.default_rng(0)
    narrow = write_index(tmp_path / "narrow", rng.standard_normal((5, 16)).astype(np.float32), list("abcde"))
    short = write_index(tmp_path / "short", rng.standard_normal((5, 384)).astype(np.float32), list("abcd"))
    base = ["--topics", MINI, "--encoder", "minilm", "--query", "raw", "--output", str(tmp_path / "r.trec")]
    (tmp_path / "not-an-index").mkdir()
    for index, needle in [(narrow, "384-dimensional vectors but the index"), (short, "docid file has 4 ids"),
                          (tmp_path / "not-an-index", "is not a dense index")]:
        capsys.readouterr()
        assert search_main([*base, "--index", str(index)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
        assert not (tmp_path / "r.trec").exists()
    capsys.readouterr()
    assert search_main([*base, "--index", str(small_index), str(narrow)]) == 2
    assert "different dimensions" in capsys.readouterr().err


def test_fold_rule(shared_data):
    assert list(folds("convdr/cast20", [81, 85, 86, 100, 105]).values()) == [0, 0, 1, 3, 4]
    assert list(folds(None, [81, 85, 86, 100, 105]).values()) == [0, 0, 1, 3, 4]  # a CAsT-20 topics file
    order = topic_file_order("convdr/cast19/judged")
    assert order == list(range(31, 81))
    assert folds("convdr/cast19/judged", [31, 40, 41, 79]) == {31: 0, 40: 0, 41: 1, 79: 4}
    assert folds("convdr/cast19/train", [1, 11, 30]) == {1: 0, 11: 1, 30: 2}


# Measured with the full build below (MiniLM, max length 256), 208 judged queries; also in the README.
MINI_DENSE = {"raw": {"nDCG@3": 0.4890, "RR(rel=2)": 0.6122, "R@100": 0.3101},
              "manual": {"nDCG@3": 0.6342, "RR(rel=2)": 0.7765, "R@100": 0.3570}}


@pytest.mark.slow
def test_minilm_dense_retrieval_on_mini(tmp_path, shared_data):
    """Build the MiniLM index of the whole mini collection and reproduce the README's dense numbers."""
    import ir_measures
    from ir_measures import RR, R, nDCG

    from convdr_pyserini import datasets

    index = tmp_path / "mini.minilm"
    assert index_main(["dense", "--collection", MINI, "--encoder", "minilm", "--output", str(index)]) == 0
    qrels = list(datasets.load(MINI).qrels_iter())
    for query, expected in MINI_DENSE.items():
        run_file = tmp_path / f"{query}.trec"
        assert search_main(["--topics", MINI, "--encoder", "minilm", "--query", query, "--index", str(index),
                            "--output", str(run_file)]) == 0
        scores = ir_measures.calc_aggregate([nDCG @ 3, RR(rel=2), R @ 100], qrels,
                                            list(ir_measures.read_trec_run(str(run_file))))
        assert {str(m): round(v, 4) for m, v in scores.items()} == pytest.approx(expected, abs=1e-3)


def test_canonical_responses_for_man_can(shared_data):
    """man_can/auto_can inputs carry the previous turn's canonical passage, also for the full collection."""
    from convdr_pyserini import datasets
    from convdr_pyserini.encode import conversational_input
    from convdr_pyserini.resolve import load_topics, response_lookup

    mini = datasets.load(MINI)
    record = next(q for q in mini.queries_iter() if q.query_id == "81_3")
    previous = record.history_manual_canonical_result_ids[-1]
    # convdr/cast20's own docstore (the 38.6M-passage collection) is too large to hold: the lookup falls back to
    # the mini collection, which holds every CAsT-20 canonical passage; so does a CAsT JSON topics file
    manual_json = shared_data / "cast-20" / "2020_manual_evaluation_topics_v1.0.json"
    for topics in (load_topics(MINI), load_topics("convdr/cast20"), load_topics(manual_json)):
        lookup = response_lookup(topics)
        text = lookup(previous)
        assert text == mini.docs_store().get(previous).text and len(text) > 50
        assert conversational_input(topics["81_3"], "man_can", lookup)["responses"] == [text]
