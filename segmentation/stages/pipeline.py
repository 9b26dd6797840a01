"""`segment pipeline`: every stage in order on the configured input (generate is separate):
ingest -> features -> clv (unless clv.enabled is false) -> train -> assign -> report. The
stages hand each other nothing but the tables they write; the pipeline's result is theirs,
composed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.sql import SparkSession

from segmentation import tracking
from segmentation.config import Config
from segmentation.stages.assign import AssignResult, run_assign
from segmentation.stages.clv import ClvResult, run_clv
from segmentation.stages.features import FeaturesResult, run_features
from segmentation.stages.ingest import IngestResult, run_ingest
from segmentation.stages.report import ReportResult, run_report
from segmentation.stages.train import TrainResult, run_train

STAGES = (run_ingest, run_features, run_clv, run_train, run_assign, run_report)


@dataclass(frozen=True)
class PipelineResult:
    ingest: IngestResult
    features: FeaturesResult
    clv: Optional[ClvResult]  # None when clv.enabled is false
    train: TrainResult
    assign: AssignResult
    report: ReportResult


def run_pipeline(cfg: Config, spark: SparkSession) -> PipelineResult:
    # The MLflow store is checked before ingest writes anything: an outage stops the run
    # with every table as it was, not after bronze and silver moved on.
    tracking.configure(cfg.mlflow, writes=True)
    results = {
        stage.__name__.removeprefix("run_"): stage(cfg, spark)
        for stage in STAGES
        if stage is not run_clv or cfg.clv.enabled
    }
    return PipelineResult(**{"clv": None, **results})
