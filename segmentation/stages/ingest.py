"""`segment ingest`: raw input -> bronze `transactions` (and `customers`), rejects kept aside.

Validation runs before any write; the writes then happen as one all-or-nothing group, so a
failed run leaves every Delta table as it was.
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
from segmentation.io import TableWrite, all_or_nothing, read_source, resolve_path, table_ref, write_table
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
    transactions = parse_transactions(
        _read(spark, tx_cfg, table=TRANSACTIONS.name, salt=salt),
        tx_cfg,
        as_of_date=cfg.features.as_of_date,
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

    ingested_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    refs = [
        table_ref(cfg.lake, table)
        for parsed, _ in checked
        for table in (_BRONZE[parsed.table], REJECTED[parsed.table])
    ]
    ingested = []
    with all_or_nothing(spark, refs):
        for parsed, report in checked:
            metadata = {
                "stage": "ingest",
                "table": parsed.table,
                "as_of_date": cfg.features.as_of_date,
                "rows_read": report.rows_read,
                "rows_rejected": report.rows_rejected,
                "config_hash": cfg.fingerprint(),
                "ingested_at": ingested_at,
            }
            ingested.append(
                _write(
                    spark,
                    cfg,
                    parsed,
                    report=report,
                    metadata=metadata,
                    rejected=_stamped(parsed, ingested_at),
                )
            )
    return IngestResult(tables=tuple(ingested), ingested_at=ingested_at)


def _write(
    spark: SparkSession,
    cfg: Config,
    parsed: ParsedInput,
    *,
    report: RejectReport,
    metadata: dict,
    rejected: DataFrame,
) -> IngestedTable:
    """The table's valid rows, duplicates handled by the policy, and its rejects, in two commits."""
    table = _BRONZE[parsed.table]
    policy = dedupe_policy(cfg) if table is TRANSACTIONS else "exact"
    valid = parsed.valid
    if policy == "exact":
        valid = valid.dropDuplicates()
    elif policy == "key":
        valid = valid.dropDuplicates(list(cfg.ingest.dedupe_key))
    written = write_table(spark, table_ref(cfg.lake, table), valid, user_metadata=metadata)
    dropped = report.rows_read - report.rows_rejected - (written.rows or 0)
    possible = (written.rows or 0) - parsed.valid.distinct().count() if policy == "none" else 0
    rejects = write_table(spark, table_ref(cfg.lake, REJECTED[table.name]), rejected, user_metadata=metadata)
    log.info(
        "%s: %s; dedupe %s: %s dropped, %s identical lines kept",
        table.name,
        report.describe(),
        policy,
        f"{dropped:,}",
        f"{possible:,}",
    )
    return IngestedTable(table.name, written, rejects, report, policy, dropped, possible)


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
