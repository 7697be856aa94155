# tracklayer: the two commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: help venv test demo lint proto format bench clean regression-data

help:
	@echo "make demo   - set up .venv and run the live demo (store, fusion, sensors)"
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make lint   - buf lint/format/breaking and ruff"
	@echo "make proto  - regenerate tracklayer/v1 from proto/"
	@echo "make bench NAME=track - run benchmarks/bench_NAME.py (figures to benchmarks/RESULTS.md)"
	@echo "make regression-data - re-simulate tests/data/regression/*.mcap and their baselines"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c "from tracklayer.fusion import kernels, kernel_registration as r; kernels.warm(); r.warm()"  # compile once, cached
	touch $(STAMP)

venv: $(STAMP)

# Two workers; one test file (or a group sharing a session fixture) per worker at a
# time, longest first: tests/parallel.py. One file alone: $(PY) -m pytest tests/test_x.py
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: $(STAMP)
	$(VENV)/bin/tracklayer demo

proto: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -I proto \
	  --python_out=. --grpc_python_out=. --mypy_out=. \
	  proto/tracklayer/v1/*.proto

lint: $(STAMP)
	cd proto && ../$(VENV)/bin/buf lint
	cd proto && ../$(VENV)/bin/buf format --diff --exit-code
	@if git rev-parse --verify --quiet main:proto/buf.yaml >/dev/null; then \
	  cd proto && ../$(VENV)/bin/buf breaking --against '../.git#branch=main,subdir=proto'; \
	else echo "buf breaking: no contract on main yet, skipped"; fi
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cd proto && ../$(VENV)/bin/buf format -w

bench: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make bench NAME=<one of: $$(ls benchmarks/bench_*.py | sed 's|benchmarks/bench_||; s|\.py||' | tr '\n' ' ')>"; exit 2; }
	$(PY) benchmarks/bench_$(NAME).py

regression-data: $(STAMP)
	$(PY) tests/data/regression/regenerate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
