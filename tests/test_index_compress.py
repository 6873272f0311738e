"""Compressed dense indexes (`index compress`, `index dense --index-type`): exact at full probe, seeded
training recorded in meta.json, Pyserini's layout (FaissSearcher loads them), and bad input.

The vectors are clustered synthetic unit vectors (40 centres, 32 dimensions), so that IVF lists are
uneven as with real embeddings and the module runs in seconds."""
import json

import faiss
import numpy as np
import pytest

from convdr_pyserini.errors import UserError
from convdr_pyserini.index import compress_index, faiss_io
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.index.compress import read_rows, sample_rows
from convdr_pyserini.search.dense import DenseSearcher

COUNT, DIM = 3000, 32


def clustered(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    vectors = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal((count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_flat(folder, vectors):
    folder.mkdir(parents=True)
    writer = faiss_io.FlatWriter(folder / faiss_io.INDEX, vectors.shape[1])
    writer.append(vectors[: len(vectors) // 2])
    writer.append(vectors[len(vectors) // 2:])
    writer.finish()
    (folder / faiss_io.DOCID).write_text("".join(f"doc{row:05d}\n" for row in range(len(vectors))))
    faiss_io.write_meta(folder, {"index_type": "flat", "count": len(vectors), "dimension": vectors.shape[1]})
    return folder


@pytest.fixture(scope="module")
def vectors():
    return clustered(COUNT, DIM, seed=0)


@pytest.fixture(scope="module")
def queries():
    return clustered(20, DIM, seed=1)


@pytest.fixture(scope="module")
def flat(tmp_path_factory, vectors):
    return write_flat(tmp_path_factory.mktemp("flat") / "flat", vectors)


def test_ivf_flat_with_every_list_probed_gives_the_flat_top_k(flat, vectors, queries, tmp_path):
    meta = compress_index(flat, tmp_path / "ivf", "IVF16,Flat", train_sample=1000, seed=3)
    assert meta["index_type"] == "IVF16,Flat" and meta["train_sample"] == 1000 and meta["train_seed"] == 3
    assert meta["count"] == COUNT and meta["compressed_from"]["path"] == str(flat)
    exact = DenseSearcher([flat]).search(queries, 50)
    probed = DenseSearcher([tmp_path / "ivf"], nprobe=16).search(queries, 50)
    assert [[docid for docid, _ in hits] for hits in probed] == [[docid for docid, _ in hits] for hits in exact]
    np.testing.assert_allclose([[s for _, s in hits] for hits in probed], [[s for _, s in hits] for hits in exact],
                               rtol=1e-5)
    # and the flat top-k is the true one: brute force in float64
    expected = np.argsort(-(queries.astype(np.float64) @ vectors.astype(np.float64).T), axis=1, kind="stable")[:, :50]
    assert [[docid for docid, _ in hits] for hits in exact] == [[f"doc{row:05d}" for row in rows] for rows in expected]
    # one probed list of sixteen loses some of the top 50: nprobe reaches faiss
    one = DenseSearcher([tmp_path / "ivf"], nprobe=1).search(queries, 50)
    assert sum(len({d for d, _ in a} & {d for d, _ in b}) for a, b in zip(one, exact)) < 20 * 50


def test_training_sample_is_seeded_and_read_without_loading_the_index(flat, vectors, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        compress_index(flat, tmp_path / name, "IVF8,SQ8", train_sample=2000, seed=seed)
    assert (tmp_path / "a" / "index").read_bytes() == (tmp_path / "b" / "index").read_bytes()
    assert (tmp_path / "a" / "index").read_bytes() != (tmp_path / "c" / "index").read_bytes()
    rows = sample_rows(COUNT, 500, seed=7)
    assert len(set(rows.tolist())) == 500 and list(rows) == sorted(rows)
    np.testing.assert_array_equal(read_rows(faiss_io.open_index_dir(flat), rows), vectors[rows])


def test_pyserini_faiss_searcher_loads_a_compressed_index(flat, queries, tmp_path):
    from convdr_pyserini import _java

    output = tmp_path / "ivfpq"
    meta = compress_index(flat, output, "IVF16,PQ16", train_sample=2500)
    assert sorted(path.name for path in output.iterdir() if not path.name.startswith(".")) == \
        ["docid", "index", "meta.json"]
    assert meta["checksums"]["index"] == "sha256:" + faiss_io.sha256_of(output / "index")
    assert (output / "docid").read_bytes() == (flat / "docid").read_bytes()
    assert meta["bytes_per_vector"] < 4 * DIM / 3  # 16 code bytes, 8 id bytes and the codebooks, against 128
    ours = DenseSearcher([output], nprobe=4).search(queries, 10)
    searcher = _java.pyserini("search.faiss").FaissSearcher(str(output), None)
    faiss.extract_index_ivf(searcher.index).nprobe = 4
    theirs = searcher.batch_search(queries, [f"q{i}" for i in range(len(queries))], k=10)
    for number, hits in enumerate(ours):
        assert [hit.docid for hit in theirs[f"q{number}"]] == [docid for docid, _ in hits]
        np.testing.assert_allclose([hit.score for hit in theirs[f"q{number}"]], [s for _, s in hits], rtol=1e-5)


def test_hnsw_ef_search_reaches_faiss(flat, queries, tmp_path):
    compress_index(flat, tmp_path / "hnsw", "HNSW8", ef_construction=40)
    assert json.loads((tmp_path / "hnsw" / "meta.json").read_text())["ef_construction"] == 40
    exact = DenseSearcher([flat]).search(queries, 100)
    narrow = DenseSearcher([tmp_path / "hnsw"], ef_search=8).search(queries, 100)
    wide = DenseSearcher([tmp_path / "hnsw"], ef_search=512).search(queries, 100)

    def recall(found):
        return np.mean([len({d for d, _ in a} & {d for d, _ in b}) / 100 for a, b in zip(found, exact)])

    assert recall(narrow) < recall(wide) and recall(wide) >= 0.95


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("options, message", [
    (["--index-type", "IVF16,PQ7"], "not a faiss factory string faiss accepts for 32 dimensions"),
    (["--index-type", "NotAnIndex"], "not a faiss factory string"),
    (["--index-type", "IVF16,Flat", "--train-sample", "3001"],
     r"training sample of 3,001 vectors is larger than the index (3,000 vectors)"),
    (["--index-type", "HNSW8", "--train-sample", "100"], "needs no training"),
])
def test_bad_compress_input_is_one_error_line(flat, tmp_path, capsys, options, message):
    assert index_main(["compress", "--input", str(flat), "--output", str(tmp_path / "out"), *options]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_search_parameters_the_index_lacks_are_refused(flat, tmp_path):
    compress_index(flat, tmp_path / "ivf", "IVF16,SQ8", train_sample=COUNT)
    compress_index(flat, tmp_path / "hnsw", "HNSW8")
    with pytest.raises(UserError, match="^nprobe applies to compressed .* is flat"):
        DenseSearcher([flat], nprobe=4)
    queries = clustered(2, DIM, seed=1)
    with pytest.raises(UserError, match="^nprobe applies to IVF indexes"):
        DenseSearcher([tmp_path / "hnsw"], nprobe=4).search(queries, 5)
    with pytest.raises(UserError, match="^ef_search applies to HNSW indexes"):
        DenseSearcher([tmp_path / "ivf"], ef_search=16).search(queries, 5)
    with pytest.raises(UserError, match="^nprobe 17 is larger than the 16 lists"):
        DenseSearcher([tmp_path / "ivf"], nprobe=17).search(queries, 5)
    with pytest.raises(UserError, match="is not a flat index"):
        compress_index(tmp_path / "ivf", tmp_path / "again", "PQ4")


def test_refine_rescores_candidates_exactly_from_the_flat_index(flat, vectors, queries, tmp_path):
    compress_index(flat, tmp_path / "pq", "PQ8", train_sample=COUNT)
    exact = DenseSearcher([flat]).search(queries, 20)

    def overlap(found):
        return np.mean([len({d for d, _ in a} & {d for d, _ in b}) / 20 for a, b in zip(found, exact)])

    plain = DenseSearcher([tmp_path / "pq"]).search(queries, 20)
    refined = DenseSearcher([tmp_path / "pq"], refine=4).search(queries, 20)
    assert overlap(refined) > overlap(plain) and overlap(refined) >= 0.9
    for query, hits in zip(queries, refined):  # refined scores are the exact inner products
        rows = [int(docid[3:]) for docid, _ in hits]
        np.testing.assert_allclose([s for _, s in hits], vectors[rows] @ query, rtol=1e-5, atol=1e-6)

    other = write_flat(tmp_path / "other", clustered(COUNT, DIM, seed=5)[:COUNT - 1])
    with pytest.raises(UserError, match="holds 2999 x 32 flat vectors"):
        DenseSearcher([tmp_path / "pq"], refine=2, refine_from=other).search(queries, 5)
    twin = write_flat(tmp_path / "twin", vectors)
    (twin / "docid").write_text("".join(f"x{row}\n" for row in range(COUNT)))
    faiss_io.write_meta(twin, {"index_type": "flat"})
    with pytest.raises(UserError, match="different docid files; not the same collection"):
        DenseSearcher([tmp_path / "pq"], refine=2, refine_from=twin).search(queries, 5)
    with pytest.raises(UserError, match="^refine must be at least 1"):
        DenseSearcher([tmp_path / "pq"], refine=0.5)
    with pytest.raises(UserError, match="^refine applies to compressed"):
        DenseSearcher([flat], refine=2)


def test_many_queries_split_over_threads_give_the_one_thread_hits(flat, vectors, tmp_path):
    """64 queries are split over faiss's threads (re-scoring and tie ordering): the flat hits are the float64 brute
    force's and the fast-scan PQ hits, a fifth of them tied, are the same bytes as with one thread."""
    from convdr_pyserini.io.runs import HitArrays, Run

    compress_index(flat, tmp_path / "fs", "PQ16x4fs", train_sample=COUNT)
    queries = clustered(64, DIM, seed=9)
    exact = (queries.astype(np.float64) @ vectors.astype(np.float64).T).astype(np.float32)
    expected = [sorted(((f"doc{row:05d}", float(score)) for row, score in enumerate(scores)),
                       key=lambda hit: (-hit[1], hit[0]))[:40] for scores in exact]
    threads = faiss.omp_get_max_threads()
    written = {}
    try:
        for count in (1, 2):
            faiss.omp_set_num_threads(count)
            assert DenseSearcher([flat], block_rows=700).search(queries, 40) == expected
            searcher = DenseSearcher([tmp_path / "fs"])
            rows, scores, counts = searcher.search_arrays(queries, 40)
            assert (scores[:, 1:] == scores[:, :-1]).mean() > 0.1, "fast-scan scores should tie often"
            path = tmp_path / f"threads-{count}.trec"
            Run(HitArrays([f"q{i}" for i in range(64)], rows, scores, counts, searcher.docids)).write(
                path, tag="t", sidecar=False)
            written[count] = path.read_bytes()
    finally:
        faiss.omp_set_num_threads(threads)
    assert written[1] == written[2]
    tied = [(docids[j], docids[j + 1]) for found, values in zip(rows, scores)
            for docids in [searcher.docids.get(found)] for j in np.flatnonzero(values[1:] == values[:-1])]
    assert tied and all(docid < next_docid for docid, next_docid in tied)


def test_a_stored_nprobe_is_the_default_of_searches_that_give_none(flat, queries, tmp_path):
    """`index compress --nprobe N` (what docs/full-scale.md stores: a quarter of the lists) is kept in the index."""
    assert index_main(["compress", "--input", str(flat), "--output", str(tmp_path / "ivf"), "--index-type",
                       "IVF16,Flat", "--nprobe", "4", "--train-sample", "1000"]) == 0
    assert faiss_io.read_meta(tmp_path / "ivf")["nprobe"] == 4
    assert faiss.extract_index_ivf(faiss.read_index(str(tmp_path / "ivf" / faiss_io.INDEX))).nprobe == 4
    stored = DenseSearcher([tmp_path / "ivf"]).search(queries, 50)
    assert stored == DenseSearcher([tmp_path / "ivf"], nprobe=4).search(queries, 50)
    assert stored != DenseSearcher([tmp_path / "ivf"], nprobe=1).search(queries, 50)
    # checked before any training: more lists than the index has is one error
    with pytest.raises(UserError, match="nprobe 32 is larger than the 16 lists"):
        compress_index(flat, tmp_path / "too-many", "IVF16,Flat", nprobe=32)
    assert not (tmp_path / "too-many").exists()
