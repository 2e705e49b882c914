# Every target CI and the README name. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
export PIPENV_VERBOSITY := -1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CHECKPOINT_DISABLE := 1
export TF_CLI_CONFIG_FILE := $(CURDIR)/build/terraform.rc
# Redocly CLI (make docs): no usage reports or update checks (CI reaches no other host).
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

PIPENV_VERSION := 2026.10.3
PYTHON := .venv/bin/python
LAYER := build/layers/dependencies.zip

.PHONY: help install layer synth test test-fast test-e2e test-e2e-production lint docs bench bench-synth local-up local-down local-up-cycles demo preflight restore-drill rollback reconcile republish erase client chaos soak fuzz clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

install: .venv/.synced tools/checkov/.venv/.synced node_modules/.installed build/terraform.rc $(LAYER) ## Python (pipenv), checkov, cdktf CLI (npm), Terraform mirror config, Lambda layer

.venv/.synced: Pipfile.lock
	@command -v pipenv >/dev/null || python3 -m pip install --quiet "pipenv==$(PIPENV_VERSION)"
	pipenv sync --dev
	@touch $@

# checkov in an environment of its own: its 3.3 releases pin boto3 1.35, the runtime pins 1.43.
tools/checkov/.venv/.synced: tools/checkov/Pipfile.lock
	@command -v pipenv >/dev/null || python3 -m pip install --quiet "pipenv==$(PIPENV_VERSION)"
	cd tools/checkov && PIPENV_PIPFILE=$(CURDIR)/tools/checkov/Pipfile pipenv sync
	@touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build/terraform.rc: scripts/terraform_mirror.py
	$(PYTHON) scripts/terraform_mirror.py

layer: $(LAYER) ## the Lambda dependencies layer (deterministic zip)

$(LAYER): lambda/requirements.lock scripts/build_layer.py .venv/.synced
	$(PYTHON) scripts/build_layer.py

synth: install ## synthesize the stack for the current environment variables into cdktf.out/
	npx cdktf synth

test: lint test-fast test-e2e ## the whole suite: ruff, unit, functional, infrastructure, then end to end on the local cloud

test-fast: install ## everything but the local-cloud end-to-end tests
	$(PYTHON) -m pytest -m "not e2e" -n 2 --dist loadgroup

test-e2e: install ## deploys to the local cloud and tests through its gateway (starts and stops it)
	$(PYTHON) -m pytest -m e2e -p no:randomly

test-e2e-production: install ## the production profile as a second environment on the local cloud: deploy, re-plan, destroy (a few minutes)
	PAYMENTS_E2E_PRODUCTION=1 $(PYTHON) -m pytest -m e2e -p no:randomly tests/e2e/test_production_profile.py

lint: install ## ruff
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

docs: install ## the API reference: docs/openapi.yaml from the contract, linted, rendered to build/docs/api.html
	$(PYTHON) -m lib.openapi
	npx redocly lint --format=stylish docs/openapi.yaml
	npx redocly build-docs docs/openapi.yaml --inlineBundle --title "Payments API" -o build/docs/api.html

bench: install ## runtime benchmarks: AWS calls, rows/s, memory, cold start
	$(PYTHON) scripts/bench.py

bench-synth: install ## synth wall time and memory against a bare provider import
	$(PYTHON) scripts/bench_synth.py

local-up: install ## start the local cloud and deploy the stack to it
	$(PYTHON) -m localcloud up

local-down: ## stop the local cloud and remove its state
	$(PYTHON) -m localcloud down

local-up-cycles: install ## local-up / local-down N times in a row (ARGS="-n 5"; default 20), stops at the first failure, prints min / median / max up times
	$(PYTHON) scripts/local_up_cycles.py $(ARGS)

preflight: install ## check the target account before an apply: Lambda concurrency quota, the account stack's API Gateway logging role, the state bucket's versioning and encryption, the KMS admin role, a CloudTrail trail (one line per problem, exit 1)
	$(PYTHON) scripts/preflight.py

restore-drill: install ## restore the three tables to a point in time (PITR) into new tables, reconcile the copies, delete them (ARGS="--at ISO", "--keep")
	$(PYTHON) scripts/restore_drill.py $(ARGS)

rollback: install ## point the API's live alias at an earlier version and keep it there across deploys (ARGS="--previous", "--to N", "--release"; none: show)
	$(PYTHON) scripts/rollback.py $(ARGS)

reconcile: install ## read-only check that histories, audit entries and events agree (ARGS="--batch ID" or "--since ISO --until ISO")
	$(PYTHON) scripts/reconcile.py $(ARGS)

republish: install ## publish audited changes again under their event_ids (ARGS="--dlq", "--entity PAYMENT#id" or "--since ISO --until ISO"; "--archive": into the audit archive instead)
	$(PYTHON) scripts/republish.py $(ARGS)

erase: install ## remove one customer's personal data from payments and uploads, audited and published (ARGS="--customer ID", "--dry-run")
	$(PYTHON) scripts/erase.py $(ARGS)

client: install ## the API's clients, each with its own key and usage plan (ARGS="add|list|suspend|resume|rotate-key|remove ...")
	$(PYTHON) scripts/client.py $(ARGS)

chaos: install ## payments under injected faults on a fresh local cloud: 0 lost, 0 duplicated, 0 stuck (ARGS, LOCALCLOUD_CHAOS)
	LOCALCLOUD_CHAOS="$${LOCALCLOUD_CHAOS:-faults=0.05,kills=0.002}" $(PYTHON) -m localcloud up
	$(PYTHON) scripts/chaos.py $(ARGS); status=$$?; $(PYTHON) -m localcloud down; exit $$status

soak: install ## one 100,000-row file + 2,000 API payments through a fresh local cloud: times, rows/s, server RSS; fails on a lost or double row (ARGS="--rows 20000")
	$(PYTHON) -m localcloud up
	$(PYTHON) scripts/soak.py $(ARGS); status=$$?; $(PYTHON) -m localcloud down; exit $$status

fuzz: install ## the stateful model test (tests/functional/test_model.py) 10x longer than make test, new random seed each run
	PAYMENTS_MODEL_PROFILE=fuzz $(PYTHON) -m pytest tests/functional/test_model.py -k exactly_once -p no:cacheprovider

demo: install ## the whole platform on the local cloud: deploy, batch + API payments, summary, tear down
	$(PYTHON) -m localcloud up
	$(PYTHON) scripts/demo.py; status=$$?; $(PYTHON) -m localcloud down; exit $$status

clean: ## remove build output (keeps the installed toolchain)
	rm -rf build cdktf.out .pytest_cache .ruff_cache

print-pipenv-version:
	@echo $(PIPENV_VERSION)
