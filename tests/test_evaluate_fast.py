"""The fast readers (a block of lines at a time) give exactly what the line-by-line readers give, and hand every
file with a problem to them, so that each problem is still reported with its line; the id audit, computed on each
source's top-10 cut, equals ir_measures' Judged@10 of the whole sub-run."""
import ir_measures
import pytest

from convdr_pyserini.errors import InvalidInput
from convdr_pyserini.evaluate.inputs import id_audit, source_of
from convdr_pyserini.io import Qrels, Run
from convdr_pyserini.io.runs import ScoredHits, _read_trec_fast
from convdr_pyserini.io.text import read_query_table


@pytest.fixture
def cast20(shared_data):
    return shared_data / "cast-20"


@pytest.fixture
def human(cast20):
    return cast20 / "runs-grill-qr-eval" / "Human_reranked_100.txt"


def test_fast_run_reader_equals_the_line_by_line_reader(human, tmp_path):
    fast = Run.read(human)
    assert isinstance(fast.hits, ScoredHits)
    # a blank line at the end sends the file to the line-by-line reader, which is otherwise the same file
    slow_file = tmp_path / "slow.trec"
    slow_file.write_bytes(human.read_bytes() + b"\n")
    assert _read_trec_fast(slow_file, None) is None
    slow = Run.read(slow_file)
    assert not isinstance(slow.hits, ScoredHits)
    assert dict(fast.hits) == dict(slow.hits)  # ranked lists, score then docid
    assert fast.scores() == slow.scores() and fast.docids() == slow.docids() and fast.counts() == slow.counts()
    assert "81_1" in fast.hits and "nope" not in fast.hits


def test_fast_qrels_reader_equals_the_line_by_line_reader(cast20, tmp_path):
    plain = cast20 / "2020qrels.txt"
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(plain.read_bytes().replace(b"\n", b"\r\n"))
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n" + plain.read_bytes())
    assert read_query_table(blank, 4, 3, int) is None
    assert Qrels.read(plain).judgments == Qrels.read(crlf).judgments == Qrels.read(blank).judgments


@pytest.mark.parametrize("change, problem", [
    (lambda lines: lines.__setitem__(5, lines[5].replace(b"Q0", b"Q0 extra")), ":6: expected 6 columns"),
    (lambda lines: lines.__setitem__(7, b"81_1 Q0 MARCO_x 1 inf t\n"), ":8: score 'inf' is not a finite number"),
    (lambda lines: lines.__setitem__(9, lines[3]), ":10: document MARCO_"),
    (lambda lines: lines.append(lines[0]), ":21: document MARCO_"),  # the same query again, further down
])
def test_a_file_with_a_problem_is_reported_by_line(human, tmp_path, change, problem):
    lines = human.read_bytes().splitlines(keepends=True)[:20]
    change(lines)
    bad = tmp_path / "bad.trec"
    bad.write_bytes(b"".join(lines))
    assert _read_trec_fast(bad, None) is None
    with pytest.raises(InvalidInput) as caught:
        Run.read(bad)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_queries_split_over_blocks_and_out_of_order_are_merged(human, tmp_path):
    lines = human.read_bytes().splitlines(keepends=True)
    shuffled = tmp_path / "interleaved.trec"
    shuffled.write_bytes(b"".join(lines[1::2] + lines[0::2]))  # every query in two separate stretches
    assert Run.read(shuffled).scores() == Run.read(human).scores()
    with pytest.raises(InvalidInput, match=r"query 81_2 is not in the topics"):
        Run.read(human, topics={"81_1"})


def test_id_audit_equals_judged_at_10_of_each_whole_sub_run(human, cast20):
    run, qrels = Run.read(human), Qrels.read(cast20 / "2020qrels.txt")
    lines, _ = id_audit(run, qrels)
    judged_at = ir_measures.Judged @ 10
    for source in ("CAR_", "MARCO_"):
        sub_run = {qid: {docid: score for docid, score in hits.items() if source_of(docid) == source}
                   for qid, hits in run.scores().items() if qid in qrels.judgments}
        sub_run = {qid: hits for qid, hits in sub_run.items() if hits}
        judgments = {qid: docs for qid, docs in qrels.judgments.items() if qid in sub_run}
        value = ir_measures.calc_aggregate([judged_at], judgments, sub_run)[judged_at]
        assert f"{source} " in lines[0] and f"Judged@10 {value:.3f}" in lines[0].split(f"{source} ")[1].split(";")[0]


def test_id_audit_keeps_ties_at_the_cut(cast20):
    """Twelve CAR hits tied at one score, some judged: which ten are the top 10 is the tie rule's to say, and the value is
    ir_measures' over the whole sub-run."""
    qrels = Qrels.read(cast20 / "2020qrels.txt")
    judged = [docid for docid in qrels.judgments["81_1"] if docid.startswith("CAR_")][:6]
    hits = {docid: 1.0 for docid in [f"CAR_{n:040x}" for n in range(12 - len(judged))] + judged}
    hits.update({f"MARCO_{n}": 0.5 for n in range(20)})
    run = Run.from_hits({"81_1": hits.items()})
    lines, _ = id_audit(run, qrels)
    judged_at = ir_measures.Judged @ 10
    car = {"81_1": {docid: score for docid, score in hits.items() if docid.startswith("CAR_")}}
    value = ir_measures.calc_aggregate([judged_at], {"81_1": qrels.judgments["81_1"]}, car)[judged_at]
    assert 0 < value < 1
    assert f"CAR_ 12 ids ({len(judged)} in the qrels), Judged@10 {value:.3f}" in lines[0]
