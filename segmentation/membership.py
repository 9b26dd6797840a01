"""`segment_membership`: each customer's segment over time, slowly changing type 2.

Policy: the table follows the newest as-of date. An assignment of a date later than (or equal
to) the current rows' date is merged in: changed customers get their current row closed and a
new one opened, new customers a row, gone customers their row closed. A backfill (an
assignment of an earlier date than the one already current) leaves the table alone, so history
is never rewritten out of order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.io import TableRef, last_commit, merge_scd2, read_table, table_exists, table_version
from segmentation.tables import (
    ASSIGNMENT_ID,
    CUSTOMER_ID,
    IS_CURRENT,
    MODEL_VERSION,
    SEGMENT_ID,
    SEGMENT_NAME,
    VALID_FROM,
)


@dataclass(frozen=True)
class MembershipUpdate:
    """What an assignment did to `segment_membership`: `merged` (rows closed and opened, at
    `version`), `unchanged` (no customer changed segment) or `backfill` (left alone: a later
    as-of date, `current_as_of`, is already current)."""

    status: str
    location: str
    version: Optional[int] = None
    closed: int = 0
    opened: int = 0
    current_as_of: Optional[dt.date] = None


def membership_rows(assignments: DataFrame) -> DataFrame:
    """One row per customer of one assignment, as `segment_membership` tracks it."""
    return assignments.select(CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME, ASSIGNMENT_ID, MODEL_VERSION)


def update_membership(
    spark: SparkSession,
    ref: TableRef,
    assignments: DataFrame,
    *,
    as_of_date: dt.date,
    user_metadata: dict[str, Any],
) -> MembershipUpdate:
    """Apply one assignment's rows to the membership table by the policy above."""
    if table_exists(spark, ref):
        latest = read_table(spark, ref).filter(F.col(IS_CURRENT)).agg(F.max(VALID_FROM)).first()[0]
        if latest is not None and latest > as_of_date:
            return MembershipUpdate("backfill", str(ref), table_version(spark, ref), current_as_of=latest)
    before = table_version(spark, ref)
    merge_scd2(spark, ref, membership_rows(assignments), valid_from=as_of_date, user_metadata=user_metadata)
    commit = last_commit(spark, ref)
    if commit["version"] == before:  # Delta commits nothing when a MERGE has nothing to change
        return MembershipUpdate("unchanged", str(ref), before)
    metrics = {name: int(value) for name, value in commit["metrics"].items() if value.isdigit()}
    return MembershipUpdate(
        "merged",
        str(ref),
        commit["version"],
        closed=metrics.get("numTargetRowsUpdated", 0),
        opened=metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0)),
    )
