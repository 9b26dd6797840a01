"""Tables in and out: the only module that touches storage.

A table is `<lake.root>/<name>` (path-based Delta) or, when `lake.catalog` and
`lake.schema` are set, the metastore table `catalog.schema.name` (Unity Catalog).
Every commit carries `userMetadata` JSON naming what produced it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.assign import ASSIGNMENT_ID, SEGMENT_ASSIGNMENTS
from segmentation.config import LakeConfig
from segmentation.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableRef:
    """Where a Delta table lives: exactly one of `path` or `name` is set."""

    label: str
    path: Optional[str] = None
    name: Optional[str] = None

    def __str__(self) -> str:
        return self.path or self.name or self.label


def resolve_path(path: str) -> str:
    """Absolute local paths (executors may not share the driver's cwd); URIs stay as they are."""
    if "://" in path or path.startswith("dbfs:"):
        return path
    return os.path.abspath(os.path.expanduser(path))


def table_ref(lake: LakeConfig, table: str) -> TableRef:
    if lake.catalog and lake.schema:
        return TableRef(label=table, name=f"{lake.catalog}.{lake.schema}.{table}")
    if lake.catalog or lake.schema:
        raise InputError("lake.catalog and lake.schema must be set together (or neither)")
    return TableRef(label=table, path=f"{resolve_path(lake.root).rstrip('/')}/{table}")


def _delta_table(spark: SparkSession, ref: TableRef) -> DeltaTable:
    if ref.path:
        return DeltaTable.forPath(spark, ref.path)
    return DeltaTable.forName(spark, ref.name)


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    if ref.path:
        return DeltaTable.isDeltaTable(spark, ref.path)
    return spark.catalog.tableExists(ref.name)


def table_version(spark: SparkSession, ref: TableRef) -> Optional[int]:
    """Latest committed version, or None when the table does not exist yet."""
    if not table_exists(spark, ref):
        return None
    return _delta_table(spark, ref).history(1).select("version").first()["version"]


def last_commit(spark: SparkSession, ref: TableRef) -> dict[str, Any]:
    """Version, operation metrics and userMetadata of the latest commit."""
    row = _delta_table(spark, ref).history(1).select("version", "operationMetrics", "userMetadata").first()
    return {
        "version": row["version"],
        "metrics": dict(row["operationMetrics"] or {}),
        "user_metadata": json.loads(row["userMetadata"]) if row["userMetadata"] else None,
    }


def table_history(spark: SparkSession, ref: TableRef) -> list[dict[str, Any]]:
    """Every commit, oldest first: version, timestamp, operation, metrics and userMetadata
    (one row per commit, never per data row)."""
    if not table_exists(spark, ref):
        return []
    rows = (
        _delta_table(spark, ref)
        .history()
        .select("version", "timestamp", "operation", "operationMetrics", "userMetadata")
        .orderBy("version")
        .collect()
    )
    return [
        {
            "version": row["version"],
            "timestamp": row["timestamp"],
            "operation": row["operation"],
            "metrics": dict(row["operationMetrics"] or {}),
            "user_metadata": json.loads(row["userMetadata"]) if row["userMetadata"] else {},
        }
        for row in rows
    ]


def read_table(spark: SparkSession, ref: TableRef, version: Optional[int] = None) -> DataFrame:
    if not table_exists(spark, ref):
        raise InputError(f"table {ref.label} does not exist at {ref}; run the stage that writes it")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref.path) if ref.path else reader.table(ref.name)


def write_table(
    df: DataFrame,
    ref: TableRef,
    user_metadata: dict[str, Any],
    mode: str = "overwrite",
    partition_by: Optional[list[str]] = None,
    replace_where: Optional[str] = None,
    merge_schema: bool = False,
) -> None:
    """One Delta commit. With `replace_where`, only that slice is replaced, atomically."""
    writer = (
        df.write.format("delta")
        .mode(mode)
        .option("userMetadata", json.dumps(user_metadata, sort_keys=True, default=str))
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    elif mode == "overwrite" and not replace_where:
        writer = writer.option("overwriteSchema", "true")
    if ref.path:
        writer.save(ref.path)
    else:
        writer.saveAsTable(ref.name)


def merge_scd2(
    spark: SparkSession,
    ref: TableRef,
    current: DataFrame,
    key: str,
    tracked: list[str],
    valid_from: Any,
    user_metadata: dict[str, Any],
) -> None:
    """Slowly changing dimension type 2 in one `MERGE`: `current` holds one row per key as of
    `valid_from`. A key whose tracked columns changed has its current row closed
    (`valid_to`, `is_current = false`) and a new current row opened; a new key gets a current
    row; a key missing from `current` has its current row closed; an unchanged key is untouched.

    The changes are found first (one outer join of `current` with the current rows), so the
    `MERGE` source holds only changed, new and gone keys, not every key.
    """
    opening = {
        "valid_from": F.lit(valid_from),
        "valid_to": F.lit(None).cast("date"),
        "is_current": F.lit(True),
    }
    if not table_exists(spark, ref):
        write_table(current.withColumns(opening), ref, user_metadata)
        return
    target = _delta_table(spark, ref)
    now = current.withColumn("_in_new", F.lit(True)).alias("s")
    before = (
        target.toDF().filter(F.col("is_current")).select(key, *tracked).withColumn("_in_old", F.lit(True))
    )
    joined = now.join(before.alias("t"), key, "full_outer")
    same = F.lit(True)
    for column in tracked:
        same = same & F.col(f"s.{column}").eqNullSafe(F.col(f"t.{column}"))
    in_new, in_old = F.col("_in_new").isNotNull(), F.col("_in_old").isNotNull()
    # Keyed rows close a current row (changed or gone); rows with a null merge key match
    # nothing and so insert the new current row (changed or new).
    to_close = joined.filter(in_old & ~(in_new & same)).select(
        F.col(key).alias("_merge_key"),
        *[F.lit(None).cast(current.schema[c].dataType).alias(c) for c in current.columns],
    )
    to_open = joined.filter(in_new & ~(in_old & same)).select(
        F.lit(None).cast(current.schema[key].dataType).alias("_merge_key"),
        *[F.col(key) if c == key else F.col(f"s.{c}") for c in current.columns],
    )
    with _commit_metadata(spark, user_metadata):
        (
            target.alias("t")
            .merge(to_close.unionByName(to_open).alias("u"), f"t.`{key}` = u._merge_key AND t.is_current")
            .whenMatchedUpdate(set={"valid_to": F.lit(valid_from), "is_current": F.lit(False)})
            .whenNotMatchedInsert(values={c: F.col(f"u.`{c}`") for c in current.columns} | opening)
            .execute()
        )


@contextlib.contextmanager
def _commit_metadata(spark: SparkSession, user_metadata: dict[str, Any]) -> Iterator[None]:
    """`userMetadata` for commits made through the DeltaTable API, which has no writer option."""
    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, json.dumps(user_metadata, sort_keys=True, default=str))
    try:
        yield
    finally:
        spark.conf.unset(key)


