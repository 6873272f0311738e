"""The README's quickstart shell block runs verbatim, on a fresh clone and again over what it (or `make demo`, which
builds the same index) made; Java's start-up warnings stay off stderr."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return next(block for block in blocks if "python -m convdr_pyserini" in block)


def test_readme_quickstart_runs_verbatim_fresh_and_again(tmp_path):
    script = quickstart()
    assert "indexes/cast20-mini.lucene" in script  # the index `make demo` builds
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for attempt in ("fresh", "again"):
        done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (attempt, done.stderr)
        assert "bm25-quretec.trec" in done.stdout and "nDCG@3" in done.stdout
        assert "WARNING" not in done.stderr and "MMapDirectory" not in done.stderr, done.stderr
    assert (tmp_path / "indexes" / "cast20-mini.lucene").is_dir()
    assert {path.name for path in (tmp_path / "runs").iterdir()} == {
        "bm25-raw.trec", "bm25-raw.trec.json", "bm25-quretec.trec", "bm25-quretec.trec.json"}


def test_java_log_goes_to_the_debug_log(tmp_path):
    """With -v, the Java log's start-up warning is in the package's log (as a debug line), not printed raw."""
    script = quickstart().split("\npython -m convdr_pyserini.search")[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "convdr_pyserini.search", "--bm25", "--topics", "convdr/cast20/mini",
                           "--query", "raw", "--index", "indexes/cast20-mini.lucene", "--hits", "5", "--output",
                           "run.trec", "-v"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    java = [line for line in done.stderr.splitlines() if "org.apache.lucene" in line]
    assert java and all(line.startswith("java: ") for line in java), done.stderr
