"""The feature transform under different Spark SQL settings, each against the features floor.

For levers of the aggregation (e.g. ObjectHashAggregate's sort fallback) on a cached dataset
that bench/run.py has ingested. Settings apply in the order given; `floor` times the floor.

    .venv/bin/python bench/features_conf.py --customers 1000000 floor \
        spark.sql.objectHashAggregate.sortBased.fallbackThreshold=128 \
        spark.sql.objectHashAggregate.sortBased.fallbackThreshold=100000000 floor
"""

from __future__ import annotations

import argparse
import time

from bench_data import dataset_overrides
from floors import features_floor

from segmentation.config import load_config
from segmentation.features import build_customer_features, feature_levels
from segmentation.io import read_table, table_ref
from segmentation.spark import get_spark
from segmentation.tables import TRANSACTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("steps", nargs="+", metavar="floor|KEY=VALUE")
    args = parser.parse_args()

    cfg = load_config(None, dataset_overrides(args.customers))
    spark = get_spark(cfg.spark)
    transactions_ref = table_ref(cfg.lake, TRANSACTIONS)
    as_of = cfg.features.as_of_date
    transactions = read_table(spark, transactions_ref)
    print(f"transactions {transactions.count():,} in {len(transactions.inputFiles())} files")
    categories, channels = feature_levels(transactions, as_of, cfg.features)

    def transform() -> None:
        build_customer_features(
            read_table(spark, transactions_ref),
            as_of,
            cfg.features,
            categories=categories,
            channels=channels,
        ).write.format("noop").mode("overwrite").save()

    for step in args.steps:
        started = time.perf_counter()
        if step == "floor":
            features_floor(cfg, spark)
        else:
            key, value = step.split("=", 1)
            spark.conf.set(key, value)
            transform()
        label = "floor" if step == "floor" else f"transform {step}"
        print(f"{label:<72} {time.perf_counter() - started:7.2f} s")


if __name__ == "__main__":
    main()
