"""The whole CLI on a small generated dataset, checked with independent readers."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PIPELINE_CUSTOMERS, FinishedPipeline, pipeline_overrides
from deltalake import DeltaTable as DeltaRsTable
from pyspark.sql import functions as F

from jobs.cli import main
from segmentation.io import read_table, table_ref


def segment(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 0


def test_generate_ingest_features_end_to_end(spark, finished_pipeline: FinishedPipeline, capsys):
    cfg, tmp_path = finished_pipeline.cfg, finished_pipeline.root
    sets = [f"--set={override}" for override in finished_pipeline.overrides]
    printed = finished_pipeline.printed
    assert "customer features as of 2025-12-31" in printed
    assert "champion: kmeans k=" in printed and "alias 'champion'" in printed
    assert str(tmp_path / "lake" / "customer_features") in printed
    # The pipeline ends with the champion, the segment table and where to look next.
    summary = printed[printed.rindex("=" * 72) :].splitlines()[1:]
    assert summary[0].startswith("champion: kmeans k=") and summary[1].startswith("registered:")
    assert summary[2].startswith("segments of assignment 2025-12-31_customer-segmentation_v1")
    assert summary[3].split() == ["id", "segment", "customers", "share", "revenue"]
    assert summary[-3].startswith(f"report: {tmp_path / 'reports'}")
    assert summary[-2].startswith("mlflow ui:") and summary[-1].startswith("open the report:")

    features_path = tmp_path / "lake" / "customer_features"
    features = read_table(spark, table_ref(cfg.lake, "customer_features"))
    # Every generated customer has a purchase before the as-of date; a few lose all rows to
    # the dirty-row generator at most.
    customers_with_features = features.count()
    assert PIPELINE_CUSTOMERS * 0.99 <= customers_with_features <= PIPELINE_CUSTOMERS
    assert features.select("customer_id").distinct().count() == customers_with_features
    assert features.filter(F.col("recency_days") > F.col("tenure_days")).count() == 0

    independent = DeltaRsTable(str(features_path)).to_pyarrow_table()
    assert independent.num_rows == customers_with_features
    assert DeltaRsTable(str(features_path)).metadata().partition_columns == ["as_of_date"]

    # Re-running a date replaces its slice; another date adds a slice.
    segment("features", *sets)
    segment("features", *sets, "--set=features.as_of_date=2025-06-30")
    slices = {
        row.as_of_date: row.customers
        for row in read_table(spark, table_ref(cfg.lake, "customer_features"))
        .groupBy("as_of_date")
        .agg(F.count(F.lit(1)).alias("customers"))
        .collect()
    }
    assert slices[dt.date(2025, 12, 31)] == customers_with_features
    assert 0 < slices[dt.date(2025, 6, 30)] < customers_with_features

    # An assignment of the earlier date, then the read-back commands.
    capsys.readouterr()
    segment("assign", *sets, "--as-of-date", "2025-06-30", "--model-version", "1")
    segment("history", *sets)
    segment("show", *sets, "--version", "0")
    segment("diff", *sets)
    segment("report", *sets, "--assignment-id", "2025-06-30_customer-segmentation_v1")
    printed = capsys.readouterr().out
    assert "segment_membership: unchanged" in printed
    history = [line.split()[0] for line in printed[printed.index("delta version") :].splitlines()[1:3]]
    assert history == ["0", "1"]
    assert "assignment 2025-12-31_customer-segmentation_v1 at Delta version 0" in printed
    assert "migration 2025-12-31_customer-segmentation_v1 -> 2025-06-30_customer-segmentation_v1" in printed
    assert (tmp_path / "reports" / "2025-06-30_customer-segmentation_v1.html").is_file()

    transactions = DeltaRsTable(str(tmp_path / "lake" / "transactions")).to_pyarrow_table()
    rejected = read_table(spark, table_ref(cfg.lake, "transactions_rejected"))
    assert rejected.count() > 0
    assert transactions.num_rows > 10 * PIPELINE_CUSTOMERS


def test_cli_reports_errors_in_one_line_and_exits_non_zero(tmp_path):
    segment_bin = Path(sys.executable).with_name("segment")
    bad_key = subprocess.run(
        [str(segment_bin), "features", "--set", "features.as_of_dat=2025-01-01"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_key.returncode == 1
    assert (
        bad_key.stderr.strip().splitlines()[-1].startswith("error: unknown config key 'features.as_of_dat'")
    )

    missing_input = subprocess.run(
        [str(segment_bin), "ingest", *[f"--set={o}" for o in pipeline_overrides(tmp_path)]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing_input.returncode == 1
    assert "error: table transactions: input" in missing_input.stderr
    assert "does not exist" in missing_input.stderr
    assert "Traceback" not in missing_input.stderr
