# Driftline: the commands a user runs. `make help` lists them.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# SECURE=1: Kafka over SASL_SSL and mutual TLS, Redis with an ACL user and TLS (own ports, see deploy/README.md);
# REDIS_CLUSTER=1: a three-master Redis Cluster as well.
STACK  := DRIFTLINE_STACK_SECURE=$(SECURE) DRIFTLINE_STACK_REDIS_CLUSTER=$(REDIS_CLUSTER) deploy/stack.sh
PYTEST_ARGS ?=

.PHONY: help venv stack-up stack-down stack-status compose-secrets test unit demo bench clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/driftline: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/driftline  ## create .venv and install Driftline with its dev tools

stack-up:  ## start local Kafka (KRaft) and Redis, reusing running ones (idempotent; SECURE=1, REDIS_CLUSTER=1)
	@$(STACK) up

stack-down:  ## stop the services that stack-up started
	@$(STACK) down

stack-status:  ## show whether Kafka and Redis are reachable (deploy/stack.sh status exits 1 if not)
	@$(STACK) status || true

test: venv stack-up  ## the whole suite, unit and integration, on the real services
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests: failing" >&2; fi; exit $$rc

compose-secrets:  ## random passwords for docker-compose.yml in deploy/secrets/ (never overwritten, kept out of git)
	@mkdir -p deploy/secrets && chmod 700 deploy/secrets
	@for name in redis-password grafana-admin-password; do f=deploy/secrets/$$name; \
	if [ -s $$f ]; then echo "compose-secrets: keeping $$f"; \
	else (umask 022; openssl rand -hex 24 | tr -d '\n' >$$f) && echo "compose-secrets: wrote $$f"; fi; done

unit: venv  ## unit tests only (no services needed)
	$(BIN)/python -m pytest -m 'not integration' $(PYTEST_ARGS)

demo: venv  ## replay a drifting example data set and watch alerts arrive (KEEP_STACK=1 keeps services up)
	@if $(STACK) status >/dev/null 2>&1; then started=no; else started=yes; fi; \
	trap 'true' INT; \
	$(STACK) up && $(BIN)/driftline demo $(DEMO_ARGS); rc=$$?; \
	if [ "$$started" = yes ] && [ -z "$(KEEP_STACK)" ]; then $(STACK) down; \
	else echo "demo: Kafka and Redis left running ('make stack-down' stops them)"; fi; \
	exit $$rc

bench: venv stack-up  ## throughput benchmark (prints figures)
	$(BIN)/python benchmarks/throughput.py

clean:  ## remove the virtual environment and local service data
	-$(STACK) down
	rm -rf $(VENV) .stack *.egg-info
