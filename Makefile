# Two commands for a newcomer: `make run` starts the ACD, `make test` passes the tests.
# Both create .venv when missing and (re)install the project with its `test`
# extra into it only when setup.cfg or pyproject.toml changed (the stamp file
# .venv/.installed remembers the last install).

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
CONFIG ?= deploy/callcenter.yaml
USE_UV ?= 1

.PHONY: run test lint bench demo venv

run: $(STAMP)
	@echo "In another terminal once the ACD is up (README.md, docs/seat-protocol.md):"
	@echo "  demo accounts:  $(VENV)/bin/python -m seat_agent.demo --accounts-only --state-dir .state"
	@echo "  robot agents:   $(VENV)/bin/seat-agent robot --agents demo-own-{1..4} --password demo-pass"
	@echo "  test calls:     $(VENV)/bin/callcenter call --count 20 --rate 1 --patience 30   (FastAGI; no Asterisk needed)"
	@echo "  a person (TUI): $(VENV)/bin/seat-agent tui --agent demo-own-1   (password demo-pass)"
	$(VENV)/bin/callcenter serve --config $(CONFIG)

# The tests use real servers: PostgreSQL binaries, Debian's promtool, Chromium, the CJK fonts
# and poppler are installed here when missing, with apt-get as root or through sudo (each
# script does nothing when they are present; README.md says what to do without root);
# Asterisk 22 is built once into a cache outside the clone (tests/support/ensure_asterisk.sh,
# ~6-10 min the first time, then nothing; tests/e2e skip with its reason where it cannot be had).
test: $(STAMP)
	bash tests/support/ensure_postgres.sh
	bash tests/support/ensure_promtool.sh
	bash tests/support/ensure_chromium.sh
	sh tests/support/ensure_fonts.sh
	bash tests/support/ensure_asterisk.sh >/dev/null
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Every benchmarks/NAME.py prints a readable report and, as its last line, one
# JSON object (docs/benchmarks.md); `make bench` runs them all and checks that.
bench: $(STAMP)
	@for f in benchmarks/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		$(VENV)/bin/python "$$f" | tee $(VENV)/.bench-output || exit 1; \
		tail -n 1 $(VENV)/.bench-output | $(VENV)/bin/python -c \
			'import json, sys; assert isinstance(json.loads(sys.stdin.read()), dict)' \
			|| { echo "$$f: the last line is not one JSON object (docs/benchmarks.md)" >&2; exit 1; }; \
	done

# demo: an ACD, robot agents and synthetic FastAGI callers for DEMO_SECONDS (default 90); seat_agent/demo.py.
demo: $(STAMP)
	$(VENV)/bin/python -m seat_agent.demo

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The installer is uv (parallel downloads: a cold install in seconds instead of
# minutes), bootstrapped with pip; with USE_UV=0, or if uv cannot be had, plain pip.
$(STAMP): setup.cfg pyproject.toml | $(VENV)/bin/python
	@if [ "$(USE_UV)" != 0 ] && $(VENV)/bin/python -m pip install --disable-pip-version-check -q uv; then \
		echo "installing the project and its dependencies into $(VENV) with uv"; \
		$(VENV)/bin/python -m uv pip install --python $(VENV)/bin/python -e '.[test]' \
		|| $(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[test]'; \
	else \
		$(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[test]'; \
	fi
	touch $(STAMP)
