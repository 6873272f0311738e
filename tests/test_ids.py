"""Official CAsT ids <-> ConvDR integer ids, on the real line-aligned qrels of both years."""
import subprocess
import sys
from pathlib import Path

import pytest

from convdr_pyserini.ids import CAR_BASE, IdMapping, convert_file, looks_like_convdr_ids
from convdr_pyserini.ids.__main__ import main

YEARS = {
    "2019": ("cast-19/2019qrels.txt", "cast-19/coted-preprocessed/qrels.tsv", 29_350),
    "2020": ("cast-20/2020qrels.txt", "cast-20/coted-preprocessed/qrels.tsv", 40_451),
}
CAR_SAMPLE = "collection-samples/trec_car_paragraph_sample.cbor"


def _pair(shared_data, year):
    official, integer, lines = YEARS[year]
    return shared_data / official, shared_data / integer, lines


def _columns(path: Path, *indices):
    return [tuple(line.split()[i] for i in indices) for line in path.read_text(encoding="utf-8").splitlines()]


def _error_lines(stderr: str) -> list[str]:
    """The error lines of stderr (a progress bar may share it); never a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def _one_error_line(capsys) -> str:
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("year", sorted(YEARS))
def test_real_qrels_round_trip_both_ways(shared_data, tmp_path, year):
    official, integer, lines = _pair(shared_data, year)
    to_convdr, back = tmp_path / "int.qrels", tmp_path / "official.qrels"
    pair = ["--from-qrels", str(official), str(integer)]
    assert main(["convert", *pair, "--direction", "to-convdr", str(official), str(to_convdr)]) == 0
    # ConvDR's own integer qrels, line by line: same query, same doc, same grade
    assert len(_columns(to_convdr, 0, 2, 3)) == lines
    assert _columns(to_convdr, 0, 2, 3) == _columns(integer, 0, 2, 3)
    assert main(["convert", *pair, "--direction", "to-official", str(to_convdr), str(back)]) == 0
    assert back.read_bytes() == official.read_bytes()
    # and starting from ConvDR's file
    from_integer, integer_again = tmp_path / "from-int.qrels", tmp_path / "int-again.qrels"
    assert main(["convert", *pair, "--direction", "to-official", str(integer), str(from_integer)]) == 0
    assert _columns(from_integer, 0, 2, 3) == _columns(official, 0, 2, 3)
    assert main(["convert", *pair, "--direction", "to-convdr", str(from_integer), str(integer_again)]) == 0
    assert integer_again.read_bytes() == integer.read_bytes()


def test_mapping_file_merges_both_years(shared_data, tmp_path):
    official19, integer19, _ = _pair(shared_data, "2019")
    official20, integer20, _ = _pair(shared_data, "2020")
    table = tmp_path / "car-ids.tsv"
    assert main(["mapping", "--from-qrels", str(official19), str(integer19),
                 "--from-qrels", str(official20), str(integer20), "--output", str(table)]) == 0
    car19 = {doc for (doc,) in _columns(official19, 2) if doc.startswith("CAR_")}
    car20 = {doc for (doc,) in _columns(official20, 2) if doc.startswith("CAR_")}
    assert (len(car19), len(car20), len(car19 & car20)) == (10_443, 14_562, 58)
    rows = [line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(car19 | car20) == 24_947
    assert {official for official, _ in rows} == car19 | car20
    assert all(int(number) >= CAR_BASE for _, number in rows)
    merged = IdMapping.from_tsv(table)
    for official, integer in ((official19, integer19), (official20, integer20)):
        year = IdMapping.from_qrels_pair(official, integer)
        assert all(merged.to_convdr(doc) == number for doc, number in year.car_items())
    # the converted file from the table equals the one from the qrels pair
    out = tmp_path / "2020.int"
    assert main(["convert", "--mapping", str(table), "--direction", "to-convdr", str(official20), str(out)]) == 0
    assert _columns(out, 2) == _columns(integer20, 2)


def test_run_file_keeps_every_other_column(shared_data, tmp_path):
    official, integer, _ = _pair(shared_data, "2019")
    qrels = [line.split() for line in integer.read_text(encoding="utf-8").splitlines()[:500]]
    run = tmp_path / "convdr.trec"
    lines = [f"{qid} Q0 {doc} {rank} {-rank / 7:.6f} convdr\n" for rank, (qid, _, doc, _) in enumerate(qrels, 1)]
    lines[1] = " \t" + lines[1].replace(" ", "\t").replace("\n", "\r\n")  # leading blanks, tabs, CRLF
    run.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "official.trec"
    assert main(["convert", "--from-qrels", str(official), str(integer), "--direction", "to-official",
                 str(run), str(out)]) == 0
    converted = [line.split() for line in out.read_text(encoding="utf-8").splitlines()]
    original = [line.split() for line in run.read_text(encoding="utf-8").splitlines()]
    assert [row[2] for row in converted] == [doc for (doc,) in _columns(official, 2)[:500]]
    assert [row[:2] + row[3:] for row in converted] == [row[:2] + row[3:] for row in original]
    second = out.read_bytes().splitlines(keepends=True)[1].decode()
    assert second == f" \t{qrels[1][0]}\tQ0\t{converted[1][2]}\t2\t{-2 / 7:.6f}\tconvdr\r\n"
    assert looks_like_convdr_ids(row[2] for row in original)
    assert not looks_like_convdr_ids(row[2] for row in converted)


def test_car_cbor_order_gives_the_integer(shared_data, tmp_path):
    from trec_car.read_data import iter_paragraphs

    cbor = shared_data / CAR_SAMPLE
    with open(cbor, "rb") as handle:
        para_ids = [paragraph.para_id for paragraph in iter_paragraphs(handle)]
    table = tmp_path / "car.tsv"
    assert main(["mapping", "--from-car", str(cbor), "--output", str(table)]) == 0
    rows = [line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()]
    assert rows == [[f"CAR_{para_id}", str(CAR_BASE + position)] for position, para_id in enumerate(para_ids)]
    mapping = IdMapping.from_car_cbor(cbor)
    assert len(mapping) == len(para_ids) == 98
    assert mapping.to_official(CAR_BASE + 97) == f"CAR_{para_ids[97]}"
    assert mapping.to_convdr(f"CAR_{para_ids[5]}") == CAR_BASE + 5
    assert mapping.to_official(CAR_BASE + 98) is None


def test_marco_ids_convert_by_arithmetic():
    mapping = IdMapping()
    assert mapping.to_convdr("MARCO_8841822") == 8841822
    assert mapping.to_official("8841822") == mapping.to_official(8841822) == "MARCO_8841822"
    for not_convertible in ("MARCO_", "MARCO_007", "MARCO_10000000", "WAPO_1", "CAR_abc", "8841822"):
        assert mapping.to_convdr(not_convertible) is None, not_convertible
    for not_convertible in ("007", "-1", "1.0", "MARCO_1", "10000000"):
        assert mapping.to_official(not_convertible) is None, not_convertible
    assert not looks_like_convdr_ids([])


def _convert_2020_with_2019_mapping(shared_data):
    """Arguments converting the 2020 qrels with a mapping that only knows the 2019 CAR ids."""
    official19, integer19, _ = _pair(shared_data, "2019")
    official20 = _pair(shared_data, "2020")[0]
    return ["convert", "--from-qrels", str(official19), str(integer19), "--direction", "to-convdr", str(official20)]


def test_unknown_ids_are_an_error_that_counts_them(shared_data, tmp_path, capsys):
    out = tmp_path / "out.qrels"
    assert main(_convert_2020_with_2019_mapping(shared_data) + [str(out)]) == 2
    message = _one_error_line(capsys)
    car19 = {doc for (doc,) in _columns(shared_data / YEARS["2019"][0], 2)}
    rows20 = _columns(shared_data / YEARS["2020"][0], 2)
    unknown = {doc for (doc,) in rows20 if doc.startswith("CAR_") and doc not in car19}
    unknown_lines = sum(doc in unknown for (doc,) in rows20)
    assert f"{len(unknown):,} doc ids on {unknown_lines:,} lines" in message
    assert rows20[0][0] in message and "--drop-unknown" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--drop-unknown", "--keep-unknown"])
def test_drop_or_keep_unknown(shared_data, tmp_path, flag):
    out = tmp_path / "out.qrels"
    assert main(_convert_2020_with_2019_mapping(shared_data) + [flag, str(out)]) == 0
    car19 = {doc for (doc,) in _columns(shared_data / YEARS["2019"][0], 2)}
    source = _columns(shared_data / YEARS["2020"][0], 0, 2, 3)
    converted = _columns(out, 0, 2, 3)
    convertible = [row for row in source if row[1].startswith("MARCO_") or row[1] in car19]
    if flag == "--drop-unknown":
        assert len(converted) == len(convertible) < len(source)
        assert all(looks_like_convdr_ids([doc]) for _, doc, _ in converted)
    else:
        assert len(converted) == len(source)
        assert sum(doc.startswith("CAR_") for _, doc, _ in converted) == len(source) - len(convertible)


def test_library_convert_file_counts(shared_data, tmp_path):
    official, integer, lines = _pair(shared_data, "2019")
    counts = convert_file(official, tmp_path / "x", IdMapping.from_qrels_pair(official, integer), "to-convdr")
    assert counts == {"read": lines, "converted": lines, "dropped": 0, "kept": 0, "unknown ids": 0}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_wrong_column_count_names_file_and_line(shared_data, tmp_path, capsys):
    official, integer, _ = _pair(shared_data, "2019")
    lines = official.read_text(encoding="utf-8").splitlines(keepends=True)[:5]
    lines[2] = lines[2].rstrip("\n") + " extra\n"
    bad = _write(tmp_path / "bad.qrels", "".join(lines))
    out = tmp_path / "out"
    assert main(["convert", "--from-qrels", str(official), str(integer), "--direction", "to-convdr", str(bad), str(out)]) == 2
    assert f"{bad}:3: expected 4 columns (qid iteration docid grade), found 5" in _one_error_line(capsys)
    assert not out.exists()
    first_bad = _write(tmp_path / "bad2.qrels", "31_1 Q0 MARCO_1\n")
    assert main(["convert", "--from-qrels", str(official), str(integer), "--direction", "to-convdr", str(first_bad), str(out)]) == 2
    assert f"{first_bad}:1: 3 columns; expected 4" in _one_error_line(capsys)
    # the qrels pair itself is checked too
    assert main(["mapping", "--from-qrels", str(bad), str(integer), "--output", str(out)]) == 2
    assert f"{bad}:3: expected 4 columns (qid iteration docid grade), found 5" in _one_error_line(capsys)
    assert not out.exists()


def test_pair_that_is_not_line_aligned(shared_data, tmp_path, capsys):
    official19, _, _ = _pair(shared_data, "2019")
    _, integer20, _ = _pair(shared_data, "2020")
    out = tmp_path / "map.tsv"
    assert main(["mapping", "--from-qrels", str(official19), str(integer20), "--output", str(out)]) == 2
    assert f"{official19}:1 / {integer20}:1: query/grade 31_1 0 vs 81_1 1" in _one_error_line(capsys)
    short = _write(tmp_path / "short.tsv", "".join(integer20.read_text(encoding="utf-8").splitlines(keepends=True)[:10]))
    official20 = _pair(shared_data, "2020")[0]
    assert main(["mapping", "--from-qrels", str(official20), str(short), "--output", str(out)]) == 2
    assert f"{short} ends before the other file" in _one_error_line(capsys)
    assert not out.exists()


def test_malformed_mapping_file(shared_data, tmp_path, capsys):
    official, _, _ = _pair(shared_data, "2019")
    table = _write(tmp_path / "map.tsv", "CAR_aaa\t10000001\nCAR_bbb 10000002\n")
    assert main(["convert", "--mapping", str(table), "--direction", "to-convdr", str(official), str(tmp_path / "o")]) == 2
    assert f"{table}:2: expected 'CAR_<id><TAB><integer>'" in _one_error_line(capsys)
    clash = _write(tmp_path / "clash.tsv", "CAR_aaa\t10000001\nCAR_bbb\t10000001\n")
    assert main(["convert", "--mapping", str(clash), "--direction", "to-convdr", str(official), str(tmp_path / "o")]) == 2
    assert "integer 10000001 maps to both CAR_aaa and CAR_bbb" in _one_error_line(capsys)
    not_utf8 = tmp_path / "latin1.tsv"
    not_utf8.write_bytes(b"CAR_aaa\t10000001\nCAR_\xe9\t10000002\n")
    assert main(["convert", "--mapping", str(not_utf8), "--direction", "to-convdr", str(official), str(tmp_path / "o")]) == 2
    assert f"{not_utf8}:2: not UTF-8 text" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_malformed_cbor_is_an_error_not_a_hang(shared_data, tmp_path, damage):
    data = (shared_data / CAR_SAMPLE).read_bytes()
    bad = tmp_path / "bad.cbor"
    bad.write_bytes({"truncated": data[: len(data) - 100], "text": b"31_1 Q0 CAR_x 1\n", "empty": b""}[damage])
    out = tmp_path / "car.tsv"
    # a subprocess, so that a decoder stuck on a truncated file fails the test instead of hanging it
    result = subprocess.run([sys.executable, "-m", "convdr_pyserini.ids", "mapping", "--from-car", str(bad),
                             "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ")
    expected = {"truncated": "truncated TREC CAR cbor", "text": "not a TREC CAR file", "empty": "not a TREC CAR file"}
    assert expected[damage] in lines[0]
    assert not out.exists()


def test_help_starts_no_jvm_and_imports_no_torch():
    code = ("import sys; from convdr_pyserini.ids.__main__ import main; rc = main(['--help']); "
            "assert rc == 0; assert 'torch' not in sys.modules and 'jnius' not in sys.modules, 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "convert" in result.stdout and "mapping" in result.stdout


def test_cbor_mapping_is_checked_against_qrels(shared_data, tmp_path, capsys):
    from trec_car.read_data import iter_paragraphs

    cbor = shared_data / CAR_SAMPLE
    with open(cbor, "rb") as handle:
        para_ids = [paragraph.para_id for paragraph in iter_paragraphs(handle)][:3]
    official = _write(tmp_path / "official.qrels", "".join(f"31_1 Q0 CAR_{p} 1\n" for p in para_ids))
    agreeing = _write(tmp_path / "int.qrels", "".join(f"31_1\t0\t{CAR_BASE + i}\t1\n" for i in range(3)))
    table = tmp_path / "car.tsv"
    assert main(["mapping", "--from-car", str(cbor), "--from-qrels", str(official), str(agreeing), "--output", str(table)]) == 0
    assert len(table.read_text(encoding="utf-8").splitlines()) == 98
    table.unlink()
    shifted = _write(tmp_path / "shifted.qrels", "".join(f"31_1\t0\t{CAR_BASE + i + 1}\t1\n" for i in range(3)))
    assert main(["mapping", "--from-car", str(cbor), "--from-qrels", str(official), str(shifted), "--output", str(table)]) == 2
    assert f"CAR_{para_ids[0]} is {CAR_BASE} by cbor position but {CAR_BASE + 1} in the qrels" in _one_error_line(capsys)
    official19, integer19, _ = _pair(shared_data, "2019")
    assert main(["mapping", "--from-car", str(cbor), "--from-qrels", str(official19), str(integer19), "--output", str(table)]) == 2
    assert "10,443 CAR ids of the qrels are not in this cbor" in _one_error_line(capsys)
    assert not table.exists()


def test_mapping_must_be_one_to_one(tmp_path, capsys):
    table = _write(tmp_path / "map.tsv", "CAR_aaa\t10000001\nCAR_aaa\t10000002\n")
    assert main(["convert", "--mapping", str(table), "--direction", "to-official", str(table), str(tmp_path / "x")]) == 2
    assert f"{table}:2: CAR_aaa maps to both 10000001 and 10000002" in _one_error_line(capsys)
