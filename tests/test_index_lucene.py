"""`python -m convdr_pyserini.index lucene` on the real convdr/cast20/mini collection."""
import json

import pytest

from convdr_pyserini.index.__main__ import main


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory, shared_data):
    output = tmp_path_factory.mktemp("lucene") / "cast20-mini"
    assert main(["lucene", "--collection", "convdr/cast20/mini", "--output", str(output), "--threads", "1"]) == 0
    return output


def test_meta_records_the_build(mini_index):
    meta = json.loads((mini_index / "meta.json").read_text())
    assert meta["collection"] == "convdr/cast20/mini"
    assert meta["documents"] == 1426
    assert meta["anserini_version"] == "1.7.1"
    assert meta["stored"] == ["positions", "docvectors", "raw"]
    assert "Porter" in meta["analyzer"]
    assert meta["command"].startswith("python -m convdr_pyserini.index lucene --collection convdr/cast20/mini")
    assert meta["seconds"] > 0


def test_index_stores_positions_docvectors_and_raw(mini_index):
    from convdr_pyserini import _java

    reader = _java.pyserini("index.lucene").LuceneIndexReader(str(mini_index))
    docid = "MARCO_5498474"  # the canonical passage of CAsT-20 turn 81_1 (garage door opener)
    vector = reader.get_document_vector(docid)
    assert vector and vector.get("garag", 0) >= 1
    positions = reader.get_term_positions(docid)
    assert positions and "garag" in positions
    raw = json.loads(reader.doc_raw(docid))
    assert raw["id"] == docid and raw["contents"].startswith("Garage Door Opener Problems.")


def test_refuses_to_overwrite_without_flag(mini_index, capsys):
    before = sorted(p.name for p in mini_index.iterdir())
    assert main(["lucene", "--collection", "convdr/cast20/mini", "--output", str(mini_index)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert sorted(p.name for p in mini_index.iterdir()) == before


def test_json_collection_folder_and_overwrite(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    docs = [{"id": "d1", "contents": "conversational dense retrieval"}, {"id": "d2", "contents": "garage doors"}]
    (folder / "part.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    output = tmp_path / "index"
    output.mkdir()
    (output / "stale").write_text("x")
    assert main(["lucene", "--collection", str(folder), "--output", str(output), "--overwrite"]) == 0
    assert json.loads((output / "meta.json").read_text())["documents"] == 2
    assert not (output / "stale").exists()


@pytest.mark.parametrize("line, message", [
    ("{not json\n", "part.jsonl:2: malformed JSON"),
    ('{"id": "d2"}\n', "part.jsonl:2: expected the fields id and contents (strings)"),
])
def test_bad_collection_line_is_named(tmp_path, capsys, line, message):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "part.jsonl").write_text('{"id": "d1", "contents": "fine"}\n' + line)
    output = tmp_path / "index"
    assert main(["lucene", "--collection", str(folder), "--output", str(output)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["docs"]


def test_unknown_collection_id_lists_close_matches(tmp_path, capsys):
    assert main(["lucene", "--collection", "convdr/cast20/mnii", "--output", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "convdr/cast20/mini" in err[0]
