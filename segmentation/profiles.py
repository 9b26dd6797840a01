"""Segment profiles: what each cluster of an assignment looks like, in one pass over the scored
customers; only k-sized aggregates reach the driver.

Per cluster: customers, revenue (`monetary`), and for every numeric feature the mean, median
and population z-score (z = (segment mean - population mean) / population standard deviation),
plus the counts behind the readable rules' recall, precision and fidelity, and the boundary
customers (top probability below `assign.boundary_probability`) with the cluster each of them
comes second in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.lineage import LINEAGE_COLUMNS, Lineage
from segmentation.tables import (
    AS_OF_DATE,
    BOUNDARY,
    CUSTOMER_ID,
    MODEL_CLUSTER_ID,
    MONETARY,
    SECOND_MODEL_CLUSTER_ID,
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
    rule_hits: int = 0  # customers of the cluster its rule covers
    rule_predicted: int = 0  # customers its rule covers
    rule_placed: int = 0  # customers of the cluster the rules' decision list places in it
    boundary_customers: int = 0
    # Boundary customers of this cluster by the cluster they come second in.
    boundary_neighbours: dict[int, int] = field(default_factory=dict)
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
    """The readable rules as columns over the scored frame: per cluster, where its rule holds
    (`matches`), and the cluster the rules' decision list places a customer in (`placed`, null
    for nobody); `segmentation.rules.RuleSet` builds both."""

    matches: dict[int, Column]
    placed: Column


@dataclass(frozen=True)
class ClusterCounts:
    """What `profile_clusters` counts beyond sizes and features: the rules' hits, and with
    `boundary` (the frame has `boundary` and `second_model_cluster_id`, see
    `segmentation.assign.score_customers`) the boundary customers by runner-up cluster.
    `clusters` is the model's number of clusters, ids 0..clusters-1."""

    clusters: int
    rules: Optional[RulePredictions] = None
    boundary: bool = False


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
    counts: Optional[ClusterCounts] = None,
    median_sample: Optional[Column] = None,
    value_column: Optional[str] = None,
) -> list[ClusterProfile]:
    """Per cluster with customers (module docstring), with the counts `counts` asks for.

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
    aggregates += _count_aggregates(counts)
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
            **_counted(cluster, rows, counts),
        )
        for cluster, row in sorted(rows.items())
    ]


def _ones(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _count_aggregates(counts: Optional[ClusterCounts]) -> list[Column]:
    """Per group (a cluster): customers its own rule covers (`_hits`), customers each rule
    covers (`_r<c>`), customers the decision list places right (`_placed`), boundary customers
    (`_b`) and boundary customers by runner-up cluster (`_bn<c>`)."""
    if counts is None:
        return []
    aggregates = []
    own = F.col(MODEL_CLUSTER_ID)
    if counts.rules:
        matches = counts.rules.matches
        aggregates.append(_ones(counts.rules.placed == own).alias("_placed"))
        aggregates += [_ones(matches[c]).alias(f"_r{c}") for c in sorted(matches)]
        own_rule = F.lit(False)
        for c in sorted(matches):
            own_rule = F.when(own == F.lit(c), matches[c]).otherwise(own_rule)
        aggregates.append(_ones(own_rule).alias("_hits"))
    if counts.boundary:
        boundary, second = F.col(BOUNDARY), F.col(SECOND_MODEL_CLUSTER_ID)
        aggregates.append(_ones(boundary).alias("_b"))
        aggregates += [
            _ones(boundary & (second == F.lit(c))).alias(f"_bn{c}") for c in range(counts.clusters)
        ]
    return aggregates


def _counted(cluster: int, rows: dict[int, Any], counts: Optional[ClusterCounts]) -> dict[str, Any]:
    """The `ClusterProfile` fields `_count_aggregates` gives for one cluster."""
    if counts is None:
        return {}
    row = rows[cluster]
    fields: dict[str, Any] = {}
    if counts.rules:
        has_rule = cluster in counts.rules.matches
        fields.update(
            rule_hits=row["_hits"],
            rule_predicted=sum(other[f"_r{cluster}"] for other in rows.values()) if has_rule else 0,
            rule_placed=row["_placed"],
        )
    if counts.boundary:
        fields.update(
            boundary_customers=row["_b"],
            boundary_neighbours={c: row[f"_bn{c}"] for c in range(counts.clusters) if row[f"_bn{c}"]},
        )
    return fields


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
    boundary_probability: Optional[float],
) -> DataFrame:
    """The gold `segment_profiles` rows of one assignment (k rows, built on the driver)."""
    segment_ids = {p.cluster: p.segment_id for p in profiles}
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
            boundary_probability,
            p.boundary_customers / p.customers if p.customers and boundary_probability is not None else None,
            _neighbours(p, segment_ids) if boundary_probability is not None else None,
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


def _neighbours(profile: ClusterProfile, segment_ids: dict[int, int]) -> list[tuple[int, int, float]]:
    """`boundary_neighbours`: (segment id, boundary customers, share of the segment's boundary
    customers), most first. A runner-up cluster with no customers of its own has no segment id;
    its customers are left out of the list but not of the shares."""
    total = profile.boundary_customers
    listed = [
        (segment_ids[cluster], customers, customers / total)
        for cluster, customers in profile.boundary_neighbours.items()
        if cluster in segment_ids
    ]
    return sorted(listed, key=lambda item: (-item[1], item[0]))
