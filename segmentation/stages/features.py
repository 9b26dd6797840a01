"""`segment features`: bronze `transactions` -> silver `customer_features` for one as-of date.

The table is partitioned by `as_of_date`; re-running a date replaces that slice in one commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.features import build_customer_features, feature_levels
from segmentation.io import TableWrite, read_table, table_exists, table_ref, table_version, write_table
from segmentation.tables import (
    AS_OF_DATE,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    CUSTOMER_VALUE,
    CUSTOMERS,
    EXPECTED_ORDER_VALUE,
    ORDER_TS,
    P_ALIVE,
    TRANSACTIONS,
    clv_in,
    expected_purchases_in,
)

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
    # Pinned to one version: every job below reads the same snapshot, whatever an ingest
    # running meanwhile commits.
    transactions_version = table_version(spark, transactions_ref)
    transactions = read_table(spark, transactions_ref, transactions_version)
    if transactions.filter(F.to_date(ORDER_TS) <= F.lit(as_of_date)).limit(1).count() == 0:
        raise InputError(
            f"table {TRANSACTIONS.name}: no transaction on or before features.as_of_date {as_of_date}"
        )
    customers_ref = table_ref(cfg.lake, CUSTOMERS)
    customers = (
        read_table(spark, customers_ref, table_version(spark, customers_ref))
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


def read_customer_features(spark: SparkSession, cfg: Config) -> tuple[DataFrame, int]:
    """The as-of slice of `customer_features` at its current version, with `customer_value`'s
    P(alive), expected order value, expected purchases and CLV for the same date joined when
    `segment clv` has written them: what the sweep can cluster on (`model.feature_columns`) and
    what the segment profiles describe."""
    as_of_date = cfg.features.as_of_date
    ref = table_ref(cfg.lake, CUSTOMER_FEATURES)
    if not table_exists(spark, ref):
        raise InputError(
            f"table {CUSTOMER_FEATURES.name} does not exist at {ref}; run `segment features` first"
        )
    version = table_version(spark, ref)
    features = read_table(spark, ref, version).filter(F.col(AS_OF_DATE) == F.lit(as_of_date))
    value_ref = table_ref(cfg.lake, CUSTOMER_VALUE)
    if not table_exists(spark, value_ref):
        return features, version
    values = read_table(spark, value_ref, table_version(spark, value_ref)).filter(
        F.col(AS_OF_DATE) == F.lit(as_of_date)
    )
    wanted = [P_ALIVE, EXPECTED_ORDER_VALUE]
    wanted += [name for h in cfg.clv.horizons for name in (expected_purchases_in(h), clv_in(h))]
    columns = [column for column in wanted if column in values.columns]
    if not columns or values.limit(1).count() == 0:
        return features, version
    return features.join(values.select(CUSTOMER_ID, *columns), CUSTOMER_ID, "left"), version
