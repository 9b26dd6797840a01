"""Tables in and out: the only module that touches storage.

A table is `<lake.root>/<name>` (path-based Delta) or, when `lake.catalog` and
`lake.schema` are set, the metastore table `catalog.schema.name` (Unity Catalog).
Every table is created with its declared schema (`segmentation.tables`) before the first
write, every write is checked against that schema, and every commit carries `userMetadata`
JSON naming what produced it (a SQL commit only where the server lets a job set Delta's
property: `_commit_metadata`). Only public PySpark APIs and Delta's SQL are used: history,
DELETE and MERGE go through `spark.sql`, which works the same in a classic session and over
Spark Connect (where Delta's Python `DeltaTable` API needs a server plugin that Maven Central
does not serve for the pinned Delta).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.config import CustomersInput, LakeConfig, TransactionsInput
from segmentation.errors import ConflictError, InputError, SchemaError
from segmentation.tables import (
    IS_CURRENT,
    MALFORMED_ROW,
    VALID_FROM,
    VALID_TO,
    Table,
    check_frame,
    ddl,
)

log = logging.getLogger(__name__)

SourceInput = TransactionsInput | CustomersInput

_NOT_NULL_VIOLATED = "DELTA_NOT_NULL_CONSTRAINT_VIOLATED"
_CHECK_VIOLATED = "DELTA_VIOLATE_CONSTRAINT_WITH_VALUES"
# Delta's commit conflicts (optimistic concurrency): the classes delta-spark raises in classic
# mode, and the error class prefix a Spark Connect client sees.
_CONFLICTS = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)
_CONFLICT_CONDITION = "DELTA_CONCURRENT"
CONFLICT_ATTEMPTS = 6
_Result = TypeVar("_Result")
_MISSING_PATH_CONDITIONS = ("PATH_NOT_FOUND", "DELTA_PATH_DOES_NOT_EXIST", "DELTA_MISSING_DELTA_TABLE")


@dataclass(frozen=True)
class TableRef:
    """Where a table of the contract lives: exactly one of `path` or `name` is set."""

    table: Table
    path: Optional[str] = None
    name: Optional[str] = None
    # Delta table properties set at creation and kept up to date (retention, from `lake.*`).
    properties: tuple[tuple[str, str], ...] = ()

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
    properties = (
        ("delta.logRetentionDuration", lake.log_retention),
        ("delta.deletedFileRetentionDuration", lake.deleted_file_retention),
    )
    if lake.catalog and lake.schema:
        return TableRef(table=table, name=f"{lake.catalog}.{lake.schema}.{table.name}", properties=properties)
    if lake.catalog or lake.schema:
        raise InputError("lake.catalog and lake.schema must be set together (or neither)")
    return TableRef(
        table=table, path=f"{resolve_path(lake.root).rstrip('/')}/{table.name}", properties=properties
    )


# Not a Delta table (or no such path): what DESCRIBE HISTORY raises, classic or over Connect.
_NOT_A_TABLE_CONDITIONS = ("DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_ONLY_OPERATION", "PATH_NOT_FOUND")


def _history(spark: SparkSession, ref: TableRef, limit: Optional[int] = None) -> DataFrame:
    """The table's commits, newest first (Delta's `DESCRIBE HISTORY`)."""
    return spark.sql(f"DESCRIBE HISTORY {ref.sql}" + (f" LIMIT {limit}" if limit else ""))


def _latest_version(spark: SparkSession, ref: TableRef) -> Optional[int]:
    """The latest commit's version, or None when there is no Delta table at `ref`."""
    try:
        return _history(spark, ref, 1).select("version").first()["version"]
    except AnalysisException as exc:
        if exc.getCondition() in _NOT_A_TABLE_CONDITIONS:
            return None
        raise


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    if ref.name:
        return spark.catalog.tableExists(ref.name)
    return _latest_version(spark, ref) is not None


def table_version(spark: SparkSession, ref: TableRef) -> Optional[int]:
    """Latest committed version, or None when the table does not exist yet."""
    if ref.name and not spark.catalog.tableExists(ref.name):
        return None
    return _latest_version(spark, ref)


