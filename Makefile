# EnergizeOS: `make run` starts the simulated site with the UI, `make test` runs every test.
# Both install what they need first (a venv at .venv, the package and its pinned dependencies).

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: run test bench lint msgs clean debs

# Debian packages the tests use: mbpoll (an independent Modbus client reading the simulated meter),
# PostgreSQL (the tests start their own server in a temp dir on 127.0.0.1 and stop it by PID) and
# chromium (the browser tests drive it with Playwright; no browser is downloaded) and iproute2 (the
# remote-link test makes its own network namespaces with `ip netns`).
DEBS := debs
NEED_DEBS = $(shell command -v mbpoll >/dev/null || echo mbpoll) \
            $(shell test -x /usr/bin/chromium || echo chromium) \
            $(shell command -v ip >/dev/null || echo iproute2) \
            $(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql)
debs:
	@test -z "$(strip $(NEED_DEBS))" || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NEED_DEBS))

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/energizeos launch sim_site

test: $(STAMP) $(DEBS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/energizeos msgs generate --check
	$(VENV)/bin/pytest -q

bench: $(STAMP) $(DEBS)
	$(PY) bench/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

msgs: $(STAMP)
	$(VENV)/bin/energizeos msgs generate

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
