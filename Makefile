# EnergizeOS: `make run` starts the simulated site with the UI, `make test` runs every test.
# Both install what they need first (a venv at .venv, the package and its pinned dependencies).

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: run test bench lint msgs clean debs

# Debian tools the tests use as independent clients (mbpoll reads the simulated meter).
DEBS := debs
debs:
	@command -v mbpoll >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mbpoll)

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

bench: $(STAMP)
	$(PY) bench/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

msgs: $(STAMP)
	$(VENV)/bin/energizeos msgs generate

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
