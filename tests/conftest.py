"""Shared fixtures: the real-data mirror and a private cache per test session."""
import os
from pathlib import Path

import pytest


def _mirror() -> Path:
    value = os.environ.get("CONVDR_PYSERINI_MIRROR")
    if not value:
        default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        if default.is_dir():
            os.environ["CONVDR_PYSERINI_MIRROR"] = str(default)
            value = str(default)
    return Path(value) if value else None


_MIRROR = _mirror()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the tests' cache (prepared collections, downloads) out of the user's home."""
    if not os.environ.get("CONVDR_PYSERINI_TEST_HOME"):
        os.environ["CONVDR_PYSERINI_TEST_HOME"] = str(tmp_path_factory.mktemp("convdr_home"))
    os.environ["CONVDR_PYSERINI_HOME"] = os.environ["CONVDR_PYSERINI_TEST_HOME"]
    os.environ["CONVDR_PYSERINI_OFFLINE"] = "1"
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data mirror (a folder laid out like ../shared/data)."""
    if _MIRROR is None or not (_MIRROR / "MANIFEST.md").is_file():
        pytest.fail("set CONVDR_PYSERINI_MIRROR to the shared data folder (../shared/data)")
    return _MIRROR


def small_indexes(root: Path, passages: int, *dense_options: str) -> list[str]:
    """The first `passages` mini passages as `root/collection`, indexed into `root/lucene` and, with MiniLM and
    `dense_options`, `root/dense`; returns the collection's JSON lines."""
    from convdr_pyserini import datasets
    from convdr_pyserini.index.__main__ import main as index_main

    (root / "collection").mkdir()
    lines = (datasets.collection_jsonl("convdr/cast20/mini") / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    lines = lines[:passages]
    (root / "collection" / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert index_main(["lucene", "--collection", str(root / "collection"), "--output", str(root / "lucene")]) == 0
    assert index_main(["dense", "--collection", str(root / "collection"), "--encoder", "minilm", *dense_options,
                       "--output", str(root / "dense")]) == 0
    return lines