def last_commit(spark: SparkSession, ref: TableRef) -> dict[str, Any]:
    """Version, operation metrics and userMetadata of the latest commit."""
    row = _history(spark, ref, 1).select("version", "operationMetrics", "userMetadata").first()
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
        _history(spark, ref)
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
    """Create the table with its declared schema (keys NOT NULL), partitioning, CHECK
    constraints and properties, once; bring an existing table's columns, constraints and
    properties up to the contract.

    Creating it before the first write, rather than letting the first write infer it, is what
    puts the contract into the table: Delta then rejects a null key or a row breaking a CHECK
    constraint from any writer, not only this code.
    """
    table = ref.table
    if not table_exists(spark, ref):
        partitioning = (
            f" PARTITIONED BY ({', '.join(f'`{c}`' for c in table.partitioned_by)})"
            if table.partitioned_by
            else ""
        )
        # CHECK constraints go in as the properties Delta keeps them in, so that creating the
        # table stays one commit (ALTER TABLE ADD CONSTRAINT would add one per constraint).
        declared = [*ref.properties, *((f"delta.constraints.{n.lower()}", e) for n, e in table.checks)]
        settings = ", ".join(f"'{k}' = '{_sql_string(v)}'" for k, v in declared)
        properties = f" TBLPROPERTIES ({settings})" if declared else ""
        with _commit_metadata(spark, {"stage": "create", "table": table.name}), _conflicts_tolerated():
            spark.sql(
                f"CREATE TABLE IF NOT EXISTS {ref.sql} ({ddl(table.schema)}) USING DELTA{partitioning}"
                f"{properties}"
            )
    _add_missing_columns(spark, ref)
    _add_missing_constraints(spark, ref)


