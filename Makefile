# modelfn: `make demo` runs the main job, `make test` runs the tests. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo demo-events test lint template build clean fuzz load

install: $(INSTALLED)

$(INSTALLED): pyproject.toml infra/scan-requirements.txt infra/peer-requirements.txt infra/fuzz-requirements.txt infra/keras-hub-requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps --target $(VENV)/khub -r infra/keras-hub-requirements.txt
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install --quiet -r infra/scan-requirements.txt
	$(PYTHON) -m venv $(VENV)/peers
	$(VENV)/peers/bin/pip install --quiet -r infra/peer-requirements.txt
	$(PYTHON) -m venv $(VENV)/fuzz
	$(VENV)/fuzz/bin/pip install --quiet -r infra/fuzz-requirements.txt
	touch $@

demo: $(INSTALLED)
	$(PY) -m modelfn_infra.demo

demo-events: $(INSTALLED)
	$(PY) -m modelfn_infra.demo_events

test: $(INSTALLED)
	$(PY) -m pytest

# The long runs behind RELIABILITY.md: 20,000 fuzz cases per property, schemathesis against the local API for up to
# 30 minutes (MODELFN_FUZZ_API_*); 10,000 requests of load plus a fault run.
fuzz: $(INSTALLED)
	MODELFN_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q -p no:cacheprovider tests/runtime/test_fuzz.py
	MODELFN_FUZZ_API_EXAMPLES=400 MODELFN_FUZZ_API_SECONDS=1800 $(PY) -m pytest -q -s -p no:cacheprovider tests/local/test_fuzz_api.py

load: $(INSTALLED)
	$(PY) -m modelfn_infra.load --requests 10000 --clients 4 --fault-requests 2000 --json load-figures.json

lint: $(INSTALLED)
	$(VENV)/bin/ruff check functions export infra tests
	$(VENV)/bin/modelfn template check
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

template: $(INSTALLED)
	$(VENV)/bin/modelfn template render

# Lean, size-checked python3.12 artifacts in .aws-sam/build (no python3.12 needed); then `modelfn deploy`.
build: $(INSTALLED)
	$(VENV)/bin/modelfn build

clean:
	rm -rf $(VENV) .modelfn .pytest_cache
