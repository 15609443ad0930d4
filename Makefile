# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PGURL ?= postgres://postgres@127.0.0.1:5432
TEST_DATABASE_URL ?= $(PGURL)/backoffice
REDIS ?= redis://127.0.0.1:6379

.PHONY: run test e2e bench lint services venv soak reliability prod-local prod-local-check

$(STAMP): requirements.txt
	@command -v $(PY) >/dev/null || { echo "$(PY) not found"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# The demo, on the embedded PostgreSQL (backoffice/embedded_db.py) unless DATABASE_URL names one; tasks run
# inline unless CELERY_BROKER_URL names a broker. It has no provider accounts: payments and payouts reach
# the test doubles. The server stops with runserver (Ctrl-C).
DEMO_ENV := DEBUG=1 \
	PAYMENT_PROVIDER_STRIPE=$${PAYMENT_PROVIDER_STRIPE:-monetization.demo.providers.FakeProvider} \
	PAYMENT_PROVIDER_GOOGLE_PLAY=$${PAYMENT_PROVIDER_GOOGLE_PLAY:-monetization.demo.providers.FakeProvider} \
	PAYMENT_PROVIDER_APP_STORE=$${PAYMENT_PROVIDER_APP_STORE:-monetization.demo.providers.FakeProvider} \
	CREATOR_PAYOUT_PROVIDER=$${CREATOR_PAYOUT_PROVIDER:-monetization.demo.providers.FakePayoutProvider}
MANAGE := $(BIN)/python manage.py
RUN_ADDR ?= 127.0.0.1:8000

run: $(STAMP)
	$(DEMO_ENV) $(BIN)/python -m backoffice.embedded_db run -- bash -ec \
		'$(MANAGE) migrate --noinput; $(MANAGE) seed_demo; exec $(MANAGE) runserver $(RUN_ADDR)'

services:
	@REDIS=$(REDIS) bash .ci/services

# Tests: PostgreSQL at TEST_DATABASE_URL (or DATABASE_URL) when one answers there, else the embedded one;
# Redis (started here when it is down).
test: $(STAMP) services
	REDIS_URL=$${REDIS_URL:-$(REDIS)/1} CELERY_TEST_BROKER_URL=$${CELERY_TEST_BROKER_URL:-$(REDIS)/2} DEBUG=1 \
	$(BIN)/python -m backoffice.embedded_db run --prefer "$${DATABASE_URL:-$(TEST_DATABASE_URL)}" -- \
	$(BIN)/pytest --create-db -q

# The browser journeys alone (tests/e2e, also part of make test): Debian's chromium, installed with apt when
# missing; screenshots of failures in test-results/e2e/.
e2e: $(STAMP) services
	REDIS_URL=$${REDIS_URL:-$(REDIS)/1} CELERY_TEST_BROKER_URL=$${CELERY_TEST_BROKER_URL:-$(REDIS)/2} DEBUG=1 \
	$(BIN)/python -m backoffice.embedded_db run --prefer "$${DATABASE_URL:-$(TEST_DATABASE_URL)}" -- \
	$(BIN)/pytest --create-db -q tests/e2e

# Thousands of simulated provider histories per provider (outside CI): STRIPE_SIM_HISTORIES and
# SOAK_HISTORIES (the stores'), STRIPE_SIM_SEED to vary.
soak: $(STAMP) services
	REDIS_URL=$${REDIS_URL:-$(REDIS)/1} CELERY_TEST_BROKER_URL=$${CELERY_TEST_BROKER_URL:-$(REDIS)/2} DEBUG=1 \
	STRIPE_SIM_HISTORIES=$${STRIPE_SIM_HISTORIES:-5000} STRIPE_SIM_TIMEOUT=$${STRIPE_SIM_TIMEOUT:-21600} \
	STRIPE_SIM_SETTLE=$${STRIPE_SIM_SETTLE:-7200} SOAK_HISTORIES=$${SOAK_HISTORIES:-5000} \
	SOAK_TIMEOUT=$${SOAK_TIMEOUT:-21600} SOAK_BATCH=$${SOAK_BATCH:-250} SOAK_WORKERS=$${SOAK_WORKERS:-3} \
	SOAK_LOG=$${SOAK_LOG:-soak.log} \
	$(BIN)/python -m backoffice.embedded_db run --prefer "$${DATABASE_URL:-$(TEST_DATABASE_URL)}" -- \
	$(BIN)/pytest --create-db -q -s tests/convergence/test_stripe_simulator.py \
		tests/convergence/test_app_store_convergence.py tests/convergence/test_play_convergence.py

bench: $(STAMP) services
	DATABASE_URL=$${DATABASE_URL:-$(PGURL)/backoffice_bench} REDIS_URL=$${REDIS_URL:-$(REDIS)/3} \
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Faults without a person (reliability/__main__.py): 10,000 signed Stripe events over HTTP, the worker
# SIGKILLed 5 times, its broker (a private redis-server on RELIABILITY_REDIS_PORT, 6421) stopped 15 s;
# prints events sent, stored, applied, duplicated, stuck and the time to drain. RELIABILITY_ARGS
# changes the sizes (e.g. "--events 300 --kills 2 --outage 5").
reliability: $(STAMP) services
	DATABASE_URL=$${DATABASE_URL:-$(PGURL)/backoffice_reliability} REDIS_URL=$${REDIS_URL:-$(REDIS)/3} \
	$(BIN)/python -m reliability $(RELIABILITY_ARGS)

# Production's processes on this machine (deploy/prod_local.py) under its supervisor (a process that exits
# is started again) with DEBUG off: web x2 (PROD_LOCAL_PORT, 8000 and 8001), a worker pool for the webhooks
# queue and one for the others, beat; migrate first. PostgreSQL is private to the run: a primary
# (PROD_LOCAL_PG_PORT, 6441), its streaming replica (6442) and PgBouncer in transaction mode
# (PROD_LOCAL_PGBOUNCER_PORT, 6443; Debian's pgbouncer, installed with apt when missing). A private
# redis-server (PROD_LOCAL_REDIS_PORT, 6431) as cache and broker unless PROD_LOCAL_BROKER_URL names one
# (RabbitMQ). Ctrl-C stops everything.
prod-local: $(STAMP)
	$(BIN)/python deploy/prod_local.py start

# The same, driven: PROD_LOCAL_WEBHOOKS (10,000) signed Stripe events and PROD_LOCAL_READS (50,000)
# entitlement reads through both web processes, each web process, each worker pool and beat SIGKILLed mid-run
# (one at a time); prints errors, events applied, restarts, replica lag, p99; stops by itself.
prod-local-check: $(STAMP)
	$(BIN)/python deploy/prod_local.py check $(PROD_LOCAL_ARGS)
