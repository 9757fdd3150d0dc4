# imgclass-kit: `make demo` and `make test` set everything up from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest bench bench-batch goldens clean system-deps

EXTRAS ?= dev,notebook,nbgrader,dask

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@# an editable install compiles none of our modules (a wheel install does): every start of
	@# `grade` would compile them again where bytecode is not written (PYTHONDONTWRITEBYTECODE)
	$(PY) -m compileall -q grader >/dev/null
	touch $(STAMP)

## System packages the browser tests need (headless Chromium + driver); apt as root, else say what to do.
system-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "Install chromium and chromium-driver (e.g. sudo apt-get install chromium chromium-driver)"; exit 1; fi

setup: $(STAMP)

## Grade the reference solutions (100%) and the untouched stubs (0%).
demo: $(STAMP)
	@echo "== grade solutions/ (the reference solutions) =="
	@$(VENV)/bin/grade solutions/ || true
	@echo
	@echo "== grade exercises/ (the untouched stubs) =="
	@$(VENV)/bin/grade exercises/ || true
	@echo
	@echo "== grade tests/goldens/mistaken/ (a student folder with typical mistakes) =="
	@$(VENV)/bin/grade tests/goldens/mistaken/ || true

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) system-deps
	$(PY) -m pytest -q

## Lint, type-check and run every test.
test: lint typecheck pytest

## Speed benchmarks (print ratios against baselines measured in the same run).
bench: $(STAMP)
	$(PY) bench/grade_vs_import.py

## Batch grading benchmarks (slow: ~10 minutes; nbgrader's is a real `nbgrader autograde`).
bench-batch: $(STAMP)
	$(PY) bench/batch_throughput.py
	$(PY) bench/batch_vs_nbgrader.py
	$(PY) bench/batch_memory.py

## Re-render the report goldens (tests/goldens/) and docs/report.png from their fixed result set; review, then commit.
goldens: $(STAMP) system-deps
	UPDATE_GOLDENS=1 $(PY) -m pytest -q tests/test_render_goldens.py tests/test_html_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
