"""What produced a gold row: the model that scored it and the features it read.

Every row of `segment_assignments` and `segment_profiles` carries these columns, so a row read
on its own says which registered model version, MLflow run and feature table version made it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import Column
from pyspark.sql import functions as F

from segmentation.tables import (
    ALGORITHM,
    ASSIGNED_AT,
    FEATURES_AS_OF_DATE,
    FEATURES_TABLE_VERSION,
    MLFLOW_RUN_ID,
    MODEL_NAME,
    MODEL_VERSION,
    WRITE_ID,
    K,
)

LINEAGE_COLUMNS = (
    MODEL_NAME,
    MODEL_VERSION,
    MLFLOW_RUN_ID,
    ALGORITHM,
    K,
    FEATURES_AS_OF_DATE,
    FEATURES_TABLE_VERSION,
    ASSIGNED_AT,
    WRITE_ID,
)


@dataclass(frozen=True)
class ModelIdentity:
    """A model as the registry knows it; `version` is None for a run's unregistered model."""

    name: str
    version: Optional[str]
    run_id: str


@dataclass(frozen=True)
class Lineage:
    """Everything an assignment's rows record about how they were made."""

    model: ModelIdentity
    algorithm: str
    segments: int
    as_of_date: dt.date
    features_version: int
    assigned_at: dt.datetime
    write_id: str  # this attempt's slice (segmentation.publish)

    def columns(self) -> list[Column]:
        return [
            F.lit(self.model.name).alias(MODEL_NAME),
            F.lit(self.model.version).cast("string").alias(MODEL_VERSION),
            F.lit(self.model.run_id).alias(MLFLOW_RUN_ID),
            F.lit(self.algorithm).alias(ALGORITHM),
            F.lit(self.segments).cast("int").alias(K),
            F.lit(self.as_of_date).alias(FEATURES_AS_OF_DATE),
            F.lit(self.features_version).cast("long").alias(FEATURES_TABLE_VERSION),
            F.lit(self.assigned_at).cast("timestamp").alias(ASSIGNED_AT),
            F.lit(self.write_id).alias(WRITE_ID),
        ]
