"""Compressed inputs and outputs: every strict reader takes `*.gz`, `*.bz2` and `*.xz` files transparently, with the
same checks and line numbers as plain files; every writer writes an output named `*.gz` compressed, atomically and
byte-identically on a rerun (no timestamp, no file name in the gzip header)."""
import bz2
import gzip
import json
import lzma
import shutil

import pytest

from convdr_pyserini.errors import InvalidInput, UserError
from convdr_pyserini.io import Qrels, Run, load_rewrites, write_text
from convdr_pyserini.io.collections import collection_files, read_documents
from convdr_pyserini.resolve import load_topics

COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def compressed(source, folder, suffix, data=None):
    """A compressed copy of `source` (or of `data`) named `<source name><suffix>` in `folder`."""
    target = folder / (source.name + suffix)
    target.write_bytes(COMPRESSORS[suffix](source.read_bytes() if data is None else data))
    return target


@pytest.fixture
def cast20(shared_data):
    return shared_data / "cast-20"


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_runs_read_compressed_like_plain(cast20, tmp_path, suffix):
    plain = cast20 / "runs-grill-qr-eval" / "Human_reranked_100.txt"
    packed = compressed(plain, tmp_path, suffix)
    assert Run.read(packed).hits == Run.read(plain).hits


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_qrels_read_compressed_like_plain(cast20, tmp_path, suffix):
    plain = cast20 / "2020qrels.txt"
    assert Qrels.read(compressed(plain, tmp_path, suffix)).judgments == Qrels.read(plain).judgments


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_topics_json_and_tsv_read_compressed(cast20, tmp_path, suffix):
    plain = cast20 / "2020_manual_evaluation_topics_v1.0.json"
    from_json = load_topics(compressed(plain, tmp_path, suffix))
    assert [(q.query_id, q.default_text()) for q in from_json] == [(q.query_id, q.default_text()) for q in load_topics(plain)]
    tsv = tmp_path / "topics.tsv"
    tsv.write_text("".join(f"{q.query_id}\t{q.default_text()}\n" for q in from_json), encoding="utf-8")
    from_tsv = load_topics(compressed(tsv, tmp_path, suffix))
    assert [q.query_id for q in from_tsv] == [q.query_id for q in from_json]
    assert from_tsv.turn_of("81_3") == 3


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_rewrites_read_compressed(cast20, tmp_path, suffix):
    plain = cast20 / "rewrites-grill-qr-eval" / "11_Human.tsv"
    rewrites = load_rewrites(compressed(plain, tmp_path, suffix))
    assert rewrites.texts == load_rewrites(plain).texts
    assert rewrites.name == "11_Human"


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_collection_files_read_compressed(tmp_path, suffix):
    from convdr_pyserini import datasets

    plain = datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl"
    folder = tmp_path / "collection"
    folder.mkdir()
    compressed(plain, folder, suffix)
    files = collection_files(folder)
    assert [path.name for path in files] == ["docs.jsonl" + suffix]
    assert [doc.docid for doc in read_documents(files)] == [doc.docid for doc in read_documents([plain])]


def test_errors_in_compressed_files_name_the_decompressed_line(cast20, tmp_path):
    lines = (cast20 / "runs-grill-qr-eval" / "Human_reranked_100.txt").read_bytes().splitlines(keepends=True)
    lines[41] = b"81_1 Q0 MARCO_1 42 NaN tag\n"
    run = compressed(tmp_path / "bad.trec", tmp_path, ".gz", b"".join(lines))
    with pytest.raises(InvalidInput) as caught:
        Run.read(run)
    assert caught.value.problems == [f"{run}:42: score 'NaN' is not a finite number"]
    qrels = compressed(tmp_path / "bad.qrels", tmp_path, ".xz", b"81_1 0 CAR_a 1\n81_1 0 CAR_b x\n")
    with pytest.raises(InvalidInput, match=r"bad\.qrels\.xz:2: grade 'x' is not an integer"):
        Qrels.read(qrels)
    binary = compressed(tmp_path / "nul.tsv", tmp_path, ".bz2", b"81_1\tfine\n81_2\tnot\0fine\n")
    with pytest.raises(UserError, match=r"nul\.tsv\.bz2:2: binary data \(a NUL byte at column 9\)"):
        load_topics(binary)


