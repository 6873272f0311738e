"""The ir_datasets loaders on the real CAsT, CANARD and collection-sample files."""
import collections
import json
import shutil

import ir_datasets
import pytest

from convdr_pyserini import datasets, files
from convdr_pyserini.datasets import __main__ as datasets_cli
from convdr_pyserini.datasets import cast, mini, quac
from convdr_pyserini.datasets import read_trec_qrels
from convdr_pyserini.collection.sources import car_paragraphs
from convdr_pyserini.errors import UserError


def queries(dataset_id):
    return list(ir_datasets.load(dataset_id).queries_iter())


def test_registering_twice_is_harmless():
    datasets.register()
    datasets.register()
    assert "convdr/cast20/mini" in ir_datasets.registry


def test_importing_the_package_is_cheap_and_the_datasets_module_registers():
    import subprocess
    import sys

    probe = ("import sys, convdr_pyserini, ir_datasets; heavy = [m for m in ('torch', 'faiss', 'jnius', 'transformers') "
             "if m in sys.modules]; import convdr_pyserini.datasets; print(heavy, 'convdr/cast20' in ir_datasets.registry)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[] True", done.stderr
    done = subprocess.run([sys.executable, "-c", "import sys, convdr_pyserini; print('ir_datasets' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False"


def test_cast19_counts_and_judged_subset():
    assert len(queries("convdr/cast19")) == 479
    judged = queries("convdr/cast19/judged")
    assert len(judged) == 173
    qrels = list(ir_datasets.load("convdr/cast19").qrels_iter())
    assert len(qrels) == 29350
    assert collections.Counter(q.relevance for q in qrels) == {0: 21230, 1: 2889, 2: 2157, 3: 1456, 4: 1618}
    assert {q.query_id for q in judged} == {q.query_id for q in qrels}


def test_cast19_train_topics_have_their_qrels():
    train = queries("convdr/cast19/train")
    assert {q.topic_number for q in train} == set(range(1, 31))
    assert train[0].manual_rewritten_utterance == "What is a physician's assistant?"
    judged = {q.query_id for q in ir_datasets.load("convdr/cast19/train").qrels_iter()}
    assert judged <= {q.query_id for q in train}


def test_cast19_manual_rewrites_survive_crlf_and_non_ascii(shared_data):
    raw = (shared_data / "cast-19/evaluation_topics_annotated_resolved_v1.0.tsv").read_bytes()
    assert b"\r\n" in raw
    rewrites = {q.query_id: q.manual_rewritten_utterance for q in queries("convdr/cast19")}
    assert all("\r" not in text and "\n" not in text for text in rewrites.values())
    # COTED's LF copy of the same rewrites agrees on every turn.
    lf_copy = dict(
        line.split("\t", 1) for line in (shared_data / "cast-19/coted-preprocessed/queries.manual.tsv").read_text("utf-8").splitlines()
    )
    assert rewrites == {qid: text.strip() for qid, text in lf_copy.items()}
    assert any(not text.isascii() for text in rewrites.values())


@pytest.mark.parametrize("dataset_id", ["convdr/cast19", "convdr/cast20"])
def test_history_of_turn_k_holds_k_minus_1_utterances(dataset_id):
    by_topic = collections.defaultdict(list)
    for query in queries(dataset_id):
        assert query.query_id == f"{query.topic_number}_{query.turn_number}"
        by_topic[query.topic_number].append(query)
    for turns in by_topic.values():
        for k, query in enumerate(turns, 1):
            assert query.turn_number == k
            assert len(query.history) == k - 1
            assert query.history == tuple(turn.raw_utterance for turn in turns[: k - 1])


def test_cast20_rewrites_and_canonical_ids(shared_data):
    records = queries("convdr/cast20")
    assert len(records) == 216
    assert len(queries("convdr/cast20/judged")) == 208
    manual = json.loads((shared_data / "cast-20/2020_manual_evaluation_topics_v1.0.json").read_text())
    automatic = json.loads((shared_data / "cast-20/2020_automatic_evaluation_topics_v1.0.json").read_text())
    expected_manual = {f"{t['number']}_{u['number']}": u["manual_canonical_result_id"] for t in manual for u in t["turn"]}
    expected_auto = {f"{t['number']}_{u['number']}": u["automatic_canonical_result_id"] for t in automatic for u in t["turn"]}
    by_id = {q.query_id: q for q in records}
    assert {qid: q.manual_canonical_result_id for qid, q in by_id.items()} == expected_manual
    assert {qid: q.automatic_canonical_result_id for qid, q in by_id.items()} == expected_auto
    turn = by_id["81_4"]
    assert turn.history_manual_canonical_result_ids == tuple(expected_manual[f"81_{k}"] for k in (1, 2, 3))
    assert turn.history_automatic_canonical_result_ids == tuple(expected_auto[f"81_{k}"] for k in (1, 2, 3))
    assert turn.manual_rewritten_utterance == "How much does it cost to replace a garage door opener?"
    assert turn.default_text() == turn.raw_utterance


def test_cast20_mini_collection_counts_and_summary(capsys):
    dataset = ir_datasets.load("convdr/cast20/mini")
    doc_ids = [doc.doc_id for doc in dataset.docs_iter()]
    assert len(doc_ids) == len(set(doc_ids)) == 1426
    judged_relevant = {q.doc_id for q in dataset.qrels_iter() if q.relevance > 0}
    snippets = {doc_id for name in mini.SNIPPET_FILES for doc_id, _ in mini.snippet_passages(files.resolve(name))}
    canonical = {
        doc_id
        for q in dataset.queries_iter()
        for doc_id in (q.manual_canonical_result_id, q.automatic_canonical_result_id)
    }
    in_collection = set(doc_ids)
    judged = {q.doc_id for q in dataset.qrels_iter()}
    assert len(snippets) == 974 and snippets <= judged and snippets <= in_collection
    assert len(snippets & judged_relevant) > 950
    assert canonical <= in_collection
    assert len(canonical - snippets) == 254
    distractors = in_collection - snippets - canonical
    assert sum(d.startswith("MARCO_") for d in distractors) == 100
    assert sum(d.startswith("CAR_") for d in distractors) == 98
    assert not distractors & {q.doc_id for q in dataset.qrels_iter()}
    assert dataset.docs_store().get("MARCO_5498474").text.startswith("Garage Door Opener Problems.")
    assert datasets_cli.main(["summary", "convdr/cast20/mini"]) == 0
    out = capsys.readouterr().out
    assert "1,426" in out and "216" in out and "208" in out and "4:731" in out


def test_mini_collection_rebuild_is_byte_identical(tmp_path, monkeypatch):
    first = (mini.mini_collection_dir() / "docs.jsonl").read_bytes()
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path))
    second = (mini.mini_collection_dir() / "docs.jsonl").read_bytes()
    assert first == second
    assert datasets.collection_jsonl("convdr/cast20/mini").is_dir()


def test_canard_dev_records():
    records = queries("convdr/canard/dev")
    assert len(records) == 3430
    fourth = records[3]
    assert fourth.query_id == "C_2d211835213b45588ad5ca868ce7fabd_0_q#3"
    assert fourth.history == ("What group disbanded?", "When did they disband?", "What kind of music did they play?")
    assert fourth.manual_rewritten_utterance == "Why did Zappa and the Mothers of Invention break up?"
    assert all(len(q.history) == q.turn_number - 1 for q in records)


def write_orquac_fixture(folder):
    """A small OR-QuAC mirror in the upstream formats."""
    (folder / "orquac/preprocessed").mkdir(parents=True)
    turns = [
        {"qid": "C_abc_1_q#0", "question": "Who founded it?", "rewrite": "Who founded Acme?",
         "history": [], "answer": {"text": "Wile"}},
        {"qid": "C_abc_1_q#1", "question": "When?", "rewrite": "When was Acme founded?",
         "history": [{"question": "Who founded it?", "answer": {"text": "Wile"}}], "answer": {"text": "1949"}},
    ]
    for split in ("train", "dev", "test"):
        (folder / f"orquac/preprocessed/{split}.txt").write_text("".join(json.dumps(t) + "\n" for t in turns))
    (folder / "orquac/qrels.txt").write_text(json.dumps({"C_abc_1_q#0": {"b1": 1}, "C_abc_1_q#1": {"b2": 1}}))
    blocks = [{"id": "b1", "title": "Acme", "text": "Founded by Wile."}, {"id": "b2", "title": "Acme", "text": "In 1949."}]
    (folder / "orquac/all_blocks.txt").write_text("".join(json.dumps(b) + "\n" for b in blocks))


def test_orquac_from_user_files(tmp_path, monkeypatch):
    write_orquac_fixture(tmp_path)
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path))
    dataset = datasets.load("convdr/orquac/dev")
    records = list(dataset.queries_iter())
    assert [q.turn_number for q in records] == [1, 2]
    assert records[1].history == ("Who founded it?",) and records[1].history_answers == ("Wile",)
    assert [(q.query_id, q.doc_id) for q in dataset.qrels_iter()] == [("C_abc_1_q#0", "b1"), ("C_abc_1_q#1", "b2")]
    assert [d.default_text() for d in dataset.docs_iter()] == ["Acme Founded by Wile.", "Acme In 1949."]


