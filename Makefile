# Developer tasks for pyrospan-run.  `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The development environment is the newest supported OpenTelemetry set, held by its
# constraints file: pyproject's ranges alone let pip settle on any set in the range.
$(BIN)/pyrospan-run: pyproject.toml constraints/otel-newest.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/otel-newest.txt -e ".[dev,web,servers]"
	@# pyrospan-run runs without opentelemetry-distro, as in most apps; a venv made before
	@# it stopped depending on the distro still has it.  Tests of the distro bring their own.
	$(BIN)/python -m pip uninstall --quiet --yes opentelemetry-distro 2>/dev/null
	@touch $@

.PHONY: install
install: $(BIN)/pyrospan-run ## Create .venv and install pyrospan-run with the dev, web and servers extras

.PHONY: demo
demo: install ## Run the bundled shop in local mode: live page, summary, HTML report, pprof files
	$(BIN)/pyrospan-run --local python examples/shop.py

# The browser tests drive Debian's Chromium, never a browser downloaded by playwright.
CHROMIUM := /usr/bin/chromium

.PHONY: chromium
chromium: ## Install Debian's chromium for the browser tests if it is missing (needs root)
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make chromium: $(CHROMIUM) is missing; run: sudo apt-get update && sudo apt-get install -y chromium" >&2; \
	  exit 1; \
	fi; \
	echo "make chromium: installing Debian's chromium (apt-get)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

.PHONY: test
test: install chromium ## Run the whole test suite (unit, CLI, end-to-end, browser)
	@# pytest's status 5 (nothing collected) fails too, with a line that says why.
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	  exit $$status

.PHONY: test-unit
test-unit: install ## Run the fast in-process layer only (tests/unit, no subprocesses)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-cli
test-cli: install ## Run the in-process command-line tests (tests/cli, click's CliRunner)
	$(BIN)/python -m pytest tests/cli $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: typecheck
typecheck: install ## mypy --strict on the package and tests/
	$(BIN)/mypy

.PHONY: check
check: lint typecheck test ## Everything CI runs

.PHONY: test-all
test-all: ## Run the tests under every Python 3.10-3.13 found by pyenv
	@for v in 3.10 3.11 3.12 3.13; do \
	  py=$$(pyenv prefix $$(pyenv versions --bare | grep "^$$v" | tail -1) 2>/dev/null)/bin/python; \
	  if [ ! -x "$$py" ]; then echo "python $$v: not found, skipped"; continue; fi; \
	  $(MAKE) --no-print-directory test PYTHON=$$py VENV=.venv-$$v || exit 1; \
	done

# The oldest and the newest supported OpenTelemetry release sets (constraints/), each in a
# virtual environment of its own, without opentelemetry-distro as most apps: the tests
# marked `otel` (the distro's own tests bring it).
OTEL ?= newest
OTEL_VENV := .venv-otel-$(OTEL)
# The tests marked `otel` (pytest -m otel; every unit test is).
OTEL_TESTS := -m otel tests

$(OTEL_VENV)/bin/pyrospan-run: pyproject.toml constraints/otel-$(OTEL).txt
	$(PYTHON) -m venv $(OTEL_VENV)
	$(OTEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OTEL_VENV)/bin/python -m pip install --quiet -c constraints/otel-$(OTEL).txt -e ".[dev,web]"
	$(OTEL_VENV)/bin/python -m pip uninstall --quiet --yes opentelemetry-distro 2>/dev/null
	@touch $@

.PHONY: test-otel
test-otel: ## Tests against one supported OpenTelemetry set: OTEL=oldest or OTEL=newest
	@if [ ! -f constraints/otel-$(OTEL).txt ]; then \
	  echo "make test-otel: OTEL=$(OTEL): expected oldest or newest (constraints/otel-*.txt)" >&2; \
	  exit 2; \
	fi
	@$(MAKE) --no-print-directory $(OTEL_VENV)/bin/pyrospan-run
	$(OTEL_VENV)/bin/python -m pytest $(PYTEST_ARGS) $(OTEL_TESTS)

