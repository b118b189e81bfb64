# Two commands on a fresh machine with only Python and make:
#   make demo   - the main job: a local two-region lab (and, later, the demo app)
#   make test   - the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/regionproxy: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

demo: $(BIN)/regionproxy
	$(BIN)/regionproxy demo

test: $(BIN)/regionproxy
	$(BIN)/python -m pytest

lint: $(BIN)/regionproxy
	$(BIN)/ruff check src tests examples benchmarks

bench: $(BIN)/regionproxy
	$(BIN)/python benchmarks/bench_overhead.py

clean:
	rm -rf $(VENV) build src/*.egg-info
