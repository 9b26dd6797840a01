"""Segment profiles: what each cluster of an assignment looks like, in one pass over the scored
customers; only k-sized aggregates reach the driver.

Per cluster: customers, revenue (`monetary`), and for every numeric feature the mean, median
and population z-score (z = (segment mean - population mean) / population standard deviation),
plus the counts behind the readable rules' recall and precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.lineage import LINEAGE_COLUMNS, Lineage
from segmentation.tables import (
    AS_OF_DATE,
    CUSTOMER_ID,
    MODEL_CLUSTER_ID,
    MONETARY,
    SEGMENT_PROFILES,
)


@dataclass(frozen=True)
class FeatureStats:
    feature: str
    mean: Optional[float]
    median: Optional[float]
    z_score: Optional[float]


@dataclass
class ClusterProfile:
    """One cluster of one assignment: sizes, feature statistics and, once known, identity,
    name and rule."""

    cluster: int
    customers: int
    revenue: float
    customer_share: float
    revenue_share: float
    features: dict[str, FeatureStats]
    value_share: Optional[float] = None  # share of the customers' expected value (clv_<h>)
    rule_hits: int = 0
    rule_predicted: int = 0
    segment_id: int = -1
    segment_name: str = ""
    description: str = ""
    rule: str = ""
    previous_segment_id: Optional[int] = None
    match_jaccard: Optional[float] = None

    def z(self, feature: str) -> float:
        stats = self.features.get(feature)
        return stats.z_score if stats is not None and stats.z_score is not None else 0.0

    def median(self, feature: str) -> Optional[float]:
        stats = self.features.get(feature)
        return stats.median if stats is not None else None


@dataclass(frozen=True)
class SegmentSummary:
    """One segment as the commands show it: size, shares and identity against the previous
    assignment (`match_jaccard` None: nothing to compare with)."""

    segment_id: int
    segment_name: str
    customers: int
    customer_share: float
    revenue_share: float
    previous_segment_id: Optional[int] = None
    match_jaccard: Optional[float] = None

    @classmethod
    def of(cls, profile: Any) -> SegmentSummary:
        """From a `ClusterProfile` or a `segment_profiles` row."""
        return cls(
            segment_id=profile.segment_id,
            segment_name=profile.segment_name,
            customers=profile.customers,
            customer_share=profile.customer_share,
            revenue_share=profile.revenue_share,
            previous_segment_id=profile.previous_segment_id,
            match_jaccard=profile.match_jaccard,
        )


@dataclass(frozen=True)
class RulePredictions:
    """Where the readable rules' predicted cluster is, and how many clusters the model has."""

    column: str
    clusters: int


_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)


def numeric_features(features: DataFrame) -> list[str]:
    """Every numeric column of `customer_features` except the key: what profiles describe."""
    return [
        f.name
        for f in features.schema.fields
        if isinstance(f.dataType, _NUMERIC) and f.name not in {CUSTOMER_ID, AS_OF_DATE, MODEL_CLUSTER_ID}
    ]