# The Stack sampler needs CPython 3.12+, which CI's default python3 is not: its tests, and
# the end-to-end files whose spans it samples under `auto`, under pyenv's newest 3.13.
SAMPLER_PYTHON ?= 3.13
SAMPLER_TESTS ?= tests/unit tests/e2e/test_e2e_sampler.py tests/e2e/test_e2e_exact_spans.py \
  tests/e2e/test_e2e_linking.py tests/e2e/test_e2e_attribution.py tests/e2e/test_e2e_processes.py \
  tests/e2e/test_e2e_servers.py tests/e2e/test_e2e_label_limits.py tests/e2e/test_e2e_native_exit.py

.PHONY: test-sampler
test-sampler: ## The Stack sampler's lane: sampler, linking, worker and server tests under pyenv's Python 3.13
	@py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(SAMPLER_PYTHON).* 2>/dev/null | sort -V | tail -1)/bin/python; \
	if [ ! -x "$$py" ]; then echo "make test-sampler: python $(SAMPLER_PYTHON) not found in pyenv's versions" >&2; exit 1; fi; \
	$(MAKE) --no-print-directory $(VENV)-$(SAMPLER_PYTHON)/bin/pyrospan-run PYTHON=$$py VENV=$(VENV)-$(SAMPLER_PYTHON) && \
	$(VENV)-$(SAMPLER_PYTHON)/bin/python -m pytest $(PYTEST_ARGS) $(SAMPLER_TESTS)

# Python 3.14 and 3.15 from Debian unstable, in a chroot that .ci/sid builds once with
# debootstrap (about a minute; root needed) and tears down after each run.
PY ?= 3.14

.PHONY: test-sid
test-sid: ## Tests under Debian sid's Python in a chroot (root): PY=3.14 all layers, PY=3.15 install and tracing
	PYTEST_ARGS="$(PYTEST_ARGS)" .ci/sid $(PY)

.PHONY: clean
clean: ## Remove the virtual environments and caches
	rm -rf $(VENV) .venv-3.* .venv-otel-* .venv-transparency-* .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

# The transparency suite (tests/e2e/test_e2e_transparency.py) under every Python 3.10-3.13
# that pyenv has, each in a small virtual environment of its own: what the probe needs,
# with the newest OpenTelemetry set.
TRANSPARENCY_PYTHONS ?= 3.10 3.11 3.12 3.13
# anyio 3 (still allowed by Starlette) in one lane, anyio 4 in the others.
TRANSPARENCY_ANYIO3_PYTHON ?= 3.10
TRANSPARENCY_DEPS := "pytest>=8,<10" "pytest-timeout>=2.3,<3" "fastapi>=0.110,<1" \
  "aiohttp>=3.9,<4" "opentelemetry-instrumentation-asgi>=0.59b0,<1" \
  "opentelemetry-instrumentation-fastapi>=0.59b0,<1" \
  "opentelemetry-instrumentation-aiohttp-server>=0.59b0,<1"

.PHONY: test-transparency
test-transparency: ## The app sees what it sees under opentelemetry-instrument: each pyenv Python 3.10-3.13
	@ran=0; for v in $(TRANSPARENCY_PYTHONS); do \
	  py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.* 2>/dev/null | sort -V | tail -1)/bin/python; \
	  if [ ! -x "$$py" ]; then echo "make test-transparency: python $$v not found in pyenv's versions, skipped"; continue; fi; \
	  venv=.venv-transparency-$$v; \
	  if [ ! -x $$venv/bin/pyrospan-run ] || [ pyproject.toml -nt $$venv/bin/pyrospan-run ]; then \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install --quiet --upgrade pip && \
	    $$venv/bin/python -m pip install --quiet -c constraints/otel-newest.txt -e . $(TRANSPARENCY_DEPS) \
	      $$([ $$v = $(TRANSPARENCY_ANYIO3_PYTHON) ] && echo "anyio>=3.6.2,<4") && \
	    touch $$venv/bin/pyrospan-run || exit 1; \
	  fi; \
	  echo "make test-transparency: Python $$v"; \
	  $$venv/bin/python -m pytest -p no:cacheprovider tests/e2e/test_e2e_transparency.py $(PYTEST_ARGS) || exit 1; \
	  ran=$$((ran + 1)); \
	done; \
	if [ $$ran -eq 0 ]; then echo "make test-transparency: no Python found" >&2; exit 1; fi
