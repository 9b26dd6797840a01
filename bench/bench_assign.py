"""`segment assign` against its floor, same data, same session, same run.

Floor: load the registered model, `transform` the customer features, plain Delta append of
(customer_id, segment_id). `segment assign` does that plus confidence and distance, the rules
tree, profiles, identity matching against the previous assignment and three gold commits
(assignments, profiles, SCD2 membership). Measured twice: the first assignment (nothing to
match) and a second model version assigned on top of it (matching and membership changes).

    .venv/bin/python bench/bench_assign.py --customers 1000000
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
from bench_data import dataset_overrides, ensure_ingested
from pyspark.sql import functions as F

from jobs.assign import run_assign
from jobs.build_features import run_features
from jobs.train import run_train
from segmentation import tracking
from segmentation.assign import SEGMENT_ASSIGNMENTS, SEGMENT_MEMBERSHIP, SEGMENT_PROFILES
from segmentation.config import Config, load_config
from segmentation.features import AS_OF_DATE, CUSTOMER_FEATURES, CUSTOMER_ID
from segmentation.io import read_table, table_exists, table_ref
from segmentation.models import PREDICTION
from segmentation.spark import get_spark

MODEL = (
    "sweep.algorithms=[kmeans]",
    "sweep.grid.kmeans.k=[6]",
    "sweep.restarts=1",
    "sweep.max_rows=200000",
    "selection.min_stability=0",  # any model will do: this measures scoring, not training
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-assign-"))
    overrides = [
        *dataset_overrides(args.customers),
        *MODEL,
        f"mlflow.tracking_uri=sqlite:///{scratch / 'mlflow.db'}",
        f"mlflow.artifact_location={scratch / 'mlruns'}",
        *args.overrides,
    ]
    cfg = load_config(None, overrides)
    spark = get_spark(cfg.spark)
    ensure_ingested(cfg, spark, args.customers)
    if not table_exists(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)):
        run_features(cfg, spark)
    for table in (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES, SEGMENT_MEMBERSHIP):
        shutil.rmtree(table_ref(cfg.lake, table).path, ignore_errors=True)

    started = time.perf_counter()
    run_train(cfg, spark)
    run_train(load_config(None, [*overrides, "sweep.seed=43"]), spark)
    print(f"two model versions trained in {time.perf_counter() - started:.1f} s", flush=True)

    phases = PhaseLog()
    rows = []
    for version in ("1", "2"):
        floor_seconds = floor(cfg, spark, version, scratch / f"floor-{version}")
        started = time.perf_counter()
        printed = run_assign(load_config(None, [*overrides, f"assign.model_version={version}"]), spark)
        assign_seconds = time.perf_counter() - started
        print(printed, flush=True)
        rows.append((version, floor_seconds, assign_seconds, phases.last))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"customers {args.customers:,}  cores {spark.sparkContext.defaultParallelism}")
    for version, floor_seconds, assign_seconds, phase_text in rows:
        what = "first assignment" if version == "1" else "second version on top"
        print(
            f"model v{version} ({what}): floor {floor_seconds:.1f} s, segment assign {assign_seconds:.1f} s, "
            f"ratio {assign_seconds / floor_seconds:.2f}x (target <= 1.3x)"
        )
        print(f"  phases: {phase_text}")
    print(f"driver python peak RSS {peak_mb:.0f} MB")
    shutil.rmtree(scratch, ignore_errors=True)


class PhaseLog(logging.Handler):
    """Keeps the phase timings `segment assign` logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last = ""
        logger = logging.getLogger("segmentation")
        logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("assign phases: "):
            self.last = message.removeprefix("assign phases: ")


def floor(cfg: Config, spark, version: str, path: Path) -> float:
    """Load the model, transform, plain Delta append: the least an assignment can cost."""
    started = time.perf_counter()
    tracking.configure(cfg.mlflow)
    model = mlflow.spark.load_model(f"models:/{cfg.model.registered_name}/{version}")
    features = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)).filter(
        F.col(AS_OF_DATE) == F.lit(cfg.features.as_of_date)
    )
    model.transform(features).select(CUSTOMER_ID, PREDICTION).write.format("delta").mode("append").save(
        str(path)
    )
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
