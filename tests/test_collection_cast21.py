"""The CAsT-21 passage collection: the organizers' 2021 segmentation rule checked on the topics' canonical passages,
and the builder on sample documents written in each source format (MS MARCO v1 documents, KILT, Washington Post)."""
import json
import re

import pytest

import convdr_pyserini.collection as collection
from convdr_pyserini.collection import segment
from convdr_pyserini.collection.__main__ import main

TOPICS = "cast-21/2021_manual_evaluation_topics_v1.0.json"
ARTEFACT = " Utterance type: Question"


def canonical(shared_data) -> dict[str, str]:
    """`{turn id: (<docid>-<n>, passage text)}` of the canonical passages of the 239 turns of the 2021 manual topics."""
    topics = json.loads((shared_data / TOPICS).read_text(encoding="utf-8"))
    return {f"{topic['number']}_{turn['number']}": (f"{turn['canonical_result_id']}-{turn['passage_id']}",
                                                     turn["passage"])
            for topic in topics for turn in topic["turn"]}


def words(text: str) -> int:
    return len(segment.WORD.findall(text))


def test_canonical_passages_are_whole_passages_of_the_2021_rule(shared_data):
    turns = canonical(shared_data)
    assert len(turns) == 239
    # one passage id is given two different short texts (turns 106_4 and 106_5): the topics' text is not always
    # the whole passage
    assert len({pid for pid, _ in turns.values()}) == 234
    assert len({text for pid, text in turns.values() if pid == "MARCO_D684519-2"}) == 2
    texts = list(turns.values())
    passages = dict(texts)
    # a passage of the rule, segmented on its own, gives itself back: it closed at the sentence that took it past
    # 167.5 words (or it is a document's last passage)
    broken = sorted(pid for pid, text in texts if segment.passages(text) != [" ".join(text.split())])
    assert broken == ["KILT_3885852-0", "MARCO_D1370754-1", "MARCO_D3129148-1",
                      "WAPO_9e2be3bf292327ecd9dc9184d6041481-0"]
    # two of them carry an annotation artefact appended in the topics file; without it they are whole passages
    assert sorted(pid for pid in broken if passages[pid].endswith(ARTEFACT)) == broken[2:]
    for pid in broken[2:]:
        text = passages[pid][: -len(ARTEFACT)]
        assert segment.passages(text) == [text]
    long_enough = [pid for pid, text in texts if words(text) >= segment.CLOSE_AT]
    assert (len(long_enough), len(texts) - len(long_enough)) == (190, 49)


def test_a_spacy_token_count_would_cut_the_canonical_passages_shorter(shared_data):
    """The later (spaCy) versions of the organizers' tool count tokens, punctuation included: by that count most
    canonical passages are already past 167.5 before their last sentence, so they were not cut by it."""
    token = re.compile(r"\w+|[^\w\s]")  # spaCy's tokenizer splits at least this finely
    passages = [text for _, text in canonical(shared_data).values()]
    too_long = sum(len(token.findall(text)) - len(token.findall(segment.sentences(text)[-1])) >= segment.CLOSE_AT
                   for text in passages)
    assert too_long > 100


def test_segmentation_details():
    assert segment.passages("") == [""]
    assert segment.sentences("Dr. Smith met Mr. Jones, e.g. at noon. Then <b>he</b> left!  Yes? no") == [
        "Dr. Smith met Mr. Jones, e.g. at noon.", "Then he left!", " Yes?", "no"]
    sentence = "One two three four five six seven eight nine ten. "  # 10 words
    text = sentence * 40
    cut = segment.passages(text)
    assert [words(part) for part in cut] == [170, 170, 60]  # closes at the first sentence past 167.5 words
    assert " ".join(cut) == " ".join(text.split())


def _long_canonical(shared_data, count: int) -> list[str]:
    """Canonical passages that are whole non-final passages of the rule (past 167.5 words, giving themselves back)."""
    found = [text for _, text in canonical(shared_data).values()
             if words(text) >= segment.CLOSE_AT and segment.passages(text) == [text]]
    return found[:count]


def _sources(tmp_path, shared_data) -> dict:
    """A sample file of each source format whose documents are made of real canonical passages."""
    a, b, c, d, e, f = _long_canonical(shared_data, 6)
    marco = tmp_path / "msmarco-docs.tsv"
    marco.write_text(f"D1\thttp://a\tFirst title\t{a} {b} Short end.\n"
                     f"D2\thttp://b\tDuplicate\t{c}\n"
                     "D3\thttp://c\tNo body\t\n"
                     f"D4\thttp://d\t.\t<p>{d}</p>\n", encoding="utf-8")
    duplicates = tmp_path / "marco_duplicates.txt"
    duplicates.write_text("D1:\nD4:D2,D9\nD7:D2\n", encoding="utf-8")
    kilt = tmp_path / "kilt_knowledgesource.json"
    kilt.write_text(json.dumps({"_id": "1", "wikipedia_id": "290", "wikipedia_title": "A",
                                "text": [f"{e}\n", f"{f}\n", "Section::::History.\n"]}) + "\n", encoding="utf-8")
    wapo = tmp_path / "TREC_Washington_Post_collection.v4.jl"
    contents = [{"type": "kicker", "content": "Politics"}, {"type": "sanitized_html", "subtype": "paragraph",
                "content": a}, {"type": "image", "subtype": "photo", "content": None},
                {"type": "sanitized_html", "subtype": "paragraph", "content": "<a href=x>Last</a> words."}]
    wapo.write_text(json.dumps({"id": "1cf6896e-67be-11e1-ae17-a3ce76ec4751", "title": "T\nwo", "contents": contents})
                    + "\n" + json.dumps({"id": "d58b8bb7618455cfb6d780ef5f41b01a", "title": None,
                                         "contents": [{"subtype": "paragraph", "content": "Kept."}, None,
                                                      {"subtype": "paragraph", "content": "Lost."}]}) + "\n",
                    encoding="utf-8")
    return {"--msmarco-docs": marco, "--duplicates": duplicates, "--kilt": kilt, "--wapo": wapo,
            "texts": (a, b, c, d, e, f)}


