"""Soft membership: every customer's top two segments with their probabilities and the
boundary flag, checked against posteriors and memberships computed independently with numpy
and scipy from the fitted models' own parameters; boundary shares in the profiles and report."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F
from scipy.stats import multivariate_normal

from segmentation.assign import clustering_stage, label_assignments, score_customers
from segmentation.lineage import Lineage, ModelIdentity
from segmentation.models import Preprocessing, build_pipeline
from segmentation.profiles import ClusterCounts, ClusterProfile, profile_clusters, profiles_frame
from segmentation.report import render_report
from segmentation.tables import MODEL_CLUSTER_ID as CLUSTER
from segmentation.tables import SECOND_MODEL_CLUSTER_ID

PLAIN = Preprocessing(winsorize_quantiles=None, standardize=False)
THRESHOLD = 0.6
LINEAGE = Lineage(
    model=ModelIdentity("m", "1", "r" * 32),
    algorithm="kmeans",
    segments=3,
    as_of_date=dt.date(2025, 12, 31),
    features_version=1,
    assigned_at=dt.datetime(2026, 1, 1),
    write_id="w",
)


def blobs(spark, seed: int = 5):
    """Three overlapping 2-d blobs, so that some customers sit between two of them."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    points = np.vstack([rng.normal(c, 1.1, size=(40, 2)) for c in centres])
    rows = [(f"c{i:03d}", float(x), float(y)) for i, (x, y) in enumerate(points)]
    return rows, spark.createDataFrame(rows, "customer_id string, x double, y double")


def fit(features, algorithm: str, k: int, seed: int = 3):
    return build_pipeline(features, ["x", "y"], PLAIN, algorithm=algorithm, params={"k": k}, seed=seed).fit(
        features
    )


def top_two(probabilities: np.ndarray) -> tuple[int, float, int, float]:
    """(top cluster, its probability, runner-up, its probability); ties to the lower number."""
    order = sorted(range(len(probabilities)), key=lambda j: (-probabilities[j], j))
    return order[0], probabilities[order[0]], order[1], probabilities[order[1]]


def scored_rows(model, features):
    scored = score_customers(model, features, boundary_probability=THRESHOLD)
    return {row.customer_id: row for row in scored.collect()}


def test_mixture_top_two_are_the_posteriors_of_the_fitted_components(spark):
    rows, features = blobs(spark)
    model = fit(features, "gaussian_mixture", 3)
    mixture = clustering_stage(model)
    weights = np.array(mixture.weights)
    components = [(g.mean.toArray(), g.cov.toArray()) for g in mixture.gaussians]
    scored = scored_rows(model, features)
    boundary = 0
    for customer_id, x, y in rows:
        density = np.array(
            [w * multivariate_normal(m, c).pdf([x, y]) for w, (m, c) in zip(weights, components, strict=True)]
        )
        top, p_top, second, p_second = top_two(density / density.sum())
        row = scored[customer_id]
        assert row[CLUSTER] == top
        assert row.segment_probability == pytest.approx(p_top, rel=1e-6, abs=1e-9)
        assert row[SECOND_MODEL_CLUSTER_ID] == second
        assert row.second_probability == pytest.approx(p_second, rel=1e-6, abs=1e-9)
        assert row.boundary == (p_top < THRESHOLD)
        boundary += row.boundary
    assert 0 < boundary < len(rows)  # the data has customers on both sides of the threshold


def kmeans_memberships(squared: np.ndarray, assigned: int) -> np.ndarray:
    """The documented membership, independently: u_j proportional to 1 / d_j^2, with the
    assigned cluster's distance taken as the nearest's; at a centroid, 1 there."""
    squared = squared.copy()
    squared[assigned] = squared.min()
    weights = (squared == 0).astype(float) if squared[assigned] == 0 else 1.0 / squared
    return weights / weights.sum()


@pytest.mark.parametrize("algorithm", ["kmeans", "bisecting_kmeans"])
def test_kmeans_top_two_follow_the_distance_membership(spark, algorithm):
    rows, features = blobs(spark)
    # K-means: one customer exactly on the centroid of a symmetric blob far away, probability 1.
    square = [
        ("s0", 200.0, 200.0),
        ("s1", 200.0, 202.0),
        ("s2", 202.0, 200.0),
        ("s3", 202.0, 202.0),
        ("s4", 201.0, 201.0),
    ]
    rows = rows + square
    features = features.unionByName(spark.createDataFrame(square, features.schema))
    model = fit(features, algorithm, 4)
    centres = np.array([np.asarray(c) for c in clustering_stage(model).clusterCenters()])
    scored = scored_rows(model, features)
    for customer_id, x, y in rows:
        row = scored[customer_id]
        squared = ((centres - np.array([x, y])) ** 2).sum(axis=1)
        memberships = kmeans_memberships(squared, row[CLUSTER])
        assert memberships.sum() == pytest.approx(1.0)
        top, p_top, second, p_second = top_two(memberships)
        assert memberships[row[CLUSTER]] == p_top  # the assigned cluster is the most probable
        assert row.segment_probability == pytest.approx(p_top, rel=1e-9)
        assert row.second_probability == pytest.approx(p_second, rel=1e-9, abs=1e-12)
        expected_second = second if top == row[CLUSTER] else top  # a tie at the top
        assert row[SECOND_MODEL_CLUSTER_ID] == expected_second
        assert row.second_probability <= row.segment_probability
        assert row.boundary == (p_top < THRESHOLD)
        assert row.distance_to_centroid == pytest.approx(np.sqrt(squared[row[CLUSTER]]), rel=1e-9)
    if algorithm == "kmeans":  # bisecting K-means splits the far square in two
        centre = scored["s4"]
        assert (centre.segment_probability, centre.second_probability, centre.boundary) == (1.0, 0.0, False)


