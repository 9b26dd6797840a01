"""The commit protocol of the gold tables: slices first, then one publish, never a rollback.

An assignment's rows go to `segment_assignments` and `segment_profiles` as a slice keyed by
`(assignment_id, write_id)`, where `write_id` names one attempt and sorts by its start time.
Slices are appended: a blind append changes nothing a reader sees and conflicts with no
concurrent commit. One MERGE into `segment_runs` then publishes the slice; that row is the
commit point and the durable catalog of assignments (it does not depend on the Delta log,
which retention and VACUUM shorten). Readers see only published slices.

A run killed at any instant leaves either no new `segment_runs` row (its slices are invisible,
and the next run of the same assignment deletes them) or the published row (its slices were
complete before it was written). Nothing is restored, so no run can undo another run's
commits. Two runs of the same assignment at once: the newer attempt's publish wins and an
older attempt's publish changes nothing.

`segment_membership` is brought up to date after the publish from published assignments only:
every published assignment whose row does not yet record a membership update is applied, in
as-of order, by an idempotent MERGE, then recorded. A run killed between the two leaves the
assignment pending; the next assign applies it again, which changes nothing already applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from segmentation.config import LakeConfig
from segmentation.errors import InputError, SchemaError
from segmentation.io import TableRef, delete_where, read_table, table_exists, table_ref, upsert
from segmentation.membership import MembershipUpdate, update_membership
from segmentation.tables import (
    ASSIGNMENT_ID,
    CUSTOMER_COUNT,
    CUSTOMER_ID,
    IS_CURRENT,
    PUBLISHED,
    PUBLISHED_AT,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_PROFILES,
    SEGMENT_RUNS,
    STATUS,
    VALID_FROM,
    VALID_TO,
    WRITE_ID,
    Table,
)


def new_write_id(started_at: dt.datetime) -> str:
    """`<UTC start, to the microsecond>-<random>`: unique per attempt, ordered by start time.

    >>> new_write_id(dt.datetime(2026, 1, 2, 3, 4, 5, 6))[:23]
    '20260102T030405000006Z-'
    """
    return f"{started_at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class PublishedRun:
    """One row of `segment_runs`: a published assignment and where its rows are."""

    assignment_id: str
    write_id: str
    status: str
    model_name: str
    model_version: Optional[str]
    mlflow_run_id: str
    algorithm: str
    as_of_date: dt.date
    features_table_version: int
    customers: int
    segments: int
    assignments_version: int
    profiles_version: int
    assigned_at: dt.datetime
    published_at: dt.datetime
    config_hash: str
    membership_status: Optional[str] = None
    membership_version: Optional[int] = None


def _runs(lake: LakeConfig) -> TableRef:
    return table_ref(lake, SEGMENT_RUNS)


def published_runs(spark: SparkSession, lake: LakeConfig) -> list[PublishedRun]:
    """Every published assignment, oldest publish first (one row per assignment: small)."""
    ref = _runs(lake)
    if not table_exists(spark, ref):
        return []
    rows = read_table(spark, ref).filter(F.col(STATUS) == PUBLISHED).orderBy(PUBLISHED_AT, ASSIGNMENT_ID)
    return [PublishedRun(**row.asDict()) for row in rows.collect()]


def published_run(spark: SparkSession, lake: LakeConfig, assignment_id: str) -> PublishedRun:
    return _by_id(published_runs(spark, lake), assignment_id)


def _by_id(runs: list[PublishedRun], assignment_id: str) -> PublishedRun:
    match = [run for run in runs if run.assignment_id == assignment_id]
    if not match:
        raise InputError(
            f"table {SEGMENT_RUNS.name}: no published assignment {assignment_id!r}; "
            f"`segment history` lists them ({len(runs)} published)"
        )
    return match[0]


def published_slice(spark: SparkSession, lake: LakeConfig, *, table: Table, run: PublishedRun) -> DataFrame:
    """The rows of one published assignment in `segment_assignments` or `segment_profiles`."""
    return read_table(spark, table_ref(lake, table)).filter(
        (F.col(ASSIGNMENT_ID) == F.lit(run.assignment_id)) & (F.col(WRITE_ID) == F.lit(run.write_id))
    )


def published_rows(spark: SparkSession, lake: LakeConfig, table: Table) -> DataFrame:
    """The rows of every published assignment in `segment_assignments` or `segment_profiles`:
    what downstream readers (dashboards, exports, notebooks) should query instead of the raw
    table, which may also hold unpublished slices of running or crashed assignments."""
    runs = read_table(spark, _runs(lake)).filter(F.col(STATUS) == PUBLISHED).select(ASSIGNMENT_ID, WRITE_ID)
    return read_table(spark, table_ref(lake, table)).join(runs, [ASSIGNMENT_ID, WRITE_ID], "left_semi")


def read_assignments(
    spark: SparkSession,
    lake: LakeConfig,
    *,
    assignment_id: Optional[str] = None,
    version: Optional[int] = None,
) -> tuple[str, DataFrame]:
    """One published assignment's rows of `segment_assignments`, and its id.

    By `assignment_id`; by `version`, the Delta version of `segment_assignments` that
    committed it (as `segment history` lists them); with neither, the latest published.
    """
    run = resolve_run(spark, lake, assignment_id=assignment_id, version=version)
    return run.assignment_id, published_slice(spark, lake, table=SEGMENT_ASSIGNMENTS, run=run)


def resolve_run(
    spark: SparkSession,
    lake: LakeConfig,
    *,
    assignment_id: Optional[str] = None,
    version: Optional[int] = None,
) -> PublishedRun:
    """The published run named by id, by Delta version of `segment_assignments`, or the latest."""
    runs = published_runs(spark, lake)
    if not runs:
        raise InputError(
            f"table {SEGMENT_RUNS.name} at {_runs(lake)} has no published assignment; "
            "run `segment assign` first"
        )
    if assignment_id is not None:
        return _by_id(runs, assignment_id)
    if version is not None:
        match = [run for run in runs if run.assignments_version == version]
        if not match:
            listed = ", ".join(str(run.assignments_version) for run in runs)
            raise InputError(
                f"table {SEGMENT_ASSIGNMENTS.name}: no published assignment was committed at version "
                f"{version}; published at versions {listed}"
            )
        return match[-1]
    return runs[-1]


def previous_run(spark: SparkSession, lake: LakeConfig, assignment_id: str) -> Optional[PublishedRun]:
    """The assignment published last before `assignment_id`: the one a report compares with."""
    runs = published_runs(spark, lake)
    position = next((i for i, run in enumerate(runs) if run.assignment_id == assignment_id), len(runs))
    return runs[position - 1] if position > 0 else None


def check_slice(assignments: DataFrame, profiles: DataFrame, *, customers: int, assignment_id: str) -> None:
    """The invariants of one assignment's slices, checked before it is published: one row per
    customer, as many rows as customers scored, and profile sizes summing to the rows."""
    counts = assignments.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct(CUSTOMER_ID).alias("distinct_customers")
    ).first()
    profiled = profiles.agg(F.sum(CUSTOMER_COUNT)).first()[0] or 0
    broken = [
        (
            counts["rows"] == counts["distinct_customers"],
            f"{counts['rows']:,} rows for {counts['distinct_customers']:,} customers",
        ),
        (counts["rows"] == customers, f"{counts['rows']:,} rows for {customers:,} customers scored"),
        (
            profiled == counts["rows"],
            f"profiles count {profiled:,} customers, the slice holds {counts['rows']:,}",
        ),
    ]
    for holds, what in broken:
        if not holds:
            raise SchemaError(
                f"table {SEGMENT_ASSIGNMENTS.name}: assignment {assignment_id}: {what}; not published"
            )


def publish(spark: SparkSession, lake: LakeConfig, run: PublishedRun) -> bool:
    """Make `run`'s slices the assignment: one MERGE into `segment_runs`, which replaces an
    older attempt's row and leaves a newer one. True when `run` is now the published one."""
    ref = _runs(lake)
    upsert(
        spark,
        ref,
        _row_frame(spark, run),
        user_metadata={"stage": "publish", ASSIGNMENT_ID: run.assignment_id, WRITE_ID: run.write_id},
        when=f"s.{WRITE_ID} > t.{WRITE_ID}",
    )
    return published_run(spark, lake, run.assignment_id).write_id == run.write_id


