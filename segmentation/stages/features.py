"""`segment features`: bronze `transactions` -> silver `customer_features` for one as-of date.

The table is partitioned by `as_of_date`; re-running a date replaces that slice in one commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.features import build_customer_features, feature_levels
from segmentation.io import TableWrite, read_table, table_exists, table_ref, table_version, write_table
from segmentation.tables import AS_OF_DATE, CUSTOMER_FEATURES, CUSTOMERS, ORDER_TS, TRANSACTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturesResult:
    as_of_date: dt.date
    customers: int
    columns: int
    categories: tuple[str, ...]
    channels: tuple[str, ...]
    transactions_version: int
    written: TableWrite


def run_features(cfg: Config, spark: SparkSession) -> FeaturesResult:
    as_of_date = cfg.features.as_of_date
    transactions_ref = table_ref(cfg.lake, TRANSACTIONS)
    transactions = read_table(spark, transactions_ref)
    transactions_version = table_version(spark, transactions_ref)
    if transactions.filter(F.to_date(ORDER_TS) <= F.lit(as_of_date)).limit(1).count() == 0:
        raise InputError(
            f"table {TRANSACTIONS.name}: no transaction on or before features.as_of_date {as_of_date}"
        )
    customers_ref = table_ref(cfg.lake, CUSTOMERS)
    customers = (
        read_table(spark, customers_ref)
        if cfg.input.customers.path and table_exists(spark, customers_ref)
        else None
    )
    categories, channels = feature_levels(transactions, as_of_date, cfg.features)
    log.info("features as of %s; categories %s; channels %s", as_of_date, categories, channels)
    customer_features = build_customer_features(
        transactions, as_of_date, cfg.features, categories=categories, channels=channels, customers=customers
    )
    written = write_table(
        spark,
        table_ref(cfg.lake, CUSTOMER_FEATURES),
        customer_features,
        user_metadata={
            "stage": "features",
            "as_of_date": as_of_date,
            "transactions_version": transactions_version,
            "categories": categories,
            "channels": channels,
            "config_hash": cfg.fingerprint(),
        },
        replace_where=f"{AS_OF_DATE} = DATE'{as_of_date.isoformat()}'",
    )
    return FeaturesResult(
        as_of_date=as_of_date,
        customers=written.rows or 0,
        columns=len(customer_features.columns),
        categories=tuple(categories),
        channels=tuple(channels),
        transactions_version=transactions_version,
        written=written,
    )
