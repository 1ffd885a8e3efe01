# `make demo` runs the console with demo data; `make test` runs the whole test suite (README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install demo test bench bench-tiny lint screenshots

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# .venv with the project installed: every command in the README runs from it (.venv/bin/python manage.py …).
install: $(VENV)/.installed

demo: $(VENV)/.installed
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py run_demo --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

screenshots: $(VENV)/.installed
	HANDOFF_UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/browser -k screenshot

bench: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(PY) bench/run_all.py

# Every benchmark once at a tiny size (seconds each, figures meaningless), on databases of their own
# (handoff_bench*_tiny): what CI runs so that none of them can rot.
bench-tiny: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(PY) bench/run_all.py --tiny

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	DJANGO_SETTINGS_MODULE=config.settings_test $(PY) manage.py makemigrations --check --dry-run