def discard_slices(spark: SparkSession, lake: LakeConfig, run: PublishedRun, *, own: bool = False) -> None:
    """Delete the slices of earlier attempts at `run`'s assignment (a crashed run's, or the one
    `run` replaced), never a newer attempt's: it may be about to publish. With `own`: `run`'s
    own slices, after a newer attempt published first."""
    comparison = "=" if own else "<"
    condition = f"{ASSIGNMENT_ID} = '{run.assignment_id}' AND {WRITE_ID} {comparison} '{run.write_id}'"
    for table in (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES):
        delete_where(
            spark,
            table_ref(lake, table),
            condition,
            user_metadata={"stage": "discard", ASSIGNMENT_ID: run.assignment_id, WRITE_ID: run.write_id},
        )


def apply_membership(spark: SparkSession, lake: LakeConfig) -> dict[str, MembershipUpdate]:
    """Every published assignment `segment_membership` does not have yet, applied in as-of order
    and recorded on its `segment_runs` row; by assignment id, what each did (and, for one a
    concurrent run applied, what it recorded)."""
    ref = table_ref(lake, SEGMENT_MEMBERSHIP)
    updates = {}
    runs = published_runs(spark, lake)
    for run in sorted(runs, key=lambda r: (r.as_of_date, r.published_at)):
        if run.membership_status is not None:
            updates[run.assignment_id] = MembershipUpdate(
                run.membership_status, str(ref), run.membership_version
            )
            continue
        metadata = {"stage": "membership", ASSIGNMENT_ID: run.assignment_id, WRITE_ID: run.write_id}
        update = update_membership(
            spark,
            ref,
            published_slice(spark, lake, table=SEGMENT_ASSIGNMENTS, run=run),
            as_of_date=run.as_of_date,
            user_metadata=metadata,
        )
        check_membership(spark, lake)
        upsert(
            spark,
            _runs(lake),
            _row_frame(
                spark, replace(run, membership_status=update.status, membership_version=update.version)
            ),
            user_metadata=metadata,
            when=f"s.{WRITE_ID} = t.{WRITE_ID}",
        )
        updates[run.assignment_id] = update
    return updates


