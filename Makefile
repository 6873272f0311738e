# Two commands: `make demo` and `make test`. Both create .venv if missing and install the package.
# `make test-slow` runs the slow tests, `make test-guide` docs/full-scale.md in miniature, `make bench` the
# benchmarks, `make experiments` the matrices on convdr/cast20/mini (after `make demo`, which builds their indexes;
# hours on 2 CPU cores).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Point the data mirror at the shared data folder when it is there (CI and development machines).
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/MANIFEST.md),)
export CONVDR_PYSERINI_MIRROR ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-slow test-guide bench experiments fidelity-env fidelity clean browser

install: $(STAMP)

# The versions the committed outputs were made with (.ci/constraints.txt); setup.cfg keeps ranges for other installs.
CONSTRAINTS := .ci/constraints.txt

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --constraint $(CONSTRAINTS) -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m convdr_pyserini.demo

# The explorer's browser tests need Debian's chromium and chromium-driver: installed here when running as root
# (CI) and missing; elsewhere those tests skip and say why.
test: $(STAMP) browser
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -m "not slow"

browser:
	@if [ "$$(id -u)" = 0 ] && ! { command -v chromium && test -x /usr/bin/chromedriver; } >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and chromium-driver (browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null \
	  || echo "warning: apt-get could not install chromium chromium-driver; the browser tests will skip"; \
	fi

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# docs/full-scale.md run verbatim on miniature inputs (7 minutes on 2 idle cores; CI runs it)
test-guide: $(STAMP)
	$(PY) -m pytest -q -m slow tests/test_full_scale.py

bench: $(STAMP)
	for script in bench/*.py; do [ $$script = bench/gpu_encode.py ] || $(PY) $$script || exit 1; done

MATRICES := cast20-mini-baselines cast20-mini-rewrites cast20-mini-training cast20-mini-nested cast20-mini-rerank
experiments: $(STAMP)
	for matrix in $(MATRICES); do $(PY) -m convdr_pyserini.reproduce evaluation/$$matrix.yaml --overwrite || exit 1; done

# The original ConvDR code as the oracle (docs/training.md, "Fidelity"): its environment from the package index,
# then the step-for-step comparison. CONVDR_ORIG is a checkout of thunlp/ConvDR (git clone).
CONVDR_ORIG ?= ../convdr-orig
OLD_VENV := .venv-convdr-orig
fidelity-env:
	test -x $(OLD_VENV)/bin/python || $(PYTHON) -m venv $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install --quiet -r bench/fidelity/requirements-convdr.txt

fidelity: $(STAMP)
	$(PY) bench/fidelity/run.py --convdr $(CONVDR_ORIG) --old-venv $(OLD_VENV) --write-results bench/fidelity/RESULTS.md

clean:
	rm -rf $(VENV) build *.egg-info
