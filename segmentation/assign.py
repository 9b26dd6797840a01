"""Gold: score customers with a fitted segmentation model, profile what it finds and keep
segment identity from one assignment version to the next.

A model numbers its clusters arbitrarily (`model_cluster_id`); people see `segment_id`, which
is stable: each cluster is matched to the previous assignment's segment it shares the most
customers with (Jaccard overlap of members, greedy one-to-one, best overlap first), and a
match above `assign.min_match_jaccard` keeps that segment's id and name. Unmatched clusters get
ids never used before. The first assignment numbers segments 1..k by size, largest first.

Only k-sized aggregates reach the driver.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.clustering import BisectingKMeansModel, GaussianMixtureModel, KMeansModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.errors import InputError
from segmentation.features import AS_OF_DATE, CUSTOMER_ID
from segmentation.models import PREDICTION, PROBABILITY, SCALED

SEGMENT_ASSIGNMENTS = "segment_assignments"
SEGMENT_PROFILES = "segment_profiles"
SEGMENT_MEMBERSHIP = "segment_membership"
SEGMENT_MIGRATIONS = "segment_migrations"

ASSIGNMENT_ID = "assignment_id"
SEGMENT_ID = "segment_id"
SEGMENT_NAME = "segment_name"
CLUSTER = "model_cluster_id"
CONFIDENCE = "segment_probability"
DISTANCE = "distance_to_centroid"
REVENUE = "monetary"
_POINT = "_point"
_DISTANCES = "_distances"

_ALGORITHMS = {
    KMeansModel: "kmeans",
    BisectingKMeansModel: "bisecting_kmeans",
    GaussianMixtureModel: "gaussian_mixture",
}


@dataclass(frozen=True)
class ModelIdentity:
    """What scored an assignment, as written on every gold row."""

    name: str
    version: Optional[str]
    run_id: str


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
class SegmentMatch:
    segment_id: int
    previous_segment_id: Optional[int]
    jaccard: Optional[float]


def clustering_stage(model: PipelineModel):
    """The fitted clustering model inside a scoring PipelineModel."""
    for stage in reversed(model.stages):
        if type(stage) in _ALGORITHMS:
            return stage
    raise InputError("the model has no K-means, bisecting K-means or Gaussian mixture stage")


def algorithm_of(model: PipelineModel) -> str:
    return _ALGORITHMS[type(clustering_stage(model))]


def cluster_centers(model: PipelineModel) -> np.ndarray:
    """Centroids (component means for a mixture) in the model's scaled feature space; their
    number is the real count of clusters (bisecting K-means may find fewer than k)."""
    clustering = clustering_stage(model)
    if isinstance(clustering, GaussianMixtureModel):
        return np.array([gaussian.mean.toArray() for gaussian in clustering.gaussians])
    return np.array([np.asarray(center) for center in clustering.clusterCenters()])


def score_customers(model: PipelineModel, features: DataFrame) -> DataFrame:
    """The input columns plus `model_cluster_id`, `segment_probability` and `distance_to_centroid`.

    `distance_to_centroid` is Euclidean, in the model's scaled feature space. For a Gaussian
    mixture `segment_probability` is the maximum posterior. For K-means and bisecting K-means,
    which have no posterior, it is the distance-based confidence d_next / (d_own + d_next), with
    d_own the distance to the assigned centroid and d_next to the nearest other one: 1 at the
    centroid, 0.5 on the boundary with the next segment (1 when there is a single segment).
    """
    centers = cluster_centers(model)
    point = vector_to_array(F.col(SCALED))
    with_point = model.transform(features).withColumn(_POINT, point)
    # Plain arithmetic on array elements, so Spark generates code for it; the vector is
    # converted once per row.
    distances = [
        F.sqrt(sum((F.col(_POINT)[i] - F.lit(float(c))) ** 2 for i, c in enumerate(center)))
        for center in centers
    ]
    with_distances = with_point.withColumn(_DISTANCES, F.array(*distances))
    cluster = F.col(PREDICTION)
    d = [F.col(_DISTANCES)[j] for j in range(len(centers))]
    own = F.element_at(F.col(_DISTANCES), cluster + 1)
    if isinstance(clustering_stage(model), GaussianMixtureModel):
        confidence = F.array_max(vector_to_array(F.col(PROBABILITY)))
    elif len(centers) == 1:
        confidence = F.lit(1.0)
    else:
        nearest_other = F.least(
            *[F.when(cluster == j, F.lit(math.inf)).otherwise(d[j]) for j in range(len(d))]
        )
        confidence = F.when(own + nearest_other > 0, nearest_other / (own + nearest_other)).otherwise(
            F.lit(0.5)
        )
    return with_distances.select(
        *[F.col(column) for column in features.columns],
        cluster.cast("int").alias(CLUSTER),
        confidence.alias(CONFIDENCE),
        own.alias(DISTANCE),
    )


def numeric_features(features: DataFrame) -> list[str]:
    """Every numeric column of `customer_features` except the key: what profiles describe."""
    numeric = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
    return [
        f.name
        for f in features.schema.fields
        if isinstance(f.dataType, numeric) and f.name not in {CUSTOMER_ID, AS_OF_DATE, CLUSTER}
    ]


def profile_clusters(
    scored: DataFrame,
    feature_columns: list[str],
    median_accuracy: int,
    clusters: int,
    rule_prediction: Optional[str] = None,
    median_sample: Optional[Column] = None,
) -> list[ClusterProfile]:
    """Per cluster with customers: customers, revenue (`monetary`), mean, median and population
    z-score of each feature (z = (segment mean - population mean) / population standard
    deviation) and, with a rule prediction column, the counts behind the rules' recall and
    precision. One pass over `scored`; `clusters` is the model's number of clusters.

    Medians are `percentile_approx`, the costly part, taken over the rows where
    `median_sample` holds (default: all); means and counts always cover every row."""
    aggregates = [F.count(F.lit(1)).alias("_customers"), F.sum(F.col(REVENUE)).alias("_revenue")]
    for index, column in enumerate(feature_columns):
        value = F.col(column).cast("double")
        sampled = value if median_sample is None else F.when(median_sample, value)
        aggregates += [
            F.count(value).alias(f"_n{index}"),
            F.sum(value).alias(f"_s{index}"),
            F.sum(value * value).alias(f"_q{index}"),
            F.percentile_approx(sampled, 0.5, median_accuracy).alias(f"_m{index}"),
        ]
    if rule_prediction:
        predicted = F.col(rule_prediction)
        aggregates.append(F.sum(F.when(predicted == F.col(CLUSTER), 1).otherwise(0)).alias("_hits"))
        aggregates += [
            F.sum(F.when(predicted == F.lit(cluster), 1).otherwise(0)).alias(f"_p{cluster}")
            for cluster in range(clusters)
        ]
    rows = {row[CLUSTER]: row for row in scored.groupBy(CLUSTER).agg(*aggregates).collect()}

    total_customers = sum(row["_customers"] for row in rows.values())
    total_revenue = sum(row["_revenue"] or 0.0 for row in rows.values())
    population = {}
    for index, column in enumerate(feature_columns):
        n = sum(row[f"_n{index}"] for row in rows.values())
        total = sum(row[f"_s{index}"] or 0.0 for row in rows.values())
        squares = sum(row[f"_q{index}"] or 0.0 for row in rows.values())
        mean = total / n if n else None
        variance = max(squares / n - mean * mean, 0.0) if n else None
        population[column] = (mean, math.sqrt(variance) if variance is not None else None)

    profiles = []
    for cluster, row in sorted(rows.items()):
        stats = {}
        for index, column in enumerate(feature_columns):
            n = row[f"_n{index}"]
            mean = row[f"_s{index}"] / n if n else None
            pop_mean, pop_std = population[column]
            z = (mean - pop_mean) / pop_std if mean is not None and pop_std else (0.0 if n else None)
            stats[column] = FeatureStats(column, mean, row[f"_m{index}"], z)
        revenue = float(row["_revenue"] or 0.0)
        profiles.append(
            ClusterProfile(
                cluster=cluster,
                customers=row["_customers"],
                revenue=revenue,
                customer_share=row["_customers"] / total_customers,
                revenue_share=revenue / total_revenue if total_revenue else 0.0,
                features=stats,
                rule_hits=row["_hits"] if rule_prediction else 0,
                rule_predicted=sum(other[f"_p{cluster}"] for other in rows.values())
                if rule_prediction
                else 0,
            )
        )
    return profiles


def member_overlaps(current: DataFrame, previous: DataFrame) -> dict[tuple[int, int], int]:
    """Customers shared by (current cluster, previous segment): a k x k' table."""
    joined = current.select(CUSTOMER_ID, CLUSTER).join(previous.select(CUSTOMER_ID, SEGMENT_ID), CUSTOMER_ID)
    return {
        (row[CLUSTER], row[SEGMENT_ID]): row["count"]
        for row in joined.groupBy(CLUSTER, SEGMENT_ID).count().collect()
    }