def test_two_kmeans_clusters_give_the_squared_distance_ratio(spark):
    rows = [(f"c{i}", float(v), 0.0) for i, v in enumerate([0, 1, 2, 10, 11, 12, 4, 6])]
    features = spark.createDataFrame(rows, "customer_id string, x double, y double")
    model = fit(features, "kmeans", 2)
    assert sorted(c[0] for c in clustering_stage(model).clusterCenters()) == [1.75, 9.75]
    scored = scored_rows(model, features)
    # Centroids 1.75 (0, 1, 2, 4) and 9.75 (6, 10, 11, 12): the customer at 4 is 2.25 from its
    # own and 5.75 from the other; the one at 6 is 3.75 from its own and 4.25 from the other.
    assert scored["c6"].segment_probability == pytest.approx(5.75**2 / (2.25**2 + 5.75**2))  # 0.867
    assert scored["c6"].second_probability == pytest.approx(2.25**2 / (2.25**2 + 5.75**2))
    assert scored["c7"].segment_probability == pytest.approx(4.25**2 / (3.75**2 + 4.25**2))  # 0.562
    assert (scored["c6"].boundary, scored["c7"].boundary) == (False, True)


def test_a_single_segment_has_no_runner_up(spark):
    # Bisecting K-means cannot split identical customers: asked for 2, it finds 1.
    rows = [(f"c{i}", 1.0, 2.0) for i in range(5)]
    features = spark.createDataFrame(rows, "customer_id string, x double, y double")
    model = fit(features, "bisecting_kmeans", 2)
    assert len(clustering_stage(model).clusterCenters()) == 1
    scored = score_customers(model, features, boundary_probability=THRESHOLD)
    assert {(r.segment_probability, r[SECOND_MODEL_CLUSTER_ID], r.second_probability, r.boundary)
            for r in scored.collect()} == {(1.0, None, None, False)}  # fmt: skip


def test_assignments_carry_the_runner_up_as_a_business_segment_id(spark):
    _, features = blobs(spark)
    model = fit(features, "gaussian_mixture", 3)
    scored = score_customers(model, features, boundary_probability=THRESHOLD)
    ids = {0: 7, 1: 3, 2: 5}
    profiles = [
        ClusterProfile(c, 1, 0.0, 0.0, 0.0, {}, segment_id=s, segment_name=f"s{s}") for c, s in ids.items()
    ]
    labelled = label_assignments(scored, profiles, assignment_id="a", lineage=LINEAGE)
    pairs = labelled.join(scored.select("customer_id", SECOND_MODEL_CLUSTER_ID), "customer_id").collect()
    assert pairs and all(r.second_segment_id == ids[r[SECOND_MODEL_CLUSTER_ID]] for r in pairs)
    assert all(r.segment_id == ids[r[CLUSTER]] for r in pairs)
    assert labelled.filter(F.col("boundary") != (F.col("segment_probability") < THRESHOLD)).count() == 0


SCORED = (
    f"customer_id string, {CLUSTER} int, monetary double, boundary boolean, {SECOND_MODEL_CLUSTER_ID} int"
)


def test_profiles_count_boundary_customers_and_the_segments_they_sit_between(spark):
    scored = spark.createDataFrame(
        [
            # Cluster 0: 4 customers, 3 on a boundary: two with cluster 1, one with cluster 2.
            ("a", 0, 1.0, True, 1),
            ("b", 0, 1.0, True, 1),
            ("c", 0, 1.0, True, 2),
            ("d", 0, 1.0, False, 1),
            # Cluster 1: 2 customers, none on a boundary.
            ("e", 1, 1.0, False, 0),
            ("f", 1, 1.0, False, 2),
            # Cluster 2: 2 customers, 1 on a boundary with cluster 0.
            ("g", 2, 1.0, True, 0),
            ("h", 2, 1.0, False, 0),
        ],
        SCORED,
    )
    profiles = profile_clusters(
        scored, ["monetary"], median_accuracy=100, counts=ClusterCounts(3, boundary=True)
    )
    assert [(p.boundary_customers, p.boundary_neighbours) for p in profiles] == [
        (3, {1: 2, 2: 1}),
        (0, {}),
        (1, {0: 1}),
    ]
    for profile, segment_id in zip(profiles, (20, 10, 30), strict=True):
        profile.segment_id, profile.segment_name = segment_id, f"s{segment_id}"
    frame = profiles_frame(
        spark, profiles, assignment_id="a", lineage=LINEAGE, rules_fidelity=None, boundary_probability=0.6
    )
    rows = {r.segment_id: r for r in frame.collect()}
    assert rows[20].boundary_share == 0.75
    assert [tuple(n) for n in rows[20].boundary_neighbours] == [(10, 2, 2 / 3), (30, 1, 1 / 3)]
    assert (rows[10].boundary_share, rows[10].boundary_neighbours) == (0.0, [])
    assert rows[30].boundary_share == 0.5 and [tuple(n) for n in rows[30].boundary_neighbours] == [
        (20, 1, 1.0)
    ]
    assert {r.boundary_probability for r in rows.values()} == {0.6}

    page = render_report(
        {"assignment_id": "a"},
        [r.asDict(recursive=True) for r in frame.collect()],
        migration=None,
        previous_assignment=None,
    )
    assert "<h2>Boundary customers</h2>" in page and "below 0.6" in page
    assert "<td>20 s20</td><td>75.0%</td><td>10 s10 (67%), 30 s30 (33%)</td>" in page
    assert "<td>10 s10</td><td>0.0%</td><td>-</td>" in page