def profile_clusters(
    scored: DataFrame,
    feature_columns: list[str],
    *,
    median_accuracy: int,
    rules: Optional[RulePredictions] = None,
    median_sample: Optional[Column] = None,
    value_column: Optional[str] = None,
) -> list[ClusterProfile]:
    """Per cluster with customers (module docstring), with the counts behind the rules' recall
    and precision when `rules` says where the rules' predicted cluster is.

    Medians are `percentile_approx`, the costly part, taken over the rows where
    `median_sample` holds (default: all); means and counts always cover every row. With a
    `value_column` (a customer's expected value), each cluster's share of its total too."""
    aggregates = [F.count(F.lit(1)).alias("_customers"), F.sum(F.col(MONETARY)).alias("_revenue")]
    if value_column:
        aggregates.append(F.sum(F.col(value_column)).alias("_value"))
    for index, column in enumerate(feature_columns):
        value = F.col(column).cast("double")
        sampled = value if median_sample is None else F.when(median_sample, value)
        aggregates += [
            F.count(value).alias(f"_n{index}"),
            F.sum(value).alias(f"_s{index}"),
            F.sum(value * value).alias(f"_q{index}"),
            F.percentile_approx(sampled, 0.5, median_accuracy).alias(f"_m{index}"),
        ]
    if rules:
        predicted = F.col(rules.column)
        aggregates.append(F.sum(F.when(predicted == F.col(MODEL_CLUSTER_ID), 1).otherwise(0)).alias("_hits"))
        aggregates += [
            F.sum(F.when(predicted == F.lit(cluster), 1).otherwise(0)).alias(f"_p{cluster}")
            for cluster in range(rules.clusters)
        ]
    rows = {row[MODEL_CLUSTER_ID]: row for row in scored.groupBy(MODEL_CLUSTER_ID).agg(*aggregates).collect()}
    population = _population(rows, feature_columns)
    total_customers = sum(row["_customers"] for row in rows.values())
    total_revenue = sum(row["_revenue"] or 0.0 for row in rows.values())
    total_value = sum(row["_value"] or 0.0 for row in rows.values()) if value_column else 0.0
    return [
        ClusterProfile(
            cluster=cluster,
            customers=row["_customers"],
            revenue=float(row["_revenue"] or 0.0),
            customer_share=row["_customers"] / total_customers,
            revenue_share=float(row["_revenue"] or 0.0) / total_revenue if total_revenue else 0.0,
            features=_feature_stats(row, feature_columns, population),
            value_share=(row["_value"] or 0.0) / total_value if total_value else None,
            rule_hits=row["_hits"] if rules else 0,
            rule_predicted=sum(other[f"_p{cluster}"] for other in rows.values()) if rules else 0,
        )
        for cluster, row in sorted(rows.items())
    ]


def _population(rows: dict[int, Any], feature_columns: list[str]) -> dict[str, tuple]:
    """Population mean and standard deviation of each feature, from the per-cluster sums."""
    population = {}
    for index, column in enumerate(feature_columns):
        n = sum(row[f"_n{index}"] for row in rows.values())
        total = sum(row[f"_s{index}"] or 0.0 for row in rows.values())
        squares = sum(row[f"_q{index}"] or 0.0 for row in rows.values())
        mean = total / n if n else None
        variance = max(squares / n - mean * mean, 0.0) if n else None
        population[column] = (mean, math.sqrt(variance) if variance is not None else None)
    return population


def _feature_stats(row: Any, feature_columns: list[str], population: dict[str, tuple]) -> dict:
    stats = {}
    for index, column in enumerate(feature_columns):
        n = row[f"_n{index}"]
        mean = row[f"_s{index}"] / n if n else None
        pop_mean, pop_std = population[column]
        z = (mean - pop_mean) / pop_std if mean is not None and pop_std else (0.0 if n else None)
        stats[column] = FeatureStats(column, mean, row[f"_m{index}"], z)
    return stats


def profiles_frame(
    spark: SparkSession,
    profiles: list[ClusterProfile],
    *,
    assignment_id: str,
    lineage: Lineage,
    rules_fidelity: Optional[float],
) -> DataFrame:
    """The gold `segment_profiles` rows of one assignment (k rows, built on the driver)."""
    rows = [
        (
            assignment_id,
            p.segment_id,
            p.segment_name,
            p.description,
            p.customers,
            p.customer_share,
            p.revenue,
            p.revenue_share,
            p.value_share,
            [(s.feature, s.mean, s.median, s.z_score) for s in p.features.values()],
            p.rule,
            p.rule_hits / p.customers if p.customers else None,
            p.rule_hits / p.rule_predicted if p.rule_predicted else None,
            rules_fidelity,
            p.previous_segment_id,
            p.match_jaccard,
            p.cluster,
        )
        for p in sorted(profiles, key=lambda p: p.segment_id)
    ]
    own_columns = [name for name in SEGMENT_PROFILES.columns if name not in LINEAGE_COLUMNS]
    schema = T.StructType([SEGMENT_PROFILES.schema[name] for name in own_columns])
    return spark.createDataFrame(rows, schema=schema).select("*", *lineage.columns())
