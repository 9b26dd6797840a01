"""One local SparkSession for the whole run, built by the project's own factory."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from segmentation import tables
from segmentation.config import Config, SparkConfig, load_config, overrides_under
from segmentation.io import table_exists, table_ref, table_version
from segmentation.spark import get_spark
from segmentation.stages.generate import run_generate
from segmentation.stages.pipeline import PipelineResult, run_pipeline

# Python datetimes in tests are naive UTC, matching the session time zone.
os.environ["TZ"] = "UTC"
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
time.tzset()

LAKE_TABLES = (
    tables.TRANSACTIONS,
    tables.TRANSACTIONS_REJECTED,
    tables.CUSTOMERS,
    tables.CUSTOMERS_REJECTED,
    tables.CUSTOMER_FEATURES,
    tables.CUSTOMER_PERSONAS,
)


# The test session's settings; a Spark Connect server a test starts gets the same
# (tests/test_connect.py), so that both compute alike.
SPARK_CONFIG = SparkConfig(
    master="local[2]",
    driver_memory="2g",
    shuffle_partitions=2,
    maven_repo=os.environ.get("MAVEN_REPO", "~/.m2/repository"),
)


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    session = get_spark(SPARK_CONFIG)
    # Every `segment` process a test starts (fault trials, end to end, notebooks, the cluster's
    # driver) inherits this: a JVM living about a minute on a few hundred customers, where C2's
    # compiler threads compete with the work for the two cores. On 400 customers, alternating
    # runs: `segment features` 39.2 s mean of 3, 32.9 s with C1 alone; `segment ingest` 43.4 s
    # and 38.1 s (2 each); `segment assign` no difference. This session, which lives for the
    # whole run, was started before it and keeps both compilers (test_publish and test_gold
    # took 86.6 s with both, 91.3 s with C1 alone).
    os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1")
    yield session
    session.stop()


def config_under(root: Path, *overrides: str) -> Config:
    """Config on the local overlay with every path (lake, raw input, MLflow, reports) under `root`."""
    return load_config(
        None,
        [*overrides_under(root), *overrides],
    )


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Config on the local overlay with every path under this test's tmp folder."""
    return lambda *overrides: config_under(tmp_path, *overrides)


PIPELINE_CUSTOMERS = 1500


def pipeline_overrides(root: Path) -> list[str]:
    """`--set` values for a small, fast CLI run with every path under `root`."""
    return [
        *overrides_under(root),
        "sweep.algorithms=[kmeans]",
        "sweep.grid.kmeans.k=[4, 5, 6, 7]",
        "spark.master=local[2]",
        "spark.driver_memory=1g",
    ]


@dataclass(frozen=True)
class FinishedPipeline:
    root: Path
    overrides: list[str]  # the `--set` values the run used
    cfg: Config
    result: PipelineResult  # what `run_pipeline` returned


@pytest.fixture(scope="session")
def finished_pipeline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> FinishedPipeline:
    """Generate + the whole pipeline once, on a small dataset: a lake with every table and an
    MLflow store with a finished sweep, for the tests that read them back. (The CLI's own
    end-to-end run is tests/test_end_to_end.py.)"""
    root = tmp_path_factory.mktemp("pipeline")
    overrides = pipeline_overrides(root)
    cfg = load_config(None, overrides)
    # In `root`, as a user runs it: MLflow puts the Default experiment's folder in the cwd.
    with contextlib.chdir(root):
        run_generate(load_config(None, [*overrides, f"generate.customers={PIPELINE_CUSTOMERS}"]), spark)
        result = run_pipeline(cfg, spark)
    return FinishedPipeline(root, overrides, cfg, result)


def lake_state(spark: SparkSession, cfg: Config) -> dict[str, tuple]:
    """Version and full sorted content of every lake table: small test data only."""
    state = {}
    for table in LAKE_TABLES:
        ref = table_ref(cfg.lake, table)
        if table_exists(spark, ref):
            rows = spark.read.format("delta").load(ref.path).collect()
            state[table.name] = (table_version(spark, ref), sorted(map(str, rows)))
    return state
