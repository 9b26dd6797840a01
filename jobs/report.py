"""`segment report`: the static HTML report of one assignment (default: the latest), written
to `report.output_dir` and logged to the MLflow run of the model that scored it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import mlflow
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common import stage_main
from jobs.history import summarize_migration
from segmentation import tracking
from segmentation.assign import ASSIGNMENT_ID, SEGMENT_PROFILES
from segmentation.config import Config
from segmentation.history import previous_assignment_id
from segmentation.io import read_assignments, read_table, resolve_path, table_ref
from segmentation.report import render_report, segment_table

REPORT_ARTIFACT_DIR = "reports"


def run_report(cfg: Config, spark: SparkSession, assignment_id: Optional[str] = None) -> str:
    assignment_id, assignments = read_assignments(spark, cfg.lake, assignment_id)
    all_profiles = read_table(spark, table_ref(cfg.lake, SEGMENT_PROFILES))
    rows = all_profiles.filter(F.col(ASSIGNMENT_ID) == F.lit(assignment_id)).orderBy("segment_id").collect()
    first = rows[0]
    previous_id = previous_assignment_id(all_profiles, first.assigned_at)
    summary = None
    if previous_id is not None:
        _, before = read_assignments(spark, cfg.lake, previous_id)
        summary, _ = summarize_migration(spark, before, assignments)
    meta = {
        "assignment_id": assignment_id,
        "model": f"{first.model_name} version {first.model_version}",
        "algorithm": first.algorithm,
        "segments": len(rows),
        "customers": f"{sum(r.customers for r in rows):,}",
        "features as of": first.features_as_of_date,
        "features table version": first.features_table_version,
        "assigned at (UTC)": first.assigned_at,
        "MLflow run": first.mlflow_run_id,
    }
    page = render_report(meta, [r.asDict(recursive=True) for r in rows], summary, previous_id)
    path = Path(resolve_path(cfg.report.output_dir)) / f"{assignment_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)

    tracking.configure(cfg.mlflow)
    client = MlflowClient()
    client.log_artifact(first.mlflow_run_id, str(path), REPORT_ARTIFACT_DIR)
    experiment_id = client.get_run(first.mlflow_run_id).info.experiment_id
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        ui = (
            f"mlflow ui: make mlflow-ui (or .venv/bin/mlflow ui --backend-store-uri {uri}), then "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{first.mlflow_run_id}"
        )
    else:
        ui = f"mlflow: experiment {experiment_id}, run {first.mlflow_run_id} at {uri}"
    return "\n".join(
        [
            f"segments of assignment {assignment_id} ({meta['model']}, {first.algorithm}):",
            *segment_table(rows, matched=previous_id is not None),
            f"report: {path} (logged to MLflow run {first.mlflow_run_id} under {REPORT_ARTIFACT_DIR}/)",
            ui,
            f"open the report: xdg-open {path}   (or file://{path})",
        ]
    )


def main() -> None:
    stage_main("report")


if __name__ == "__main__":
    main()
