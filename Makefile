# Two entry points for users and CI: `make demo` and `make test` (neither needs torch, onnx or transformers;
# `make test-all` installs them and runs the slow tests too).
# Both create .venv on first use, install the package with its test extras and
# try to build the native engine (a failed native build leaves the Python engines working).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench fuzz install clean

$(STAMP): pyproject.toml $(wildcard native/pyproject.toml native/CMakeLists.txt native/src/*)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	@if [ -f native/pyproject.toml ]; then \
	  $(PY) -m pip install -q ./native \
	  || echo "WARNING: the native engine failed to build; the Python engines (dense, hull) still work." >&2; \
	fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m wasmformer demo

# tests run on up to 4 worker processes (pytest-xdist): each loads the model once
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider -n auto --maxprocesses 4

# the optional exports too: torch first, pinned (any other spec pulls a CUDA build), then the other extras
test-all: $(STAMP)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,onnx,hf,ray]'
	$(PY) -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4

bench: $(STAMP)
	$(PY) -m wasmformer bench

# A few minutes of malformed inputs, hostile options and random programs through the CLI (docs/fuzzing.md);
# its Csmith cases need Debian's csmith and libcsmith-dev (it stops and says so when they are missing).
fuzz: $(STAMP)
	$(PY) -m fuzz --seed 1 --cases 600

clean:
	rm -rf $(VENV) build dist src/*.egg-info
