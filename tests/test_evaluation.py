"""Cluster metrics computed in Spark agree with scikit-learn on small data."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from segmentation.evaluation import adjusted_rand_index, cluster_metrics, hash_sample


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(7)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]])
    labels = rng.integers(0, 3, size=300)
    points = centers[labels] + rng.normal(scale=1.2, size=(300, 3))
    return points, labels


def scored_frame(spark, points, labels):
    rows = [(f"{i:05d}", Vectors.dense(point.tolist()), int(label)) for i, (point, label) in
            enumerate(zip(points, labels, strict=True))]  # fmt: skip
    return spark.createDataFrame(rows, ["customer_id", "features", "prediction"])


def test_metrics_match_scikit_learn(spark, blobs):
    points, labels = blobs
    metrics = cluster_metrics(scored_frame(spark, points, labels), "features", "prediction")
    assert metrics.silhouette == pytest.approx(
        silhouette_score(points, labels, metric="sqeuclidean"), rel=1e-6
    )
    assert metrics.davies_bouldin == pytest.approx(davies_bouldin_score(points, labels), rel=1e-9)
    assert metrics.calinski_harabasz == pytest.approx(calinski_harabasz_score(points, labels), rel=1e-9)
    centroids = np.array([points[labels == k].mean(axis=0) for k in range(3)])
    within = sum(((points[labels == k] - centroids[k]) ** 2).sum() for k in range(3))
    assert metrics.within_ss == pytest.approx(within, rel=1e-9)
    shares = np.bincount(labels) / len(labels)
    assert metrics.min_segment_share == pytest.approx(shares.min())
    assert metrics.max_segment_share == pytest.approx(shares.max())
    assert metrics.size_entropy == pytest.approx(-(shares * np.log(shares)).sum())
    assert (metrics.rows, metrics.clusters, metrics.silhouette_rows) == (300, 3, 300)


def test_silhouette_on_a_reproducible_sample_above_the_threshold(spark, blobs):
    points, labels = blobs
    scored = scored_frame(spark, points, labels)
    first = cluster_metrics(scored, "features", "prediction", silhouette_max_rows=100, seed=3)
    again = cluster_metrics(scored.repartition(5), "features", "prediction", silhouette_max_rows=100, seed=3)
    assert 0 < first.silhouette_rows < 300
    assert first.silhouette_rows == again.silhouette_rows
    # The same rows, summed in another order: equal up to floating-point rounding.
    assert first.silhouette == pytest.approx(again.silhouette, rel=1e-12)


def test_hash_sample_depends_on_key_and_seed_only(spark):
    ids = spark.range(2000).selectExpr("lpad(cast(id as string), 6, '0') as customer_id")
    one = {r.customer_id for r in hash_sample(ids, "customer_id", 0.25, seed=11).collect()}
    two = {r.customer_id for r in hash_sample(ids.repartition(7), "customer_id", 0.25, seed=11).collect()}
    other = {r.customer_id for r in hash_sample(ids, "customer_id", 0.25, seed=12).collect()}
    assert one == two and one != other
    assert 400 < len(one) < 600


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_adjusted_rand_index_matches_scikit_learn(spark, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=500)
    noisy = np.where(rng.random(500) < 0.3, rng.integers(0, 5, size=500), truth)
    ids = [f"{i:04d}" for i in range(500)]
    left = spark.createDataFrame(
        [(i, int(t)) for i, t in zip(ids, truth, strict=True)], "customer_id string, cluster int"
    )
    right = spark.createDataFrame(
        [(i, int(t)) for i, t in zip(ids, noisy, strict=True)], "customer_id string, cluster int"
    )
    assert adjusted_rand_index(left, right) == pytest.approx(adjusted_rand_score(truth, noisy), rel=1e-9)
    assert adjusted_rand_index(left, left) == pytest.approx(1.0)
