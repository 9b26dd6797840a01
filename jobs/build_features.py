"""`segment features`: bronze `transactions` -> silver `customer_features` for one as_of_date.

The table is partitioned by `as_of_date`; re-running a date replaces that slice in one commit.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common import log, stage_main
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.features import AS_OF_DATE, CUSTOMER_FEATURES, build_customer_features, feature_levels
from segmentation.ingest import CUSTOMERS, TRANSACTIONS
from segmentation.io import last_commit, read_table, table_exists, table_ref, table_version, write_table


def run_features(cfg: Config, spark: SparkSession) -> str:
    as_of_date = cfg.features.as_of_date
    transactions_ref = table_ref(cfg.lake, TRANSACTIONS)
    transactions = read_table(spark, transactions_ref)
    transactions_version = table_version(spark, transactions_ref)
    if transactions.filter(F.to_date("order_ts") <= F.lit(as_of_date)).limit(1).count() == 0:
        raise InputError(
            f"table {TRANSACTIONS}: no transaction on or before features.as_of_date {as_of_date}"
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
        transactions, as_of_date, cfg.features, categories, channels, customers
    )
    features_ref = table_ref(cfg.lake, CUSTOMER_FEATURES)
    write_table(
        customer_features,
        features_ref,
        {
            "stage": "features",
            "as_of_date": as_of_date,
            "transactions_version": transactions_version,
            "categories": categories,
            "channels": channels,
            "config_hash": cfg.fingerprint(),
        },
        partition_by=[AS_OF_DATE],
        replace_where=f"{AS_OF_DATE} = DATE'{as_of_date.isoformat()}'",
        merge_schema=True,
    )
    commit = last_commit(spark, features_ref)
    rows = int(commit["metrics"].get("numOutputRows", 0))
    return (
        f"customer features as of {as_of_date}: {rows:,} customers, "
        f"{len(customer_features.columns)} columns -> {features_ref} (version {commit['version']})"
    )


def main() -> None:
    stage_main("features")


if __name__ == "__main__":
    main()