def test_unknown_dataset_id_lists_close_matches():
    with pytest.raises(UserError, match="did you mean convdr/cast20/mini"):
        datasets.load("convdr/cast20/minii")


def test_query_type_missing_from_dataset():
    from convdr_pyserini.resolve import load_topics
    from convdr_pyserini.search.queries import field_text, sparse_texts

    record = queries("convdr/cast19")[0]
    assert field_text(record, "manual") == record.manual_rewritten_utterance
    with pytest.raises(UserError, match="no automatic query"):
        field_text(record, "automatic")
    with pytest.raises(UserError, match="convdr/cast19 has no automatic queries"):
        sparse_texts(load_topics("convdr/cast19"), "automatic")


# --- bad input: one clear line naming the file and line ---------------------------------------


def test_malformed_topic_json_names_file_and_line(tmp_path, shared_data):
    broken = tmp_path / "topics.json"
    broken.write_text('[\n  {"number": 31,\n   "turn": [}\n]')
    with pytest.raises(UserError, match=r"topics.json:3: malformed JSON"):
        cast.cast19_queries(broken, None)


def test_missing_field(tmp_path):
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps([{"number": 31, "turn": [{"number": 1}]}]))
    with pytest.raises(UserError, match="missing field 'raw_utterance'"):
        cast.cast19_queries(topics, None)


