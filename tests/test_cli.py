"""Every command-line module: `--help` works, starts no JVM and imports neither torch nor Ray."""
import subprocess
import sys

import pytest

CLI_MODULES = [
    "convdr_pyserini.datasets",
    "convdr_pyserini.ids",
    "convdr_pyserini.collection",
    "convdr_pyserini.index",
    "convdr_pyserini.search",
    "convdr_pyserini.evaluate",
    "convdr_pyserini.compare",
    "convdr_pyserini.reproduce",
    "convdr_pyserini.train",
    "convdr_pyserini.rerank",
    "convdr_pyserini.demo",
    "convdr_pyserini.pyserini",
]

PROBE = """
import importlib, io, contextlib, sys
name = sys.argv[1]
module = importlib.import_module(name if name.endswith(('demo', 'pyserini')) else name + '.__main__')
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = module.main(['--help'])
assert code == 0, code
assert 'usage:' in out.getvalue()
print(sorted(name for name in ('torch', 'jnius', 'pyserini', 'transformers', 'faiss', 'ray') if name in sys.modules))
"""


@pytest.mark.parametrize("module", CLI_MODULES)
def test_help_starts_no_jvm_and_imports_no_torch(module):
    done = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} --help imported {done.stdout.strip()}"


def test_library_errors_are_reported_with_the_flags_of_the_command(tmp_path, capsys):
    """The library names its parameters (`query`, `rewrites`, `measures`); a command shows its flags instead."""
    from convdr_pyserini._cli import flag_names
    from convdr_pyserini.errors import UserError
    from convdr_pyserini.evaluate.__main__ import main as evaluate_main
    from convdr_pyserini.search import SearchSpec
    from convdr_pyserini.search.__main__ import build_parser, main as search_main
    from convdr_pyserini.index.__main__ import build_parser as index_parser

    with pytest.raises(UserError) as caught:
        SearchSpec(retriever="bm25", topics="convdr/cast20/mini", query="rewrite", index=["x"], hits=10)
    assert str(caught.value) == "query rewrite and rewrites FILE go together"
    assert search_main(["--bm25", "--topics", "convdr/cast20/mini", "--query", "rewrite", "--index", "x",
                        "--output", str(tmp_path / "r.trec")]) == 2
    assert capsys.readouterr().err == "error: --query rewrite and --rewrites FILE go together\n"
    run = tmp_path / "r.trec"
    run.write_text("81_1 Q0 MARCO_1 1 1.0 t\n")
    assert evaluate_main(["--qrels", "convdr/cast20", "--run", str(run), "--measures", "nDCG@x"]) == 2
    assert capsys.readouterr().err.startswith("error: --measures: 'nDCG@x' is rejected by ir_measures")
    flags = flag_names(build_parser())
    assert flags["missing_rewrite"] == "--missing-rewrite" and flags["hits"] == "--hits"
    assert flag_names(index_parser())["train_sample"] == "--train-sample"  # an option of `index compress`
