"""`segment evaluate`: did the segments of an assignment behave differently afterwards?

For the published assignment as of `D` (the latest published one for that date, or the one
named by `--assignment-id`), every customer's orders and spend in the `H` days after `D` are
read from bronze `transactions` (ingest keeps the lines after the as-of date), summarised per
segment with the share of variance the segments explain (eta squared), and compared with the
RFM-score segmentation with as many segments (`segmentation.usefulness` defines all of it).
Everything goes to one MLflow run; no table is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

import mlflow
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation import tracking
from segmentation.config import Config
from segmentation.errors import InputError, PeriodNotCovered
from segmentation.io import read_table, table_ref, table_version
from segmentation.publish import PublishedRun, published_runs, published_slice, resolve_run
from segmentation.tables import (
    AS_OF_DATE,
    ASSIGNMENT_ID,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    FREQUENCY,
    MLFLOW_RUN_ID,
    MONETARY,
    ORDER_TS,
    RECENCY_DAYS,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_NAME,
    SEGMENT_RUNS,
    TRANSACTIONS,
)
from segmentation.usefulness import (
    RFM_SEGMENT_ID,
    RFM_SEGMENT_NAME,
    SegmentationOutcome,
    next_period_outcomes,
    rfm_segments,
    summarize,
)

SEGMENTS, RFM = "segments", "rfm"
OUTCOMES_ARTIFACT = "segment_outcomes"


@dataclass(frozen=True)
class EvaluationResult:
    assignment_id: str
    as_of_date: dt.date
    horizon_days: int
    period_end: dt.date  # the last date of the next period, as_of_date + horizon_days
    transactions_version: int
    last_transaction_date: dt.date
    segments: SegmentationOutcome  # the assignment's segments
    rfm: SegmentationOutcome  # the RFM-score baseline with as many segments
    mlflow_run_id: str  # empty from `evaluate_published`, which logs nothing
    experiment_id: str


def run_evaluate(
    cfg: Config,
    spark: SparkSession,
    *,
    as_of_date: Optional[dt.date] = None,
    horizon_days: Optional[int] = None,
    assignment_id: Optional[str] = None,
) -> EvaluationResult:
    """Evaluate the assignment as of `as_of_date` (default: the date of `assignment_id`, else
    features.as_of_date) on the next `horizon_days` (default evaluate.horizon_days), and log it
    to MLflow."""
    horizon = horizon_days if horizon_days is not None else cfg.evaluate.horizon_days
    if horizon < 1:
        raise InputError(f"--horizon-days must be at least 1, got {horizon}")
    run = _assignment(spark, cfg, as_of_date=as_of_date, assignment_id=assignment_id)
    return _tracked(cfg, evaluate_published(spark, cfg, run, horizon_days=horizon), run=run)


def evaluate_published(
    spark: SparkSession, cfg: Config, run: PublishedRun, *, horizon_days: int
) -> EvaluationResult:
    """The evaluation of one published assignment, without MLflow: what a caller that already
    resolved the run (the report) computes. `PeriodNotCovered` when bronze does not reach the
    end of the period."""
    as_of, period_end = run.as_of_date, run.as_of_date + dt.timedelta(days=horizon_days)
    transactions_ref = table_ref(cfg.lake, TRANSACTIONS)
    transactions_version = table_version(spark, transactions_ref)
    transactions = read_table(spark, transactions_ref, transactions_version)
    last_date = _covered_until(transactions, as_of=as_of, period_end=period_end)
    assigned = published_slice(spark, cfg.lake, table=SEGMENT_ASSIGNMENTS, run=run).select(
        CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME
    )
    segments = run.segments or assigned.select(SEGMENT_ID).distinct().count()
    baseline = rfm_segments(_features_of(spark, cfg, assigned, as_of=as_of), segments=segments).select(
        CUSTOMER_ID, RFM_SEGMENT_ID, RFM_SEGMENT_NAME
    )
    customers = assigned.join(baseline, CUSTOMER_ID, "left")
    # Persisted: both summaries read the per-customer outcomes, which join bronze once.
    outcomes = next_period_outcomes(
        transactions, customers, as_of_date=as_of, horizon_days=horizon_days
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        by_segment = summarize(outcomes, method=SEGMENTS, segment=SEGMENT_ID, name=SEGMENT_NAME)
        by_rfm = summarize(
            outcomes.filter(F.col(RFM_SEGMENT_ID).isNotNull()),
            method=RFM,
            segment=RFM_SEGMENT_ID,
            name=RFM_SEGMENT_NAME,
        )
    finally:
        outcomes.unpersist()
    if by_rfm.customers != by_segment.customers:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: {by_segment.customers - by_rfm.customers:,} of the "
            f"{by_segment.customers:,} customers of assignment {run.assignment_id} have no row as of "
            f"{as_of}; the RFM baseline needs them: re-run `segment features --as-of-date {as_of}`"
        )
    return EvaluationResult(
        assignment_id=run.assignment_id,
        as_of_date=as_of,
        horizon_days=horizon_days,
        period_end=period_end,
        transactions_version=transactions_version,
        last_transaction_date=last_date,
        segments=by_segment,
        rfm=by_rfm,
        mlflow_run_id="",
        experiment_id="",
    )


def _assignment(
    spark: SparkSession, cfg: Config, *, as_of_date: Optional[dt.date], assignment_id: Optional[str]
) -> PublishedRun:
    """The published assignment named by id, else the latest published as of the date."""
    if assignment_id is not None:
        run = resolve_run(spark, cfg.lake, assignment_id=assignment_id)
        if as_of_date is not None and run.as_of_date != as_of_date:
            raise InputError(
                f"table {SEGMENT_RUNS.name}: assignment {assignment_id} is as of {run.as_of_date}, "
                f"not {as_of_date}; give one of --as-of-date and --assignment-id"
            )
        return run
    wanted = as_of_date or cfg.features.as_of_date
    runs = published_runs(spark, cfg.lake)
    matching = [run for run in runs if run.as_of_date == wanted]
    if not matching:
        dates = sorted({str(run.as_of_date) for run in runs})
        raise InputError(
            f"table {SEGMENT_RUNS.name} at {table_ref(cfg.lake, SEGMENT_RUNS)}: no published assignment as "
            f"of {wanted} ({len(runs)} published, as of {', '.join(dates) or 'no date'}); run "
            f"`segment assign --as-of-date {wanted}` first"
        )
    return matching[-1]  # published_runs lists the oldest publish first


def _covered_until(transactions: DataFrame, *, as_of: dt.date, period_end: dt.date) -> dt.date:
    """The date of the last bronze transaction, which must reach the end of the period: a
    period the data does not cover would count customers who did buy as lost."""
    last = transactions.agg(F.max(F.to_date(ORDER_TS))).first()[0]
    if last is None or last < period_end:
        covered = (last - as_of).days if last is not None and last > as_of else 0
        shorter = f"give --horizon-days {covered} or less, or " if covered >= 1 else ""
        raise PeriodNotCovered(
            f"table {TRANSACTIONS.name}: the last transaction is on {last}, before the end of the "
            f"next period {period_end} (as of {as_of} + {(period_end - as_of).days} days); the data "
            f"covers {covered} days after {as_of}: {shorter}ingest the later transactions "
            "(ingest.max_order_ts)",
            last_date=last,
            period_end=period_end,
        )
    return last


def _features_of(spark: SparkSession, cfg: Config, assigned: DataFrame, *, as_of: dt.date) -> DataFrame:
    ref = table_ref(cfg.lake, CUSTOMER_FEATURES)
    return (
        read_table(spark, ref, table_version(spark, ref))
        .filter(F.col(AS_OF_DATE) == F.lit(as_of))
        .select(CUSTOMER_ID, RECENCY_DAYS, FREQUENCY, MONETARY)
        .join(assigned.select(CUSTOMER_ID), CUSTOMER_ID, "left_semi")
    )


def outcome_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """Both per-segment tables as rows (the MLflow artifact; also what a report shows)."""
    return [
        {"method": outcome.method, **asdict(segment)}
        for outcome in (result.segments, result.rfm)
        for segment in outcome.segments
    ]


def _tracked(cfg: Config, result: EvaluationResult, *, run: PublishedRun) -> EvaluationResult:
    """One MLflow run in the project's experiment: the assignment and horizon as parameters,
    eta squared of both segmentations as metrics, both per-segment tables as artifacts."""
    experiment_id = tracking.configure(cfg.mlflow)
    with mlflow.start_run(
        run_name=f"evaluate {result.assignment_id} +{result.horizon_days}d",
        tags={
            "stage": "evaluate",
            ASSIGNMENT_ID: result.assignment_id,
            AS_OF_DATE: str(result.as_of_date),
            f"model_{MLFLOW_RUN_ID}": run.mlflow_run_id,
            "config_hash": cfg.fingerprint(),
        },
    ) as mlflow_run:
        mlflow.log_params(
            {
                AS_OF_DATE: str(result.as_of_date),
                "horizon_days": result.horizon_days,
                ASSIGNMENT_ID: result.assignment_id,
                "segments": len(result.segments.segments),
                "rfm_segments": len(result.rfm.segments),
                "transactions_version": result.transactions_version,
            }
        )
        metrics = {"customers": result.segments.customers}
        for prefix, outcome in (("", result.segments), (f"{RFM}_", result.rfm)):
            metrics |= {
                f"{prefix}bought_again_share": outcome.bought_again_share,
                f"{prefix}mean_spend": outcome.mean_spend,
            }
            for name in ("eta_squared_spend", "eta_squared_bought_again"):
                value = getattr(outcome, name)
                if value is not None:  # an outcome that does not vary has no eta squared
                    metrics[f"{prefix}{name}"] = value
        mlflow.log_metrics(metrics)
        tracking.log_table(mlflow_run.info.run_id, outcome_rows(result), OUTCOMES_ARTIFACT)
    return replace(result, mlflow_run_id=mlflow_run.info.run_id, experiment_id=experiment_id)
