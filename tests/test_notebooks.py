"""The notebooks are Databricks source files that also run as plain Python: each is executed in
a subprocess against the finished pipeline's lake and MLflow store, and what it prints and
saves is checked against those stores and against what the pipeline's stages returned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FinishedPipeline
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from segmentation.publish import previous_run, published_rows, read_assignments
from segmentation.tables import (
    ASSIGNMENT_ID,
    CUSTOMER_COUNT,
    RULE,
    SEGMENT_ID,
    SEGMENT_NAME,
    SEGMENT_PROFILES,
)
from segmentation.tracking import user_environment

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SEPARATOR = "# COMMAND ----------"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cells(source: str) -> list[str]:
    """The cells of a Databricks source notebook, without the header line."""
    return [cell.strip() for cell in source.split("\n", 1)[1].split(f"\n{SEPARATOR}\n")]


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes().startswith(PNG_SIGNATURE), f"{path} is not a PNG"


def check_explore(printed: str, figures: Path, *, spark: SparkSession, pipeline: FinishedPipeline) -> None:
    """The latest assignment's header, every segment's name and rule, every assignment in the
    sizes over time, the migration from the previous assignment (when there is one), three
    figures."""
    assignment_id, _ = read_assignments(spark, pipeline.cfg.lake)
    all_profiles = published_rows(spark, pipeline.cfg.lake, SEGMENT_PROFILES)
    profiles = all_profiles.filter(F.col(ASSIGNMENT_ID) == assignment_id).collect()
    customers = sum(p[CUSTOMER_COUNT] for p in profiles)
    assert f"assignment {assignment_id}: {customers:,} customers in {len(profiles)} segments" in printed
    for p in profiles:
        assert f"  {p[SEGMENT_ID]} {p[SEGMENT_NAME]}: {p[RULE]}\n" in printed
    for row in all_profiles.select(ASSIGNMENT_ID).distinct().collect():
        assert row[ASSIGNMENT_ID] in printed
    # The pipeline's own assignment is among them (other tests may have added later ones).
    assert pipeline.result.assign.assignment_id in printed
    previous = previous_run(spark, pipeline.cfg.lake, assignment_id)
    previous_id = previous.assignment_id if previous is not None else None
    if previous_id is None:
        assert "  previous assignment: none, this is the first\n" in printed
        assert "this is the first assignment; there is nothing to compare with\n" in printed
    else:
        assert f"  previous assignment: {previous_id}\n" in printed
        assert f"migration {previous_id} -> {assignment_id} (rows: before, columns: now;" in printed
        assert "customers new: " in printed and "retention (same segment id now): " in printed
    for name in ("segment_sizes", "profile_heatmap", "sizes_over_time"):
        assert_png(figures / assignment_id / f"{name}.png")


def check_compare(printed: str, figures: Path, *, spark: SparkSession, pipeline: FinishedPipeline) -> None:
    """The champion is the registered one, the one the pipeline's train stage registered; every
    fit of its sweep is listed; the first runner-up is the next fit by the rule; two figures."""
    cfg, trained = pipeline.cfg, pipeline.result.train
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri, registry_uri=cfg.mlflow.tracking_uri)
    registered = client.get_model_version_by_alias(cfg.model.registered_name, cfg.model.alias)
    sweep_run_id = registered.tags["sweep_run_id"]
    assert (sweep_run_id, registered.run_id) == (trained.sweep_run_id, trained.champion.run_id)
    assert str(registered.version) == trained.registered.version
    lines = printed.splitlines()
    champion_line = next(line for line in lines if line.startswith("champion run: "))
    assert champion_line.split()[2] == registered.run_id
    assert champion_line == f"champion run: {trained.champion.run_id} ({trained.champion.name})"
    assert any(line.startswith("registered champion: ") and "this sweep's champion" in line for line in lines)

    experiment_id = client.get_run(sweep_run_id).info.experiment_id
    fits = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{sweep_run_id}'")
    assert len(fits) == len(trained.leaderboard)
    assert f"sweep {sweep_run_id} (" in printed and f"): {len(fits)} fits" in printed
    assert all(fit.info.run_id in printed for fit in fits)
    others = [fit for fit in fits if fit.info.run_id != registered.run_id]
    runner_up = min(
        others,
        key=lambda fit: (
            fit.data.tags["eligible"] != "true",
            -round(fit.data.metrics["silhouette"], cfg.selection.silhouette_decimals),
            fit.data.metrics["clusters"],
        ),
    )
    runner_up_line = next(line for line in lines if line.lstrip().startswith("runner-up 1 "))
    assert runner_up.info.run_id in runner_up_line

    for name in ("metrics_against_k", "champion_vs_runners_up"):
        assert_png(figures / f"sweep_{sweep_run_id}" / f"{name}.png")


NOTEBOOK_CHECKS: dict[str, Callable[..., None]] = {  # (printed, figures, *, spark, pipeline)
    "explore_segments.py": check_explore,
    "compare_sweep_runs.py": check_compare,
}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_CHECKS))
def test_notebook_is_databricks_source(notebook: str):
    source = (NOTEBOOKS / notebook).read_text()
    assert source.startswith("# Databricks notebook source\n")
    assert "# MAGIC" not in source.split(SEPARATOR)[-1]  # ends with code
    notebook_cells = cells(source)
    assert len(notebook_cells) >= 6 and all(notebook_cells)
    markdown = [cell for cell in notebook_cells if cell.startswith("# MAGIC")]
    assert markdown and all(cell.startswith("# MAGIC %md\n") for cell in markdown)
    for cell in markdown:
        assert all(line == "# MAGIC" or line.startswith("# MAGIC ") for line in cell.splitlines())
    # The parameters: widgets on Databricks, else the environment.
    assert 'dbutils.widgets.get("conf")' in source
    assert 'os.environ.get("SEGMENTATION_CONF", "local")' in source


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_CHECKS))
def test_notebook_runs_as_plain_python(
    notebook: str, spark: SparkSession, finished_pipeline: FinishedPipeline, *, tmp_path: Path
):
    figures = tmp_path / "figures"
    # A fresh interpreter starts its own local Spark, never a gateway this process might hold,
    # and reads the store its config names, not one an earlier test pointed MLflow at.
    env = {name: value for name, value in user_environment().items() if "PYSPARK_GATEWAY" not in name}
    env |= {
        "SEGMENTATION_CONF": "local",
        "SEGMENTATION_SET": ";".join(finished_pipeline.overrides),
        "SEGMENTATION_NOTEBOOK_OUTPUT": str(figures),
    }
    completed = subprocess.run(
        [sys.executable, str(NOTEBOOKS / notebook)],
        cwd=finished_pipeline.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, f"{notebook} failed:\n{completed.stderr[-4000:]}"
    assert "Traceback" not in completed.stderr
    NOTEBOOK_CHECKS[notebook](completed.stdout, figures, spark=spark, pipeline=finished_pipeline)
