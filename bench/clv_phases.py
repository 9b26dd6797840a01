"""Where `segment clv`'s time goes, phase by phase, on a cached dataset that bench/run.py has ingested.

    .venv/bin/python bench/clv_phases.py --customers 1000000 --set spark.maven_repo=/root/.m2/repository

Prints the seconds of each phase of `segmentation.stages.clv.run_clv` run on its own: the
per-customer summary (persisted, as the stage does), the sizes of the frames the fits and the
per-customer values run over, each fit, and the customer_value columns written to Spark's
`noop` sink (computed, not stored). bench/run.py times the whole stage against the features.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

from bench_data import dataset_overrides
from pyspark import StorageLevel

from segmentation import clv
from segmentation.config import load_config
from segmentation.io import read_table, table_ref
from segmentation.spark import get_spark
from segmentation.stages.clv import customer_value_frame, fit_options
from segmentation.tables import TRANSACTIONS

Result = TypeVar("Result")


def timed(label: str, phase: Callable[[], Result]) -> Result:
    started = time.perf_counter()
    result = phase()
    print(f"{label:<40} {time.perf_counter() - started:8.1f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(None, [*dataset_overrides(args.customers), *args.overrides])
    spark = get_spark(cfg.spark)
    settings, as_of_date = cfg.clv, cfg.features.as_of_date

    transactions = read_table(spark, table_ref(cfg.lake, TRANSACTIONS))
    summary = clv.summary_frame(transactions, as_of_date, time_unit=settings.time_unit)
    summary = summary.persist(StorageLevel.MEMORY_AND_DISK)
    customers = timed("summary (persisted)", summary.count)
    combinations, spend = clv.combination_counts(summary), clv.spend_counts(summary)
    sizes = {
        "customers": customers,
        "(x, t_x, T) combinations": combinations.count(),
        "(x, m_x) spend rows": spend.count(),
        "(x, T) histories": summary.select(clv.X, clv.T_CAL).distinct().count(),
        "clv.max_driver_rows": settings.max_driver_rows,
    }
    for name, size in sizes.items():
        print(f"{name:<40} {size:>10,}")
    options = fit_options(settings)
    bg_nbd = timed("fit BG/NBD", lambda: clv.fit_bgnbd(combinations, **options))
    print(f"  {bg_nbd}")
    gamma_gamma = timed("fit Gamma-Gamma", lambda: clv.fit_gamma_gamma(spend, **options))
    print(f"  {gamma_gamma}")
    values = customer_value_frame(cfg, summary, bg_nbd=bg_nbd, gamma_gamma=gamma_gamma)
    timed("customer_value columns (noop sink)", lambda: values.write.format("noop").mode("overwrite").save())


if __name__ == "__main__":
    main()