def match_segments(
    cluster_sizes: dict[int, int],
    previous_sizes: dict[int, int],
    overlaps: dict[tuple[int, int], int],
    min_jaccard: float,
    next_id: int,
) -> dict[int, SegmentMatch]:
    """Stable segment ids for a new assignment's clusters (see the module docstring).

    >>> match_segments({0: 10, 1: 5}, {7: 5, 3: 10}, {(0, 3): 10, (1, 7): 5}, 0.5, next_id=8)[0]
    SegmentMatch(segment_id=3, previous_segment_id=3, jaccard=1.0)
    """
    jaccard = {
        (cluster, segment): shared / (cluster_sizes[cluster] + previous_sizes[segment] - shared)
        for (cluster, segment), shared in overlaps.items()
        if cluster in cluster_sizes and segment in previous_sizes
    }
    matches: dict[int, SegmentMatch] = {}
    taken: set[int] = set()
    for (cluster, segment), quality in sorted(jaccard.items(), key=lambda item: (-item[1], item[0])):
        if quality < min_jaccard or cluster in matches or segment in taken:
            continue
        matches[cluster] = SegmentMatch(segment, segment, quality)
        taken.add(segment)
    unmatched = sorted(
        (cluster for cluster in cluster_sizes if cluster not in matches),
        key=lambda cluster: (-cluster_sizes[cluster], cluster),
    )
    for offset, cluster in enumerate(unmatched):
        best = max(
            ((segment, quality) for (c, segment), quality in jaccard.items() if c == cluster),
            key=lambda item: (item[1], -item[0]),
            default=(None, None),
        )
        matches[cluster] = SegmentMatch(next_id + offset, best[0], best[1])
    return matches