def _args(sources, output, *extra):
    return ["cast21", *(str(v) for key, path in sources.items() if key.startswith("--") for v in (key, path)),
            "--output", str(output), *extra]


def _docs(folder):
    return [json.loads(line) for shard in sorted(folder.glob("*.jsonl")) for line in shard.open(encoding="utf-8")]


def test_cast21_collection_from_each_source_format(shared_data, tmp_path):
    sources = _sources(tmp_path, shared_data)
    a, b, c, d, e, f = sources["texts"]
    output = tmp_path / "cast21"
    assert main(_args(sources, output)) == 0
    docs = {doc["id"]: doc["contents"] for doc in _docs(output)}
    assert list(docs) == ["MARCO_D1-0", "MARCO_D1-1", "MARCO_D1-2", "MARCO_D4-0", "KILT_290-0", "KILT_290-1",
                          "KILT_290-2",
                          "WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751-0", "WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751-1",
                          "WAPO_d58b8bb7618455cfb6d780ef5f41b01a-0"]
    # the canonical passages come back as passages; the title goes first, on its own line
    assert [docs["MARCO_D1-0"], docs["MARCO_D1-1"], docs["MARCO_D1-2"]] == [
        f"First title\n{a}", f"First title\n{b}", "First title\nShort end."]
    assert docs["MARCO_D4-0"] == f".\n{d}"  # HTML tags removed
    assert [docs[f"KILT_290-{n}"] for n in range(3)] == [f"A\n{e}", f"A\n{f}", "A\nSection::::History."]
    assert docs["WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751-0"] == f"T wo\n{a}"
    assert docs["WAPO_1cf6896e-67be-11e1-ae17-a3ce76ec4751-1"] == "T wo\nLast words."
    # the organizers' tools stopped at a null in `contents` and wrote "No body" (the sentence stays glued)
    assert docs["WAPO_d58b8bb7618455cfb6d780ef5f41b01a-0"] == "No Title\nKept.No body"
    summary = json.loads(json.dumps(__import__("yaml").safe_load((output / "collection.yaml").read_text())))
    assert summary["fields"] == ["title", "text"]
    assert summary["counts"]["read"] == {"msmarco-docs": 4, "kilt": 1, "wapo": 2}
    assert summary["counts"]["excluded"] == {"msmarco-docs": 1, "kilt": 0, "wapo": 0}  # D2, a listed duplicate
    assert summary["counts"]["documents"] == 10


def test_cast21_resumes_inside_a_document(shared_data, tmp_path, monkeypatch, capsys):
    sources = _sources(tmp_path, shared_data)
    output = tmp_path / "cast21"
    real_reader = collection.kilt_documents

    def interrupted(path, start):
        yield from real_reader(path, start)
        raise KeyboardInterrupt

    monkeypatch.setattr(collection, "kilt_documents", interrupted)
    assert main(_args(sources, output, "--shard-size", "2")) == 130
    staging = tmp_path / ".cast21.partial"
    assert sorted(path.name for path in staging.glob("*.jsonl")) == ["docs-00000.jsonl", "docs-00001.jsonl",
                                                                       "docs-00002.jsonl"]
    progress = json.loads((staging / "progress.json").read_text())
    # the third shard closed after KILT_290-1: the next run goes on inside that document, with KILT_290-2
    assert (progress["source"], progress["position"][1:]) == (1, [0, 2])
    monkeypatch.setattr(collection, "kilt_documents", real_reader)
    assert main(_args(sources, output, "--shard-size", "2")) == 0
    assert "after 3 complete shards" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    assert main(_args(sources, fresh, "--shard-size", "2")) == 0
    assert {p.name: p.read_bytes() for p in output.iterdir()} == {p.name: p.read_bytes() for p in fresh.iterdir()}
    assert len(_docs(fresh)) == 10


@pytest.mark.parametrize("damage, message", [
    ("duplicates", ":2: expected 'D<n>:D<n>,D<n>,...'"),
    ("marco", ":2: expected 'D<n><TAB>url<TAB>title<TAB>body'"),
    ("kilt", ":1: missing field 'wikipedia_title'"),
    ("no duplicates", "need the organizers' duplicate list"),
])
def test_cast21_bad_inputs_are_one_line(shared_data, tmp_path, capsys, damage, message):
    sources = _sources(tmp_path, shared_data)
    if damage == "duplicates":
        sources["--duplicates"].write_text("D1:D2\nD4 D5\n", encoding="utf-8")
    elif damage == "marco":
        sources["--msmarco-docs"].write_text("D1\tu\tt\tbody\nMARCO_5 only text\n", encoding="utf-8")
    elif damage == "kilt":
        sources["--kilt"].write_text(json.dumps({"wikipedia_id": "1", "text": []}) + "\n", encoding="utf-8")
    else:
        del sources["--duplicates"]
    output = tmp_path / "cast21"
    assert main(_args(sources, output)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0], err
    assert not output.exists() and not (tmp_path / ".cast21.partial").exists()
