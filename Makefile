# Royal Care Scheduling. Two commands for a newcomer: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Used by `make test` / `make bench` when these services answer on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/guitara
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: install run test lint bench chromium sweep clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Debian chromium for the browser tests (never a downloaded browser build).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Embedded default: SQLite + in-memory channel layer, demo data, the deadline sweep
# every 5 s inside the server. Serves http://127.0.0.1:8000/ (another port: make run PORT=8080)
run: install
	@bash scripts/run.sh "$(HOST)" "$(PORT)"

lint: install
	$(VENV)/bin/ruff check .

test: install chromium lint
	@bash scripts/test.sh "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

bench: install
	@bash scripts/bench.sh "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

sweep: install
	DEBUG=1 $(PY) manage.py auto_cancel_overdue

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles
