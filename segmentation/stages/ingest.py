"""`segment ingest`: raw input -> bronze `transactions` (and `customers`), rejects kept aside.

Validation runs before any write, so bad input leaves every table as it was. Each table is
then replaced in one Delta commit (a reader sees its previous rows or all the new ones, even
if the process is killed), rejects first and `transactions`, which every later stage reads,
last. A run killed between commits leaves new rejects beside the previous bronze rows, and
the next run replaces them all; nothing is ever rolled back.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.config import Config, CustomersInput, TransactionsInput
from segmentation.errors import SchemaError
from segmentation.ingest import (
    CUSTOMER_RULES,
    TRANSACTION_RULES,
    ParsedInput,
    RejectReport,
    check_rejects,
    parse_customers,
    parse_transactions,
    protect_pii,
)
from segmentation.io import TableWrite, check_writable, read_source, resolve_path, table_ref, write_table
from segmentation.tables import CUSTOMERS, INGESTED_AT, REJECTED, TRANSACTIONS

log = logging.getLogger(__name__)

_BRONZE = {TRANSACTIONS.name: TRANSACTIONS, CUSTOMERS.name: CUSTOMERS}


@dataclass(frozen=True)
class IngestedTable:
    """One bronze table: what was read, kept, rejected (by rule), and what the duplicate policy
    (`exact`, `key` or `none`, after `auto` is resolved) dropped or kept as possible duplicates."""

    table: str
    written: TableWrite
    rejected: TableWrite
    report: RejectReport
    dedupe: str
    duplicates_dropped: int
    possible_duplicates: int  # identical lines kept (policy none): separate purchases, or not


@dataclass(frozen=True)
class IngestResult:
    tables: tuple[IngestedTable, ...]
    ingested_at: dt.datetime


def run_ingest(cfg: Config, spark: SparkSession) -> IngestResult:
    salt = os.environ.get(cfg.ingest.pii_salt_env) or cfg.ingest.pii_salt
    max_share = cfg.ingest.max_reject_share
    tx_cfg = cfg.input.transactions
    ingested_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    transactions = parse_transactions(
        _read(spark, tx_cfg, table=TRANSACTIONS.name, salt=salt),
        tx_cfg,
        max_order_ts=cfg.ingest.max_order_ts or ingested_at,
        source=_describe(tx_cfg),
    )
    checked: list[tuple[ParsedInput, RejectReport]] = [
        (transactions, check_rejects(transactions, TRANSACTION_RULES, max_share))
    ]
    customers_cfg = cfg.input.customers
    if customers_cfg.path:
        customers = parse_customers(
            _read(spark, customers_cfg, table=CUSTOMERS.name, salt=salt),
            customers_cfg,
            _describe(customers_cfg),
        )
        checked.append((customers, check_rejects(customers, CUSTOMER_RULES, max_share)))

    for parsed, _ in checked:  # every table writable before the first write
        check_writable(spark, table_ref(cfg.lake, _BRONZE[parsed.table]), parsed.valid.schema)
    metadata = {
        parsed.table: _metadata(cfg, report, table=parsed.table, ingested_at=ingested_at)
        for parsed, report in checked
    }
    rejects = {
        parsed.table: write_table(  # every rejects table first
            spark,
            table_ref(cfg.lake, REJECTED[parsed.table]),
            _stamped(parsed, ingested_at),
            user_metadata=metadata[parsed.table],
        )
        for parsed, _ in checked
    }
    ingested = [
        _write(
            spark,
            cfg,
            parsed,
            report=report,
            metadata=metadata[parsed.table],
            rejected=rejects[parsed.table],
        )
        for parsed, report in reversed(checked)  # customers, then transactions last
    ]
    return IngestResult(tables=tuple(reversed(ingested)), ingested_at=ingested_at)


def _metadata(cfg: Config, report: RejectReport, *, table: str, ingested_at: dt.datetime) -> dict:
    return {
        "stage": "ingest",
        "table": table,
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "config_hash": cfg.fingerprint(),
        "ingested_at": ingested_at,
    }


def _write(
    spark: SparkSession,
    cfg: Config,
    parsed: ParsedInput,
    *,
    report: RejectReport,
    metadata: dict,
    rejected: TableWrite,
) -> IngestedTable:
    """The table's valid rows, duplicates handled by the policy, in one commit."""
    table = _BRONZE[parsed.table]
    policy = dedupe_policy(cfg) if table is TRANSACTIONS else "exact"
    if rejected.rows is not None and rejected.rows != report.rows_rejected:
        # Every raw row lands once: kept, rejected or dropped as a duplicate. A mismatch here
        # is a bug, caught before the table every later stage reads is replaced.
        raise SchemaError(
            f"table {rejected.table}: {rejected.rows:,} rows written for {report.rows_rejected:,} "
            f"rejected rows of {table.name}; {table.name} was not replaced"
        )
    valid = parsed.valid
    if policy == "exact":
        valid = valid.dropDuplicates()
    elif policy == "key":
        valid = valid.dropDuplicates(list(cfg.ingest.dedupe_key))
    written = write_table(spark, table_ref(cfg.lake, table), valid, user_metadata=metadata)
    dropped = report.rows_read - report.rows_rejected - (written.rows or 0)
    possible = (written.rows or 0) - parsed.valid.distinct().count() if policy == "none" else 0
    log.info(
        "%s: %s; dedupe %s: %s dropped, %s identical lines kept",
        table.name,
        report.describe(),
        policy,
        f"{dropped:,}",
        f"{possible:,}",
    )
    return IngestedTable(table.name, written, rejected, report, policy, dropped, possible)


def dedupe_policy(cfg: Config) -> str:
    """`ingest.dedupe` with `auto` resolved: without an order id, identical lines are separate
    purchases of the same thing on the same day (CDNOW has 255 of them), so they are kept."""
    if cfg.ingest.dedupe != "auto":
        return cfg.ingest.dedupe
    return "exact" if cfg.input.transactions.columns.order_id else "none"


def _stamped(parsed: ParsedInput, ingested_at: dt.datetime) -> DataFrame:
    return parsed.rejected.withColumn(INGESTED_AT, F.lit(ingested_at))


def _read(
    spark: SparkSession, input_cfg: TransactionsInput | CustomersInput, *, table: str, salt: Optional[str]
) -> DataFrame:
    raw = read_source(spark, input_cfg, table=table)
    return protect_pii(raw, input_cfg.pii, salt=salt, table=table)


def _describe(input_cfg: TransactionsInput | CustomersInput) -> str:
    location = input_cfg.path if input_cfg.format == "table" else resolve_path(input_cfg.path)
    return f"{location} ({input_cfg.format})"
