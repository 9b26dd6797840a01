"""Tables in and out: the only module that touches storage.

A table is `<lake.root>/<name>` (path-based Delta) or, when `lake.catalog` and
`lake.schema` are set, the metastore table `catalog.schema.name` (Unity Catalog).
Every table is created with its declared schema (`segmentation.tables`) before the first
write, every write is checked against that schema, and every commit carries `userMetadata`
JSON naming what produced it. Only public PySpark and Delta APIs are used.
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
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.config import CustomersInput, LakeConfig, TransactionsInput
from segmentation.errors import InputError, SchemaError
from segmentation.tables import (
    ASSIGNMENT_ID,
    IS_CURRENT,
    SEGMENT_ASSIGNMENTS,
    VALID_FROM,
    VALID_TO,
    Table,
    check_frame,
    ddl,
)

log = logging.getLogger(__name__)

SourceInput = TransactionsInput | CustomersInput

_NOT_NULL_VIOLATED = "DELTA_NOT_NULL_CONSTRAINT_VIOLATED"
_MISSING_PATH_CONDITIONS = ("PATH_NOT_FOUND", "DELTA_PATH_DOES_NOT_EXIST", "DELTA_MISSING_DELTA_TABLE")


@dataclass(frozen=True)
class TableRef:
    """Where a table of the contract lives: exactly one of `path` or `name` is set."""

    table: Table
    path: Optional[str] = None
    name: Optional[str] = None

    @property
    def label(self) -> str:
        return self.table.name

    @property
    def sql(self) -> str:
        """How SQL names the table: `catalog.schema.table` or delta.`<path>`."""
        return self.name if self.name else f"delta.`{self.path}`"

    def __str__(self) -> str:
        return self.path or self.name or self.label


@dataclass(frozen=True)
class TableWrite:
    """One committed write: where, at which Delta version, how many rows it wrote."""

    table: str
    location: str
    version: int
    rows: Optional[int]


def resolve_path(path: str) -> str:
    """Absolute local paths (executors may not share the driver's cwd); URIs stay as they are."""
    if "://" in path or path.startswith("dbfs:"):
        return path
    return os.path.abspath(os.path.expanduser(path))


def table_ref(lake: LakeConfig, table: Table) -> TableRef:
    if lake.catalog and lake.schema:
        return TableRef(table=table, name=f"{lake.catalog}.{lake.schema}.{table.name}")
    if lake.catalog or lake.schema:
        raise InputError("lake.catalog and lake.schema must be set together (or neither)")
    return TableRef(table=table, path=f"{resolve_path(lake.root).rstrip('/')}/{table.name}")


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


def ensure_table(spark: SparkSession, ref: TableRef) -> None:
    """Create the table with its declared schema (keys NOT NULL) and partitioning, once.

    Creating it before the first write, rather than letting the first write infer it, is what
    puts the contract into the table: Delta then rejects a null key from any writer.
    """
    table = ref.table
    if table_exists(spark, ref):
        _add_missing_columns(spark, ref)
        return
    partitioning = (
        f" PARTITIONED BY ({', '.join(f'`{c}`' for c in table.partitioned_by)})"
        if table.partitioned_by
        else ""
    )
    with _commit_metadata(spark, {"stage": "create", "table": table.name}):
        spark.sql(f"CREATE TABLE IF NOT EXISTS {ref.sql} ({ddl(table.schema)}) USING DELTA{partitioning}")


def _add_missing_columns(spark: SparkSession, ref: TableRef) -> None:
    """A table created by an earlier version of the contract gets the nullable columns declared
    since, so that writers of either version keep working (older rows read them as null)."""
    present = set(read_table(spark, ref).columns)
    missing = [f for f in ref.table.schema.fields if f.name not in present]
    if not missing:
        return
    required = [f.name for f in missing if not f.nullable]
    if required:
        raise SchemaError(
            f"table {ref.label} at {ref}: lacks the NOT NULL column {required[0]!r} of its contract; "
            "it was written by an incompatible version: move it aside and re-run the stage that writes it"
        )
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
    with _commit_metadata(spark, {"stage": "evolve", "table": ref.label}):
        spark.sql(f"ALTER TABLE {ref.sql} ADD COLUMNS ({columns})")


def write_table(
    spark: SparkSession,
    ref: TableRef,
    frame: DataFrame,
    *,
    user_metadata: dict[str, Any],
    replace_where: Optional[str] = None,
) -> TableWrite:
    """One Delta commit replacing the table's rows, or with `replace_where` only that slice,
    atomically. The frame is checked against the table's schema first; a frame that breaks it
    (or a null key, which Delta rejects) raises `SchemaError` and the table is unchanged."""
    check_frame(ref.table, frame.schema)
    ensure_table(spark, ref)
    writer = (
        frame.write.format("delta")
        .mode("overwrite")
        .option("userMetadata", json.dumps(user_metadata, sort_keys=True, default=str))
    )
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    if ref.table.extensible:
        writer = writer.option("mergeSchema", "true")
    with _schema_errors(ref):
        if ref.path:
            writer.save(ref.path)
        else:
            writer.saveAsTable(ref.name)
    commit = last_commit(spark, ref)
    rows = commit["metrics"].get("numOutputRows")
    return TableWrite(ref.label, str(ref), commit["version"], int(rows) if rows is not None else None)


@contextlib.contextmanager
def _schema_errors(ref: TableRef) -> Iterator[None]:
    """Delta's NOT NULL violation, as a `SchemaError` naming the table and the column."""
    try:
        yield
    except Exception as exc:
        message = str(exc)
        if _NOT_NULL_VIOLATED not in message and "NOT NULL constraint violated" not in message:
            raise
        column = next((c for c in ref.table.columns if f"column: {c}" in message), "a key column")
        raise SchemaError(
            f"table {ref.label}: column {column!r} is NOT NULL and the frame has a null in it; "
            "nothing was written"
        ) from None


def merge_scd2(
    spark: SparkSession,
    ref: TableRef,
    current: DataFrame,
    *,
    valid_from: Any,
    user_metadata: dict[str, Any],
) -> None:
    """Slowly changing dimension type 2 in one `MERGE`, on the table's `scd2_key` and
    `scd2_tracked` columns: `current` holds one row per key as of `valid_from`. A key whose
    tracked columns changed has its current row closed
    (`valid_to`, `is_current = false`) and a new current row opened; a new key gets a current
    row; a key missing from `current` has its current row closed; an unchanged key is untouched.

    The changes are found first (one outer join of `current` with the current rows), so the
    `MERGE` source holds only changed, new and gone keys, not every key.
    """
    opening = {
        VALID_FROM: F.lit(valid_from),
        VALID_TO: F.lit(None).cast("date"),
        IS_CURRENT: F.lit(True),
    }
    key, tracked = ref.table.scd2_key, list(ref.table.scd2_tracked)
    check_frame(ref.table, current.withColumns(opening).schema)
    ensure_table(spark, ref)
    target = _delta_table(spark, ref)
    now = current.withColumn("_in_new", F.lit(True)).alias("s")
    before = target.toDF().filter(F.col(IS_CURRENT)).select(key, *tracked).withColumn("_in_old", F.lit(True))
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
    with _commit_metadata(spark, user_metadata), _schema_errors(ref):
        (
            target.alias("t")
            .merge(to_close.unionByName(to_open).alias("u"), f"t.`{key}` = u._merge_key AND t.{IS_CURRENT}")
            .whenMatchedUpdate(set={VALID_TO: F.lit(valid_from), IS_CURRENT: F.lit(False)})
            .whenNotMatchedInsert(values={c: F.col(f"u.`{c}`") for c in current.columns} | opening)
            .execute()
        )


@contextlib.contextmanager
def _commit_metadata(spark: SparkSession, user_metadata: dict[str, Any]) -> Iterator[None]:
    """`userMetadata` for commits made through SQL or the DeltaTable API, which have no writer option."""
    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, json.dumps(user_metadata, sort_keys=True, default=str))
    try:
        yield
    finally:
        spark.conf.unset(key)


