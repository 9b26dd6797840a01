"""`segment report`: the static HTML report of one assignment (default: the latest), written
to `report.output_dir` and logged to the MLflow run of the model that scored it.

The report includes how the segments behaved in the `evaluate.horizon_days` after their date
(`segment evaluate`, without its MLflow run) once bronze covers that period; before then it
says from which date the assignment can be evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import mlflow
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from segmentation import tracking
from segmentation.config import Config
from segmentation.errors import PeriodNotCovered
from segmentation.io import resolve_path
from segmentation.profiles import SegmentSummary
from segmentation.publish import previous_run, published_slice, resolve_run
from segmentation.report import render_report
from segmentation.stages.evaluate import EvaluationResult, evaluate_published
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
    evaluation: Optional[EvaluationResult]  # next-period behaviour, once bronze covers the period
    evaluation_note: Optional[str]  # otherwise why not
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
    evaluation, evaluation_note = None, None
    try:
        evaluation = evaluate_published(spark, cfg, run, horizon_days=cfg.evaluate.horizon_days)
    except PeriodNotCovered as exc:
        evaluation_note = (
            f"Not evaluable yet: the {cfg.evaluate.horizon_days} days after {run.as_of_date} end on "
            f"{exc.period_end}, and the last transaction in bronze is on {exc.last_date}; "
            "`segment report` shows them once ingest has the transactions to that date."
        )
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
        meta,
        [r.asDict(recursive=True) for r in rows],
        migration=summary,
        previous_assignment=previous_id,
        **_next_period(evaluation, evaluation_note),
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
        evaluation=evaluation,
        evaluation_note=evaluation_note,
        path=path,
        mlflow_run_id=first.mlflow_run_id,
        artifact_dir=REPORT_ARTIFACT_DIR,
        experiment_id=client.get_run(first.mlflow_run_id).info.experiment_id,
        tracking_uri=mlflow.get_tracking_uri(),
    )


def _next_period(evaluation: Optional[EvaluationResult], note: Optional[str]) -> dict[str, Any]:
    if evaluation is None:
        return {"next_period": note or ""}
    return {
        "next_period": (
            f"What the customers did in the {evaluation.horizon_days} days after {evaluation.as_of_date} "
            f"(to {evaluation.period_end}), by segment and by the classic RFM-score segmentation "
            "(quintile scores, cells by score sum) with as many segments. Eta squared: the share of "
            "the variance across customers that the segmentation explains."
        ),
        "outcomes": (("Segments", evaluation.segments), ("RFM-score baseline", evaluation.rfm)),
    }
