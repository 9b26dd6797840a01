"""Ingestion: one test per input rule; each failing rule names what broke and leaves the lake as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import lake_state
from pyspark.testing import assertDataFrameEqual

import segmentation.stages.ingest
from segmentation import tables
from segmentation.errors import InputError
from segmentation.io import read_table, table_ref
from segmentation.stages.ingest import run_ingest

HEADER = "customer_id,order_ts,amount,order_id,quantity,category,channel"
GOOD_ROWS = [
    "00001,2025-01-02 10:00:00,10.50,A1,1,grocery,web",
    "00001,2025-01-03 11:00:00,-2.00,R1,1,grocery,web",
    "00002,2025-01-04 12:00:00,99.99,B1,2,toys,store",
    "00003,2025-01-05,5,C1,1,books,app",
] + [f"{i:05d},2025-01-06 09:00:00,1.00,D{i},1,books,web" for i in range(10, 40)]


def write_csv(folder: Path, header: str, rows: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture
def csv_config(tmp_path, make_config):
    """A config reading CSV transactions (and, with customers=True, CSV customers) from tmp."""

    def build(rows, header=HEADER, customers=None, *overrides):
        write_csv(tmp_path / "raw" / "transactions", header, rows)
        customer_overrides = ["input.customers.path=null"]
        if customers is not None:
            write_csv(tmp_path / "raw" / "customers", customers[0], customers[1])
            customer_overrides = [
                "input.customers.format=csv",
                "input.customers.extra_columns=[email]",
                "input.customers.pii={email: hash, full_name: drop}",
            ]
        return make_config(
            "input.transactions.format=csv",
            "features.as_of_date=2025-01-31",
            *customer_overrides,
            *overrides,
        )

    return build


@pytest.fixture
def ingested(spark, csv_config):
    """A lake with one good ingest in it, so failing runs have something to leave untouched."""
    cfg = csv_config(GOOD_ROWS)
    run_ingest(cfg, spark)
    return cfg


def test_good_input_lands_in_bronze_with_types_and_leading_zeros(spark, ingested):
    transactions = read_table(spark, table_ref(ingested.lake, tables.TRANSACTIONS))
    assert dict(transactions.dtypes) == {
        "customer_id": "string",
        "order_ts": "timestamp",
        "amount": "double",
        "order_id": "string",
        "quantity": "double",
        "category": "string",
        "channel": "string",
    }
    assert transactions.count() == len(GOOD_ROWS)
    first = transactions.filter("order_id = 'A1'").first()
    assert (first.customer_id, first.amount) == ("00001", 10.5)
    date_only = transactions.filter("order_id = 'C1'").first()
    assert str(date_only.order_ts) == "2025-01-05 00:00:00"
    rejected = read_table(spark, table_ref(ingested.lake, tables.TRANSACTIONS_REJECTED))
    assert rejected.count() == 0


def test_row_rules_send_rows_to_rejected_with_a_reason(spark, csv_config):
    bad_rows = [
        ",2025-01-02 10:00:00,1.0,X1,1,toys,web",
        "00005,,1.0,X2,1,toys,web",
        "00006,2025-01-02 10:00:00,abc,X3,1,toys,web",
        "00007,2025-03-15 10:00:00,1.0,X4,1,toys,web",
        "00008,1899-12-31 23:59:59,1.0,X5,1,toys,web",
    ]
    later = "00009,2025-02-15 10:00:00,1.0,X6,1,toys,web"  # after as_of_date: kept for later dates
    cfg = csv_config(
        GOOD_ROWS * 10 + bad_rows + [later],
        HEADER,
        None,
        "ingest.max_reject_share=0.05",
        "ingest.max_order_ts=2025-03-01T00:00:00",
    )
    run_ingest(cfg, spark)
    kept = read_table(spark, table_ref(cfg.lake, tables.TRANSACTIONS))
    assert kept.filter("order_id = 'X6'").count() == 1
    rejected = read_table(spark, table_ref(cfg.lake, tables.TRANSACTIONS_REJECTED))
    expected = spark.createDataFrame(
        [
            (None, "2025-01-02 10:00:00", "X1", "missing customer_id"),
            ("00005", None, "X2", "missing order_ts"),
            ("00006", "2025-01-02 10:00:00", "X3", "unparseable amount"),
            ("00007", "2025-03-15 10:00:00", "X4", "order_ts after ingest.max_order_ts 2025-03-01 00:00:00"),
            ("00008", "1899-12-31 23:59:59", "X5", "order_ts before 1900-01-01 00:00:00"),
        ],
        "customer_id string, order_ts string, order_id string, reject_reason string",
    )
    assertDataFrameEqual(rejected.select(*expected.columns), expected)


def test_exact_duplicates_are_dropped_and_counted(spark, csv_config):
    cfg = csv_config(GOOD_ROWS + GOOD_ROWS[:3])
    result = run_ingest(cfg, spark)
    assert read_table(spark, table_ref(cfg.lake, tables.TRANSACTIONS)).count() == len(GOOD_ROWS)
    (transactions,) = result.tables
    assert (transactions.table, transactions.duplicates_dropped) == ("transactions", 3)
    assert (transactions.report.rows_read, transactions.written.rows) == (len(GOOD_ROWS) + 3, len(GOOD_ROWS))


def test_missing_required_column_names_column_and_file(spark, ingested, csv_config):
    before = lake_state(spark, ingested)
    header_without_amount = HEADER.replace(",amount", ",total")
    cfg = csv_config(GOOD_ROWS, header_without_amount)
    with pytest.raises(InputError, match=r"table transactions: required column 'amount'.*raw/transactions"):
        run_ingest(cfg, spark)
    assert lake_state(spark, cfg) == before


def test_unparseable_column_reports_count_and_examples(spark, ingested, csv_config):
    before = lake_state(spark, ingested)
    rows = [row.replace("2025-01-", "01/") for row in GOOD_ROWS]
    cfg = csv_config(rows, HEADER, None, "input.transactions.timestamp_format='yyyy-MM-dd HH:mm:ss'")
    with pytest.raises(InputError) as error:
        run_ingest(cfg, spark)
    message = str(error.value)
    assert f"column order_ts: {len(rows):,} of {len(rows):,} values (100.0%) cannot be parsed" in message
    assert "examples: ['01/0" in message
    assert lake_state(spark, cfg) == before


def test_too_many_rejects_fail_the_run_and_write_nothing(spark, ingested, csv_config):
    before = lake_state(spark, ingested)
    rows = GOOD_ROWS + [f",2025-01-02 10:00:00,1.0,N{i},1,toys,web" for i in range(5)]
    cfg = csv_config(rows)
    with pytest.raises(
        InputError,
        match=r"table transactions: 5 of 39 rows \(12.82%\) rejected.*missing "
        r"customer_id: 5.*max_reject_share=0.05; nothing was written",
    ):
        run_ingest(cfg, spark)
    assert lake_state(spark, cfg) == before


def test_missing_input_is_a_clear_error(spark, make_config):
    cfg = make_config("input.customers.path=null")
    with pytest.raises(
        InputError, match=r"table transactions: input .*raw/transactions \(parquet\) does not exist"
    ):
        run_ingest(cfg, spark)


def test_pii_is_hashed_or_dropped_before_writing(spark, csv_config):
    customers = (
        "customer_id,signup_date,birth_date,gender,region,email,full_name",
        ["00001,2024-01-01,1990-05-06,F,north,ann@example.com,Ann Smith"],
    )
    cfg = csv_config(GOOD_ROWS, HEADER, customers)
    run_ingest(cfg, spark)
    stored = read_table(spark, table_ref(cfg.lake, tables.CUSTOMERS))
    assert "full_name" not in stored.columns
    salt = cfg.ingest.pii_salt
    assert stored.first().email == hashlib.sha256(f"{salt}ann@example.com".encode()).hexdigest()
    assert str(stored.first().signup_date) == "2024-01-01"


def test_pii_hashing_without_a_salt_is_an_error(spark, csv_config, monkeypatch):
    monkeypatch.delenv("SEGMENTATION_PII_SALT", raising=False)
    customers = ("customer_id,email,full_name", ["00001,a@b.c,A"])
    cfg = csv_config(GOOD_ROWS, HEADER, customers, "ingest.pii_salt=null")
    with pytest.raises(InputError, match="PII hashing needs a salt"):
        run_ingest(cfg, spark)


def test_conflicting_customer_rows_are_rejected(spark, csv_config):
    customers = (
        "customer_id,signup_date,gender,email,full_name",
        [f"{i:05d},2024-01-01,F,x{i}@y.z,X" for i in range(40)]
        + ["00001,2024-01-01,F,x1@y.z,X", "00002,2024-02-02,M,x2@y.z,X"],
    )
    cfg = csv_config(GOOD_ROWS, HEADER, customers)
    run_ingest(cfg, spark)
    rejected = read_table(spark, table_ref(cfg.lake, tables.CUSTOMERS_REJECTED))
    assert sorted((r.customer_id, r.reject_reason) for r in rejected.collect()) == [
        ("00002", "conflicting duplicate customer_id"),
        ("00002", "conflicting duplicate customer_id"),
    ]
    assert read_table(spark, table_ref(cfg.lake, tables.CUSTOMERS)).count() == 39


def test_a_failure_between_commits_leaves_transactions_as_they_were_and_a_rerun_completes(
    spark, ingested, csv_config, monkeypatch
):
    """Rejects are committed first and transactions, what later stages read, last: a run that
    dies between them leaves the previous transactions, and nothing is rolled back."""
    before = lake_state(spark, ingested)
    cfg = csv_config(GOOD_ROWS[:10])
    real_write = segmentation.stages.ingest.write_table
    calls = []

    def fail_on_transactions(spark_session, ref, *args, **kwargs):
        calls.append(ref.label)
        if ref.label == "transactions":
            raise RuntimeError("disk full")
        return real_write(spark_session, ref, *args, **kwargs)

    monkeypatch.setattr(segmentation.stages.ingest, "write_table", fail_on_transactions)
    with pytest.raises(RuntimeError, match="disk full"):
        run_ingest(cfg, spark)
    assert calls == ["transactions_rejected", "transactions"]
    assert lake_state(spark, cfg)["transactions"] == before["transactions"]
    monkeypatch.undo()
    run_ingest(cfg, spark)
    assert read_table(spark, table_ref(cfg.lake, tables.TRANSACTIONS)).count() == 10
