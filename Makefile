# sales_platform: `make demo` and `make test` are the quick start (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/.data
export SALES_PLATFORM_DATA_DIR := $(DATA_DIR)
export DAGSTER_HOME := $(DATA_DIR)/dagster_home

DEMO_FROM ?= 2023-01-01
DEMO_DAYS ?= 7
DEMO_TO ?= 2023-01-07
DEMO_ROWS ?= 20000

.PHONY: install demo test ui up lint mariadb chromium dagster-home clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Install, generate a small data set, run the pipeline locally and print both marts.
demo: install dagster-home
	$(BIN)/sales-platform generate --start-date $(DEMO_FROM) --days $(DEMO_DAYS) \
		--rows-per-day $(DEMO_ROWS) --seed 7
	$(BIN)/sales-platform materialize --from $(DEMO_FROM) --to $(DEMO_TO) --show

## The whole test suite, against the real MariaDB (started if needed) and moto's S3 server.
test: install mariadb chromium
	$(BIN)/pytest --durations=25

## The Dagster UI on the demo's data: http://127.0.0.1:3000
ui: install dagster-home
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The webserver (http://127.0.0.1:3000) and the daemon as in production, on the local
## instance; Ctrl-C stops both. Prod: `sales-platform serve` (README, Deploy and operate).
up: install dagster-home
	$(BIN)/sales-platform serve --host 127.0.0.1 --port 3000

lint: install
	$(BIN)/ruff check sales_platform sales_platform_tests benchmarks
	$(BIN)/ruff format --check sales_platform sales_platform_tests benchmarks

mariadb:
	scripts/ensure-mariadb.sh

## Headless Chromium for the UI test's screenshot.
chromium:
	scripts/ensure-chromium.sh

clean:
	rm -rf $(DATA_DIR)