def test_topic_file_of_the_wrong_year(shared_data):
    with pytest.raises(UserError, match="topic 81 is not a cast19 topic.*wrong year"):
        cast.cast19_queries(shared_data / "cast-20/2020_manual_evaluation_topics_v1.0.json", None)
    with pytest.raises(UserError, match="topic 31 is not a cast20 topic"):
        cast.cast20_queries(
            shared_data / "cast-19/evaluation_topics_v1.0.json", shared_data / "cast-20/2020_automatic_evaluation_topics_v1.0.json"
        )


def test_duplicate_query_ids(tmp_path, shared_data):
    topics = json.loads((shared_data / "cast-19/evaluation_topics_v1.0.json").read_text())
    topics[0]["turn"].append(topics[0]["turn"][0])
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(topics))
    with pytest.raises(UserError, match="duplicate query id 31_1"):
        cast.cast19_queries(path, None)
    rewrites = tmp_path / "rewrites.tsv"
    rewrites.write_bytes(b"31_1\tWhat is throat cancer?\r\n31_1\tagain\r\n")
    with pytest.raises(UserError, match=r"rewrites.tsv:2: duplicate query id 31_1"):
        cast.cast19_queries(shared_data / "cast-19/evaluation_topics_v1.0.json", rewrites)


def test_malformed_tsv_line(tmp_path, shared_data):
    rewrites = tmp_path / "rewrites.tsv"
    rewrites.write_text("31_1\tWhat is throat cancer?\n31_2 no tab here\n")
    with pytest.raises(UserError, match=r"rewrites.tsv:2: expected 2 tab-separated columns"):
        cast.cast19_queries(shared_data / "cast-19/evaluation_topics_v1.0.json", rewrites)


