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
    "convdr_pyserini.reproduce",
    "convdr_pyserini.train",
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
