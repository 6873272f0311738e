"""The original ConvDR code as the oracle: bench/fidelity/run.py trains and encodes with thunlp/ConvDR under its
own environment and with the project, and exits 0 only when every loss, parameter and embedding agrees within
1e-5. Slow (about 4 minutes on 2 cores); needs a checkout of thunlp/ConvDR (CONVDR_ORIG, default ../convdr-orig)
and the environment `make fidelity-env` builds (CONVDR_ORIG_VENV, default .venv-convdr-orig)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = Path(os.environ.get("CONVDR_ORIG", ROOT.parent / "convdr-orig"))
OLD_VENV = Path(os.environ.get("CONVDR_ORIG_VENV", ROOT / ".venv-convdr-orig"))


@pytest.mark.slow
def test_training_and_inference_agree_with_the_original_code(tmp_path):
    if not (CHECKOUT / "drivers" / "run_convdr_train.py").is_file():
        pytest.skip(f"no checkout of thunlp/ConvDR at {CHECKOUT} (git clone it there or set CONVDR_ORIG)")
    if not (OLD_VENV / "bin" / "python").is_file():
        pytest.skip(f"no ConvDR environment at {OLD_VENV} (make fidelity-env, or set CONVDR_ORIG_VENV)")
    completed = subprocess.run([sys.executable, str(ROOT / "bench" / "fidelity" / "run.py"), "--convdr", str(CHECKOUT),
                                "--old-venv", str(OLD_VENV), "--work", str(tmp_path)],
                               capture_output=True, text=True, cwd=ROOT)
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0 and summary["agree"], completed.stdout[-3000:]
    assert set(summary["runs"]) == {"dropout-0", "dropout-0.1"}
    for result in summary["runs"].values():
        assert {"kd", "ranking", "multi-task", "kd-man_can", "query:no_res", "query:man_can", "passages"} <= set(result["rows"])
        assert all(row["steps"] == [10, 10] for name, row in result["rows"].items() if "steps" in row)
