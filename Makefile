# Set-up and the two main jobs on a fresh machine: `make demo`, `make test`.
# Both create the virtual environment (.venv) when it is missing and install gankit into it: the CPU
# build of torch first (`pip install torch==2.13.0`; a plain `torch` would fetch a CUDA build of several GB),
# then gankit with its dev extras. Later runs reuse it; it is installed again when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.gankit-installed

.PHONY: install demo test

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# train the demo (photos ↔ ink drawings, about 3 minutes on 2 CPU cores) into runs/demo-demo
demo: $(INSTALLED)
	$(BIN)/gankit demo

# the test suite (real data from ../shared/data, or set GANKIT_DATA), two worker processes of one thread
# each, a test file per worker at a time (module fixtures are built once)
test: $(INSTALLED)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
