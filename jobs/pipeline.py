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
    """Every stage's output, then a closing summary: the champion, the segments (from the
    report stage, which ends with the commands to open the MLflow UI and the report)."""
    outputs = [stage(cfg, spark) for stage in STAGES]
    trained = outputs[STAGES.index(run_train)]
    champion = [line for line in trained.splitlines() if line.startswith(("champion:", "registered:"))]
    return "\n".join([*outputs[:-1], "", "=" * 72, *champion, outputs[-1]])


def main() -> None:
    stage_main("pipeline")


if __name__ == "__main__":
    main()
