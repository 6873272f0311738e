"""Streaming JsonCollection preparation for CAsT (MS MARCO + TREC CAR) and OR-QuAC, on the real samples."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import convdr_pyserini.collection as collection
from convdr_pyserini.collection import default_output
from convdr_pyserini.collection.__main__ import main

MARCO = "collection-samples/ms_marco_passage_sample.tsv"
CAR = "collection-samples/trec_car_paragraph_sample.cbor"


def _marco_rows(shared_data) -> list[tuple[str, str]]:
    lines = (shared_data / MARCO).read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines]


def _car_rows(shared_data) -> list[tuple[str, str]]:
    from trec_car.read_data import iter_paragraphs

    with open(shared_data / CAR, "rb") as handle:
        return [(paragraph.para_id, paragraph.get_text()) for paragraph in iter_paragraphs(handle)]


def _duplicates(tmp_path, shared_data) -> Path:
    """A duplicate list in the CAsT format over real sample pids: keeps the first id of a line, drops the rest."""
    pids = [pid for pid, _ in _marco_rows(shared_data)]
    lines = [f"MARCO_{pids[0]}:MARCO_{pids[1]},MARCO_{pids[2]}", f"MARCO_{pids[3]}:",
             f"MARCO_{pids[10]}:{pids[11]}", f"MARCO_{pids[4]}:"]
    path = tmp_path / "duplicate_list_v1.0.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cast_args(shared_data, duplicates, output, *extra, marco=None, car=None):
    return ["cast", "--msmarco", str(marco or shared_data / MARCO), "--car", str(car or shared_data / CAR),
            "--duplicates", str(duplicates), "--output", str(output), *extra]


def _docs(folder: Path) -> list[dict]:
    return [json.loads(line) for shard in sorted(folder.glob("*.jsonl")) for line in shard.open(encoding="utf-8")]


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _error_line(capsys) -> str:
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


def test_cast_collection_official_ids_and_dedup(shared_data, tmp_path):
    duplicates = _duplicates(tmp_path, shared_data)
    output = tmp_path / "cast"
    assert main(_cast_args(shared_data, duplicates, output, "--shard-size", "50")) == 0
    marco, car = _marco_rows(shared_data), _car_rows(shared_data)
    dropped = {f"MARCO_{marco[i][0]}" for i in (1, 2, 11)}
    # ConvDR's text (preprocess_cast19/20.py): MS MARCO stripped, CAR tabs/newlines/CRs each become one space
    expected = [{"id": f"MARCO_{pid}", "contents": text.strip()} for pid, text in marco]
    expected = [doc for doc in expected if doc["id"] not in dropped]
    expected += [{"id": f"CAR_{para_id}",
                  "contents": text.replace("\t", " ").replace("\n", " ").replace("\r", " ").strip()}
                 for para_id, text in car]
    docs = _docs(output)
    assert docs == expected
    assert any("  " in doc["contents"] for doc in docs), "runs of spaces are kept, not collapsed"
    assert len(docs) == len({doc["id"] for doc in docs}) == 100 - 3 + 98
    shards = sorted(path.name for path in output.glob("*.jsonl"))
    assert shards == ["docs-00000.jsonl", "docs-00001.jsonl", "docs-00002.jsonl", "docs-00003.jsonl"]
    assert [sum(1 for _ in (output / name).open()) for name in shards] == [50, 50, 50, 45]
    summary = _summary(output)
    assert summary["counts"] == {"documents": 195, "shards": 4, "read": {"msmarco": 100, "car": 98},
                                 "excluded": {"msmarco": 3, "car": 0}}
    assert sorted(path.name for path in output.iterdir()) == ["collection.yaml"] + shards


def _summary(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((folder / "collection.yaml").read_text(encoding="utf-8"))


def test_reruns_and_shard_sizes_give_the_same_bytes(shared_data, tmp_path, capsys):
    duplicates = _duplicates(tmp_path, shared_data)
    first, second, single = tmp_path / "a", tmp_path / "b", tmp_path / "single"
    assert main(_cast_args(shared_data, duplicates, first, "--shard-size", "60")) == 0
    before = _files(first)
    assert main(_cast_args(shared_data, duplicates, first, "--shard-size", "60")) == 0
    assert "already holds this collection" in capsys.readouterr().err
    assert _files(first) == before
    assert main(_cast_args(shared_data, duplicates, second, "--shard-size", "60")) == 0
    assert _files(second) == before
    assert main(_cast_args(shared_data, duplicates, single)) == 0
    assert list(_files(single)) == ["collection.yaml", "docs-00000.jsonl"]
    assert _files(single)["docs-00000.jsonl"] == b"".join(data for name, data in before.items() if name.endswith(".jsonl"))
    # other options replace the older collection only when asked to
    assert main(_cast_args(shared_data, duplicates, first)) == 2
    assert "--overwrite" in _error_line(capsys)
    assert _files(first) == before
    assert main(_cast_args(shared_data, duplicates, first, "--overwrite")) == 0
    assert _files(first) == _files(single)


def test_interrupted_run_resumes_after_complete_shards(shared_data, tmp_path, monkeypatch, capsys):
    duplicates = _duplicates(tmp_path, shared_data)
    output = tmp_path / "cast"
    real_reader = collection.car_paragraphs

    def interrupted(path, start):
        for number, record in enumerate(real_reader(path, start), 1):
            if number == 30:
                raise KeyboardInterrupt
            yield record

    monkeypatch.setattr(collection, "car_paragraphs", interrupted)
    assert main(_cast_args(shared_data, duplicates, output, "--shard-size", "40")) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    staging = tmp_path / ".cast.partial"
    assert not output.exists()
    kept = {path.name: path.stat().st_ino for path in staging.glob("*.jsonl")}
    # 97 MARCO docs and 29 CAR paragraphs were read: three shards of 40 are complete
    assert sorted(kept) == ["docs-00000.jsonl", "docs-00001.jsonl", "docs-00002.jsonl"]
    monkeypatch.setattr(collection, "car_paragraphs", real_reader)
    assert main(_cast_args(shared_data, duplicates, output, "--shard-size", "40")) == 0
    assert "after 3 complete shards" in capsys.readouterr().err
    assert {name: (output / name).stat().st_ino for name in kept} == kept  # the complete shards were not rewritten
    assert not staging.exists()
    fresh = tmp_path / "fresh"
    assert main(_cast_args(shared_data, duplicates, fresh, "--shard-size", "40")) == 0
    assert _files(output) == _files(fresh)


def _bad_marco(tmp_path, shared_data) -> tuple[Path, int]:
    lines = (shared_data / MARCO).read_text(encoding="utf-8").splitlines(keepends=True)
    lines[79] = lines[79].replace("\t", " ", 1)
    path = tmp_path / "collection.tsv"
    path.write_text("".join(lines), encoding="utf-8")
    return path, 80


def test_malformed_tsv_line_after_some_shards_leaves_nothing(shared_data, tmp_path, capsys):
    duplicates = _duplicates(tmp_path, shared_data)
    marco, line = _bad_marco(tmp_path, shared_data)
    output = tmp_path / "out" / "cast"
    assert main(_cast_args(shared_data, duplicates, output, "--shard-size", "10", marco=marco)) == 2
    assert f"{marco}:{line}: expected 'pid<TAB>text'" in _error_line(capsys)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("problem", ["no colon", "not an id"])
def test_malformed_duplicate_list(shared_data, tmp_path, capsys, problem):
    bad = tmp_path / "duplicate_list_v1.0.txt"
    bad.write_text("MARCO_0:MARCO_1\n" + ("MARCO_5 MARCO_6\n" if problem == "no colon" else "MARCO_5:WAPO_6\n"),
                   encoding="utf-8")
    output = tmp_path / "cast"
    assert main(_cast_args(shared_data, bad, output)) == 2
    assert f"{bad}:2: expected 'MARCO_<pid>:MARCO_<pid>,MARCO_<pid>,...'" in _error_line(capsys)
    assert not output.exists()


def test_malformed_cbor_paragraph_leaves_nothing(shared_data, tmp_path, capsys):
    import cbor

    data = bytearray((shared_data / CAR).read_bytes())
    with open(shared_data / CAR, "rb") as handle:
        cbor.load(handle)
        handle.read(1)
        starts = []
        while handle.peek(1):
            starts.append(handle.tell())
            cbor.load(handle)
    data[starts[50]] = 0x00  # paragraph 51 becomes the integer 0
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(bytes(data))
    output = tmp_path / "cast"
    assert main(_cast_args(shared_data, _duplicates(tmp_path, shared_data), output, "--shard-size", "20", car=bad)) == 2
    assert f"error: {bad}: malformed TREC CAR paragraph 51 " in _error_line(capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.cbor", "duplicate_list_v1.0.txt"]


def test_missing_input_and_foreign_output_folder(shared_data, tmp_path, capsys):
    duplicates = _duplicates(tmp_path, shared_data)
    assert main(_cast_args(shared_data, duplicates, tmp_path / "o", car=tmp_path / "nope.cbor")) == 2
    assert f"{tmp_path / 'nope.cbor'} does not exist" in _error_line(capsys)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(_cast_args(shared_data, duplicates, foreign)) == 2
    assert "is not a collection written by this tool" in _error_line(capsys)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"


def _blocks(shared_data) -> list[dict]:
    """OR-QuAC all_blocks.txt records ({id, title, text}) made from the real MS MARCO sample texts."""
    return [{"id": f"{pid}@@@{index % 3}", "title": f"Article {pid}", "text": text}
            for index, (pid, text) in enumerate(_marco_rows(shared_data))]


def test_orquac_blocks(shared_data, tmp_path):
    blocks = _blocks(shared_data)
    path = tmp_path / "all_blocks.txt"
    path.write_text("".join(json.dumps(block) + "\n" for block in blocks), encoding="utf-8")
    output = tmp_path / "orquac"
    assert main(["orquac", "--blocks", str(path), "--output", str(output), "--shard-size", "30"]) == 0
    docs = _docs(output)
    flat = lambda text: text.replace("\t", " ").replace("\n", " ").replace("\r", " ").strip()  # noqa: E731
    assert docs == [{"id": block["id"], "contents": f"{flat(block['title'])}\n{flat(block['text'])}"}
                    for block in blocks]
    assert yaml.safe_load((output / "collection.yaml").read_text())["fields"] == ["title", "text"]
    assert len(list(output.glob("*.jsonl"))) == 4


@pytest.mark.parametrize("damage,message", [
    ("{\"id\": \"1@@@0\", \"title\": \"t\"", "malformed JSON"),
    ("{\"id\": \"1@@@0\", \"text\": \"x\"}", "missing field 'title'"),
    ("[\"1@@@0\", \"t\", \"x\"]", "expected a JSON object"),
])
def test_orquac_bad_lines(shared_data, tmp_path, capsys, damage, message):
    lines = [json.dumps(block) for block in _blocks(shared_data)]
    lines[41] = damage
    path = tmp_path / "all_blocks.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "orquac"
    assert main(["orquac", "--blocks", str(path), "--output", str(output), "--shard-size", "10"]) == 2
    error = _error_line(capsys)
    assert f"{path}:42: {message}" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_blocks.txt"]


def test_default_output_is_read_by_the_cast_dataset(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    assert default_output("cast") == tmp_path / "home" / "collections" / "cast"
    assert default_output("orquac") == tmp_path / "home" / "collections" / "orquac"
    args = _cast_args(shared_data, _duplicates(tmp_path, shared_data), "unused")[:-2]
    assert main(args) == 0
    from convdr_pyserini.datasets import load

    docs = list(load("convdr/cast/collection").docs_iter())
    assert [doc.doc_id for doc in docs] == [doc["id"] for doc in _docs(default_output("cast"))]
    assert len(docs) == 195


def _peak_rss_kb(tmp_path: Path, shared_data, copies: int) -> tuple[int, int]:
    """Peak RSS (KiB) of a child process preparing `copies` x the real samples, and the documents written."""
    marco_rows, car_path = _marco_rows(shared_data), tmp_path / f"car-{copies}.cbor"
    marco_path = tmp_path / f"collection-{copies}.tsv"
    with open(marco_path, "w", encoding="utf-8") as out:
        for copy in range(copies):
            for pid, text in marco_rows:
                out.write(f"{copy * 1000 + int(pid)}\t{text}\n")
    _repeat_car(shared_data / CAR, car_path, copies)
    output = tmp_path / f"out-{copies}"
    code = ("import resource, sys; from convdr_pyserini.collection.__main__ import main; "
            "rc = main(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    args = _cast_args(shared_data, _duplicates(tmp_path, shared_data), output, "--shard-size", "5000",
                      marco=marco_path, car=car_path)
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1]), _summary(output)["counts"]["documents"]


def _repeat_car(sample: Path, target: Path, copies: int) -> None:
    """A TREC CAR paragraph cbor holding `copies` x the sample paragraphs, each copy under new para_ids."""
    import hashlib

    import cbor

    with open(sample, "rb") as handle:
        header = cbor.load(handle)
        assert handle.read(1) == b"\x9f"
        items = []
        while handle.peek(1):
            items.append(cbor.load(handle))
    with open(target, "wb") as out:
        out.write(cbor.dumps(header) + b"\x9f")
        for copy in range(copies):
            for item in items:
                para_id = hashlib.sha1(item[1] + str(copy).encode()).hexdigest().encode()
                out.write(cbor.dumps([item[0], para_id, *item[2:]]))
        out.write(b"\xff")


def test_peak_memory_stays_flat_when_the_input_grows_tenfold(shared_data, tmp_path):
    small_rss, small_docs = _peak_rss_kb(tmp_path, shared_data, 30)
    large_rss, large_docs = _peak_rss_kb(tmp_path, shared_data, 300)
    assert (small_docs, large_docs) == (30 * 198 - 3, 300 * 198 - 3)
    # ~26 MB of input instead of ~2.6 MB: holding it would add far more than 12 MB
    print(f"peak RSS {small_rss} KiB for {small_docs} docs, {large_rss} KiB for {large_docs} docs")
    assert large_rss < small_rss + 12 * 1024, (small_rss, large_rss)


def test_help_starts_no_jvm_and_imports_no_torch():
    code = ("import sys; from convdr_pyserini.collection.__main__ import main; assert main(['cast', '--help']) == 0; "
            "assert 'torch' not in sys.modules and 'jnius' not in sys.modules and 'trec_car' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--duplicates" in result.stdout
