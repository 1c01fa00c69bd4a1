# `make dev` starts the whole stack on the embedded defaults; `make test` runs the checks.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test lint worker api bench clean fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make dev WORKERS=2`: that many worker processes on the one task queue
WORKERS ?= 1
dev: $(STAMP)
	$(PY) -m workers.dev --workers $(WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

worker: $(STAMP)
	$(PY) -m workers.main

api: $(STAMP)
	$(PY) -m api.main

bench: $(STAMP)
	$(PY) -m bench.routing
	$(PY) -m bench.inventory
	$(PY) -m bench.reports
	$(PY) -m bench.lifecycle $(BENCH_ORDERS) $(BENCH_IN_FLIGHT) --workers $(BENCH_WORKERS)

# Orders through the real API and workers from POST to DELIVERED against a bare Temporal
# workflow pair with as many steps, on one dev server (bench/lifecycle.py); about a
# minute with the defaults. The issue's figures: BENCH_ORDERS=200 BENCH_IN_FLIGHT=50;
# BENCH_WORKERS=1,2,4 runs both at each worker count.
BENCH_ORDERS ?= 40
BENCH_IN_FLIGHT ?= 10
BENCH_WORKERS ?= 1
.PHONY: bench-lifecycle
bench-lifecycle: $(STAMP)
	$(PY) -m bench.lifecycle $(BENCH_ORDERS) $(BENCH_IN_FLIGHT) --workers $(BENCH_WORKERS)

# Random interleavings of order messages, longer than in `make test`, over several seeds
# (tests/integration/test_interleavings.py); every seed runs, the first failure fails.
# Then the fault scenarios (tests/chaos/faults.py: worker SIGKILL x3, dev server SIGTERM and
# SIGKILL, store database blocked, webhook 500 and 404) on a stack of their own, with
# CHAOS_FAULT_ORDERS orders per fault; needs PostgreSQL (OMS_TEST_DATABASE_URL).
CHAOS_SEEDS ?= 1 2 3 4 5
CHAOS_STEPS ?= 400
CHAOS_ORDERS ?= 30
CHAOS_FAULTS ?= all
CHAOS_FAULT_ORDERS ?= 20
.PHONY: chaos
chaos: $(STAMP)
	@failed=""; for seed in $(CHAOS_SEEDS); do \
	  echo "== chaos seed $$seed: $(CHAOS_STEPS) steps, $(CHAOS_ORDERS) orders"; \
	  OMS_CHAOS_SEED=$$seed OMS_CHAOS_STEPS=$(CHAOS_STEPS) OMS_CHAOS_ORDERS=$(CHAOS_ORDERS) \
	    $(VENV)/bin/pytest -q -p no:cacheprovider -s tests/integration/test_interleavings.py \
	    || failed="$$failed seed-$$seed"; \
	done; \
	echo "== chaos faults: $(CHAOS_FAULTS), $(CHAOS_FAULT_ORDERS) orders each"; \
	$(PY) -m tests.chaos.faults --fault $(CHAOS_FAULTS) --orders $(CHAOS_FAULT_ORDERS) \
	  || failed="$$failed fault-scenarios"; \
	if [ -n "$$failed" ]; then echo "chaos: failing:$$failed"; exit 1; fi

# Schemathesis against a running `make dev` (the API at OMS_API_PORT): every operation of
# /openapi.json with an admin key and a web shop key, the boundary values of every schema
# (coverage phase) and FUZZ_EXAMPLES random cases per operation, valid and invalid; fails
# on any server error or answer that breaks the document. The admin run rewrites
# configuration and keys with generated data: point it at a dev stack (`make clean` resets).
# `make test` runs a short, seeded version (tests/integration/test_fuzz.py).
OMS_API_PORT ?= 8080
FUZZ_URL ?= http://127.0.0.1:$(OMS_API_PORT)
FUZZ_KEYS ?= dev-admin dev-web
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 1
FUZZ_CHECKS ?= not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
fuzz: $(STAMP)
	@for key in $(FUZZ_KEYS); do \
	  echo "== schemathesis on $(FUZZ_URL) with key $$key"; \
	  $(VENV)/bin/st run $(FUZZ_URL)/openapi.json --checks $(FUZZ_CHECKS) \
	    --phases examples,coverage,fuzzing --max-examples $(FUZZ_EXAMPLES) --seed $(FUZZ_SEED) \
	    --workers 1 -H "Authorization: Bearer $$key" || exit 1; \
	done

clean:
	rm -rf .oms
