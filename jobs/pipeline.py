"""`segment pipeline`: every stage in order on the configured input (generate is separate):
ingest -> features -> train -> assign -> report."""

from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.assign import run_assign
from jobs.build_features import run_features
from jobs.common import stage_main
from jobs.ingest import run_ingest
from jobs.report import run_report
from jobs.train import run_train
from segmentation.config import Config

STAGES = (run_ingest, run_features, run_train, run_assign, run_report)


def run_pipeline(cfg: Config, spark: SparkSession) -> str:
    return "\n".join(stage(cfg, spark) for stage in STAGES)


def main() -> None:
    stage_main(run_pipeline, "Run every stage in order.")


if __name__ == "__main__":
    main()