def label_assignments(
    scored: DataFrame,
    profiles: list[ClusterProfile],
    assignment_id: str,
    model: ModelIdentity,
    algorithm: str,
    as_of_date: dt.date,
    features_version: int,
    assigned_at: dt.datetime,
) -> DataFrame:
    """The gold `segment_assignments` rows: stable ids and names from the profiles, lineage on every row."""
    ids = F.create_map(*[F.lit(x) for p in profiles for x in (p.cluster, p.segment_id)])
    names = F.create_map(*[F.lit(x) for p in profiles for x in (p.cluster, p.segment_name)])
    cluster = F.col(CLUSTER)
    return scored.select(
        F.lit(assignment_id).alias(ASSIGNMENT_ID),
        F.col(CUSTOMER_ID),
        ids[cluster].cast("int").alias(SEGMENT_ID),
        names[cluster].alias(SEGMENT_NAME),
        F.col(CONFIDENCE).cast("double"),
        F.col(DISTANCE).cast("double"),
        cluster,
        *_lineage(model, algorithm, len(profiles), as_of_date, features_version, assigned_at),
    )


def profiles_frame(
    spark,
    profiles: list[ClusterProfile],
    assignment_id: str,
    model: ModelIdentity,
    algorithm: str,
    as_of_date: dt.date,
    features_version: int,
    assigned_at: dt.datetime,
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
    frame = spark.createDataFrame(rows, schema=PROFILE_SCHEMA)
    return frame.select(
        "*", *_lineage(model, algorithm, len(profiles), as_of_date, features_version, assigned_at)
    )


PROFILE_SCHEMA = T.StructType(
    [
        T.StructField(ASSIGNMENT_ID, T.StringType(), False),
        T.StructField(SEGMENT_ID, T.IntegerType(), False),
        T.StructField(SEGMENT_NAME, T.StringType(), False),
        T.StructField("description", T.StringType(), False),
        T.StructField("customers", T.LongType(), False),
        T.StructField("customer_share", T.DoubleType(), False),
        T.StructField("revenue", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        T.StructField(
            "feature_stats",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("feature", T.StringType(), False),
                        T.StructField("mean", T.DoubleType(), True),
                        T.StructField("median", T.DoubleType(), True),
                        T.StructField("z_score", T.DoubleType(), True),
                    ]
                )
            ),
            False,
        ),
        T.StructField("rule", T.StringType(), False),
        T.StructField("rule_recall", T.DoubleType(), True),
        T.StructField("rule_precision", T.DoubleType(), True),
        T.StructField("rules_fidelity", T.DoubleType(), True),
        T.StructField("previous_segment_id", T.IntegerType(), True),
        T.StructField("match_jaccard", T.DoubleType(), True),
        T.StructField(CLUSTER, T.IntegerType(), False),
    ]
)


def _lineage(
    model: ModelIdentity,
    algorithm: str,
    clusters: int,
    as_of_date: dt.date,
    features_version: int,
    assigned_at: dt.datetime,
) -> list[Column]:
    return [
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).cast("string").alias("model_version"),
        F.lit(model.run_id).alias("mlflow_run_id"),
        F.lit(algorithm).alias("algorithm"),
        F.lit(clusters).cast("int").alias("k"),
        F.lit(as_of_date).alias("features_as_of_date"),
        F.lit(features_version).cast("long").alias("features_table_version"),
        F.lit(assigned_at).cast("timestamp").alias("assigned_at"),
    ]
