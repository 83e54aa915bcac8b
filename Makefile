# sales_platform: `make demo` and `make test` are the quick start (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/.data
export SALES_PLATFORM_DATA_DIR := $(DATA_DIR)
export DAGSTER_HOME := $(DATA_DIR)/dagster_home

DEMO_DAYS ?= 7
DEMO_ROWS ?= 20000

.PHONY: install demo test ui up spark lint mariadb chromium dagster-home clean bench

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Install, generate the last 7 complete days before today (UTC), run them through the code
## location as the daemon would (runs visible under Jobs and Overview), print both marts.
demo: install dagster-home
	$(BIN)/sales-platform demo --days $(DEMO_DAYS) --rows-per-day $(DEMO_ROWS) --seed 7

## The whole test suite, against the real MariaDB (started if needed) and moto's S3 server.
test: install mariadb chromium
	$(BIN)/pytest -n 3 --dist loadgroup --durations=25

## The Dagster UI on the demo's data: http://127.0.0.1:3000
ui: install dagster-home
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The webserver (http://127.0.0.1:3000) and the daemon as in production, on the local
## instance; Ctrl-C stops both. Prod: `sales-platform serve` (README, Deploy and operate).
up: install dagster-home
	$(BIN)/sales-platform serve --host 127.0.0.1 --port 3000

## A warm Spark Connect server on loopback (port 15002) for the runs of this host to share:
## runs use it with SALES_PLATFORM_SPARK_REMOTE=sc://127.0.0.1:15002 (README, Spark engines).
spark: install
	$(BIN)/sales-platform spark-server --port 15002

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

## The platform against a plain PySpark script and Polars on one generated day (BENCH_ROWS=N).
bench: install
	$(BIN)/python benchmarks/bench.py
