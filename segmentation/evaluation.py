"""Cluster-quality metrics computed in Spark; only k-sized aggregates reach the driver.

All metrics are taken in the space the model clusters in (the scaled feature vectors), so
fits of different algorithms compare. Definitions follow scikit-learn:

* within-cluster sum of squares W = sum over points of ||x - c||^2;
* Calinski-Harabasz = (B / (k - 1)) / (W / (n - k)), B = sum_k n_k ||c_k - mean||^2;
* Davies-Bouldin = mean over clusters of max_{j != i} (s_i + s_j) / ||c_i - c_j||, where s_i is
  the mean Euclidean distance of cluster i's points to its centroid;
* silhouette from Spark's `ClusteringEvaluator` with squared Euclidean distance (scikit-learn's
  `metric="sqeuclidean"`), on a seeded hash sample of customers above `silhouette_max_rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segmentation.tables import CUSTOMER_ID

_VECTOR = "_vector"


@dataclass(frozen=True)
class ClusterMetrics:
    rows: int
    clusters: int
    silhouette: Optional[float]
    silhouette_rows: int
    davies_bouldin: Optional[float]
    calinski_harabasz: Optional[float]
    within_ss: float
    min_segment_share: float
    max_segment_share: float
    size_entropy: float


def hash_sample(df: DataFrame, key: str, fraction: float, *, seed: int) -> DataFrame:
    """A reproducible sample: a row is in when the hash of (seed, key) falls below the fraction.

    Unlike `rand(seed)`, membership depends only on the key, never on partitioning.
    """
    if fraction >= 1.0:
        return df
    return df.filter(in_hash_sample(key, fraction, seed))


def in_hash_sample(key: str, fraction: float, seed: int) -> Column:
    """True for the rows `hash_sample` keeps."""
    if fraction >= 1.0:
        return F.lit(True)
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col(key)), F.lit(1_000_000))
    return bucket < F.lit(int(fraction * 1_000_000))


def cluster_metrics(
    scored: DataFrame,
    features_col: str,
    prediction_col: str,
    *,
    key: str = CUSTOMER_ID,
    silhouette_max_rows: int = 200_000,
    seed: int = 42,
) -> ClusterMetrics:
    """Every metric of one fit from the scored frame (features and prediction per row)."""
    vectors = scored.select(
        F.col(prediction_col).alias("cluster"),
        features_col,
        vector_to_array(features_col).alias(_VECTOR),
    )
    per_cluster = (
        vectors.groupBy("cluster")
        .agg(
            F.count(F.lit(1)).alias("size"),
            Summarizer.mean(F.col(features_col)).alias("centroid"),
            F.sum(_squared_norm(F.col(_VECTOR))).alias("sum_squared_norm"),
        )
        .orderBy("cluster")
        .collect()
    )
    clusters = [row.cluster for row in per_cluster]
    sizes = np.array([row.size for row in per_cluster], dtype=float)
    centroids = np.array([row.centroid.toArray() for row in per_cluster], dtype=float)
    rows = int(sizes.sum())
    within_ss = float(
        sum(row.sum_squared_norm for row in per_cluster) - (sizes * (centroids**2).sum(axis=1)).sum()
    )
    within_ss = max(within_ss, 0.0)
    overall_mean = (centroids * sizes[:, None]).sum(axis=0) / rows
    between_ss = float((sizes * ((centroids - overall_mean) ** 2).sum(axis=1)).sum())
    k = len(clusters)
    calinski = (between_ss / (k - 1)) / (within_ss / (rows - k)) if 1 < k < rows and within_ss > 0 else None

    centroid_column = F.element_at(
        F.array(*[F.array(*map(F.lit, map(float, centroid))) for centroid in centroids]),
        F.array_position(F.array(*map(F.lit, clusters)), F.col("cluster")).cast("int"),
    )
    spread = {
        row.cluster: row.mean_distance
        for row in vectors.groupBy("cluster")
        .agg(F.avg(F.sqrt(_squared_distance(F.col(_VECTOR), centroid_column))).alias("mean_distance"))
        .collect()
    }
    davies_bouldin = _davies_bouldin(np.array([spread[c] for c in clusters]), centroids) if k > 1 else None

    silhouette, silhouette_rows = None, 0
    if k > 1:
        sample = hash_sample(scored, key, min(1.0, silhouette_max_rows / rows), seed=seed)
        silhouette_rows = sample.count() if rows > silhouette_max_rows else rows
        silhouette = ClusteringEvaluator(
            featuresCol=features_col,
            predictionCol=prediction_col,
            metricName="silhouette",
            distanceMeasure="squaredEuclidean",
        ).evaluate(sample)

    shares = sizes / rows
    return ClusterMetrics(
        rows=rows,
        clusters=k,
        silhouette=silhouette,
        silhouette_rows=silhouette_rows,
        davies_bouldin=davies_bouldin,
        calinski_harabasz=calinski,
        within_ss=within_ss,
        min_segment_share=float(shares.min()),
        max_segment_share=float(shares.max()),
        size_entropy=float(-(shares * np.log(shares)).sum()),
    )


def _davies_bouldin(spread: np.ndarray, centroids: np.ndarray) -> float:
    separation = np.sqrt(((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2))
    ratios = (spread[:, None] + spread[None, :]) / np.where(separation > 0, separation, math.inf)
    np.fill_diagonal(ratios, -math.inf)
    return float(ratios.max(axis=1).mean())


def _squared_norm(vector: Column) -> Column:
    return F.aggregate(vector, F.lit(0.0), lambda total, value: total + value * value)


def _squared_distance(vector: Column, centroid: Column) -> Column:
    return F.aggregate(
        F.zip_with(vector, centroid, lambda a, b: (a - b) * (a - b)), F.lit(0.0), lambda t, v: t + v
    )


def adjusted_rand_index(
    assignments: DataFrame, other: DataFrame, *, key: str = CUSTOMER_ID, label: str = "cluster"
) -> float:
    """Adjusted Rand index between two labelings of the same customers.

    The contingency table is built in Spark (k x k' counts); only it reaches the driver.
    """
    contingency = (
        assignments.select(key, F.col(label).alias("_left"))
        .join(other.select(key, F.col(label).alias("_right")), key)
        .groupBy("_left", "_right")
        .count()
        .collect()
    )
    counts = np.array([row["count"] for row in contingency], dtype=float)
    left, right = {}, {}
    for row in contingency:
        left[row["_left"]] = left.get(row["_left"], 0.0) + row["count"]
        right[row["_right"]] = right.get(row["_right"], 0.0) + row["count"]
    n = counts.sum()
    pairs = (counts * (counts - 1) / 2).sum()
    left_pairs = sum(c * (c - 1) / 2 for c in left.values())
    right_pairs = sum(c * (c - 1) / 2 for c in right.values())
    expected = left_pairs * right_pairs / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (left_pairs + right_pairs) / 2
    if maximum == expected:
        return 1.0
    return float((pairs - expected) / (maximum - expected))
