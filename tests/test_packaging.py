"""A normal install works: the wheel carries the encoder cards, matrices and data manifest, and builds a dense
index from a folder that is not the repository. Pyserini's own command-line tools run on our indexes."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import small_indexes
from convdr_pyserini.search.__main__ import main as search_main

ROOT = Path(__file__).resolve().parents[1]
MINI = "convdr/cast20/mini"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the sources (nothing written into the checkout), unpacked into a folder."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "convdr_pyserini", source / "convdr_pyserini",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next(dist.glob("convdr_pyserini-*.whl"))
    target = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:  # installing a pure-Python wheel is unpacking it
        names = archive.namelist()
        archive.extractall(target)
    assert "convdr_pyserini/data/encoders/minilm.yaml" in names
    assert "convdr_pyserini/data/matrices/cast20.yaml" in names and "convdr_pyserini/data/files.yaml" in names
    assert {"convdr_pyserini/compare/assets/explorer.js", "convdr_pyserini/compare/assets/explorer.css"} <= set(names)
    return target


def test_the_wheel_builds_a_dense_index_outside_the_repository(installed, tmp_path, shared_data):
    from convdr_pyserini import datasets

    work = tmp_path / "elsewhere"
    (work / "collection").mkdir(parents=True)
    lines = (datasets.collection_jsonl(MINI) / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:16]
    (work / "collection" / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(installed))
    where = subprocess.run([sys.executable, "-c", "import convdr_pyserini, sys; print(convdr_pyserini.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    built = subprocess.run([sys.executable, "-m", "convdr_pyserini.index", "dense", "--collection", "collection",
                            "--encoder", "minilm", "--output", "index", "--max-length", "24", "--chunk-size", "8"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert (work / "index" / "docid").read_text().split() == [line.split('"')[3] for line in lines]
    matrix = subprocess.run([sys.executable, "-m", "convdr_pyserini.reproduce", "cast20", "--condition",
                             "grill-human-reranked"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert matrix.returncode == 0 and "measured 0.4789  OK" in matrix.stdout, matrix.stderr


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("pyserini_cli")
    lines = small_indexes(root, 64, "--max-length", "24")
    topics = root / "topics.tsv"
    first_words = lambda line: " ".join(line.split('"contents": "')[1].split()[:6])  # noqa: E731
    topics.write_text(f"q1\t{first_words(lines[0])}\nq2\t{first_words(lines[40])}\n", encoding="utf-8")
    return root


def _docids(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        found.setdefault(fields[0], []).append(fields[2])
    return found


def _pyserini(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convdr_pyserini.pyserini", *argv], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OPENAI_API_KEY=""))


def test_pyserini_search_lucene_runs_on_our_index(indexes, tmp_path):
    theirs = tmp_path / "theirs.trec"
    done = _pyserini("search.lucene", "--index", str(indexes / "lucene"), "--topics", str(indexes / "topics.tsv"),
                     "--output", str(theirs), "--bm25", "--k1", "0.82", "--b", "0.68", "--hits", "10")
    assert done.returncode == 0, done.stderr[-2000:]
    ours = tmp_path / "ours.trec"
    assert search_main(["--bm25", "--topics", str(indexes / "topics.tsv"), "--query", "raw", "--index",
                        str(indexes / "lucene"), "--hits", "10", "--output", str(ours)]) == 0
    assert _docids(theirs) == _docids(ours) and sum(map(len, _docids(ours).values())) > 0


def test_pyserini_search_faiss_runs_on_our_index(indexes, tmp_path):
    from convdr_pyserini.encode import resolve_card

    theirs = tmp_path / "theirs.trec"
    model = str(resolve_card("minilm").weights_location())
    done = _pyserini("search.faiss", "--index", str(indexes / "dense"), "--topics", str(indexes / "topics.tsv"),
                     "--encoder", model, "--encoder-class", "auto", "--pooling", "mean", "--l2-norm",
                     "--output", str(theirs), "--hits", "5", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    ours = tmp_path / "ours.trec"
    assert search_main(["--encoder", "minilm", "--topics", str(indexes / "topics.tsv"), "--query", "raw",
                        "--index", str(indexes / "dense"), "--hits", "5", "--output", str(ours)]) == 0
    assert _docids(theirs) == _docids(ours)


def test_pyserini_wrapper_help_and_unknown_module(capsys):
    from convdr_pyserini.pyserini import main

    assert main(["--help"]) == 0 and "search.faiss" in capsys.readouterr().out
    assert main(["no.such.module"]) == 2 and "error: pyserini.no.such.module is not a Pyserini module" in \
        capsys.readouterr().err
