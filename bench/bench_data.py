"""The benchmarks' generated datasets: one per customer count, built once under bench/.cache."""

from __future__ import annotations

import time
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.generate_data import run_generate
from jobs.ingest import run_ingest
from segmentation.config import Config

CACHE = Path(__file__).resolve().parent / ".cache"


def dataset_root(customers: int) -> Path:
    return CACHE / f"features-{customers}"


def dataset_overrides(customers: int) -> list[str]:
    """Config overrides that put raw input and the lake of this dataset under its cache folder."""
    root = dataset_root(customers)
    return [
        f"lake.root={root / 'lake'}",
        f"generate.customers={customers}",
        f"generate.transactions_path={root / 'raw' / 'transactions'}",
        f"generate.customers_path={root / 'raw' / 'customers'}",
        f"input.transactions.path={root / 'raw' / 'transactions'}",
        f"input.customers.path={root / 'raw' / 'customers'}",
    ]


def ensure_ingested(cfg: Config, spark: SparkSession, customers: int) -> None:
    """Generate and ingest the dataset unless an earlier run already did."""
    ready = dataset_root(customers) / "_READY"
    if ready.exists():
        return
    started = time.perf_counter()
    run_generate(cfg, spark)
    run_ingest(cfg, spark)
    ready.write_text("generated and ingested\n")
    print(f"generated and ingested in {time.perf_counter() - started:.1f} s (cached in {ready.parent})")
