"""The table contract, for every table: a frame that matches its schema is written and reads
back; a missing column, a wrong type, an unknown column (closed tables) or a null key fails
with a message naming the table and the column, and leaves the table as it was."""

from __future__ import annotations

import datetime as dt

import pytest
from deltalake import DeltaTable as DeltaRsTable
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from segmentation.config import LakeConfig
from segmentation.errors import SchemaError
from segmentation.io import (
    COMMIT_METADATA_PROPERTY,
    _warn_property_refused,
    delete_where,
    read_table,
    table_exists,
    table_history,
    table_ref,
    table_version,
    upsert,
    write_table,
)
from segmentation.tables import (
    ALL_TABLES,
    ASSIGNMENT_ID,
    PUBLISHED,
    SEGMENT_PROFILES,
    STATUS,
    VALUE_SHARE,
    Table,
    check_frame,
    ddl,
)

SAMPLE = {
    "string": "x",
    "double": 0.5,  # inside every CHECK constraint's range (shares, probabilities)
    "int": 7,
    "bigint": 7,
    "date": dt.date(2025, 12, 31),
    "timestamp": dt.datetime(2025, 12, 31, 8, 30),
    "boolean": True,
}
OTHER_TYPE = {"string": T.IntegerType(), "int": T.StringType(), "bigint": T.DoubleType()}


def sample_value(dtype: T.DataType):
    if isinstance(dtype, T.MapType):
        return {sample_value(dtype.keyType): sample_value(dtype.valueType)}
    if isinstance(dtype, T.ArrayType):
        return [sample_value(dtype.elementType)]
    if isinstance(dtype, T.StructType):
        return tuple(sample_value(f.dataType) for f in dtype.fields)
    return SAMPLE[dtype.simpleString()]


VALID_VALUE = {STATUS: PUBLISHED}


def valid_frame(spark, table: Table):
    row = tuple(VALID_VALUE.get(f.name, sample_value(f.dataType)) for f in table.schema.fields)
    return spark.createDataFrame([row], table.schema)


@pytest.fixture
def lake(tmp_path) -> LakeConfig:
    return LakeConfig(root=str(tmp_path / "lake"))


def content(spark, ref):
    return table_version(spark, ref), sorted(map(str, read_table(spark, ref).collect()))


def test_every_table_declares_keys_that_are_columns_and_required():
    names = [table.name for table in ALL_TABLES]
    assert len(names) == len(set(names))
    for table in ALL_TABLES:
        columns = {f.name: f for f in table.schema.fields}
        assert set(table.keys) <= set(columns), table.name
        assert set(table.partitioned_by) <= set(columns), table.name
        nullable_keys = [key for key in table.keys if columns[key].nullable]
        # Migrations' segment ids are null for customers new to or gone from an assignment.
        assert nullable_keys == (
            [] if table.name != "segment_migrations" else ["from_segment_id", "to_segment_id"]
        )


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_a_frame_that_matches_the_schema_is_written_with_not_null_keys(spark, lake, table):
    ref = table_ref(lake, table)
    frame = valid_frame(spark, table)
    written = write_table(spark, ref, frame, user_metadata={"test": table.name})
    assert (written.version, written.rows) == (1, 1)  # 0 is the table's creation
    assertDataFrameEqual(read_table(spark, ref), frame)
    # The table itself carries the contract, for any writer: read back by delta-rs.
    stored = {field.name: field for field in DeltaRsTable(ref.path).schema().fields}
    required = {f.name for f in table.schema.fields if not f.nullable}
    assert {name for name, field in stored.items() if not field.nullable} == required
    assert DeltaRsTable(ref.path).metadata().partition_columns == list(table.partitioned_by)


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_a_missing_column_names_table_and_column_and_writes_nothing(spark, lake, table):
    ref = table_ref(lake, table)
    write_table(spark, ref, valid_frame(spark, table), user_metadata={})
    before = content(spark, ref)
    dropped = table.schema.fields[-1].name
    with pytest.raises(SchemaError, match=rf"table {table.name}: column '{dropped}' \(.*\) is missing"):
        write_table(spark, ref, valid_frame(spark, table).drop(dropped), user_metadata={})
    assert content(spark, ref) == before


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_a_wrong_type_names_table_and_column_and_writes_nothing(spark, lake, table):
    ref = table_ref(lake, table)
    write_table(spark, ref, valid_frame(spark, table), user_metadata={})
    before = content(spark, ref)
    field = next(f for f in table.schema.fields if f.dataType.simpleString() in OTHER_TYPE)
    wrong = OTHER_TYPE[field.dataType.simpleString()]
    frame = valid_frame(spark, table).withColumn(field.name, F.col(field.name).cast(wrong))
    with pytest.raises(
        SchemaError,
        match=rf"table {table.name}: column '{field.name}' is {wrong.simpleString()}, the table holds",
    ):
        write_table(spark, ref, frame, user_metadata={})
    assert content(spark, ref) == before


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_a_null_key_names_table_and_column_and_writes_nothing(spark, lake, table):
    ref = table_ref(lake, table)
    write_table(spark, ref, valid_frame(spark, table), user_metadata={})
    before = content(spark, ref)
    key = next(key for key in table.keys if not table.schema[key].nullable) if table.keys else None
    key = key or next(f.name for f in table.schema.fields if not f.nullable)
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in table.schema.fields])
    row = [
        None if f.name == key else VALID_VALUE.get(f.name, sample_value(f.dataType))
        for f in table.schema.fields
    ]
    with pytest.raises(SchemaError, match=rf"table {table.name}: column '{key}' is NOT NULL"):
        write_table(spark, ref, spark.createDataFrame([tuple(row)], nullable), user_metadata={})
    assert content(spark, ref) == before


