"""Ray: `index dense --ray`, `search --ray` and `train --ray` on a local 2-CPU Ray instance give the same bytes as
one process; a dying worker and a failed driver run resume to the same index; bad cluster input is one line.

One Ray instance serves the whole module (`ray.init(num_cpus=2)` in this process), so the commands are called
in-process and use it as it is (as in a notebook that called `ray.init` itself).
"""
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.train.__main__ import main as train_main
from test_train import tiny_model  # noqa: F401 (a fixture)

FAST = ["--encoder", "minilm", "--max-length", "24", "--chunk-size", "8", "--batch-size", "8"]
PASSAGES = 64


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for this module (workers inherit the test cache settings)."""
    import ray

    from convdr_pyserini._ray import keep_fault_handlers

    with keep_fault_handlers():  # the JVM that earlier tests started in this process must survive Ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    with keep_fault_handlers():
        ray.shutdown()


@pytest.fixture(scope="module")
def collection(tmp_path_factory, shared_data):
    """The first 64 passages of convdr/cast20/mini, and their single-process flat index (the reference)."""
    from convdr_pyserini import datasets

    folder = tmp_path_factory.mktemp("ray_collection")
    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8")
    (folder / "docs").mkdir()
    (folder / "docs" / "docs.jsonl").write_text("".join(lines.splitlines(keepends=True)[:PASSAGES]), encoding="utf-8")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray workers' one thread: another count changes the last float bits
    try:
        assert index_main(["dense", "--collection", str(folder / "docs"), "--output", str(folder / "single"),
                           *FAST]) == 0
    finally:
        torch.set_num_threads(threads)
    return folder


def same_index(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in ("index", "docid"))


def build_on_ray(collection: Path, output: Path, *extra: str) -> int:
    return index_main(["dense", "--collection", str(collection / "docs"), "--output", str(output), *FAST,
                       "--ray", "--ray-workers", "2", *extra])


def test_ray_build_is_the_single_process_index(local_ray, collection, tmp_path):
    output = tmp_path / "ray"
    assert build_on_ray(collection, output) == 0
    assert same_index(output, collection / "single")
    meta = json.loads((output / "meta.json").read_text())
    assert meta["count"] == PASSAGES and len(meta["merged_from"]) == 2 and "--ray" in meta["build_command"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ray"]  # pieces and locks are gone


class _FailingInPieceZero:
    """Piece 0 fails (a UserError) at its second chunk, once piece 1 is finished: a run that stops with one piece
    done and one partial."""

    def build(self, config):
        if config.shard[0] == 0:
            encode, calls = self.encoder.encode_passages, []
            finished = config.target.parent / "shard-1-of-2" / "meta.json"

            def encode_or_fail(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:
                    deadline = time.time() + 300
                    while not finished.is_file() and time.time() < deadline:
                        time.sleep(0.2)
                    from convdr_pyserini.errors import UserError

                    raise UserError("piece 0 failed on purpose")
                return encode(*args, **kwargs)

            self.encoder.encode_passages = encode_or_fail
        return super().build(config)


class _DyingOnFirstChunk:
    """The first worker process to encode a chunk dies there (once: its restart, and every other worker, live)."""

    def __init__(self, config, threads):
        super().__init__(config, threads)
        encode, marker = self.encoder.encode_passages, Path(self.marker)

        def encode_or_die(*args, **kwargs):
            try:
                marker.open("x").close()
            except FileExistsError:
                return encode(*args, **kwargs)
            os._exit(1)

        self.encoder.encode_passages = encode_or_die


def test_failed_run_then_dying_worker_resume_to_the_same_index(local_ray, collection, tmp_path, monkeypatch, capsys):
    from convdr_pyserini.index import distributed

    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    output, worker = tmp_path / "ray", distributed.IndexWorker
    monkeypatch.setattr(distributed, "IndexWorker", type("Failing", (_FailingInPieceZero, worker), {}))
    assert build_on_ray(collection, output) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == ["error: piece 0 failed on purpose"]
    assert not output.exists() and (tmp_path / ".ray.ray" / "shard-1-of-2" / "meta.json").is_file()
    assert json.loads((tmp_path / ".ray.ray" / ".shard-0-of-2.partial" / "progress.json").read_text())["done"] == 8

    # the rerun (a new driver) keeps piece 1 and resumes piece 0, whose worker dies on its first chunk
    marker = tmp_path / "died"
    monkeypatch.setattr(distributed, "IndexWorker", type("Dying", (_DyingOnFirstChunk, worker), {"marker": str(marker)}))
    assert build_on_ray(collection, output) == 0
    assert marker.exists(), "no worker died: the test did not test a death"
    log = capsys.readouterr().err
    assert "resuming the Ray build" in log and "(1 to do)" in log
    assert same_index(output, collection / "single")


def test_ray_search_of_the_pieces_is_the_single_process_run(local_ray, collection, tmp_path):
    from convdr_pyserini.search.__main__ import main as search_main

    assert build_on_ray(collection, tmp_path / "sharded", "--ray-pieces") == 0  # the --shard 0/2 and 1/2 layout
    assert sorted(path.name for path in (tmp_path / "sharded").iterdir()) == ["shard-0-of-2", "shard-1-of-2"]
    query = ["--encoder", "minilm", "--topics", "convdr/cast20/mini", "--query", "manual", "--hits", "10"]
    assert search_main([*query, "--index", str(collection / "single"), "--output", str(tmp_path / "single.trec")]) == 0
    assert search_main([*query, "--index", str(tmp_path / "sharded"), "--output", str(tmp_path / "ray.trec"),
                        "--ray", "--ray-workers", "2"]) == 0
    assert (tmp_path / "ray.trec").read_text() == (tmp_path / "single.trec").read_text()
    sidecar = json.loads((tmp_path / "ray.trec.json").read_text())
    assert [meta["shard"]["index"] for meta in sidecar["index_meta"]] == [0, 1]


@pytest.mark.parametrize("case", ["gpus", "workers_without_ray"])
def test_bad_cluster_options_are_one_line(local_ray, collection, tmp_path, capsys, case):
    options = {"gpus": ["--ray", "--ray-gpus-per-worker", "1"], "workers_without_ray": ["--ray-workers", "2"]}[case]
    code = index_main(["dense", "--collection", str(collection / "docs"), "--output", str(tmp_path / "out"), *FAST,
                       *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert {"gpus": "--ray-gpus-per-worker 1, but the Ray cluster has 0 GPU(s)",
            "workers_without_ray": "--ray-workers needs --ray"}[case] in err[0]
    assert not (tmp_path / "out").exists()


def test_training_matrix_on_ray_is_the_sequential_one(local_ray, tmp_path, tiny_model, topics_81_90):
    """2 folds x 2 seeds: the same weights, cards (but timings) and cv.yaml as a sequential run with 1 thread."""
    import torch

    common = ["--topics", str(topics_81_90), "--teacher", str(tiny_model), "--epochs", "1", "--lr", "1e-3",
              "--cv", "2", "--seeds", "1", "2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_main([*common, "--output", str(tmp_path / "sequential")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert train_main([*common, "--output", str(tmp_path / "ray"), "--ray", "--ray-cpus-per-worker", "1"]) == 0
    files = sorted(path.relative_to(tmp_path / "sequential") for path in (tmp_path / "sequential").rglob("*"))
    assert files == sorted(path.relative_to(tmp_path / "ray") for path in (tmp_path / "ray").rglob("*"))
    assert len([name for name in files if name.name == "model.safetensors"]) == 4
    for name in files:
        a, b = tmp_path / "sequential" / name, tmp_path / "ray" / name
        if name.suffix == ".yaml":
            assert _without_timings(a) == _without_timings(b), name
        elif a.is_file():
            assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), name


@pytest.mark.slow
def test_reproduce_on_ray_is_the_sequential_matrix(local_ray, collection, tmp_path, tiny_model, topics_81_90, capsys):
    """A matrix with one trained condition (2 folds) over 2 seeds: the same models, runs and table (but the
    training seconds) as the sequential run with 1 thread."""
    import re

    import torch

    from convdr_pyserini.reproduce.__main__ import main as reproduce_main

    index = tmp_path / "tiny-index"
    assert index_main(["dense", "--collection", str(collection / "docs"), "--encoder", str(tiny_model),
                       "--output", str(index)]) == 0
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump({
        "title": "t", "qrels": "convdr/cast20/mini", "measures": "nDCG@3", "seeds": [1, 2], "baselines": ["kd"],
        "conditions": [{"name": "kd", "train": [{"name": "kd", "topics": str(topics_81_90), "teacher": str(tiny_model),
                                                 "epochs": 1, "lr": 0.001, "cv": 2}],
                        "search": {"retriever": "convdr", "topics": str(topics_81_90), "query": "no_res",
                                   "index": str(index), "hits": 10}}]}))

    def run(name, *extra):
        return reproduce_main([str(matrix), "--runs-dir", str(tmp_path / name / "runs"), "--models-dir",
                               str(tmp_path / name / "models"), "--table", str(tmp_path / name / "table.md"), *extra])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run("sequential") == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    assert run("ray", "--ray", "--ray-cpus-per-worker", "1") == 0
    log = capsys.readouterr().err
    assert "training 2 condition-seed pairs on Ray" in log and "training stage" not in log  # Ray trained them all
    for name in ("seed-1", "seed-2"):
        a, b = (tmp_path / side / "runs" / "matrix" / f"kd.{name}.trec" for side in ("sequential", "ray"))
        assert a.read_text() == b.read_text()
        for fold in ("fold-0", "fold-1"):
            a, b = (tmp_path / side / "models" / "matrix" / "kd" / name / "kd" / fold / "model.safetensors"
                    for side in ("sequential", "ray"))
            assert a.read_bytes() == b.read_bytes()
    untimed = lambda side: re.sub(r"\| [0-9]+ / [0-9]+ \|", "| s |", (tmp_path / side / "table.md").read_text())  # noqa: E731
    assert untimed("ray") == untimed("sequential")


def _without_timings(path: Path):
    value = yaml.safe_load(path.read_text())

    def strip(item):
        if isinstance(item, dict):
            return {key: strip(val) for key, val in item.items() if key not in ("seconds", "command", "search")}
        return [strip(val) for val in item] if isinstance(item, list) else item

    return strip(value)


@pytest.fixture(scope="module")
def topics_81_90(tmp_path_factory, shared_data):
    """CAsT-20 topics 81-90 (two folds of the CAsT-20 rule), with their manual rewrites."""
    from convdr_pyserini import files

    topics = json.loads(files.resolve("cast-20/2020_manual_evaluation_topics_v1.0.json").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("topics") / "topics-81-90.json"
    path.write_text(json.dumps([topic for topic in topics if topic["number"] <= 90]), encoding="utf-8")
    return path


RAY_BLOCKED = "import sys; sys.modules['ray'] = None; sys.argv[0] = 'x'; import runpy; " \
              "runpy.run_module('convdr_pyserini.index', run_name='__main__')"


@pytest.mark.parametrize("case", ["not_installed", "unreachable", "bad_address"])
def test_cluster_problems_are_one_line_and_exit_2(collection, tmp_path, case):
    command = {"not_installed": [sys.executable, "-c", RAY_BLOCKED],
               "unreachable": [sys.executable, "-m", "convdr_pyserini.index"],
               "bad_address": [sys.executable, "-m", "convdr_pyserini.index"]}[case]
    address = {"not_installed": [], "unreachable": ["127.0.0.1:9"], "bad_address": ["nowhere"]}[case]
    done = subprocess.run([*command, "dense", "--collection", str(collection / "docs"), "--output",
                           str(tmp_path / "out"), *FAST, "--ray", *address], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert {"not_installed": "pip install 'convdr_pyserini[ray]'", "unreachable": "cannot reach the Ray cluster at "
            "127.0.0.1:9", "bad_address": "expected auto, HOST:PORT or ray://HOST:PORT"}[case] in lines[0]
    assert not (tmp_path / "out").exists()


def test_package_imports_without_ray():
    code = "import sys; sys.modules['ray'] = None; import convdr_pyserini as cp; cp.DenseIndexConfig; " \
           "import convdr_pyserini.index.distributed, convdr_pyserini.train.distributed; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_fault_handlers_of_another_runtime_survive_ray():
    """ray.init and ray.shutdown replace the SIGSEGV handler, which the JVM needs for its own null checks (a JVM
    started before Ray then crashes the process): `keep_fault_handlers` puts the previous handler back."""
    code = """
import ctypes, faulthandler, signal
from convdr_pyserini._ray import keep_fault_handlers
libc = ctypes.CDLL(None)
def handler():
    action = ctypes.create_string_buffer(512)
    libc.sigaction(signal.SIGSEGV, None, action)
    return ctypes.cast(action, ctypes.POINTER(ctypes.c_void_p))[0]
faulthandler.enable()  # a C-level SIGSEGV handler, as the JVM's is
before = handler()
with keep_fault_handlers():
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)  # what ray.shutdown does
    assert handler() != before
print(handler() == before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr
