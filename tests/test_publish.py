"""The commit protocol's rules on small hand-built tables: what blocks a publish, which attempt
wins, and what membership may and may not hold."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from segmentation import tables
from segmentation.config import LakeConfig
from segmentation.errors import SchemaError
from segmentation.io import table_ref, write_table
from segmentation.publish import PublishedRun, check_membership, check_slice, publish, published_run

ASSIGNMENTS = "assignment_id string, customer_id string"
PROFILES = "assignment_id string, customers long"


@pytest.fixture
def lake(tmp_path) -> LakeConfig:
    return LakeConfig(root=str(tmp_path / "lake"))


def test_a_complete_slice_passes(spark):
    assignments = spark.createDataFrame([("a", "1"), ("a", "2"), ("a", "3")], ASSIGNMENTS)
    profiles = spark.createDataFrame([("a", 2), ("a", 1)], PROFILES)
    check_slice(assignments, profiles, customers=3, assignment_id="a")


@pytest.mark.parametrize(
    ("customer_ids", "sizes", "scored", "message"),
    [
        (["1", "1", "2"], [2, 1], 3, "3 rows for 2 customers"),
        (["1", "2"], [1, 1], 3, "2 rows for 3 customers scored"),
        (["1", "2", "3"], [2, 2], 3, "profiles count 4 customers, the slice holds 3"),
    ],
)
def test_a_broken_slice_is_not_published(spark, customer_ids, sizes, scored, message):
    assignments = spark.createDataFrame([("a", c) for c in customer_ids], ASSIGNMENTS)
    profiles = spark.createDataFrame([("a", s) for s in sizes], PROFILES)
    with pytest.raises(
        SchemaError, match=f"table segment_assignments: assignment a: {message}; not published"
    ):
        check_slice(assignments, profiles, customers=scored, assignment_id="a")


def run(write_id: str) -> PublishedRun:
    return PublishedRun(
        assignment_id="2025-12-31_m_v1",
        write_id=write_id,
        status=tables.PUBLISHED,
        model_name="m",
        model_version="1",
        mlflow_run_id="r",
        algorithm="kmeans",
        as_of_date=dt.date(2025, 12, 31),
        features_table_version=1,
        customers=10,
        segments=2,
        assignments_version=1,
        profiles_version=1,
        assigned_at=dt.datetime(2026, 1, 1),
        published_at=dt.datetime(2026, 1, 1),
        config_hash="h",
    )


def test_the_newest_attempt_of_an_assignment_wins_whatever_order_they_publish_in(spark, lake):
    older, newer, newest = (
        run("20260101T000000000000Z-a"),
        run("20260101T000001000000Z-b"),
        run("20260102T000000000000Z-c"),
    )
    assert publish(spark, lake, newer)
    assert not publish(spark, lake, older)  # it started first and published last: discarded
    assert published_run(spark, lake, newer.assignment_id).write_id == newer.write_id
    assert publish(spark, lake, dataclasses.replace(newest, customers=11))
    published = published_run(spark, lake, newer.assignment_id)
    assert (published.write_id, published.customers) == (newest.write_id, 11)


def membership(spark, lake, rows):
    frame = spark.createDataFrame(
        [
            (c, 1, "s", "a", "1", dt.date.fromisoformat(f), t and dt.date.fromisoformat(t), t is None)
            for c, f, t in rows
        ],
        tables.SEGMENT_MEMBERSHIP.schema,
    )
    write_table(spark, table_ref(lake, tables.SEGMENT_MEMBERSHIP), frame, user_metadata={})


def test_membership_may_hold_a_row_closed_the_day_it_opened(spark, lake):
    membership(
        spark,
        lake,
        [
            ("1", "2025-06-30", "2025-12-31"),
            ("1", "2025-12-31", "2025-12-31"),
            ("1", "2025-12-31", None),
            ("2", "2025-06-30", "2025-12-31"),
        ],
    )
    check_membership(spark, lake)  # customer 2 left: no current row is allowed


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("1", "2025-06-30", None), ("1", "2025-12-31", None)], "customer '1' has 2 current rows, not 1"),
        ([("1", "2025-06-30", "2026-01-31"), ("1", "2025-12-31", None)], "customer '1' has overlapping rows"),
    ],
)
def test_membership_with_two_current_rows_or_overlaps_fails(spark, lake, rows, message):
    membership(spark, lake, rows)
    with pytest.raises(SchemaError, match=message):
        check_membership(spark, lake)
