# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PGURL ?= postgres://postgres@127.0.0.1:5432
TEST_DATABASE_URL ?= $(PGURL)/backoffice
REDIS ?= redis://127.0.0.1:6379

.PHONY: run test bench lint services venv

$(STAMP): requirements.txt
	@command -v $(PY) >/dev/null || { echo "$(PY) not found"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# The demo: embedded SQLite, inline tasks, unless DATABASE_URL / CELERY_BROKER_URL say otherwise.
# The demo has no provider credentials: staff actions and creator payouts reach the providers' test doubles.
DEMO_ENV := DEBUG=1 \
	PAYMENT_PROVIDER_STRIPE=$${PAYMENT_PROVIDER_STRIPE:-monetization.demo.providers.FakeProvider} \
	PAYMENT_PROVIDER_GOOGLE_PLAY=$${PAYMENT_PROVIDER_GOOGLE_PLAY:-monetization.demo.providers.FakeProvider} \
	PAYMENT_PROVIDER_APP_STORE=$${PAYMENT_PROVIDER_APP_STORE:-monetization.demo.providers.FakeProvider} \
	CREATOR_PAYOUT_PROVIDER=$${CREATOR_PAYOUT_PROVIDER:-monetization.demo.providers.FakePayoutProvider}

run: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	$(DEMO_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

services:
	@bash .ci/services

# Tests: real PostgreSQL and Redis (started here when they are down).
test: $(STAMP) services
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(REDIS)/1} \
	CELERY_TEST_BROKER_URL=$${CELERY_TEST_BROKER_URL:-$(REDIS)/2} DEBUG=1 \
	$(BIN)/pytest --create-db -q

bench: $(STAMP) services
	DATABASE_URL=$${DATABASE_URL:-$(PGURL)/backoffice_bench} REDIS_URL=$${REDIS_URL:-$(REDIS)/3} \
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