@contextlib.contextmanager
def all_or_nothing(spark: SparkSession, refs: list[TableRef]) -> Iterator[None]:
    """Delta commits are atomic per table; this extends that to a group of tables.

    Every table is created first (empty, with its schema), so each has a version to return
    to; versions are recorded on entry and, if the block raises, every table that moved is
    restored to its recorded version, then the error propagates.
    """
    for ref in refs:
        ensure_table(spark, ref)
    before = {ref: table_version(spark, ref) for ref in refs}
    try:
        yield
    except BaseException:
        for ref, version in before.items():
            with contextlib.suppress(Exception):
                _rollback(spark, ref, version)
        raise


def _rollback(spark: SparkSession, ref: TableRef, version: int) -> None:
    current = table_version(spark, ref)
    if current == version:
        return
    log.warning("rolling back %s from version %s to %s", ref, current, version)
    _delta_table(spark, ref).restoreToVersion(version)


def read_source(spark: SparkSession, source: SourceInput, *, table: str) -> DataFrame:
    """Raw input for `table` as the user hands it. CSV is read as strings so ids keep leading
    zeros and bad values can be reported, not silently nulled. A path or table that is not
    there is an `InputError`."""
    path, fmt, options = source.path, source.format, source.options
    if fmt == "table":
        if not spark.catalog.tableExists(path):
            raise InputError(f"table {table}: input table {path} does not exist")
        return spark.read.table(path)
    location = resolve_path(path)
    try:
        if fmt == "csv":
            csv_options = {"header": "true", "inferSchema": "false", **options}
            return spark.read.options(**csv_options).csv(location)
        if fmt == "delta":
            return spark.read.options(**options).format("delta").load(location)
        return spark.read.options(**options).parquet(location)
    except AnalysisException as exc:
        if exc.getCondition() in _MISSING_PATH_CONDITIONS:
            raise InputError(f"table {table}: input {location} ({fmt}) does not exist") from None
        raise


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
    *,
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
        raise InputError(
            f"table {SEGMENT_ASSIGNMENTS.name} does not exist at {ref}; run `segment assign` first"
        )
    versions = [c["version"] for c in commits]
    if version is not None and version not in versions:
        raise InputError(
            f"table {SEGMENT_ASSIGNMENTS.name} has no version {version}; "
            f"versions {versions[0]}..{versions[-1]}"
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
            raise InputError(
                f"table {SEGMENT_ASSIGNMENTS.name}{at}: no assignment was written by that commit"
            )
    rows = table.filter(F.col(ASSIGNMENT_ID) == F.lit(assignment_id))
    if not rows.limit(1).count():
        at = f" at version {version}" if version is not None else ""
        raise InputError(f"table {SEGMENT_ASSIGNMENTS.name}{at} has no assignment_id {assignment_id!r}")
    return assignment_id, rows
