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

from segmentation.cli import format_result, main
from segmentation.config import load_config
from segmentation.io import read_table, table_ref
from segmentation.stages.assign import run_assign
from segmentation.stages.history import run_diff, run_history, run_show
from segmentation.stages.report import run_report
from segmentation.tables import CUSTOMER_FEATURES, TRANSACTIONS_REJECTED


def segment(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 0


def test_generate_ingest_features_end_to_end(spark, finished_pipeline: FinishedPipeline):
    cfg, tmp_path, result = finished_pipeline.cfg, finished_pipeline.root, finished_pipeline.result
    sets = [f"--set={override}" for override in finished_pipeline.overrides]
    assert result.features.as_of_date == dt.date(2025, 12, 31)
    assert result.features.written.location == str(tmp_path / "lake" / "customer_features")
    assert result.train.champion.algorithm == "kmeans"
    assert result.train.registered.alias == "champion" and result.train.registered.version == "1"
    assert result.assign.assignment_id == result.report.assignment_id == "2025-12-31_customer-segmentation_v1"
    assert result.report.path == tmp_path / "reports" / f"{result.assign.assignment_id}.html"
    assert result.report.path.is_file()

    features_path = tmp_path / "lake" / "customer_features"
    features = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES))
    # Every generated customer has a purchase before the as-of date; a few lose all rows to
    # the dirty-row generator at most.
    customers_with_features = features.count()
    assert PIPELINE_CUSTOMERS * 0.99 <= customers_with_features <= PIPELINE_CUSTOMERS
    assert features.select("customer_id").distinct().count() == customers_with_features
    assert features.filter(F.col("recency_days") > F.col("tenure_days")).count() == 0

    independent = DeltaRsTable(str(features_path)).to_pyarrow_table()
    assert independent.num_rows == customers_with_features
    assert DeltaRsTable(str(features_path)).metadata().partition_columns == ["as_of_date"]

    # Re-running a date replaces its slice; another date adds a slice (through the CLI).
    segment("features", *sets)
    segment("features", *sets, "--set=features.as_of_date=2025-06-30")
    slices = {
        row.as_of_date: row.customers
        for row in read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES))
        .groupBy("as_of_date")
        .agg(F.count(F.lit(1)).alias("customers"))
        .collect()
    }
    assert slices[dt.date(2025, 12, 31)] == customers_with_features
    assert 0 < slices[dt.date(2025, 6, 30)] < customers_with_features

    # An assignment of the earlier date, then the read-back stages.
    earlier = run_assign(
        load_config(None, [*finished_pipeline.overrides, "features.as_of_date=2025-06-30"]), spark
    )
    assert earlier.assignment_id == "2025-06-30_customer-segmentation_v1"
    assert earlier.membership.status == "backfill"
    assert earlier.membership.current_as_of == dt.date(2025, 12, 31)
    history = run_history(cfg, spark)
    # Version 0 of every table is its creation with the declared schema; then one commit each.
    assert [(v.version, v.assignment_id) for v in history.versions] == [
        (1, result.assign.assignment_id),
        (2, earlier.assignment_id),
    ]
    shown = run_show(cfg, spark, version=1)
    assert shown.assignment_id == result.assign.assignment_id
    assert sum(s.customers for s in shown.segments) == result.assign.customers
    diff = run_diff(cfg, spark)
    assert (diff.source_id, diff.target_id) == (result.assign.assignment_id, earlier.assignment_id)
    before_customers = sum(c["customers"] for c in diff.summary.cells if c["from_segment_id"] is not None)
    assert before_customers == result.assign.customers
    assert diff.summary.gone_customers == result.assign.customers - earlier.customers
    report = run_report(cfg, spark, assignment_id=earlier.assignment_id)
    assert report.path == tmp_path / "reports" / "2025-06-30_customer-segmentation_v1.html"
    assert report.path.is_file() and report.matched

    transactions = DeltaRsTable(str(tmp_path / "lake" / "transactions")).to_pyarrow_table()
    rejected = read_table(spark, table_ref(cfg.lake, TRANSACTIONS_REJECTED))
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


def test_cli_prints_each_result_in_its_format(spark, finished_pipeline: FinishedPipeline, capsys):
    """The one test of the CLI's own text: what `segment <command>` prints is the formatted
    result of its stage, and the pipeline's text ends with the champion, the segments and
    where to look next."""
    result, tmp_path = finished_pipeline.result, finished_pipeline.root
    sets = [f"--set={override}" for override in finished_pipeline.overrides]
    summary = format_result(result).split("=" * 72 + "\n")[1].splitlines()
    champion = result.train.champion
    assert summary[0] == (
        f"champion: {champion.name}, {champion.segments} segments, silhouette {champion.silhouette:.4f}, "
        f"smallest segment {champion.min_segment_share:.2%}, stability {champion.stability:.3f}"
    )
    assert summary[1] == "registered: customer-segmentation version 1, alias 'champion'"
    assert summary[2].startswith(f"segments of assignment {result.assign.assignment_id} (")
    assert summary[3].split() == ["id", "segment", "customers", "share", "revenue"]
    biggest = max(result.report.segments, key=lambda s: (s.customers, -s.segment_id))
    assert summary[4].split()[:2] == [str(biggest.segment_id), biggest.segment_name.split()[0]]
    # The generated transactions end days after the as-of date: no next period to evaluate yet.
    assert summary[-4].startswith("next period: Not evaluable yet: the 180 days after ")
    assert summary[-3].startswith(f"report: {tmp_path / 'reports'}")
    assert summary[-2].startswith("mlflow ui:") and summary[-1].startswith("open the report:")

    capsys.readouterr()
    segment("show", *sets, "--assignment-id", result.assign.assignment_id)
    printed = capsys.readouterr().out
    shown = run_show(finished_pipeline.cfg, spark, assignment_id=result.assign.assignment_id)
    assert printed == format_result(shown) + "\n"
    lines = printed.splitlines()
    assert lines[0].startswith(f"assignment {result.assign.assignment_id}: customer-segmentation version 1")
    assert lines[1].split() == ["id", "segment", "customers", "mean", "probability", "mean", "distance"]
    assert len(lines) == 2 + len(shown.segments)
    segment("history", *sets)
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["delta", "version", "published"]