def check_membership(spark: SparkSession, lake: LakeConfig) -> None:
    """`segment_membership` holds at most one current row per customer (none once a customer
    left) and no overlapping validity; a breach fails the run naming the first customer."""
    membership = read_table(spark, table_ref(lake, SEGMENT_MEMBERSHIP))
    current = membership.groupBy(CUSTOMER_ID).agg(F.sum(F.col(IS_CURRENT).cast("int")).alias("current"))
    doubled = current.filter(F.col("current") > 1).first()
    if doubled is not None:
        raise SchemaError(
            f"table {SEGMENT_MEMBERSHIP.name}: customer {doubled[CUSTOMER_ID]!r} has "
            f"{doubled['current']} current rows, not 1"
        )
    # A row closed on the day it opened (an as-of date assigned again with another segment)
    # sorts before the row that replaced it.
    order = Window.partitionBy(CUSTOMER_ID).orderBy(VALID_FROM, F.col(VALID_TO).asc_nulls_last())
    following = F.lead(VALID_FROM).over(order)
    overlap = (
        membership.withColumn("_next_from", following)
        .filter(
            F.col("_next_from").isNotNull()
            & (F.col(VALID_TO).isNull() | (F.col(VALID_TO) > F.col("_next_from")))
        )
        .first()
    )
    if overlap is not None:
        raise SchemaError(
            f"table {SEGMENT_MEMBERSHIP.name}: customer {overlap[CUSTOMER_ID]!r} has overlapping rows "
            f"from {overlap[VALID_FROM]} and {overlap['_next_from']}"
        )


def _row_frame(spark: SparkSession, run: PublishedRun) -> DataFrame:
    values: dict[str, Any] = asdict(run)
    return spark.createDataFrame([tuple(values[name] for name in SEGMENT_RUNS.columns)], SEGMENT_RUNS.schema)
