"""The pipeline under spark-submit on a real standalone cluster: master and two workers on
loopback, the wheel in --py-files, Delta's jars in --jars, tasks run by the executors."""

from __future__ import annotations

import os
import zipfile

import pytest
from pyspark.sql import functions as F

from deploy.standalone_cluster import JOB_SCRIPTS, PROJECT, run_demo
from segmentation.config import load_config
from segmentation.io import read_table, table_ref
from segmentation.tables import CUSTOMER_FEATURES, CUSTOMER_ID, SEGMENT_ASSIGNMENTS

CUSTOMERS = 1500


@pytest.mark.timeout(2400)  # a master, two workers and the whole pipeline: 350-500 s here
def test_pipeline_runs_on_executors_of_a_standalone_cluster(spark, tmp_path, capfd):
    result = run_demo(
        tmp_path,
        CUSTOMERS,
        extra_overrides=["sweep.algorithms=[kmeans]", "sweep.grid.kmeans.k=[5, 6]", "sweep.restarts=2"],
        maven_repo=os.environ.get("MAVEN_REPO", "~/.m2/repository"),
    )
    printed = capfd.readouterr().out

    # Both jobs were applications of the standalone master (not local mode) and finished.
    assert [(app["name"], app["state"]) for app in result.applications] == [
        ("customer-segmentation generate_data", "FINISHED"),
        ("customer-segmentation pipeline", "FINISHED"),
    ]
    # Every application had an executor on each worker, and each of them ran tasks.
    for app in result.applications:
        executors = {key: tasks for key, tasks in result.executor_tasks.items() if key.startswith(app["id"])}
        assert {key.split("/")[1] for key in executors} == {"worker-0", "worker-1"}, executors
        assert all(tasks > 0 for tasks in executors.values()), executors

    pipeline = result.job_output["jobs/pipeline.py"]
    assert "champion: kmeans k=" in pipeline, pipeline
    assert "registered: customer-segmentation version 1" in pipeline, pipeline
    assert f"--py-files {tmp_path}/dist/customer_segmentation-" in printed
    assert "delta-spark_4.1_2.13" in printed and "--master spark://127.0.0.1:" in printed
    # The scripts went to spark-submit as files; the wheel holds the library (the CLI they
    # call included) and nothing else of the checkout.
    for script in JOB_SCRIPTS:
        assert f" {PROJECT / script} --conf local " in printed, script
    (wheel,) = (tmp_path / "dist").glob("customer_segmentation-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names}
    assert "segmentation" in packages and "jobs" not in packages, packages
    assert {"segmentation/cli.py", "segmentation/stages/pipeline.py"} <= set(names)

    # What the cluster wrote, read back here: every customer with features got one segment.
    lake = load_config(None, [f"lake.root={tmp_path / 'lake'}"]).lake
    features = read_table(spark, table_ref(lake, CUSTOMER_FEATURES))
    assignments = read_table(spark, table_ref(lake, SEGMENT_ASSIGNMENTS))
    assert assignments.count() == features.count() > 0.99 * CUSTOMERS
    assert assignments.agg(F.countDistinct(CUSTOMER_ID)).first()[0] == features.count()
    assert (tmp_path / "reports").is_dir() and any((tmp_path / "reports").glob("*.html"))
