# Everything runs from a project-local virtual environment, created on first use.
#   make test    install (if needed) and run the whole test suite
#   make bench   time WaveNet generation: naive vs incremental (tools/bench_generate.py)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test bench clean

install: $(VENV)/.installed

# Re-installs when the dependencies change; `pip install -e` keeps the package itself live.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python tools/bench_generate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
