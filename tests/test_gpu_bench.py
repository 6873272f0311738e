"""The GPU encoding bench is ready for a GPU machine that lacks ir_datasets, faiss, Pyserini and Java: its CPU
run (tiny sizes, the same code) succeeds with those packages made unimportable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"ir_datasets", "faiss", "pyserini", "jnius", "jnius_config", "ir_measures"}:
            raise ImportError(f"{name} is not on the GPU machine")
sys.meta_path.insert(0, Blocked())
"""


@pytest.mark.slow
def test_gpu_encode_bench_runs_on_cpu_without_the_missing_packages(tmp_path, shared_data):
    data = tmp_path / "gpu-data"
    exported = subprocess.run([sys.executable, str(ROOT / "bench/gpu_encode.py"), "--export", str(data)],
                              capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{ROOT}")
    done = subprocess.run([sys.executable, str(ROOT / "bench/gpu_encode.py"), "--data", str(data), "--device", "cpu",
                           "--passages", "48", "--batch-sizes", "16", "32", "--layers", "2", "--hidden", "64"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["results"]) == {"fp32/16", "fp32/32", "bf16/16", "bf16/32"}
    assert report["equality"]["fp32"]["max_abs_diff"] == 0.0  # CPU against CPU: the same vectors
    assert report["equality"]["bf16"]["min_cosine"] > 0.99
    assert all(result["finite"] and result["passages_per_second"] > 0 for result in report["results"].values())
