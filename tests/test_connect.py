"""The whole pipeline as a Spark Connect client of a real server (deploy/connect_server.py),
against the same pipeline in a classic session on the same raw data."""

from __future__ import annotations

import contextlib
import re

import mlflow
import pytest
from conftest import SPARK_CONFIG
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from deploy.connect_server import run_demo
from segmentation import tables, tracking
from segmentation.config import load_config, overrides_under
from segmentation.io import read_table, table_ref
from segmentation.models import PREDICTION
from segmentation.publish import read_assignments
from segmentation.stages.pipeline import run_pipeline

CUSTOMERS = 400
SWEEP = ["sweep.algorithms=[kmeans]", "sweep.grid.kmeans.k=[4, 5, 6, 7]"]
# Every column of an assignment that the data and the seed decide (not ids or times of the run).
COMPUTED = (
    tables.ASSIGNMENT_ID,
    tables.CUSTOMER_ID,
    tables.SEGMENT_ID,
    tables.SEGMENT_NAME,
    tables.SEGMENT_PROBABILITY,
    tables.SECOND_SEGMENT_ID,
    tables.SECOND_PROBABILITY,
    tables.BOUNDARY,
    tables.DISTANCE_TO_CENTROID,
    tables.MODEL_CLUSTER_ID,
)


@pytest.mark.timeout(2400)  # a server and eight client commands, then the classic pipeline: about 8 min here
def test_pipeline_over_spark_connect_equals_classic_mode(spark, tmp_path):
    connect_root, classic_root = tmp_path / "connect", tmp_path / "classic"
    printed = run_demo(connect_root, CUSTOMERS, spark=SPARK_CONFIG, extra_overrides=SWEEP)

    # Every command was a client session of the server (one session id each), and each did its job.
    server_log = (connect_root / "server" / "connect-server.log").read_text()
    assert len(set(re.findall(r"sessionId: ([0-9a-f-]{36})", server_log))) == len(printed) == 8
    assert f"generated {CUSTOMERS} customers" in printed["generate"]
    champion = re.search(r"^champion: (\w+) k=(\d+),", printed["pipeline"], re.M)
    assert champion, printed["pipeline"]
    assert "registered: customer-segmentation version 1, alias 'champion'" in printed["pipeline"]
    assert "scored by customer-segmentation version 1" in printed["assign"]
    assert len(re.findall(r"customer-segmentation v1 ", printed["history"])) == 2, printed["history"]
    assert (
        "migration 2025-12-31_customer-segmentation_v1 -> 2025-11-30_customer-segmentation_v1"
        in printed["diff"]
    )
    assert "report: " in printed["report"]

    # The same raw data through the same pipeline in this classic session.
    cfg = load_config(
        None,
        [
            *overrides_under(classic_root),
            f"input.transactions.path={connect_root / 'raw' / 'transactions'}",
            f"input.customers.path={connect_root / 'raw' / 'customers'}",
            *SWEEP,
        ],
    )
    classic_root.mkdir()
    with contextlib.chdir(classic_root):
        classic = run_pipeline(cfg, spark)
    assert (champion[1], int(champion[2])) == (classic.train.champion.algorithm, classic.train.champion.k)

    connect_lake = load_config(None, overrides_under(connect_root)).lake
    assignment_id = classic.assign.assignment_id
    _, over_connect = read_assignments(spark, connect_lake, assignment_id=assignment_id)
    _, in_classic = read_assignments(spark, cfg.lake, assignment_id=assignment_id)
    assert in_classic.count() == CUSTOMERS
    assertDataFrameEqual(over_connect.select(*COMPUTED), in_classic.select(*COMPUTED))

    # The champion logged over Connect is an MLflow model any session loads: as a pyfunc here
    # it gives every customer the cluster the Connect run assigned.
    tracking.configure(load_config(None, overrides_under(connect_root)).mlflow)
    model = mlflow.pyfunc.load_model("models:/customer-segmentation/1")
    features = (
        read_table(spark, table_ref(connect_lake, tables.CUSTOMER_FEATURES))
        .filter(F.col(tables.AS_OF_DATE) == F.lit("2025-12-31").cast("date"))
        .orderBy(tables.CUSTOMER_ID)
    )
    columns = cfg.model.feature_columns
    predicted = model.predict(features.select(*[F.col(c).cast("double") for c in columns]).toPandas())
    expected = over_connect.join(features.select(tables.CUSTOMER_ID), tables.CUSTOMER_ID).orderBy(
        tables.CUSTOMER_ID
    )
    assert predicted[PREDICTION].tolist() == [
        row[PREDICTION] for row in expected.select(PREDICTION).collect()
    ]
