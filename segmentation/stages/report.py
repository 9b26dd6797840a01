"""`segment report`: the static HTML report of one assignment (default: the latest), written
to `report.output_dir` and logged to the MLflow run of the model that scored it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import mlflow
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from segmentation import tracking
from segmentation.config import Config
from segmentation.io import resolve_path
from segmentation.profiles import SegmentSummary
from segmentation.publish import previous_run, published_slice, resolve_run
from segmentation.report import render_report
from segmentation.stages.history import summarize_migration
from segmentation.tables import ASSIGNMENT_ID, SEGMENT_ASSIGNMENTS, SEGMENT_ID, SEGMENT_PROFILES

REPORT_ARTIFACT_DIR = "reports"


@dataclass(frozen=True)
class ReportResult:
    assignment_id: str
    model_name: str
    model_version: str
    algorithm: str
    segments: tuple[SegmentSummary, ...]
    matched: bool  # a previous assignment exists and the segments show their identity to it
    path: Path
    mlflow_run_id: str
    artifact_dir: str
    experiment_id: str
    tracking_uri: str


def run_report(cfg: Config, spark: SparkSession, *, assignment_id: Optional[str] = None) -> ReportResult:
    run = resolve_run(spark, cfg.lake, assignment_id=assignment_id)
    assignment_id = run.assignment_id
    assignments = published_slice(spark, cfg.lake, table=SEGMENT_ASSIGNMENTS, run=run)
    rows = published_slice(spark, cfg.lake, table=SEGMENT_PROFILES, run=run).orderBy(SEGMENT_ID).collect()
    first = rows[0]
    previous = previous_run(spark, cfg.lake, assignment_id)
    previous_id = previous.assignment_id if previous is not None else None
    summary = None
    if previous is not None:
        before = published_slice(spark, cfg.lake, table=SEGMENT_ASSIGNMENTS, run=previous)
        summary, _ = summarize_migration(spark, before, assignments)
    meta = {
        ASSIGNMENT_ID: assignment_id,
        "model": f"{first.model_name} version {first.model_version}",
        "algorithm": first.algorithm,
        "segments": len(rows),
        "customers": f"{sum(r.customers for r in rows):,}",
        "features as of": first.features_as_of_date,
        "features table version": first.features_table_version,
        "assigned at (UTC)": first.assigned_at,
        "MLflow run": first.mlflow_run_id,
    }
    page = render_report(
        meta, [r.asDict(recursive=True) for r in rows], migration=summary, previous_assignment=previous_id
    )
    path = Path(resolve_path(cfg.report.output_dir)) / f"{assignment_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)

    tracking.configure(cfg.mlflow)
    client = MlflowClient()
    client.log_artifact(first.mlflow_run_id, str(path), REPORT_ARTIFACT_DIR)
    return ReportResult(
        assignment_id=assignment_id,
        model_name=first.model_name,
        model_version=first.model_version,
        algorithm=first.algorithm,
        segments=tuple(SegmentSummary.of(row) for row in rows),
        matched=previous_id is not None,
        path=path,
        mlflow_run_id=first.mlflow_run_id,
        artifact_dir=REPORT_ARTIFACT_DIR,
        experiment_id=client.get_run(first.mlflow_run_id).info.experiment_id,
        tracking_uri=mlflow.get_tracking_uri(),
    )
