"""The benchmarks' generated datasets: one per customer count, generated once under bench/.cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from segmentation.config import Config
from segmentation.stages.generate import run_generate

CACHE = Path(__file__).resolve().parent / ".cache"


def dataset_root(customers: int) -> Path:
    return CACHE / f"customers-{customers}"


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


def ensure_generated(cfg: Config, spark: SparkSession, customers: int, *, say: Callable[[str], None]) -> None:
    """Generate the raw dataset unless an earlier run already did."""
    done = dataset_root(customers) / "_GENERATED"
    if done.exists():
        say(f"raw dataset cached in {done.parent}")
        return
    started = time.perf_counter()
    run_generate(cfg, spark)
    done.write_text("generated\n")
    say(f"generated in {time.perf_counter() - started:.1f} s (cached in {done.parent})")