def _sql_string(value: str) -> str:
    """`value` inside a single-quoted SQL string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _table_properties(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    return {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {ref.sql}").collect()}


def _add_missing_constraints(spark: SparkSession, ref: TableRef) -> None:
    """CHECK constraints of the contract the table lacks, and properties that differ.

    Adding a constraint checks the rows already there; a table holding a row that breaks it
    is a `SchemaError` naming the table and the rule."""
    present = _table_properties(spark, ref)
    changed = {k: v for k, v in ref.properties if present.get(k) != v}
    if changed:
        settings = ", ".join(f"'{k}' = '{_sql_string(v)}'" for k, v in changed.items())
        with _commit_metadata(spark, {"stage": "evolve", "table": ref.label}), _conflicts_tolerated():
            spark.sql(f"ALTER TABLE {ref.sql} SET TBLPROPERTIES ({settings})")
    for name, expression in ref.table.checks:
        if f"delta.constraints.{name.lower()}" in present:
            continue
        with _commit_metadata(spark, {"stage": "evolve", "table": ref.label}), _conflicts_tolerated():
            try:
                spark.sql(f"ALTER TABLE {ref.sql} ADD CONSTRAINT {name} CHECK ({expression})")
            except AnalysisException as exc:
                if "already exists" in str(exc).lower():
                    continue  # a concurrent run added it first
                raise SchemaError(
                    f"table {ref.label} at {ref}: rows already in it break the CHECK constraint "
                    f"{name} ({expression}): {str(exc).splitlines()[0]}"
                ) from None


@contextlib.contextmanager
def _conflicts_tolerated() -> Iterator[None]:
    """Creating or evolving a table another run is creating or evolving at the same instant:
    its commit did what ours would have, so a conflict here is not an error."""
    try:
        yield
    except Exception as exc:
        if not is_conflict(exc):
            raise
        log.info("concurrent change to a table's definition, kept: %s", str(exc).splitlines()[0])


def is_conflict(exc: BaseException) -> bool:
    """A Delta commit conflict: another transaction committed first."""
    return isinstance(exc, _CONFLICTS) or _CONFLICT_CONDITION in str(exc)


def with_conflict_retries(
    ref: TableRef, commit: Callable[[], _Result], *, attempts: int = CONFLICT_ATTEMPTS
) -> _Result:
    """Run `commit` (one Delta commit that is safe to repeat: it recomputes what it writes from
    the table as it then is) and repeat it after a conflict, with bounded exponential backoff.

    Out of attempts: a `ConflictError` naming the table and saying to re-run."""
    for attempt in range(1, attempts + 1):
        try:
            return commit()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise ConflictError(
                    f"table {ref.label} at {ref}: a concurrent run committed first {attempts} times "
                    f"({str(exc).splitlines()[0]}); nothing of this commit was written: re-run"
                ) from None
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())  # jitter, not data: no seed
            log.warning(
                "table %s: commit conflict, retrying in %.1f s (%d/%d)", ref.label, delay, attempt, attempts
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


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
    with _commit_metadata(spark, {"stage": "evolve", "table": ref.label}), _conflicts_tolerated():
        spark.sql(f"ALTER TABLE {ref.sql} ADD COLUMNS ({columns})")


def write_table(
    spark: SparkSession,
    ref: TableRef,
    frame: DataFrame,
    *,
    user_metadata: dict[str, Any],
    replace_where: Optional[str] = None,
    append: bool = False,
) -> TableWrite:
    """One Delta commit replacing the table's rows, or with `replace_where` only that slice,
    or with `append` adding them (a blind append, which no concurrent commit conflicts with).
    The frame is checked against the table's schema first; a frame that breaks it (or a null
    key or a CHECK constraint, which Delta enforces) raises `SchemaError`, the table unchanged.
    A commit conflict is retried (`with_conflict_retries`): the write is idempotent."""
    check_writable(spark, ref, frame.schema)
    ensure_table(spark, ref)
    metadata = json.dumps(user_metadata, sort_keys=True, default=str)
    writer = (
        frame.write.format("delta").mode("append" if append else "overwrite").option("userMetadata", metadata)
    )
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    if ref.table.extensible:
        writer = writer.option("mergeSchema", "true")

    def commit() -> None:
        with _schema_errors(ref):
            if ref.path:
                writer.save(ref.path)
            else:
                writer.saveAsTable(ref.name)

    with_conflict_retries(ref, commit)
    return _written_by(spark, ref, metadata)


def check_writable(spark: SparkSession, ref: TableRef, schema: T.StructType) -> None:
    """`SchemaError` unless rows of `schema` can be written to the table: the contract
    (`check_frame`) and, on an extensible table, no column the config adds that an earlier
    run wrote with another type (Delta would fail the merge mid-run instead). A stage that
    writes several tables checks them all before its first write."""
    check_frame(ref.table, schema)
    if not ref.table.extensible or not table_exists(spark, ref):
        return
    held = {f.name: f.dataType for f in read_table(spark, ref).schema.fields}
    for field in schema.fields:
        before = held.get(field.name)
        if before is not None and field.name not in ref.table.columns and before != field.dataType:
            raise SchemaError(
                f"table {ref.label}: column {field.name!r} is {field.dataType.simpleString()} in this "
                f"input, the table holds {before.simpleString()} from earlier runs; cast it in the "
                "source or move the table aside; nothing was written"
            )


def _written_by(spark: SparkSession, ref: TableRef, metadata: str) -> TableWrite:
    """Our commit among the latest few: another run may have committed right after it."""
    rows = (
        _history(spark, ref, 20)
        .filter(F.col("userMetadata") == F.lit(metadata))
        .select("version", "operationMetrics")
        .orderBy(F.desc("version"))
        .first()
    )
    if rows is None:  # older than the last 20 commits: report the latest
        commit = last_commit(spark, ref)
        version, metrics = commit["version"], commit["metrics"]
    else:
        version, metrics = rows["version"], dict(rows["operationMetrics"] or {})
    count = metrics.get("numOutputRows")
    return TableWrite(ref.label, str(ref), version, int(count) if count is not None else None)


def delete_where(
    spark: SparkSession, ref: TableRef, condition: str, *, user_metadata: dict[str, Any]
) -> None:
    """Delete the rows matching the SQL `condition`, in one commit, retried after a conflict."""
    if not table_exists(spark, ref):
        return

    def commit() -> None:
        with _commit_metadata(spark, user_metadata):
            spark.sql(f"DELETE FROM {ref.sql} WHERE {condition}")

    with_conflict_retries(ref, commit)


def upsert(
    spark: SparkSession,
    ref: TableRef,
    rows: DataFrame,
    *,
    user_metadata: dict[str, Any],
    when: Optional[str] = None,
) -> None:
    """MERGE `rows` on the table's keys: a matched row is replaced (only where the SQL `when`,
    over `t.` target and `s.` source columns, holds), a new key inserted. One commit, retried
    after a conflict (the MERGE re-reads the table, so repeating it is safe)."""
    check_frame(ref.table, rows.schema)
    ensure_table(spark, ref)
    on = " AND ".join(f"t.`{key}` = s.`{key}`" for key in ref.table.keys)

    matched = f"WHEN MATCHED AND ({when})" if when else "WHEN MATCHED"

    def commit() -> None:
        with _commit_metadata(spark, user_metadata), _schema_errors(ref), _temp_view(rows) as source:
            spark.sql(
                f"MERGE INTO {ref.sql} t USING {source} s ON {on} "
                f"{matched} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            )

    with_conflict_retries(ref, commit)


@contextlib.contextmanager
def _schema_errors(ref: TableRef) -> Iterator[None]:
    """Delta's NOT NULL or CHECK violation, as a `SchemaError` naming the table and the rule."""
    try:
        yield
    except Exception as exc:
        message = str(exc)
        if _CHECK_VIOLATED in message or "CHECK constraint" in message:
            rule = next(
                (f"{n} ({e})" for n, e in ref.table.checks if re.search(rf"constraint {n}\b", message, re.I)),
                "a CHECK constraint",
            )
            raise SchemaError(
                f"table {ref.label}: a row breaks the constraint {rule}; nothing was written ("
                + next((line for line in message.splitlines() if "violated by row" in line), "")[:300]
                + ")"
            ) from None
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

    def commit() -> None:
        # Built inside the commit, so that a retry finds the changes against the table as
        # it then is.
        now = current.withColumn("_in_new", F.lit(True)).alias("s")
        before = (
            read_table(spark, ref)
            .filter(F.col(IS_CURRENT))
            .select(key, *tracked)
            .withColumn("_in_old", F.lit(True))
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
        changes = to_close.unionByName(to_open).withColumns({f"_{c}": v for c, v in opening.items()})
        columns = [*current.columns, *opening]
        with _commit_metadata(spark, user_metadata), _schema_errors(ref), _temp_view(changes) as source:
            spark.sql(
                f"MERGE INTO {ref.sql} t USING {source} u ON t.`{key}` = u._merge_key AND t.`{IS_CURRENT}` "
                f"WHEN MATCHED THEN UPDATE SET t.`{VALID_TO}` = u.`_{VALID_FROM}`, t.`{IS_CURRENT}` = false "
                f"WHEN NOT MATCHED THEN INSERT ({', '.join(f'`{c}`' for c in columns)}) "
                f"VALUES ({', '.join(f'u.`{c}`' if c in current.columns else f'u.`_{c}`' for c in columns)})"
            )

    # Safe to repeat: the changes are found again from the table as the retry reads it.
    with_conflict_retries(ref, commit)


@contextlib.contextmanager
def _temp_view(frame: DataFrame) -> Iterator[str]:
    """`frame` as a session temporary view of a fresh name, for SQL (MERGE) to read."""
    name = f"_segmentation_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(name)
    try:
        yield name
    finally:
        frame.sparkSession.catalog.dropTempView(name)


COMMIT_METADATA_PROPERTY = "spark.databricks.delta.commitInfo.userMetadata"
# What a Databricks serverless session raises for a Spark property a job may not set.
_PROPERTY_REFUSED = "CONFIG_NOT_AVAILABLE"


@functools.cache
def _warn_property_refused() -> None:
    """Once per process: a serverless job makes many SQL commits."""
    log.warning("this Spark server refuses %s: SQL commits carry no userMetadata", COMMIT_METADATA_PROPERTY)


@contextlib.contextmanager
def _commit_metadata(spark: SparkSession, user_metadata: dict[str, Any]) -> Iterator[None]:
    """`userMetadata` for commits made through SQL, which has no writer option.

    Databricks serverless lets a job set only a short list of Spark properties, and this one is
    not on it. On SQL commits the metadata is an audit trail (`segment history`) that nothing
    reads back to decide anything (recovery reads the writer option's), so a server that refuses
    the property gets the commit without it rather than a failed stage."""
    try:
        spark.conf.set(COMMIT_METADATA_PROPERTY, json.dumps(user_metadata, sort_keys=True, default=str))
    except PySparkException as exc:
        if exc.getCondition() != _PROPERTY_REFUSED:
            raise
        _warn_property_refused()
        yield
        return
    try:
        yield
    finally:
        spark.conf.unset(COMMIT_METADATA_PROPERTY)


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
            return _read_csv(spark, location, options, table=table)
        if fmt == "delta":
            return spark.read.options(**options).format("delta").load(location)
        return spark.read.options(**options).parquet(location)
    except AnalysisException as exc:
        if exc.getCondition() in _MISSING_PATH_CONDITIONS:
            raise InputError(f"table {table}: input {location} ({fmt}) does not exist") from None
        raise
    except Exception as exc:
        if fmt == "parquet" and ("CANNOT_READ_FILE_FOOTER" in str(exc) or "not a Parquet file" in str(exc)):
            raise InputError(
                f"table {table}: input {location} is configured as parquet but is not Parquet "
                f"(no Parquet footer); set input.{table}.format to what the files are"
            ) from None
        raise


def _read_csv(spark: SparkSession, location: str, options: dict[str, str], *, table: str) -> DataFrame:
    """Every column as a string, plus `MALFORMED_ROW`: the raw text of a row whose field count
    differs from the header (Spark would otherwise pad it with nulls or drop its extra fields)."""
    csv_options = {"header": "true", "inferSchema": "false", **options}
    header = spark.read.options(**csv_options).csv(location).columns
    if not header:
        raise InputError(f"table {table}: input {location} (csv) is empty: no header and no rows")
    if header[0].startswith("PAR1"):
        raise InputError(
            f"table {table}: input {location} is configured as csv but holds Parquet files; "
            f"set input.{table}.format: parquet"
        )
    schema = T.StructType([T.StructField(name, T.StringType()) for name in [*header, MALFORMED_ROW]])
    return (
        spark.read.options(**csv_options, mode="PERMISSIVE", columnNameOfCorruptRecord=MALFORMED_ROW)
        .schema(schema)
        .csv(location)
    )


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
