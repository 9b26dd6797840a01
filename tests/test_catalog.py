"""The catalog-table path Databricks runs (`lake.catalog` / `lake.schema`, `saveAsTable`, input
`format: table`), end to end against Spark's built-in catalog in a temporary schema."""

from __future__ import annotations

import uuid

import pytest
from conftest import config_under
from pyspark.sql import functions as F

from segmentation import tables
from segmentation.cli import main
from segmentation.config import overrides_under
from segmentation.publish import published_runs
from segmentation.stages.generate import run_generate
from segmentation.stages.pipeline import run_pipeline

CUSTOMERS = 600
_GOLD = (tables.SEGMENT_ASSIGNMENTS, tables.SEGMENT_PROFILES, tables.SEGMENT_RUNS, tables.SEGMENT_MEMBERSHIP)

pytestmark = pytest.mark.slow


@pytest.fixture
def schema(spark, tmp_path):
    name = f"segmentation_test_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA spark_catalog.{name} LOCATION '{tmp_path / 'warehouse'}'")
    yield name
    spark.sql(f"DROP SCHEMA spark_catalog.{name} CASCADE")


def test_the_whole_pipeline_on_catalog_tables(spark, tmp_path, schema, capsys):
    raw = f"spark_catalog.{schema}"
    sets = [
        "lake.catalog=spark_catalog",
        f"lake.schema={schema}",
        "generate.format=table",
        f"generate.transactions_path={raw}.raw_transactions",
        f"generate.customers_path={raw}.raw_customers",
        "input.transactions.format=table",
        f"input.transactions.path={raw}.raw_transactions",
        "input.customers.format=table",
        f"input.customers.path={raw}.raw_customers",
        "sweep.algorithms=[kmeans]",
        "sweep.grid.kmeans.k=[4]",
        "sweep.restarts=1",
        "selection.min_stability=0",  # what is tested here is the tables, not the model
        "clv.enabled=false",
    ]
    run_generate(config_under(tmp_path, *sets, f"generate.customers={CUSTOMERS}"), spark)
    cfg = config_under(tmp_path, *sets)
    result = run_pipeline(cfg, spark)
    customers = result.assign.customers
    assert CUSTOMERS * 0.98 <= customers <= CUSTOMERS  # the generator's dirty rows may drop a few

    # Every table is a catalog table in the schema, read back through the catalog.
    catalog_tables = {row.tableName for row in spark.sql(f"SHOW TABLES IN {raw}").collect()}
    assert {t.name for t in (tables.TRANSACTIONS, tables.CUSTOMER_FEATURES, *_GOLD)} <= catalog_tables
    assigned = spark.table(f"{raw}.{tables.SEGMENT_ASSIGNMENTS.name}")
    assert assigned.filter(F.col(tables.ASSIGNMENT_ID) == result.assign.assignment_id).count() == customers
    assert spark.table(f"{raw}.{tables.CUSTOMER_FEATURES.name}").count() == customers
    properties = {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES {raw}.segment_runs").collect()}
    assert properties["delta.logRetentionDuration"] == cfg.lake.log_retention
    (run,) = published_runs(spark, cfg.lake)
    assert run.assignment_id == result.assign.assignment_id

    # The readers of the CLI go through the catalog too.
    with pytest.raises(SystemExit) as exit_info:
        main(["show", *(f"--set={s}" for s in (*overrides_under(tmp_path), *sets))])
    assert exit_info.value.code == 0
    assert result.assign.assignment_id in capsys.readouterr().out
