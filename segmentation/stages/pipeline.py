"""`segment pipeline`: every stage in order on the configured input (generate is separate):
ingest -> features -> train -> assign -> report. The stages hand each other nothing but the
tables they write; the pipeline's result is theirs, composed."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from segmentation.config import Config
from segmentation.stages.assign import AssignResult, run_assign
from segmentation.stages.features import FeaturesResult, run_features
from segmentation.stages.ingest import IngestResult, run_ingest
from segmentation.stages.report import ReportResult, run_report
from segmentation.stages.train import TrainResult, run_train

STAGES = (run_ingest, run_features, run_train, run_assign, run_report)


@dataclass(frozen=True)
class PipelineResult:
    ingest: IngestResult
    features: FeaturesResult
    train: TrainResult
    assign: AssignResult
    report: ReportResult


def run_pipeline(cfg: Config, spark: SparkSession) -> PipelineResult:
    ingest, features, train, assign, report = (stage(cfg, spark) for stage in STAGES)
    return PipelineResult(ingest=ingest, features=features, train=train, assign=assign, report=report)