def test_qrels_with_wrong_number_of_columns(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("31_1 Q0 MARCO_1 1\n31_1 Q0 MARCO_2\n")
    with pytest.raises(UserError, match=r"qrels.txt:2: expected 4 columns \(qid iteration docid grade\), found 3"):
        read_trec_qrels(qrels)


def test_malformed_cbor(tmp_path, shared_data):
    broken = tmp_path / "car.cbor"
    broken.write_bytes((shared_data / "collection-samples/trec_car_paragraph_sample.cbor").read_bytes()[:5000])
    with pytest.raises(UserError, match="car.cbor: (malformed|truncated) TREC CAR cbor"):
        list(car_paragraphs(broken))


def test_malformed_orquac_json_line(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text('{"qid": "C_abc_1_q#0", "question": "q", "rewrite": "r", "history": []}\n{"qid": \n')
    with pytest.raises(UserError, match=r"dev.txt:2: malformed JSON"):
        quac.orquac_queries(path)


def test_bad_mirror_file_is_refused_through_the_cli(tmp_path, monkeypatch, shared_data, capsys):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "cast-19", mirror / "cast-19")
    qrels = mirror / "cast-19/2019qrels.txt"
    qrels.chmod(0o644)
    qrels.write_text(qrels.read_text().replace("31_1 Q0", "31_1 Q0 extra", 1))
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(mirror))
    assert datasets_cli.main(["summary", "convdr/cast19"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2019qrels.txt" in err[0] and "refusing to use it" in err[0]


def ir_datasets_export(argv, capsys):
    """What ir_datasets' own `export` command writes for `argv` (the ids are registered in this process)."""
    from ir_datasets.commands import export as ir_export

    capsys.readouterr()
    ir_export.main(argv)
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["convdr/cast20/mini", "qrels"],
    ["convdr/cast19/judged", "qrels", "--format", "jsonl"],
    ["convdr/cast21", "qrels", "--format", "tsv"],
    ["convdr/cast20/mini", "docs", "--fields", "doc_id"],
])
def test_export_writes_what_ir_datasets_export_writes(argv, capsys):
    assert datasets_cli.main(["export", *argv]) == 0
    ours = capsys.readouterr().out
    theirs = ir_datasets_export(argv, capsys)
    assert ours == theirs and ours
    first = ours.splitlines()[0]
    if argv[1] == "qrels" and "--format" not in argv:
        query_id, iteration, doc_id, grade = first.split(" ")
        assert (iteration, grade.isdigit()) == ("0", True)
    if argv[1] == "docs":
        assert len(ours.splitlines()) == 1426


