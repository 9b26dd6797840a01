"""`segment generate`: synthetic raw input with planted personas, and the personas as labels."""

from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.common import log, stage_main
from segmentation.config import Config
from segmentation.generate import CUSTOMER_PERSONAS, generate
from segmentation.io import resolve_path, table_ref, write_source, write_table


def run_generate(cfg: Config, spark: SparkSession) -> str:
    settings = cfg.generate
    end_date = settings.end_date or cfg.features.as_of_date
    data = generate(
        spark,
        customers=settings.customers,
        seed=settings.seed,
        start_date=settings.start_date,
        end_date=end_date,
        dirty_share=settings.dirty_share,
        partitions=settings.partitions,
    )
    log.info("generating %s customers (seed %s) up to %s", f"{settings.customers:,}", settings.seed, end_date)
    write_source(data.transactions, settings.transactions_path, settings.format)
    write_source(data.customers, settings.customers_path, settings.format)
    personas_ref = table_ref(cfg.lake, CUSTOMER_PERSONAS)
    write_table(
        data.personas,
        personas_ref,
        {"stage": "generate", "seed": settings.seed, "customers": settings.customers},
    )
    return (
        f"generated {settings.customers:,} customers\n"
        f"  transactions  {resolve_path(settings.transactions_path)} ({settings.format})\n"
        f"  customers     {resolve_path(settings.customers_path)} ({settings.format})\n"
        f"  personas      {personas_ref}"
    )


def main() -> None:
    stage_main("generate")


if __name__ == "__main__":
    main()
