"""The explorer page in a real browser: Debian's chromium and chromium-driver, driven by selenium (the driver's
path given, no driver download), the page opened from file:// with the network switched off.

`make test` installs both packages when it runs as root and they are missing; elsewhere these tests skip."""
import json
import os
import re
from pathlib import Path

import pytest

import convdr_pyserini as cp
from convdr_pyserini.compare.browser import CHROMEDRIVER, find_chromium, headless_driver

TOPICS = "convdr/cast20/mini"
RUNS_DIR = "evaluation/runs/cast20-mini-rerank"
RUNS = {"BM25 automatic": f"{RUNS_DIR}/bm25-automatic.trec", "ConvDR-KD": f"{RUNS_DIR}/convdr-kd.trec",
        "teacher raw": f"{RUNS_DIR}/convdr-teacher-raw.seed-1.trec",
        "student KD": f"{RUNS_DIR}/convdr-student-kd.seed-1.trec"}
DEMO_PAGE = Path("evaluation/cast20-mini.html")
INJECTION = "</script><script>window.__x=1</script>"


def _browser_missing() -> str | None:
    if find_chromium() is None or not os.path.exists(CHROMEDRIVER):
        return ("Debian's chromium and chromium-driver are not installed (`make test` installs them when it runs as "
                "root: apt-get install chromium chromium-driver)")
    return None


pytestmark = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


