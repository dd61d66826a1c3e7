# AgenticPal: `make run` to serve, `make test` to test. Needs python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv

.DEFAULT_GOAL := help
.PHONY: help run redis dev-env test lint format lock bench clean browser

help:
	@echo "make run      serve on http://127.0.0.1:8000 in WEB_CONCURRENCY processes (default: one per CPU; starts an embedded Redis unless REDIS_URL is set)"
	@echo "make test     install dev dependencies and run the whole test suite"
	@echo "make lint     ruff check + ruff format --check"
	@echo "make redis    run the embedded Redis alone on port 6379 (or EMBEDDED_REDIS_PORT)"
	@echo "make dev-env  write .env for development (DEBUG=true, fresh secrets) if there is none"
	@echo "make bench    run the benchmarks under bench/"
	@echo "make lock     recompile requirements/*.txt from pyproject.toml"

# A virtualenv with uv in it (bootstrapped with pip), then the locked requirements.
$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.base: requirements/base.txt | $(UV)
	$(UV) pip install --quiet --python $(PY) --require-hashes -r requirements/base.txt
	@touch $@

$(VENV)/.dev: requirements/dev.txt $(VENV)/.base | $(UV)
	$(UV) pip install --quiet --python $(PY) --require-hashes -r requirements/dev.txt
	@touch $@

# The development .env: written once from .env.example (DEBUG=true, a fresh SECRET_KEY),
# never overwritten; `python manage.py ...` in the venv reads the same file.
.env: | $(VENV)/.base
	@$(PY) -m agenticpal.serve --dev-env

dev-env: .env

run: $(VENV)/.base .env
	$(PY) -m agenticpal.serve

redis: $(VENV)/.base .env
	$(PY) -m agenticpal.serve --redis-only

browser:
	@bash scripts/install-browser.sh

test: $(VENV)/.dev browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock: | $(UV)
	$(UV) pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 -q -o requirements/base.txt
	$(UV) pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 -q --extra dev --extra official-saver --extra aws-saver --extra official-saver-server -o requirements/dev.txt

bench: $(VENV)/.dev
	$(PY) bench/sessions.py
	$(PY) bench/checkpointer.py
	$(PY) bench/chat_ws.py
	$(PY) bench/admin_sessions.py
	$(PY) bench/workspace.py

clean:
	rm -rf $(VENV) var/static .pytest_cache
