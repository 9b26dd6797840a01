"""`segment ingest`: raw input -> bronze `transactions` (and `customers`), rejects kept aside.

Validation runs before any write; the writes then happen as one all-or-nothing group, so a
failed run leaves every Delta table as it was.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Optional, Union

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common import log, stage_main
from segmentation.config import Config, CustomersInput, TransactionsInput
from segmentation.errors import InputError
from segmentation.ingest import (
    CUSTOMER_RULES,
    CUSTOMERS,
    TRANSACTION_RULES,
    TRANSACTIONS,
    ParsedInput,
    RejectReport,
    check_rejects,
    parse_customers,
    parse_transactions,
    protect_pii,
)
from segmentation.io import (
    all_or_nothing,
    last_commit,
    read_source,
    resolve_path,
    source_exists,
    table_ref,
    write_table,
)


def run_ingest(cfg: Config, spark: SparkSession) -> str:
    salt = os.environ.get(cfg.ingest.pii_salt_env) or cfg.ingest.pii_salt
    max_share = cfg.ingest.max_reject_share
    as_of_date = cfg.features.as_of_date
    tx_cfg = cfg.input.transactions
    transactions = parse_transactions(
        _read(spark, tx_cfg, TRANSACTIONS, salt), tx_cfg, as_of_date, _describe(tx_cfg)
    )
    checked: list[tuple[ParsedInput, RejectReport]] = [
        (transactions, check_rejects(transactions, TRANSACTION_RULES, max_share))
    ]
    customers_cfg = cfg.input.customers
    if customers_cfg.path:
        customers = parse_customers(
            _read(spark, customers_cfg, CUSTOMERS, salt), customers_cfg, _describe(customers_cfg)
        )
        checked.append((customers, check_rejects(customers, CUSTOMER_RULES, max_share)))

    ingested_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    refs = [
        ref
        for parsed, _ in checked
        for ref in (table_ref(cfg.lake, parsed.table), _rejected_ref(cfg, parsed.table))
    ]
    lines = []
    with all_or_nothing(spark, refs):
        for parsed, report in checked:
            metadata = {
                "stage": "ingest",
                "table": parsed.table,
                "as_of_date": as_of_date,
                "rows_read": report.rows_read,
                "rows_rejected": report.rows_rejected,
                "config_hash": cfg.fingerprint(),
                "ingested_at": ingested_at,
            }
            ref = table_ref(cfg.lake, parsed.table)
            write_table(parsed.valid.dropDuplicates(), ref, metadata)
            written = int(last_commit(spark, ref)["metrics"].get("numOutputRows", 0))
            duplicates = report.rows_read - report.rows_rejected - written
            rejected_ref = _rejected_ref(cfg, parsed.table)
            write_table(parsed.rejected.withColumn("ingested_at", F.lit(ingested_at)), rejected_ref, metadata)
            log.info(
                "%s: %s; %s exact duplicates dropped", parsed.table, report.describe(), f"{duplicates:,}"
            )
            lines.append(
                f"  {parsed.table:<22}{written:>12,} rows  -> {ref}\n"
                f"  {parsed.table + '_rejected':<22}{report.rows_rejected:>12,} rows  -> {rejected_ref}"
                f"  ({report.describe()}; {duplicates:,} exact duplicates dropped)"
            )
    return "ingested\n" + "\n".join(lines)


def _read(
    spark: SparkSession, input_cfg: Union[TransactionsInput, CustomersInput], table: str, salt: Optional[str]
):
    if not source_exists(spark, input_cfg.path, input_cfg.format):
        raise InputError(f"table {table}: input {_describe(input_cfg)} does not exist")
    raw = read_source(spark, input_cfg.path, input_cfg.format, input_cfg.options)
    return protect_pii(raw, input_cfg.pii, salt, table)


def _describe(input_cfg: Union[TransactionsInput, CustomersInput]) -> str:
    location = input_cfg.path if input_cfg.format == "table" else resolve_path(input_cfg.path)
    return f"{location} ({input_cfg.format})"


def _rejected_ref(cfg: Config, table: str):
    return table_ref(cfg.lake, f"{table}_rejected")


def main() -> None:
    stage_main("ingest")


if __name__ == "__main__":
    main()
