"""`make demo` end to end (slow: builds both indexes and trains 5 fold models, ~10-15 minutes on 2 cores)."""
import time

import pytest

from convdr_pyserini.demo import main


@pytest.mark.slow
def test_demo_builds_everything_then_reuses_it(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1,426" in out and "216" in out and "208" in out  # the dataset summary comes first
    report = (tmp_path / "evaluation/cast20-mini.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 8
    assert (tmp_path / "evaluation/cast20-mini-by-turn.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "evaluation/cast20-mini.html").read_bytes()
    assert len(page) <= 8_000_000 and b'"runs":["BM25 automatic","dense raw","dense manual","ConvDR-KD"]' in page
    assert sorted(p.name for p in (tmp_path / "encoders/convdr-kd-cast20-mini").iterdir()) == \
        ["cv.yaml", "fold-0", "fold-1", "fold-2", "fold-3", "fold-4"]
    started = time.time()
    assert main(["--workdir", str(tmp_path)]) == 0
    assert "reusing" in capsys.readouterr().out and time.time() - started < 120
    assert (tmp_path / "evaluation/cast20-mini.md").read_text() == report
    assert (tmp_path / "evaluation/cast20-mini.html").read_bytes() == page  # the page is byte-identical
