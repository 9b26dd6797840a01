"""`segment generate`: synthetic raw input with planted personas, and the personas as labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from segmentation.config import Config
from segmentation.generate import generate
from segmentation.io import TableWrite, resolve_path, table_ref, write_source, write_table
from segmentation.tables import CUSTOMER_PERSONAS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateResult:
    customers: int
    seed: int
    format: str
    transactions_path: str
    customers_path: str
    personas: TableWrite


def run_generate(cfg: Config, spark: SparkSession) -> GenerateResult:
    settings = cfg.generate
    end_date = settings.end_date or cfg.features.as_of_date
    log.info("generating %s customers (seed %s) up to %s", f"{settings.customers:,}", settings.seed, end_date)
    data = generate(spark, settings, end_date=end_date)
    write_source(data.transactions, settings.transactions_path, settings.format)
    write_source(data.customers, settings.customers_path, settings.format)
    personas = write_table(
        spark,
        table_ref(cfg.lake, CUSTOMER_PERSONAS),
        data.personas,
        user_metadata={"stage": "generate", "seed": settings.seed, "customers": settings.customers},
    )
    return GenerateResult(
        customers=settings.customers,
        seed=settings.seed,
        format=settings.format,
        transactions_path=_location(settings.transactions_path, settings.format),
        customers_path=_location(settings.customers_path, settings.format),
        personas=personas,
    )


def _location(path: str, fmt: str) -> str:
    return path if fmt == "table" else resolve_path(path)