@contextlib.contextmanager
def all_or_nothing(spark: SparkSession, refs: list[TableRef]) -> Iterator[None]:
    """Delta commits are atomic per table; this extends that to a group of tables.

    Versions are recorded on entry; if the block raises, every table that moved is restored
    to its recorded version (or removed if it did not exist), then the error propagates.
    """
    before = {ref: table_version(spark, ref) for ref in refs}
    try:
        yield
    except BaseException:
        for ref, version in before.items():
            with contextlib.suppress(Exception):
                _rollback(spark, ref, version)
        raise


def _rollback(spark: SparkSession, ref: TableRef, version: Optional[int]) -> None:
    current = table_version(spark, ref)
    if current == version:
        return
    log.warning("rolling back %s from version %s to %s", ref, current, version)
    if version is not None:
        _delta_table(spark, ref).restoreToVersion(version)
    elif ref.name:
        spark.sql(f"DROP TABLE IF EXISTS {ref.name}")
    else:
        jvm = spark.sparkContext._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(ref.path)
        hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


def read_source(spark: SparkSession, path: str, fmt: str, options: dict[str, str]) -> DataFrame:
    """Raw input as the user hands it. CSV is read as strings so ids keep leading zeros and
    bad values can be reported, not silently nulled."""
    if fmt == "table":
        return spark.read.table(path)
    location = resolve_path(path)
    if fmt == "csv":
        csv_options = {"header": "true", "inferSchema": "false", **options}
        return spark.read.options(**csv_options).csv(location)
    if fmt == "delta":
        return spark.read.options(**options).format("delta").load(location)
    return spark.read.options(**options).parquet(location)


def source_exists(spark: SparkSession, path: str, fmt: str) -> bool:
    if fmt == "table":
        return spark.catalog.tableExists(path)
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(resolve_path(path))
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hadoop_path)


def write_source(df: DataFrame, path: str, fmt: str) -> None:
    """Write generated raw input in the format the config reads it back in."""
    location = resolve_path(path)
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", "true").csv(location)
    elif fmt == "delta":
        writer.format("delta").option("overwriteSchema", "true").save(location)
    elif fmt == "parquet":
        writer.parquet(location)
    else:
        writer.format("delta").saveAsTable(path)


def read_assignments(
    spark: SparkSession,
    lake: LakeConfig,
    assignment_id: Optional[str] = None,
    version: Optional[int] = None,
) -> tuple[str, DataFrame]:
    """One assignment from gold `segment_assignments`, and its id.

    By `assignment_id`; by Delta `version` (time travel: the assignment that commit wrote, or
    with an id too, that assignment as the table held it then); with neither, the assignment
    most recently written. Raises `InputError` naming what is not there.
    """
    ref = table_ref(lake, SEGMENT_ASSIGNMENTS)
    commits = table_history(spark, ref)
    if not commits:
        raise InputError(f"table {SEGMENT_ASSIGNMENTS} does not exist at {ref}; run `segment assign` first")
    versions = [c["version"] for c in commits]
    if version is not None and version not in versions:
        raise InputError(
            f"table {SEGMENT_ASSIGNMENTS} has no version {version}; versions {versions[0]}..{versions[-1]}"
        )
    table = read_table(spark, ref, version)
    if assignment_id is None:
        written = [
            c["user_metadata"][ASSIGNMENT_ID]
            for c in commits
            if ASSIGNMENT_ID in c["user_metadata"] and (version is None or c["version"] <= version)
        ]
        # At a version: the latest assignment written up to that commit. Without one: the
        # newest still in the table (a failed run's assignment was rolled back).
        candidates = written[-1:] if version is not None else list(reversed(written))
        assignment_id = next(
            (c for c in candidates if table.filter(F.col(ASSIGNMENT_ID) == F.lit(c)).limit(1).count()),
            None,
        )
        if assignment_id is None:
            at = f" at version {version}" if version is not None else ""
            raise InputError(f"table {SEGMENT_ASSIGNMENTS}{at}: no assignment was written by that commit")
    rows = table.filter(F.col(ASSIGNMENT_ID) == F.lit(assignment_id))
    if not rows.limit(1).count():
        at = f" at version {version}" if version is not None else ""
        raise InputError(f"table {SEGMENT_ASSIGNMENTS}{at} has no assignment_id {assignment_id!r}")
    return assignment_id, rows