def test_export_queries_with_their_optional_and_tuple_fields(capsys):
    """ir_datasets skips fields typed Optional[str] or tuple[str, ...]; ours are exported in its formats."""
    records = queries("convdr/cast21")
    assert datasets_cli.main(["export", "convdr/cast21", "queries", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{name: list(value) if isinstance(value, tuple) else value for name, value in record._asdict().items()}
                     for record in records]
    assert datasets_cli.main(["export", "convdr/cast20", "queries", "--fields", "query_id", "raw_utterance",
                              "history"]) == 0
    tsv = capsys.readouterr().out.splitlines()
    second = queries("convdr/cast20")[1]
    assert tsv[1].split("\t") == [second.query_id, second.raw_utterance, *second.history]  # a tuple: one column each
    assert len(tsv) == 216


def test_export_bad_options_are_one_line(capsys):
    assert datasets_cli.main(["export", "convdr/cast20/mini", "queries", "--fields", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no field 'nope'" in err and "raw_utterance" in err
    assert datasets_cli.main(["export", "convdr/cast20/mini", "queries", "--format", "trec"]) == 2
    assert "cannot be exported as 'trec'" in capsys.readouterr().err
    assert datasets_cli.main(["export", "convdr/canard/dev", "qrels"]) == 2
    assert "has no qrels" in capsys.readouterr().err
    assert datasets_cli.main(["export", "convdr/cast20/minii", "qrels"]) == 2
    assert "did you mean convdr/cast20/mini" in capsys.readouterr().err


def test_cast21_turns_rewrites_canonical_passages_and_qrels(shared_data):
    records = queries("convdr/cast21")
    assert len(records) == 239 and len({q.topic_number for q in records}) == 26
    judged = queries("convdr/cast21/judged")
    assert len(judged) == 158
    qrels = list(ir_datasets.load("convdr/cast21").qrels_iter())
    lines = (shared_data / "cast-21/trec-cast-qrels-docs.2021.qrel").read_text().splitlines()
    assert len(qrels) == len(lines) == 19334
    assert collections.Counter(q.relevance for q in qrels) == collections.Counter(int(line.split()[3]) for line in lines)
    assert collections.Counter(q.relevance for q in qrels) == {0: 13829, 1: 2072, 2: 1710, 3: 1007, 4: 716}
    assert {q.query_id for q in judged} == {q.query_id for q in qrels}
    manual = json.loads((shared_data / "cast-21/2021_manual_evaluation_topics_v1.0.json").read_text())
    automatic = json.loads((shared_data / "cast-21/2021_automatic_evaluation_topics_v1.0.json").read_text())
    by_id = {q.query_id: q for q in records}
    for source, kind in ((manual, "manual"), (automatic, "automatic")):
        for topic in source:
            for turn in topic["turn"]:
                record = by_id[f"{topic['number']}_{turn['number']}"]
                assert getattr(record, f"{kind}_canonical_result_id") == f"{turn['canonical_result_id']}-{turn['passage_id']}"
                assert getattr(record, f"{kind}_canonical_passage") == turn["passage"]
                assert record.automatic_rewritten_utterance == turn["automatic_rewritten_utterance"].strip()
    turn = by_id["106_3"]
    assert turn.manual_rewritten_utterance == "How deadly is lobular carcinoma in situ?"
    assert turn.history_manual_canonical_result_ids == ("MARCO_D59865-7", "MARCO_D684514-1")
    assert turn.history_manual_canonical_passages == (by_id["106_1"].manual_canonical_passage,
                                                      by_id["106_2"].manual_canonical_passage)
    assert len(turn.history) == 2 and turn.default_text() == turn.raw_utterance


def test_cast21_every_query_mode_has_its_input():
    from convdr_pyserini.encode.inputs import MODES, conversational_input

    record = {q.query_id: q for q in queries("convdr/cast21")}["106_5"]
    for mode in MODES:
        value = conversational_input(record, mode)  # no collection needed: the topics carry the passages
        assert value
    assert conversational_input(record, "man_can")["responses"] == [record.history_manual_canonical_passages[-1]]
    assert conversational_input(record, "auto_can")["responses"] == [record.history_automatic_canonical_passages[-1]]


def test_a_topics_file_of_another_year_is_one_line(shared_data, tmp_path):
    cast20 = shared_data / "cast-20/2020_manual_evaluation_topics_v1.0.json"
    cast21 = shared_data / "cast-21/2021_automatic_evaluation_topics_v1.0.json"
    with pytest.raises(UserError, match="topic 81 is not a cast21 topic .*wrong year's topic file"):
        cast.cast21_queries(cast20, cast21)
    with pytest.raises(UserError, match="topic 106 is not a cast20 topic"):
        cast.cast20_queries(shared_data / "cast-21/2021_manual_evaluation_topics_v1.0.json", cast21)
    from convdr_pyserini.resolve import load_topics

    loaded = load_topics(str(cast21))  # any year's file read as a topics file: CAsT-21 records
    assert isinstance(loaded.queries[0], cast.Cast21Query) and len(loaded) == 239
    assert loaded.queries[0].manual_canonical_result_id is None
    assert loaded.queries[0].automatic_canonical_result_id == "MARCO_D59865-7"
