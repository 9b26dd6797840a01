"""Files a user really hands over, through the CLI: each is either a one-line error naming the
file, column and rule, exit 1, every table unchanged, or rows rejected with their reason and
counted, under the reject threshold."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import lake_state
from pyspark.sql import functions as F

from segmentation import tables
from segmentation.cli import main
from segmentation.config import Config, load_config, overrides_under
from segmentation.io import read_table, table_ref

HEADER = "customer_id,order_ts,amount,order_id,quantity,category,channel"
GOOD_ROWS = [f"{i:05d},2025-01-{i % 28 + 1:02d} 09:00:00,{i}.25,O{i},1,books,web" for i in range(1, 61)]


class Lake:
    """A tmp lake with one good ingest in it, and the CLI run against it."""

    def __init__(self, root: Path):
        self.root = root
        self.sets = [
            *overrides_under(root),
            "input.transactions.format=csv",
            "input.customers.path=null",
            "features.as_of_date=2025-01-31",
        ]
        self.write_csv(HEADER, GOOD_ROWS)

    @property
    def transactions(self) -> Path:
        return self.root / "raw" / "transactions"

    def config(self, *more: str) -> Config:
        return load_config(None, [*self.sets, *more])

    def write_csv(self, header: str, rows: list[str]) -> None:
        self.write_bytes(("\n".join([header, *rows]) + "\n").encode())

    def write_bytes(self, content: bytes) -> None:
        self.transactions.mkdir(parents=True, exist_ok=True)
        for old in self.transactions.iterdir():
            old.unlink()
        (self.transactions / "part-0.csv").write_bytes(content)

    def ingest(self, capsys, *more: str) -> tuple[int, str]:
        """`segment ingest`: its exit code and its `error:` lines."""
        with pytest.raises(SystemExit) as exit_info:
            main(["ingest", *(f"--set={s}" for s in (*self.sets, *more))])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        return exit_info.value.code, "\n".join(errors)


@pytest.fixture
def lake(spark, tmp_path, capsys) -> Lake:
    lake = Lake(tmp_path)
    assert lake.ingest(capsys) == (0, "")
    return lake


def fails(spark, lake: Lake, capsys, expected: str, *more: str) -> None:
    before = lake_state(spark, lake.config())
    code, error = lake.ingest(capsys, *more)
    assert code == 1
    assert error.count("\n") == 0 and expected in error, error
    assert lake_state(spark, lake.config()) == before


def rejected(spark, lake: Lake, capsys, *more: str) -> dict[str, int]:
    """Ingest succeeds; the rejects by reason."""
    assert lake.ingest(capsys, *more) == (0, "")
    rejects = read_table(spark, table_ref(lake.config().lake, tables.TRANSACTIONS_REJECTED))
    return {row[0]: row[1] for row in rejects.groupBy(tables.REJECT_REASON).count().collect()}


def test_a_zero_byte_file_is_an_error(spark, lake, capsys):
    lake.write_bytes(b"")
    fails(
        spark,
        lake,
        capsys,
        f"table transactions: input {lake.transactions} (csv) is empty: no header and no rows",
    )


def test_a_header_only_file_is_an_error(spark, lake, capsys):
    lake.write_csv(HEADER, [])
    fails(spark, lake, capsys, f"table transactions: the input {lake.transactions} (csv) has no rows")


def test_bytes_that_are_not_utf8_reject_the_row(spark, lake, capsys):
    lake.write_bytes(
        ("\n".join([HEADER, *GOOD_ROWS]) + "\n").encode() + b"\xff\xfe01,2025-01-02,1.0,X,1,books,web\n"
    )
    assert rejected(spark, lake, capsys) == {"invalid UTF-8 text in customer_id": 1}


def test_ragged_rows_are_rejected_not_padded_or_cut(spark, lake, capsys):
    lake.write_csv(
        HEADER,
        [*GOOD_ROWS, "00070,2025-01-02 09:00:00,5.0", "00071,2025-01-02 09:00:00,5.0,O71,1,books,web,x"],
    )
    assert rejected(spark, lake, capsys) == {"malformed row: its field count differs from the header": 2}
    kept = read_table(spark, table_ref(lake.config().lake, tables.TRANSACTIONS))
    assert kept.filter(F.col(tables.CUSTOMER_ID).isin("00070", "00071")).count() == 0


def test_parquet_files_configured_as_csv_are_an_error(spark, lake, capsys):
    for old in lake.transactions.iterdir():
        old.unlink()
    lake.transactions.rmdir()
    spark.createDataFrame(
        [("1", "2025-01-02", "1.0")], "customer_id string, order_ts string, amount string"
    ).write.parquet(str(lake.transactions))
    fails(
        spark,
        lake,
        capsys,
        "is configured as csv but holds Parquet files; set input.transactions.format: parquet",
    )


def test_csv_files_configured_as_parquet_are_an_error(spark, lake, capsys):
    fails(
        spark,
        lake,
        capsys,
        f"table transactions: input {lake.transactions} is configured as parquet but is not Parquet",
        "input.transactions.format=parquet",
    )


def test_nan_infinity_and_overflowing_amounts_are_rejected(spark, lake, capsys):
    bad = [
        f"0009{i},2025-01-02 09:00:00,{amount},N{i},1,books,web"
        for i, amount in enumerate(["NaN", "Infinity", "1e309"])
    ]
    lake.write_csv(HEADER, [*GOOD_ROWS, *bad])
    assert rejected(spark, lake, capsys) == {"non-finite amount": 3}


def test_whitespace_only_ids_are_missing_ids(spark, lake, capsys):
    lake.write_csv(HEADER, [*GOOD_ROWS, "   ,2025-01-02 09:00:00,1.0,W1,1,books,web"])
    assert rejected(spark, lake, capsys) == {"missing customer_id": 1}


def test_currency_symbols_and_thousands_separators_are_rejected_not_guessed(spark, lake, capsys):
    lake.write_csv(
        HEADER,
        [
            *GOOD_ROWS,
            "00080,2025-01-02 09:00:00,$12.50,C1,1,books,web",
            '00081,2025-01-02 09:00:00,"1,234.50",C2,1,books,web',
        ],
    )
    assert rejected(spark, lake, capsys) == {"unparseable amount": 2}


def test_a_new_source_column_between_ingests_is_ignored(spark, lake, capsys):
    lake.write_csv(f"{HEADER},coupon", [f"{row},SAVE10" for row in GOOD_ROWS])
    assert lake.ingest(capsys) == (0, "")
    assert (
        read_table(spark, table_ref(lake.config().lake, tables.TRANSACTIONS)).columns
        == tables.TRANSACTIONS.columns
    )


def test_a_retyped_extra_column_between_ingests_is_an_error(spark, lake, capsys, tmp_path):
    customers = tmp_path / "raw" / "customers"
    sets = ("input.customers.path=" + str(customers), "input.customers.extra_columns=[loyalty_tier]")
    pii = "email string, full_name string"  # the PII columns base.yaml names for customers

    def write_customers(tier, tier_type: str) -> None:
        frame = spark.createDataFrame(
            [("00001", tier, "a@b.c", "A")], f"customer_id string, loyalty_tier {tier_type}, {pii}"
        )
        frame.write.mode("overwrite").parquet(str(customers))

    write_customers(3, "int")
    assert lake.ingest(capsys, *sets) == (0, "")
    write_customers("gold", "string")
    fails(
        spark,
        lake,
        capsys,
        "table customers: column 'loyalty_tier' is string in this input, the table holds int",
        *sets,
    )
