"""One local SparkSession for the whole run, built by the project's own factory."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from segmentation.config import Config, SparkConfig, load_config, overrides_under
from segmentation.io import table_exists, table_ref, table_version
from segmentation.spark import get_spark

# Python datetimes in tests are naive UTC, matching the session time zone.
os.environ["TZ"] = "UTC"
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
time.tzset()

LAKE_TABLES = (
    "transactions",
    "transactions_rejected",
    "customers",
    "customers_rejected",
    "customer_features",
    "customer_personas",
)


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    session = get_spark(
        SparkConfig(
            master="local[2]",
            driver_memory="2g",
            shuffle_partitions=2,
            maven_repo=os.environ.get("MAVEN_REPO", "~/.m2/repository"),
        )
    )
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
    printed: str  # what `segment generate` and `segment pipeline` printed


@pytest.fixture(scope="session")
def finished_pipeline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> FinishedPipeline:
    """`segment generate` + `segment pipeline` once, on a small dataset: a lake with every table
    and an MLflow store with a finished sweep, for the tests that read them back."""
    from jobs.cli import main

    root = tmp_path_factory.mktemp("pipeline")
    overrides = pipeline_overrides(root)
    sets = [f"--set={override}" for override in overrides]
    printed = io.StringIO()
    # In `root`, as a user runs it: MLflow puts the Default experiment's folder in the cwd.
    with contextlib.redirect_stdout(printed), contextlib.chdir(root):
        for command in (["generate", f"--set=generate.customers={PIPELINE_CUSTOMERS}"], ["pipeline"]):
            with pytest.raises(SystemExit) as exit_info:
                main([*command, *sets])
            assert exit_info.value.code == 0, f"segment {command[0]} failed"
    return FinishedPipeline(root, overrides, load_config(None, overrides), printed.getvalue())


def lake_state(spark: SparkSession, cfg: Config) -> dict[str, tuple]:
    """Version and full sorted content of every lake table: small test data only."""
    state = {}
    for table in LAKE_TABLES:
        ref = table_ref(cfg.lake, table)
        if table_exists(spark, ref):
            rows = spark.read.format("delta").load(ref.path).collect()
            state[table] = (table_version(spark, ref), sorted(map(str, rows)))
    return state
