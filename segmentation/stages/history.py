"""`segment history`, `segment show` and `segment diff`: published assignments read back from
the gold tables, by assignment id or by the Delta version of `segment_assignments` that
committed them; `segment_runs` lists them, so the list does not depend on the Delta log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.history import MigrationSummary, migration
from segmentation.io import TableWrite, table_ref, write_table
from segmentation.publish import published_runs, read_assignments
from segmentation.tables import (
    ALGORITHM,
    ASSIGNED_AT,
    COMPUTED_AT,
    CUSTOMER_COUNT,
    DISTANCE_TO_CENTROID,
    FEATURES_AS_OF_DATE,
    FROM_ASSIGNMENT_ID,
    MODEL_NAME,
    MODEL_VERSION,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_MIGRATIONS,
    SEGMENT_NAME,
    SEGMENT_PROBABILITY,
    SEGMENT_RUNS,
    TO_ASSIGNMENT_ID,
)


@dataclass(frozen=True)
class AssignmentVersion:
    """A published assignment: the Delta version of `segment_assignments` that committed its
    rows, and when it was published."""

    version: int
    timestamp: dt.datetime
    assignment_id: str
    model_name: str
    model_version: str
    as_of_date: dt.date
    customers: int


@dataclass(frozen=True)
class HistoryResult:
    location: str
    versions: tuple[AssignmentVersion, ...]


@dataclass(frozen=True)
class ShownSegment:
    segment_id: int
    segment_name: str
    customers: int
    mean_probability: float
    mean_distance: float


@dataclass(frozen=True)
class ShowResult:
    assignment_id: str
    delta_version: Optional[int]
    model_name: str
    model_version: str
    algorithm: str
    features_as_of_date: dt.date
    assigned_at: dt.datetime
    segments: tuple[ShownSegment, ...]


@dataclass(frozen=True)
class DiffResult:
    source_id: str
    target_id: str
    summary: MigrationSummary
    written: TableWrite


def run_history(cfg: Config, spark: SparkSession) -> HistoryResult:
    versions = [
        AssignmentVersion(
            version=run.assignments_version,
            timestamp=run.published_at,
            assignment_id=run.assignment_id,
            model_name=run.model_name,
            model_version=run.model_version,
            as_of_date=run.as_of_date,
            customers=run.customers,
        )
        for run in published_runs(spark, cfg.lake)
    ]
    return HistoryResult(str(table_ref(cfg.lake, SEGMENT_RUNS)), tuple(versions))


def run_show(
    cfg: Config, spark: SparkSession, *, assignment_id: Optional[str] = None, version: Optional[int] = None
) -> ShowResult:
    """One assignment, summarised per segment (the rows stay in the table)."""
    assignment_id, rows = read_assignments(spark, cfg.lake, assignment_id=assignment_id, version=version)
    first = rows.select(MODEL_NAME, MODEL_VERSION, ALGORITHM, FEATURES_AS_OF_DATE, ASSIGNED_AT).first()
    segments = (
        rows.groupBy(SEGMENT_ID, SEGMENT_NAME)
        .agg(
            F.count(F.lit(1)).alias(CUSTOMER_COUNT),
            F.avg(SEGMENT_PROBABILITY).alias("mean_probability"),
            F.avg(DISTANCE_TO_CENTROID).alias("mean_distance"),
        )
        .orderBy(SEGMENT_ID)
        .collect()
    )
    return ShowResult(
        assignment_id=assignment_id,
        delta_version=version,
        model_name=first[MODEL_NAME],
        model_version=first[MODEL_VERSION],
        algorithm=first[ALGORITHM],
        features_as_of_date=first[FEATURES_AS_OF_DATE],
        assigned_at=first[ASSIGNED_AT],
        segments=tuple(
            ShownSegment(
                s[SEGMENT_ID], s[SEGMENT_NAME], s[CUSTOMER_COUNT], s.mean_probability, s.mean_distance
            )
            for s in segments
        ),
    )


def run_diff(
    cfg: Config, spark: SparkSession, *, source: Optional[str] = None, target: Optional[str] = None
) -> DiffResult:
    """Migration between two assignments (default: the two most recent), written to gold
    `segment_migrations`. Each side is an assignment id or a Delta version number."""
    if source is None or target is None:
        source, target = _latest_two(spark, cfg, source=source, target=target)
    source_id, before = _read_side(spark, cfg, source)
    target_id, after = _read_side(spark, cfg, target)
    summary, cells = summarize_migration(spark, before, after)
    written = write_table(
        spark,
        table_ref(cfg.lake, SEGMENT_MIGRATIONS),
        cells.select(
            F.lit(source_id).alias(FROM_ASSIGNMENT_ID),
            F.lit(target_id).alias(TO_ASSIGNMENT_ID),
            "*",
            F.lit(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).alias(COMPUTED_AT),
        ),
        user_metadata={"stage": "diff", FROM_ASSIGNMENT_ID: source_id, TO_ASSIGNMENT_ID: target_id},
        replace_where=f"{FROM_ASSIGNMENT_ID} = '{source_id}' AND {TO_ASSIGNMENT_ID} = '{target_id}'",
    )
    return DiffResult(source_id, target_id, summary, written)


def _latest_two(
    spark: SparkSession, cfg: Config, *, source: Optional[str], target: Optional[str]
) -> tuple[str, str]:
    written = [run.assignment_id for run in reversed(published_runs(spark, cfg.lake))]
    target = target or (written[0] if written else None)
    earlier = [a for a in written if a != target]
    source = source or (earlier[0] if earlier else None)
    if source is None or target is None:
        raise InputError(
            f"table {SEGMENT_ASSIGNMENTS.name}: diff needs two assignments; name them with --from and --to"
        )
    return source, target


def summarize_migration(
    spark: SparkSession, before: DataFrame, after: DataFrame
) -> tuple[MigrationSummary, DataFrame]:
    """The migration summary and its cells as a DataFrame (at most (k + 1)^2 rows, computed once)."""
    cells = migration(before, after)
    rows = cells.collect()
    return MigrationSummary.from_cells([row.asDict() for row in rows]), spark.createDataFrame(
        rows, cells.schema
    )


def _read_side(spark: SparkSession, cfg: Config, side: str) -> tuple[str, Any]:
    if side.isdigit():
        return read_assignments(spark, cfg.lake, version=int(side))
    return read_assignments(spark, cfg.lake, assignment_id=side)
