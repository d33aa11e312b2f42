# Two entry points: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# QLDB's service models left botocore; these packages put them back. --no-deps: they pin an old botocore.
QLDB_MODELS := botocore-a-la-carte-qldb==1.34.144 botocore-a-la-carte-qldb-session==1.34.144

# The real pyqldb driver, for the tests of `ledgerdr serve`, in its own venv: it pins amazon.ion <= 0.9.3,
# which ledgerdr (0.15) cannot share. --no-deps with its dependencies named, so pip cannot pull in others.
PYQLDB_VENV := .venv-pyqldb
PYQLDB_DEPS := pyqldb==3.2.4 amazon.ion==0.9.3 ionhash==1.2.1 'boto3>=1.34,<2' 'botocore>=1.34,<2' \
	's3transfer<1' 'jmespath<2' 'python-dateutil<3' 'six<2' 'urllib3<3'

# AWS's QLDB shell (qldbshell, unchanged), for tests/test_serve_qldbshell.py; it needs a Python <= 3.9, which
# the script finds or else records why not (the test then skips with that reason).
QLDBSHELL_VENV := .venv-qldbshell

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

PURE_PYTHON_TESTS := tests/test_native.py tests/test_journal_ionwrite.py tests/test_ion_binary_hash.py \
	tests/test_ledger_journal.py tests/test_ledger.py tests/test_state_digest.py tests/test_restore_flow.py \
	tests/test_journal_verify.py tests/test_state_digest_native.py
NATIVE_SOURCES := setup.py $(wildcard src/ledgerdr/_native/*.c src/ledgerdr/_native/*.h)

$(VENV)/.installed: $(BIN)/python pyproject.toml $(NATIVE_SOURCES)
	rm -f src/ledgerdr/_*.so  # an extension that no longer builds must not survive as a stale .so
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(QLDB_MODELS)
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml $(PYQLDB_VENV)/.installed $(QLDBSHELL_VENV)/.built
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(QLDBSHELL_VENV)/.built: scripts/build-qldbshell-venv.sh
	bash scripts/build-qldbshell-venv.sh
	touch $@

$(PYQLDB_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(PYQLDB_VENV)
	$(PYQLDB_VENV)/bin/pip install -q --no-deps $(PYQLDB_DEPS) $(QLDB_MODELS)
	touch $@

demo: $(VENV)/.installed
	$(BIN)/ledgerdr drill --workdir demo-drill --html demo-drill/report.html
	@echo "Report: demo-drill/report.json and demo-drill/report.html (open it in a browser)"

test: $(VENV)/.test-installed
	bash scripts/ensure-test-tools.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy  # settings in pyproject.toml: strict on the journal and the backends, basic elsewhere
	# first, the tests of the paths that have C twins, on the pure-Python twins (a machine without a compiler)
	LEDGERDR_PURE_PYTHON=1 $(BIN)/python -m pytest -n 2 -q $(PURE_PYTHON_TESTS)
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(PYQLDB_VENV) $(QLDBSHELL_VENV) demo-drill