CHECKED = [
    pytest.param(table, name, rule, id=f"{table.name}-{name}")
    for table in ALL_TABLES
    for name, rule in table.checks
]


def breaking_value(table: Table, column: str):
    """A value of `column` outside every rule of the contract: each is a range from 0 or -1, a
    date at or after another, or a set of strings."""
    return {"string": "pending", "date": dt.date(2000, 1, 1)}.get(
        table.schema[column].dataType.simpleString(), -5
    )


@pytest.mark.parametrize(("table", "name", "rule"), CHECKED)
def test_a_row_breaking_a_check_constraint_names_table_and_rule_and_writes_nothing(
    spark, lake, table, name, rule
):
    """The table holds its row rules as Delta CHECK constraints (read back by delta-rs), so a
    writer that is not this code is held to them too."""
    ref = table_ref(lake, table)
    write_table(spark, ref, valid_frame(spark, table), user_metadata={})
    configuration = DeltaRsTable(ref.path).metadata().configuration
    assert configuration[f"delta.constraints.{name.lower()}"]
    before = content(spark, ref)
    column = rule.split("`")[1]  # the rule's first column
    frame = valid_frame(spark, table).withColumn(
        column, F.lit(breaking_value(table, column)).cast(table.schema[column].dataType)
    )
    with pytest.raises(SchemaError, match=rf"table {table.name}: a row breaks the constraint {name} "):
        write_table(spark, ref, frame, user_metadata={})
    assert content(spark, ref) == before
    # Spark SQL, not this code's writer, is held to it too.
    columns = ", ".join(f"`{c}`" for c in table.columns)
    frame.createOrReplaceTempView("breaking_row")
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT_WITH_VALUES"):
        spark.sql(f"INSERT INTO {ref.sql} ({columns}) SELECT {columns} FROM breaking_row")
    assert content(spark, ref) == before


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_a_column_the_table_does_not_have_is_refused_unless_the_table_is_extensible(spark, lake, table):
    frame = valid_frame(spark, table).withColumn("surprise", F.lit(1))
    ref = table_ref(lake, table)
    if table.extensible:
        write_table(spark, ref, frame, user_metadata={})
        assert "surprise" in read_table(spark, ref).columns
    else:
        with pytest.raises(SchemaError, match=rf"table {table.name}: column 'surprise' is not in the table"):
            write_table(spark, ref, frame, user_metadata={})
        assert not table_exists(spark, ref)