@pytest.fixture(scope="module")
def browser():
    driver = headless_driver(console=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def explorer(shared_data):
    return cp.compare(TOPICS, RUNS, qrels=TOPICS, texts=TOPICS, baseline="ConvDR-KD", measures="nDCG@3 RR(rel=2)")


@pytest.fixture(scope="module")
def page(explorer, tmp_path_factory):
    return explorer.write(tmp_path_factory.mktemp("explorer") / "cast20-mini.html")


def open_page(driver, path, anchor=""):
    driver.get("about:blank")
    driver.get(Path(path).resolve().as_uri() + anchor)
    driver.find_element("css selector", "body[data-ready]")
    return driver


def severe_logs(driver) -> list:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_renders_offline_without_errors_or_requests(browser, page, explorer):
    open_page(browser, page)
    assert severe_logs(browser) == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert len(browser.find_elements("css selector", "#topic-list .topic")) == 25
    assert browser.find_element("css selector", "table.scores").text.count("\n") >= 4
    browser.find_element("css selector", 'button[data-unit="conversation"]').click()  # the conversation as the unit
    cell = browser.find_element("css selector", 'table.scores td[data-run="student KD"][data-measure="nDCG@3"]')
    expected = explorer.data["overview"]["conversation"]["student KD"]["nDCG@3"]
    assert float(cell.get_attribute("data-value")) == expected["mean"] and f"{expected['mean']:.4f}" in cell.text
    assert "Holm-adjusted across runs" in cell.get_attribute("title")
    assert "conversations" in browser.find_element("css selector", "table.scores thead").text


@pytest.mark.parametrize("which", ["built here", "the committed demo page"])
def test_opening_topic_81_lists_its_turns_in_order_with_raw_and_manual_texts(browser, page, which):
    open_page(browser, page if which == "built here" else DEMO_PAGE)
    browser.find_element("css selector", '.topic[data-topic="81"] .topic-head .label').click()
    turns = browser.find_elements("css selector", '.topic[data-topic="81"] .turn')
    topics = cp.load_topics(TOPICS)
    expected = [qid for qid in topics.ids() if qid.startswith("81_")]
    assert [turn.get_attribute("data-turn") for turn in turns] == expected
    for turn, qid in zip(turns, expected):
        assert turn.find_element("css selector", "dd.raw").text == topics[qid].raw_utterance
        assert turn.find_element("css selector", "dd.manual").text == topics[qid].manual_rewritten_utterance
    assert severe_logs(browser) == []


def test_anchor_opens_turn_81_3_with_each_runs_top_10_and_the_qrels_grades(browser, page, explorer):
    open_page(browser, page, "#81_3")
    turn = browser.find_element("id", "81_3")
    assert "open" in turn.get_attribute("class")
    assert browser.execute_script("var r = document.getElementById('81_3').getBoundingClientRect();"
                                  "return r.top >= -1 && r.top < window.innerHeight")
    grades = cp.load_qrels(TOPICS).judgments["81_3"]
    for name, path in RUNS.items():
        column = turn.find_element("css selector", f'.column[data-run="{name}"]')
        items = column.find_elements("css selector", "li")
        top = cp.Run.read(path)["81_3"][:10]
        assert [item.get_attribute("data-docid") for item in items] == [docid for docid, _ in top]
        shown = [item.get_attribute("data-grade") for item in items]
        assert shown == ["" if grades.get(docid) is None else str(grades[docid]) for docid, _ in top]
        badges = [item.find_element("css selector", ".grade").text for item in items]
        assert badges == ["unjudged" if grades.get(docid) is None else str(grades[docid]) for docid, _ in top]
    report = cp.evaluate(TOPICS, RUNS, "nDCG@3 RR(rel=2)", baseline="ConvDR-KD")
    for cell in turn.find_elements("css selector", ".values .value"):  # the values shown are evaluate's
        expected = report.scores_of(cell.get_attribute("data-run")).per_query[cell.get_attribute("data-measure")]["81_3"]
        assert float(cell.get_attribute("data-value")) == expected
        assert f"{expected:.4f}" in cell.text
    assert severe_logs(browser) == []


def test_sorting_by_delta_gives_the_order_python_computes(browser, page, explorer):
    open_page(browser, page)
    from selenium.webdriver.support.ui import Select

    topics = lambda: [row.get_attribute("data-topic") for row in browser.find_elements("css selector", "#topic-list .topic")]  # noqa: E731
    assert explorer.data["focus"] == "student KD" and topics() == explorer.topic_order()  # the default view
    for run in ("student KD", "teacher raw"):
        Select(browser.find_element("css selector", 'select[name="focus"]')).select_by_value(run)
        Select(browser.find_element("css selector", 'select[name="measure"]')).select_by_value("RR(rel=2)")
        shown = [row.get_attribute("data-topic") for row in browser.find_elements("css selector", "#topic-list .topic")]
        assert shown == explorer.topic_order(run, "RR(rel=2)")
    Select(browser.find_element("css selector", 'select[name="sort"]')).select_by_value("topic")
    shown = [row.get_attribute("data-topic") for row in browser.find_elements("css selector", "#topic-list .topic")]
    assert shown == [str(n) for n in range(81, 106)]


def test_injected_markup_stays_text(browser, shared_data, tmp_path):
    """Topics, run names and passage texts carrying `</script>`, `<!--` and U+2028 show as text; nothing runs."""
    (tmp_path / "topics.tsv").write_text(f"1_1\tfirst {INJECTION}\n1_2\tsecond <!-- \u2028 <b>bold</b>\n",
                                         encoding="utf-8")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"id": "d1", "contents": INJECTION}) + "\n" +
                                         json.dumps({"id": "d2", "contents": "<img src=x onerror=window.__y=1>"}) + "\n")
    (tmp_path / "run.trec").write_text("1_1 Q0 d1 1 2.0 t\n1_1 Q0 d2 2 1.0 t\n1_2 Q0 d2 1 2.0 t\n")
    explorer = cp.compare(tmp_path / "topics.tsv", {INJECTION: str(tmp_path / "run.trec")}, texts=tmp_path / "docs.jsonl")
    page = explorer.write(tmp_path / "hostile.html")
    assert "window.__x=1</script>" not in page.read_text(encoding="utf-8")
    open_page(browser, page, "#1_1")
    assert browser.execute_script("return typeof window.__x") == "undefined"
    assert browser.execute_script("return typeof window.__y") == "undefined"
    texts = [p.get_attribute("textContent") for p in browser.find_elements("css selector", "details.text p")]
    assert INJECTION in texts and "<img src=x onerror=window.__y=1>" in texts
    assert browser.find_element("css selector", "[id=\"1_1\"] dd.raw").text == f"first {INJECTION}"
    assert INJECTION in browser.find_element("css selector", "[id=\"1_1\"] .column h4").text
    open_page(browser, page, "#1_2")
    assert browser.execute_script("return document.querySelector('[id=\"1_2\"] dd.raw').textContent") == \
        "second <!-- \u2028 <b>bold</b>"
    assert severe_logs(browser) == []


def test_the_demo_page(browser):
    assert DEMO_PAGE.stat().st_size <= 8_000_000
    open_page(browser, DEMO_PAGE, "#81_3")
    assert severe_logs(browser) == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    turn = browser.find_element("id", "81_3")
    columns = turn.find_elements("css selector", ".column")
    data = json.loads(re.search(r'id="explorer-data">(.*?)</script>', DEMO_PAGE.read_text(encoding="utf-8"),
                                re.S).group(1))
    assert [c.get_attribute("data-run") for c in columns] == data["runs"] == \
        ["BM25 automatic", "dense raw", "dense manual", "ConvDR-KD"]
    grades = cp.load_qrels(TOPICS).judgments["81_3"]
    for column in columns:
        items = column.find_elements("css selector", "li")
        assert len(items) == 10
        assert [i.get_attribute("data-grade") for i in items] == \
            ["" if grades.get(i.get_attribute("data-docid")) is None else str(grades[i.get_attribute("data-docid")])
             for i in items]
    shown = [row.get_attribute("data-topic") for row in browser.find_elements("css selector", "#topic-list .topic")]
    assert shown == cp.Explorer(data).topic_order()
