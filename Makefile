# The two commands a newcomer needs: `make run` (the daily job, end to end) and `make test`.
# Both create or reuse .venv, install what requirements.txt pins, and stop whatever they started.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test install lint warehouse ui dashboards bench bench-dbt clean manifest

run: $(INSTALLED)
	$(VENV)/bin/csops run $(ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs it in this one.
TEST_WORKERS ?= 2
test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

install: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	$(MAKE) --no-print-directory manifest
	rm -f $(VENV)/.installed-* && touch $@

# dbt_project/target/manifest.json: Cosmos renders cs_daily's dbt tasks from it, so any Airflow pointed at
# dags/ can load the DAG. Made at install; `csops run` and `csops ui` refresh it. No database needed.
manifest:
	$(VENV)/bin/dbt parse --project-dir dbt_project --profiles-dir dbt_project --quiet

# Keep the local warehouse up (127.0.0.1) for a BI tool or psql until Ctrl-C.
warehouse: $(INSTALLED)
	$(VENV)/bin/csops warehouse

# A real Airflow 3 (api-server, scheduler, dag-processor, triggerer) with its UI on 127.0.0.1 until Ctrl-C.
ui: $(INSTALLED)
	$(VENV)/bin/csops ui $(ARGS)

# The CS dashboards (Streamlit) on http://127.0.0.1:8501 against the local warehouse until Ctrl-C.
dashboards: $(INSTALLED)
	$(VENV)/bin/csops dashboards $(ARGS)

# Extract-load benchmarks: project loader vs raw COPY pipe vs dlt (dlt lives in its own venv); then
# 200,000 Salesforce Tasks extracted by REST and by Bulk API 2.0 from the sandbox org; then a full read
# of the board sandbox's invoices (10,000 companies x 24 months) under board's 3 requests/second limit; then
# the Salesforce write-back for 10,000 companies: a first full sync, a day with 5% of scores changed, a re-run;
# then the dbt build case (bench-dbt).
bench: $(INSTALLED)
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(VENV)/bin/python bench/extract_load.py --dlt-python .venv-bench/bin/python $(ARGS)
	$(VENV)/bin/python bench/salesforce_extract.py
	$(VENV)/bin/python bench/board_extract.py
	$(VENV)/bin/python bench/salesforce_writeback.py
	nice -n 10 $(VENV)/bin/python bench/dbt_build.py

# dbt build, full vs daily increment, on 10,000 companies x 365 days (the world is generated once into
# .local/bench-postgres, then reused; each run adds one day). ARGS="--accounts 300" for a small world.
bench-dbt: $(INSTALLED)
	nice -n 10 $(VENV)/bin/python bench/dbt_build.py $(ARGS)

clean:
	rm -rf .local