def test_types_compare_without_nullability_but_with_nested_fields():
    declared = Table(
        "t",
        T.StructType(
            [T.StructField("a", T.ArrayType(T.StructType([T.StructField("x", T.DoubleType(), False)])))]
        ),
        keys=(),
        description="",
    )
    loose = T.StructType(
        [T.StructField("a", T.ArrayType(T.StructType([T.StructField("x", T.DoubleType())]), True))]
    )
    check_frame(declared, loose)
    renamed = T.StructType(
        [T.StructField("a", T.ArrayType(T.StructType([T.StructField("y", T.DoubleType())])))]
    )
    with pytest.raises(SchemaError, match="column 'a' is array<struct<y:double>>, the table holds"):
        check_frame(declared, renamed)


def test_a_table_written_by_an_earlier_contract_gains_the_columns_declared_since(spark, lake):
    """segment_profiles without `value_share` (as the contract had it before `segment clv`):
    the next write adds the nullable column, and the old rows read it as null."""
    ref = table_ref(lake, SEGMENT_PROFILES)
    older = T.StructType([f for f in SEGMENT_PROFILES.schema.fields if f.name != VALUE_SHARE])
    spark.sql(f"CREATE TABLE {ref.sql} ({ddl(older)}) USING DELTA")
    old_row = spark.createDataFrame([tuple(sample_value(f.dataType) for f in older.fields)], older)
    old_row.write.format("delta").mode("append").save(ref.path)
    frame = valid_frame(spark, SEGMENT_PROFILES).withColumn(ASSIGNMENT_ID, F.lit("new"))
    write_table(spark, ref, frame, user_metadata={}, replace_where=f"{ASSIGNMENT_ID} = 'new'")
    shares = {row[ASSIGNMENT_ID]: row[VALUE_SHARE] for row in read_table(spark, ref).collect()}
    assert shares == {"x": None, "new": 0.5}
    assert "ADD COLUMNS" in table_history_operations(spark, ref)


def table_history_operations(spark, ref) -> list[str]:
    return [commit["operation"] for commit in table_history(spark, ref)]


def test_a_server_that_refuses_the_commit_metadata_property_still_commits(spark, lake, monkeypatch, caplog):
    """Databricks serverless refuses `spark.conf.set` of most Spark properties, Delta's
    commitInfo.userMetadata among them, with CONFIG_NOT_AVAILABLE: the SQL commits (CREATE,
    MERGE, DELETE) go ahead without their metadata, and the writer's commits keep theirs."""
    conf_set = spark.conf.set

    def serverless_set(key, value):
        if key == COMMIT_METADATA_PROPERTY:
            raise AnalysisException(f"[CONFIG_NOT_AVAILABLE] {key}", errorClass="CONFIG_NOT_AVAILABLE")
        conf_set(key, value)

    monkeypatch.setattr(spark.conf, "set", serverless_set)
    _warn_property_refused.cache_clear()  # it warns once per process
    ref = table_ref(lake, SEGMENT_PROFILES)
    rows = valid_frame(spark, SEGMENT_PROFILES)
    upsert(spark, ref, rows, user_metadata={"stage": "test"})
    delete_where(spark, ref, "1 = 1", user_metadata={"stage": "test"})
    write_table(spark, ref, rows, user_metadata={"stage": "writer"})

    assertDataFrameEqual(read_table(spark, ref), rows)
    history = table_history(spark, ref)
    assert [(c["operation"], c["user_metadata"]) for c in history] == [
        ("CREATE TABLE", {}),
        ("MERGE", {}),
        ("DELETE", {}),
        ("WRITE", {"stage": "writer"}),
    ]
    assert "refuses spark.databricks.delta.commitInfo.userMetadata" in caplog.text


def test_any_other_refusal_of_the_commit_metadata_property_stops_the_commit(spark, lake, monkeypatch):
    def failing_set(key, value):
        raise AnalysisException("something else", errorClass="INTERNAL_ERROR")

    monkeypatch.setattr(spark.conf, "set", failing_set)
    ref = table_ref(lake, SEGMENT_PROFILES)
    with pytest.raises(AnalysisException, match="something else"):
        upsert(spark, ref, valid_frame(spark, SEGMENT_PROFILES), user_metadata={"stage": "test"})
