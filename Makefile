# modelfn: `make demo` runs the main job, `make test` runs the tests. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo demo-events test lint template clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(PY) -m modelfn_infra.demo

demo-events: $(INSTALLED)
	$(PY) -m modelfn_infra.demo_events

test: $(INSTALLED)
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check functions export infra tests
	$(VENV)/bin/modelfn template check
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

template: $(INSTALLED)
	$(VENV)/bin/modelfn template render

clean:
	rm -rf $(VENV) .modelfn .pytest_cache