def test_corrupt_truncated_and_misnamed_compressed_files_are_one_error(cast20, tmp_path):
    data = gzip.compress((cast20 / "2020qrels.txt").read_bytes())
    truncated = tmp_path / "truncated.qrels.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"truncated\.qrels\.gz:\d+: cannot be decompressed as gz") as caught:
        Qrels.read(truncated)
    assert int(str(caught.value).split(":")[1]) > 100  # the lines before the cut were read
    garbage = tmp_path / "garbage.trec.xz"
    garbage.write_bytes(b"not xz at all\n")
    with pytest.raises(UserError, match=r"garbage\.trec\.xz:1: cannot be decompressed as xz"):
        Run.read(garbage)
    misnamed = tmp_path / "run.trec"
    misnamed.write_bytes(gzip.compress(b"81_1 Q0 MARCO_1 1 1.0 tag\n"))
    with pytest.raises(UserError, match=r"run\.trec: compressed data \(gz\) in a file without the \.gz suffix; "
                                        r"name it run\.trec\.gz"):
        Run.read(misnamed)


def _gzip_header_is_reproducible(path):
    header = path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # no FNAME: the temporary's name is not recorded
    assert header[4:8] == b"\0\0\0\0"  # mtime 0


def test_run_writer_compresses_by_suffix_byte_identically(cast20, tmp_path):
    plain_run = cast20 / "runs-grill-qr-eval" / "Human_reranked_100.txt"
    Run.read(plain_run).write(tmp_path / "plain.trec", tag="t", sidecar=False)
    for suffix, opener in (".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open):
        out = tmp_path / f"run.trec{suffix}"
        Run.read(plain_run).write(out, tag="t")
        first = out.read_bytes()
        with opener(out, "rb") as handle:
            assert handle.read() == (tmp_path / "plain.trec").read_bytes()
        assert json.loads((tmp_path / f"run.trec{suffix}.json").read_text())["output"] == str(out)
        Run.read(plain_run).write(out, tag="t", overwrite=True)
        assert out.read_bytes() == first
        assert Run.read(out).hits == Run.read(tmp_path / "plain.trec").hits
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    _gzip_header_is_reproducible(tmp_path / "run.trec.gz")


def test_search_hit_arrays_write_compressed(tmp_path):
    """The array path of `Run.write` (a search's hits, written as bytes) compresses too."""
    import numpy as np

    from convdr_pyserini.io.runs import HitArrays

    class Docids:
        names = ["d1", "d2", "d3"]

        def get(self, rows):
            return [self.names[row] for row in rows]

        def padded(self, rows):
            return np.array([list(self.names[row].encode()) for row in rows], dtype=np.uint8)

    hits = HitArrays(["q1", "q2"], np.array([[2, 0], [1, 0]]), np.array([[3.5, 1.0], [2.0, 0.0]], dtype=np.float32),
                     np.array([2, 1]), Docids())
    Run(hits).write(tmp_path / "arrays.trec.gz", tag="t", sidecar=False)
    assert gzip.decompress((tmp_path / "arrays.trec.gz").read_bytes()) == \
        b"q1 Q0 d3 1 3.500000 t\nq1 Q0 d1 2 1.000000 t\nq2 Q0 d2 1 2.000000 t\n"
    _gzip_header_is_reproducible(tmp_path / "arrays.trec.gz")


def test_qrels_and_text_writers_compress_by_suffix(cast20, tmp_path):
    qrels = Qrels.read(cast20 / "2020qrels.txt")
    qrels.write(tmp_path / "q.txt.gz")
    first = (tmp_path / "q.txt.gz").read_bytes()
    qrels.write(tmp_path / "q.txt.gz", overwrite=True)
    assert (tmp_path / "q.txt.gz").read_bytes() == first
    assert Qrels.read(tmp_path / "q.txt.gz").judgments == qrels.judgments
    _gzip_header_is_reproducible(tmp_path / "q.txt.gz")
    write_text(tmp_path / "notes.md.xz", "héllo\n")
    assert lzma.decompress((tmp_path / "notes.md.xz").read_bytes()).decode("utf-8") == "héllo\n"


def test_evaluate_scores_a_gzipped_run_like_ir_measures(cast20, tmp_path, capsys):
    import ir_measures

    from convdr_pyserini.evaluate.__main__ import main

    plain = cast20 / "runs-grill-qr-eval" / "Human_reranked_100.txt"
    packed = compressed(plain, tmp_path, ".gz")
    shutil.copy(cast20 / "2020qrels.txt", tmp_path / "qrels.txt")
    expected = ir_measures.calc_aggregate([ir_measures.nDCG @ 3], ir_measures.read_trec_qrels(str(tmp_path / "qrels.txt")),
                                          ir_measures.read_trec_run(str(packed)))[ir_measures.nDCG @ 3]
    assert main(["--qrels", str(tmp_path / "qrels.txt"), "--run", str(packed), "--measures", "nDCG@3",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["aggregate"]["nDCG@3"] == pytest.approx(expected, abs=1e-12)
