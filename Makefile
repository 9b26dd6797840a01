# Two commands for a newcomer: `make run` and `make test`. Each sets up what it needs first:
# a .venv with the pinned packages, the Delta Lake jars fetched by Maven into the local
# Maven repository (from where Spark loads them offline) and Debian's chromium for the
# MLflow UI browser test.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
MAVEN_REPO  ?= $(HOME)/.m2/repository
# The Delta jars (segmentation/jars.py lists them) for the pyspark and Delta pinned in setup.py.
JARS        := $(PYTHON) segmentation/jars.py --maven-repo $(MAVEN_REPO) \
               --pyspark $(shell sed -n 's/^PYSPARK_VERSION = "\(.*\)"/\1/p' setup.py) \
               --delta $(shell sed -n 's/^DELTA_VERSION = "\(.*\)"/\1/p' setup.py)
DELTA_JARS  := $(shell $(JARS))
ifeq ($(strip $(DELTA_JARS)),)
$(error cannot list the Delta jars: $(JARS) printed nothing)
endif
SEGMENT     := $(BIN)/segment
CONF        ?=
SET         ?=
ARGS        := $(foreach f,$(CONF),--conf $(f)) $(foreach s,$(SET),--set $(s)) --set spark.maven_repo=$(MAVEN_REPO)
MLFLOW_PORT ?= 5000
SCALE       ?= 100k
CHROMIUM    := /usr/bin/chromium
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup run test test-faults lint format docs clean mlflow-ui cluster-demo connect-demo wheel bench bench-recovery bench-rules

setup: $(VENV)/.installed $(DELTA_JARS) $(CHROMIUM)

$(VENV)/.installed: setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -c constraints.txt -e '.[spark,dev]'
	# Only for the CDNOW data files it ships (bench/cdnow.py); never imported, so not its deps.
	$(BIN)/pip install --quiet --no-deps lifetimes==0.11.3
	touch $@

$(DELTA_JARS):
	coordinate=$$($(JARS) --coordinate-of $@) && \
	mvn --batch-mode --quiet -Dmaven.repo.local=$(MAVEN_REPO) dependency:get -Dartifact=$$coordinate -Dtransitive=false

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

# The generated customers are named here: the shipped default reads no customers table, so a
# user who maps only their own transactions never gets the synthetic customers joined in.
run: setup
	$(SEGMENT) generate $(ARGS)
	$(SEGMENT) pipeline $(ARGS) --set input.customers.path=data/generated/customers

# The tests, and every docstring example of the library as a doctest (pyproject.toml).
test: setup
	$(BIN)/pytest -q tests segmentation

# The fault-injection suite alone, with more trials: SIGKILL of ingest, features and assign at
# seeded random moments, then a re-run (tests/faults/test_kill.py); `make test` runs 2 per stage.
FAULT_TRIALS ?= 8
test-faults: setup
	FAULT_TRIALS=$(FAULT_TRIALS) $(BIN)/pytest -q -s tests/faults

# The pipeline under spark-submit on a standalone master and two workers on 127.0.0.1
# (deploy/standalone_cluster.py); everything it writes goes under ./cluster-demo.
cluster-demo: setup
	$(BIN)/python deploy/standalone_cluster.py --root $(CURDIR)/cluster-demo --maven-repo $(MAVEN_REPO) \
	    $(foreach s,$(SET),--set $(s))

# The pipeline as a Spark Connect client of a server started on 127.0.0.1 with pyspark's own
# launcher (deploy/connect_server.py), stopped again by process id; everything under
# ./connect-demo.
connect-demo: setup
	$(BIN)/python -m deploy.connect_server --root $(CURDIR)/connect-demo --maven-repo $(MAVEN_REPO) \
	    $(foreach s,$(SET),--set $(s))

# The wheel a cluster or a Databricks job installs: the library, the configs and the one console
# script, `segment`.
wheel: setup
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist .

# Every stage against its floor on a generated dataset (cached in bench/.cache/), one table;
# SCALE=100k|1m|10m. bench/RESULTS.md has the figures measured and how.
bench: setup
	cd bench && ../$(BIN)/python run.py --scale $(SCALE) --set spark.maven_repo=$(MAVEN_REPO)

# Segment recovery on planted datasets from generators that share no code with `segment
# generate` (bench/recovery/), each through `segment pipeline`; bench/recovery/RESULTS.md.
bench-recovery: setup
	$(BIN)/python bench/recovery/run.py $(foreach s,$(SET),--set $(s)) --set spark.maven_repo=$(MAVEN_REPO)

# The champion-rule comparison (docs/champion-rule.md): DIR keeps each dataset's lake and fits.
RULES_DIR ?= bench/recovery/.work
bench-rules: setup
	$(BIN)/python bench/recovery/rules.py --prepare --work-dir $(RULES_DIR) $(foreach s,$(SET),--set $(s)) \
		--set spark.maven_repo=$(MAVEN_REPO)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# docs/config.md, docs/tables.md and docs/cli.md, generated from the config models, the table
# contract and the CLI parser (tests/test_docs.py fails when they are out of date).
docs: setup
	$(BIN)/python -m segmentation.reference docs

mlflow-ui: setup
	$(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf lake data reports cluster-demo connect-demo dist mlflow.db mlruns spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache build *.egg-info
