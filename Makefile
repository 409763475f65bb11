# einet: `make run` (set-up + dashboard) and `make test` (set-up + whole test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.einet-installed
TSTAMP := $(VENV)/.einet-test-installed
LSTAMP := $(VENV)/.einet-lint-installed
ASTAMP := $(VENV)/.einet-accel-built

.PHONY: run test test-mpi lint setup setup-test setup-lint setup-mpi bench bench-large bench-mpi bench-node bench-fidelity fuzz soak screenshot clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP) $@

$(LSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test,lint]"
	touch $(STAMP) $(TSTAMP) $@

# the C++ accelerator for stores (einet/accel), built for this NEST once; optional
$(ASTAMP): einet/accel/connections.cpp einet/accel/state.cpp einet/accel/guard.h einet/accel/build.py | $(STAMP)
	@bash tools/setup-accel.sh $(PY)
	@touch $@

setup: $(STAMP) $(ASTAMP)
setup-lint: $(LSTAMP)
setup-test: $(TSTAMP) $(ASTAMP)
	@bash tools/apt-install.sh tmux

run: setup
	$(VENV)/bin/einet $(ARGS)

# the tests on every core (pytest-xdist, a process each, by file), then alone those that time
# how soon something happens (marked serial: a busy neighbour would make them flaky)
TEST_WORKERS ?= auto
test: setup-test
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile -m "not mpi and not serial" $(PYTEST_ARGS)
	$(PY) -m pytest -q -m "serial and not mpi" $(PYTEST_ARGS)

# ruff (lint + format check), mypy on einet/ and tui/, import-linter's layering contracts
lint: $(LSTAMP)
	$(VENV)/bin/ruff check einet tui tests benchmarks tools docs
	$(VENV)/bin/ruff format --check einet tui tests benchmarks tools docs
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# the engine as an MPI job of 2 ranks (builds the MPI NEST first if it is not cached)
test-mpi: setup-test setup-mpi
	$(PY) -m pytest -q -m mpi tests/mpi $(PYTEST_ARGS)

bench: setup-test
	$(PY) benchmarks/run.py --scales 1 4 --readme README.md

bench-mpi: setup-test setup-mpi
	$(PY) benchmarks/mpi.py --scale 4 --readme README.md

# scale 40: 100,000 neurons, 25M connections, ~6 GB (a few minutes)
bench-node: setup-test
	$(PY) benchmarks/node.py --scale 40 --checkpoints 480 120 --readme README.md

# continued − restored over an ensemble of snapshots and seeds, three networks (~10 min on 2 cores)
bench-fidelity: setup-test
	$(PY) benchmarks/fidelity_ensemble.py --readme README.md

bench-large: setup-test
	$(PY) benchmarks/run.py --scales 10 --large --readme README.md

fuzz: setup-test
	$(PY) benchmarks/fuzz.py --cases 10000 --kills 60 --interrupts 30

soak: setup-test
	$(PY) benchmarks/soak.py --cycles 200

# NEST 3.10 built with MPI (the PyPI wheel has none) into ~/.cache/einet/nest-mpi-3.10 (~15 min once)
setup-mpi:
	bash tools/setup-mpi.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

screenshot: setup-test
	$(PY) docs/make_screenshot.py
