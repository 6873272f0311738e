"""The library from Python (no argparse): topics from ids, TSV and CAsT JSON files, rewrites, the retrievers,
runs and qrels I/O, evaluation reports, and the rule that only `__main__` modules touch argparse."""
import ast
import json
from pathlib import Path

import pytest

import convdr_pyserini as cp
from convdr_pyserini.errors import InvalidInput, UserError
from convdr_pyserini.index.__main__ import main as index_main
from convdr_pyserini.search.__main__ import main as search_main

MINI = "convdr/cast20/mini"
PACKAGE = Path(cp.__file__).resolve().parent
REWRITES = "cast-20/rewrites-grill-qr-eval"


@pytest.fixture(scope="module")
def lucene(tmp_path_factory, shared_data):
    index = tmp_path_factory.mktemp("lucene") / "mini.lucene"
    assert index_main(["lucene", "--collection", MINI, "--output", str(index)]) == 0
    return index


def bm25(lucene, output, *extra, topics=MINI, query="raw"):
    return search_main(["--topics", str(topics), "--query", query, "--bm25", "--k1", "0.82", "--b", "0.68",
                        "--index", str(lucene), "--hits", "100", "--output", str(output), *extra])


def test_only_main_modules_and_the_argument_helpers_touch_argparse():
    allowed = {"_cli.py", "demo.py", "__main__.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and node.attr == "Namespace":
                names = ["Namespace"]
            if any(name in ("argparse", "Namespace") for name in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_public_api_is_importable_and_documented():
    for name in cp.__all__:
        value = getattr(cp, name)
        if name != "__version__":
            assert (getattr(value, "__doc__", None) or "").strip(), f"{name} has no docstring"
    assert callable(cp.evaluate) and callable(cp.train) and callable(cp.reproduce)


def test_topics_from_a_tsv_and_a_cast_json_give_the_dataset_runs(lucene, tmp_path, shared_data):
    topics = cp.load_topics(MINI)
    tsv = tmp_path / "raw.tsv"
    tsv.write_text("".join(f"{q.query_id}\t{q.raw_utterance}\n" for q in topics), encoding="utf-8")
    manual_json = shared_data / "cast-20" / "2020_manual_evaluation_topics_v1.0.json"
    assert bm25(lucene, tmp_path / "id.trec") == 0
    assert bm25(lucene, tmp_path / "tsv.trec", topics=tsv) == 0
    assert bm25(lucene, tmp_path / "json.trec", topics=manual_json) == 0
    reference = (tmp_path / "id.trec").read_bytes()
    assert (tmp_path / "tsv.trec").read_bytes() == reference
    assert (tmp_path / "json.trec").read_bytes() == reference
    for query in ("manual", "concat"):  # the JSON has the manual rewrites; TSV ids give each turn its history
        assert bm25(lucene, tmp_path / f"id.{query}.trec", query=query) == 0
        assert bm25(lucene, tmp_path / f"json.{query}.trec", query=query, topics=manual_json) == 0
        assert (tmp_path / f"json.{query}.trec").read_bytes() == (tmp_path / f"id.{query}.trec").read_bytes()
    assert bm25(lucene, tmp_path / "tsv.concat.trec", query="concat", topics=tsv) == 0
    assert (tmp_path / "tsv.concat.trec").read_bytes() == (tmp_path / "id.concat.trec").read_bytes()
    sidecar = json.loads((tmp_path / "tsv.trec.json").read_text())
    assert sidecar["topics"]["source"] == str(tsv) and len(sidecar["topics"]["sha256"]) == 64


def test_human_rewrites_give_the_manual_run_and_quretec_its_own(lucene, tmp_path, shared_data):
    human = shared_data / REWRITES / "11_Human.tsv"
    assert bm25(lucene, tmp_path / "manual.trec", query="manual") == 0
    assert bm25(lucene, tmp_path / "human.trec", "--rewrites", str(human), query="rewrite") == 0
    strip_tag = lambda path: [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip_tag(tmp_path / "human.trec") == strip_tag(tmp_path / "manual.trec")
    sidecar = json.loads((tmp_path / "human.trec.json").read_text())
    assert sidecar["rewrites"]["name"] == "11_Human.tsv" and sidecar["rewrites"]["missing"] == []
    assert sidecar["rewrites"]["sha256"] == cp.load_rewrites(human).sha256 and "rewrite-11_Human" in sidecar["tag"]
    quretec = shared_data / REWRITES / "5_QuReTeC_QnA.tsv"
    assert bm25(lucene, tmp_path / "quretec.trec", "--rewrites", str(quretec), query="rewrite") == 0
    report = cp.evaluate(MINI, {"manual": tmp_path / "manual.trec", "QuReTeC": tmp_path / "quretec.trec"}, "nDCG@3")
    # the figure quoted in docs/search.md (and generated into evaluation/cast20-mini-rewrites.md)
    assert round(report.scores_of("QuReTeC").aggregate["nDCG@3"], 4) == pytest.approx(0.4467, abs=1e-4)
    assert report.scores_of("manual").aggregate["nDCG@3"] == pytest.approx(0.5420, abs=1e-4)


def test_missing_rewrites_are_an_error_unless_they_fall_back_to_raw(lucene, tmp_path, shared_data, capsys):
    partial = tmp_path / "partial.tsv"
    lines = (shared_data / REWRITES / "11_Human.tsv").read_text(encoding="utf-8").splitlines()
    partial.write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")  # drops 105_7 .. 105_9
    assert bm25(lucene, tmp_path / "r.trec", "--rewrites", str(partial), query="rewrite") == 2
    err = capsys.readouterr().err
    assert "lack 3 of the 216 queries" in err and "105_" in err and "--missing-rewrite raw" in err
    assert not (tmp_path / "r.trec").exists()
    assert bm25(lucene, tmp_path / "r.trec", "--rewrites", str(partial), "--missing-rewrite", "raw",
                query="rewrite") == 0
    sidecar = json.loads((tmp_path / "r.trec.json").read_text())
    assert len(sidecar["rewrites"]["missing"]) == 3 and sidecar["rewrites"]["missing_rewrite"] == "raw"


def test_rewrite_files_plain_and_headered(tmp_path, shared_data):
    short = tmp_path / "short.tsv"
    short.write_text("conversation_id\tturn_id\tid\tquery\n81\t1\t81_1\n", encoding="utf-8")
    with pytest.raises(UserError, match="short.tsv:2: 3 tab-separated columns, the header has 4"):
        cp.load_rewrites(short)
    headered = cp.load_rewrites(shared_data / REWRITES / "2_Transformer_Plus_Plus_QnA.tsv")
    assert len(headered) == 216 and headered["81_1"].startswith("How do you know")
    crlf = cp.load_rewrites(shared_data / "cast-20/iai-ecir2023/13_T5_CANARD.tsv")  # CRLF, trailing tab
    assert len(crlf) == 216 and not crlf["81_1"].endswith(("\r", "\t"))
    # pandas quotes a field holding quotes: 105_5 of 11_Human.tsv is "Who named the movement ""Black ..."""
    human = cp.load_rewrites(shared_data / REWRITES / "11_Human.tsv")
    assert human["105_5"] == 'Who named the movement "Black Lives Matter"?'
    manual = {query.query_id: query.manual_rewritten_utterance for query in cp.load_topics(MINI)}
    assert dict(human) == manual  # the organisers' manual rewrites, every one (MiniLM sees the quotes, BM25 not)
    broken = tmp_path / "broken.tsv"
    broken.write_text('conversation_id\tturn_id\tid\tquery\n81\t1\t81_1\t"open"quote\n', encoding="utf-8")
    with pytest.raises(UserError, match="broken.tsv:2: malformed quoting"):
        cp.load_rewrites(broken)
    plain = tmp_path / "plain.tsv"
    plain.write_text("81_1\tfirst\n81_2\tsecond\n", encoding="utf-8")
    assert dict(cp.load_rewrites(plain)) == {"81_1": "first", "81_2": "second"}


@pytest.mark.parametrize("content, needle", [
    (b"\xef\xbb\xbf81_1\ttext\n", "byte-order mark ('\\ufeff')"),
    (b"81_1\ttext\n\x00\x01binary\n", "binary data"),
    (b"81_1 text without a tab\n", "expected 2 tab-separated columns"),
    (b"81_1\ta\n81_1\tb\n", "duplicate query id 81_1"),
    (b"81_1\t\xff\xfetext\n", "not UTF-8 text"),
])
def test_bad_rewrites_and_topic_files(lucene, tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(content)
    assert bm25(lucene, tmp_path / "r.trec", "--rewrites", str(bad), query="rewrite") == 2
    assert bm25(lucene, tmp_path / "t.trec", topics=bad) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all(needle in line and "bad.tsv" in line for line in errors), errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]


def test_bad_cast_json_topics(lucene, tmp_path, capsys):
    cases = {"malformed.json": "[{\"number\": 81, \"turn\": [", "shape.json": "{\"number\": 81}",
             "types.json": "[{\"number\": 81, \"turn\": [{\"number\": 1, \"raw_utterance\": 5}]}]"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert bm25(lucene, tmp_path / "r.trec", topics=tmp_path / name) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "malformed.json:1: malformed JSON" in errors[0]
    assert "expected a non-empty JSON list of CAsT topics" in errors[1]
    assert "field 'raw_utterance' is int" in errors[2]
    assert bm25(lucene, tmp_path / "r.trec", topics=tmp_path / "nope.tsv") == 2
    assert "topics file" in capsys.readouterr().err and not (tmp_path / "r.trec").exists()


def test_retrievers_fusion_and_evaluation_from_python(lucene, tmp_path):
    topics = cp.load_topics(MINI)
    with cp.BM25Retriever(lucene, k1=0.82, b=0.68) as retriever:
        raw = retriever.search(topics, query="raw", hits=100)
        manual = retriever.search(topics, query="manual", hits=100)
    assert isinstance(raw, cp.Run) and len(raw) == 216 and raw.tag == "bm25-k1_0.82-b_0.68"
    fused = cp.fuse_rrf([raw, manual], k=60, depth=100)
    report = cp.evaluate(MINI, {"raw": raw, "manual": manual, "RRF": fused}, "nDCG@3 R@100", baseline="raw")
    assert round(report.scores_of("raw").aggregate["nDCG@3"], 4) == 0.3708
    assert round(report.scores_of("manual").aggregate["nDCG@3"], 4) == 0.5420
    assert "nDCG@3" in report.table() and report.markdown().startswith("| run |")
    assert report.comparison("manual", "nDCG@3").t_test_p < 0.05
    path = tmp_path / "manual.trec"
    manual.write(path, tag="manual")
    again = cp.Run.read(path)
    assert again.ranked_docids() == manual.ranked_docids()
    with pytest.raises(UserError, match="already exists"):
        manual.write(path)
    with pytest.raises(UserError, match="it is the input"):
        cp.fuse_rrf([again, raw]).write(path, overwrite=True)  # a run made from the file cannot replace it
    plot = tmp_path / "turns.png"
    table = report.by_turn(plot)
    assert plot.read_bytes()[:4] == b"\x89PNG" and table.turns[0] == 1


def test_run_and_qrels_readers_are_strict(tmp_path):
    run = tmp_path / "r.trec"
    run.write_text("81_1 Q0 d1 1 NaN t\n81_1 Q0 d2 2 1.0 t\n81_1 Q0 d2 3 0.5 t\n81_2 Q0 d3 1 inf t\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        cp.Run.read(run)
    problems = caught.value.problems
    assert len(problems) == 3 and "r.trec:1: score 'NaN'" in problems[0] and "repeated" in problems[1]
    qrels = tmp_path / "q.txt"
    qrels.write_bytes(b"\xef\xbb\xbf81_1 0 d1 1\n81_2 0 d2 2\n")
    with pytest.raises(UserError, match="q.txt:1: starts with a byte-order mark"):
        cp.Qrels.read(qrels)
    qrels.write_text("81_1 0 d1 1\n81_1 0 d1 2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="graded 2 here but 1 on line 1"):
        cp.Qrels.read(qrels)


def test_packaged_cards_and_matrices_match_the_readable_copies():
    root = PACKAGE.parent
    for folder, copies in (("encoders", root / "encoders"), ("matrices", root / "evaluation")):
        packaged = sorted((PACKAGE / "data" / folder).glob("*.yaml"))
        assert packaged
        for path in packaged:
            assert (copies / path.name).read_bytes() == path.read_bytes(), f"{copies / path.name} differs"


def test_train_config_refuses_bad_settings():
    base = {"topics": MINI, "output": "x", "teacher": "minilm"}
    for changes, needle in [({"kd_weight": -1.0}, "kd_weight must be >= 0"),
                            ({"ranking_weight": float("nan")}, "ranking_weight must be a finite number"),
                            ({"temperature": 0.0}, "temperature must be positive"),
                            ({"lr": float("inf")}, "lr must be a finite number"),
                            ({"seeds": []}, "seeds: give at least one seed"),
                            ({"seeds": [1, 2, 1]}, "seeds: 1 is given more than once"),
                            ({"loss": "kd+ranking"}, "needs ranking data")]:
        with pytest.raises(UserError, match=needle):
            cp.TrainConfig(**{**base, **changes})


def test_library_errors_name_the_api_parameters(lucene):
    """Errors from Python name the parameters (`k1`, `hits`, `measures`), not command-line flags; an empty input
    is a UserError, a value of the wrong type a TypeError naming the parameter."""
    with pytest.raises(UserError, match=r"^k1 -1.0 is out of range"):
        cp.BM25Retriever(lucene, k1=-1.0, b=0.68)
    with pytest.raises(TypeError, match=r"^k1 must be a number, not NoneType"):
        cp.BM25Retriever(lucene, k1=None, b=0.68)
    with pytest.raises(TypeError, match=r"^index must be a path, not NoneType"):
        cp.BM25Retriever(None, k1=0.82, b=0.68)
    with cp.BM25Retriever(lucene, k1=0.82, b=0.68) as retriever:
        with pytest.raises(UserError, match=r"^hits must be at least 1, got 0"):
            retriever.search(MINI, hits=0)
        with pytest.raises(TypeError, match=r"^hits must be an integer, not NoneType"):
            retriever.search(MINI, hits=None)
        with pytest.raises(UserError, match=r"^topics 'nothing' hold no queries"):
            retriever.search(cp.Topics([], "nothing"), hits=10)
        with pytest.raises(TypeError, match=r"^topics must be a dataset id or a path, not NoneType"):
            retriever.search(None, hits=10)
        with pytest.raises(UserError, match=r"; pass missing_rewrite raw to search those"):
            retriever.search(MINI, query={"81_1": "garage door opener"}, hits=10)
        run = retriever.search(MINI, hits=10)
    with pytest.raises(UserError, match=r"^runs is empty"):
        cp.evaluate(MINI, {})
    with pytest.raises(TypeError, match=r"^qrels must be a dataset id or a path, not NoneType"):
        cp.evaluate(None, {"raw": run})
    with pytest.raises(InvalidInput) as caught:
        cp.evaluate(MINI, {"raw": run}, "fooo@3", baseline="bm25")
    assert caught.value.problems[0].startswith("measures: 'fooo@3' is rejected by ir_measures")
    assert caught.value.problems[1] == "baseline bm25 is not one of the evaluated runs (raw)"
    with pytest.raises(UserError, match=r"^qrels 'nowhere.txt' is neither a file nor a known dataset id"):
        cp.load_qrels("nowhere.txt")
