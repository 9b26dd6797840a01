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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.clustering import BisectingKMeansModel, GaussianMixtureModel, KMeansModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segmentation.errors import InputError
from segmentation.lineage import Lineage, ModelIdentity
from segmentation.models import PREDICTION, PROBABILITY, SCALED
from segmentation.naming import assign_names
from segmentation.profiles import ClusterProfile
from segmentation.tables import (
    ASSIGNMENT_ID,
    BOUNDARY,
    CUSTOMER_ID,
    DISTANCE_TO_CENTROID,
    MODEL_CLUSTER_ID,
    SECOND_MODEL_CLUSTER_ID,
    SECOND_PROBABILITY,
    SECOND_SEGMENT_ID,
    SEGMENT_ID,
    SEGMENT_NAME,
    SEGMENT_PROBABILITY,
)

_POINT = "_point"
_SQUARED = "_squared_distances"
_PROBABILITIES = "_probabilities"
_RUNNER_UP = "_runner_up"
_P, _NEGATED_CLUSTER = "p", "negated_cluster"

_ALGORITHMS = {
    KMeansModel: "kmeans",
    BisectingKMeansModel: "bisecting_kmeans",
    GaussianMixtureModel: "gaussian_mixture",
}


@dataclass(frozen=True)
class SegmentMatch:
    segment_id: int
    previous_segment_id: Optional[int]
    jaccard: Optional[float]


@dataclass(frozen=True)
class PreviousAssignment:
    """The assignment a new one is matched against: its id, its segments' ids, names and sizes,
    and the next segment id never used in any assignment."""

    assignment_id: str
    segment_sizes: dict[int, int]
    segment_names: dict[int, str]
    next_segment_id: int


def assignment_id_for(as_of_date: dt.date, model: ModelIdentity) -> str:
    """`<as_of_date>_<model name>_v<version>`; a run's unregistered model: `..._run-<run id>`.

    >>> assignment_id_for(dt.date(2025, 12, 31), ModelIdentity("churn", "3", "abc"))
    '2025-12-31_churn_v3'
    """
    if "'" in model.name:
        raise InputError(f"registered model name {model.name!r}: a quote cannot go into an assignment id")
    version = f"v{model.version}" if model.version is not None else f"run-{model.run_id[:12]}"
    return f"{as_of_date.isoformat()}_{model.name}_{version}"


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


def score_customers(model: PipelineModel, features: DataFrame, *, boundary_probability: float) -> DataFrame:
    """The input columns plus `model_cluster_id`, `segment_probability`,
    `second_model_cluster_id`, `second_probability`, `boundary` and `distance_to_centroid`.

    Every customer gets a probability for every cluster, summing to 1, highest for the cluster
    the model assigned: `segment_probability` is that one, the runner-up is the second cluster
    (ties go to the lower cluster number; null with a single cluster), and `boundary` is
    `segment_probability < boundary_probability`. For a Gaussian mixture the probabilities are
    the posteriors. K-means and bisecting K-means have none; there they are the distance-based
    memberships of `kmeans_memberships`. `distance_to_centroid` is Euclidean, in the model's
    scaled feature space.
    """
    centers = cluster_centers(model)
    point = vector_to_array(F.col(SCALED))
    with_point = model.transform(features).withColumn(_POINT, point)
    # Plain arithmetic on array elements, so Spark generates code for it; the vector is
    # converted once per row.
    squared = [
        sum((F.col(_POINT)[i] - F.lit(float(c))) ** 2 for i, c in enumerate(center)) for center in centers
    ]
    cluster = F.col(PREDICTION)
    with_squared = with_point.withColumn(_SQUARED, F.array(*squared))
    if isinstance(clustering_stage(model), GaussianMixtureModel):
        probabilities = vector_to_array(F.col(PROBABILITY))
    else:
        probabilities = kmeans_memberships(F.col(_SQUARED), cluster, len(centers))
    with_probabilities = with_squared.withColumn(_PROBABILITIES, probabilities)
    p = [F.col(_PROBABILITIES)[j] for j in range(len(centers))]
    # The highest (probability, -cluster) among the other clusters: array_max skips the nulls.
    others = F.array(
        *[
            F.when(cluster != F.lit(j), F.struct(p[j].alias(_P), F.lit(-j).alias(_NEGATED_CLUSTER)))
            for j in range(len(centers))
        ]
    )
    runner_up = F.array_max(others) if len(centers) > 1 else F.lit(None)
    top = F.element_at(F.col(_PROBABILITIES), cluster + 1)
    scored = with_probabilities.withColumn(_RUNNER_UP, runner_up)
    second = (
        (-F.col(_RUNNER_UP)[_NEGATED_CLUSTER], F.col(_RUNNER_UP)[_P])
        if len(centers) > 1
        else (F.lit(None), F.lit(None))
    )
    return scored.select(
        *[F.col(column) for column in features.columns],
        cluster.cast("int").alias(MODEL_CLUSTER_ID),
        top.cast("double").alias(SEGMENT_PROBABILITY),
        second[0].cast("int").alias(SECOND_MODEL_CLUSTER_ID),
        second[1].cast("double").alias(SECOND_PROBABILITY),
        (top < F.lit(float(boundary_probability))).alias(BOUNDARY),
        F.sqrt(F.element_at(F.col(_SQUARED), cluster + 1)).alias(DISTANCE_TO_CENTROID),
    )


def kmeans_memberships(squared_distances: Column, cluster: Column, clusters: int) -> Column:
    """Distance-based probabilities for K-means and bisecting K-means: the fuzzy c-means
    membership with fuzzifier 2, u_j = (1 / d_j^2) / sum_l (1 / d_l^2), d_j the distance to
    centroid j.

    Why this one: it needs no temperature (rescaling the feature space leaves it unchanged);
    it is 1 at a centroid and 1/2 on the boundary between two equally distant centroids; with
    two clusters it is d_next^2 / (d_own^2 + d_next^2); and squaring the distances makes far
    clusters fade fast, so a customer deep inside a segment keeps a high probability however
    many segments there are (plain inverse distances dilute it much faster as k grows). A softmax of
    negative squared distances would need a temperature, i.e. a cluster width to estimate.

    Bisecting K-means assigns a customer by walking its tree of splits, which can end at a
    cluster whose centroid is not the nearest. So that the assigned cluster stays the most
    probable, its distance is taken as the nearest centroid's: such a customer ties at the top
    with the nearest cluster and falls below any boundary threshold above 1/2. Computed as
    weights w_j = d_min^2 / d_j^2 (1 for the assigned cluster; at a centroid, 1 there and 0
    elsewhere), then normalised.
    """
    d = [squared_distances[j] for j in range(clusters)]
    nearest = F.array_min(squared_distances)
    weights = [
        F.when(cluster == F.lit(j), F.lit(1.0))
        .when(nearest == 0, F.when(d[j] == 0, F.lit(1.0)).otherwise(F.lit(0.0)))
        .otherwise(nearest / d[j])
        for j in range(clusters)
    ]
    total = sum(weights[1:], weights[0])
    return F.array(*[w / total for w in weights])


def member_overlaps(current: DataFrame, previous: DataFrame) -> dict[tuple[int, int], int]:
    """Customers shared by (current cluster, previous segment): a k x k' table."""
    joined = current.select(CUSTOMER_ID, MODEL_CLUSTER_ID).join(
        previous.select(CUSTOMER_ID, SEGMENT_ID), CUSTOMER_ID
    )
    return {
        (row[MODEL_CLUSTER_ID], row[SEGMENT_ID]): row["count"]
        for row in joined.groupBy(MODEL_CLUSTER_ID, SEGMENT_ID).count().collect()
    }


def match_segments(
    cluster_sizes: dict[int, int],
    previous_sizes: dict[int, int],
    overlaps: dict[tuple[int, int], int],
    *,
    min_jaccard: float,
    next_id: int,
) -> dict[int, SegmentMatch]:
    """Stable segment ids for a new assignment's clusters (see the module docstring).

    >>> match_segments({0: 10, 1: 5}, {7: 5, 3: 10}, {(0, 3): 10, (1, 7): 5}, min_jaccard=0.5, next_id=8)[0]
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


def identify_segments(
    profiles: list[ClusterProfile],
    previous: Optional[PreviousAssignment],
    overlaps: dict[tuple[int, int], int],
    *,
    min_jaccard: float,
) -> None:
    """Give every profile its stable `segment_id`, `previous_segment_id`, `match_jaccard` and
    name: matched segments keep the previous id and name; the rest get new ids and fresh,
    unique names. Without a previous assignment, segments are numbered 1..k by size."""
    sizes = {p.cluster: p.customers for p in profiles}
    if previous is None:
        by_size = sorted(sizes, key=lambda cluster: (-sizes[cluster], cluster))
        matches = {cluster: SegmentMatch(rank + 1, None, None) for rank, cluster in enumerate(by_size)}
    else:
        matches = match_segments(
            sizes,
            previous.segment_sizes,
            overlaps,
            min_jaccard=min_jaccard,
            next_id=previous.next_segment_id,
        )
    previous_names = previous.segment_names if previous else {}
    kept = []
    for profile in profiles:
        match = matches[profile.cluster]
        profile.segment_id = match.segment_id
        profile.previous_segment_id = match.previous_segment_id
        profile.match_jaccard = match.jaccard
        if match.segment_id in previous_names:
            profile.segment_name = previous_names[match.segment_id]
            kept.append(match.segment_id)
    assign_names(profiles, kept)


def previous_assignment(profile_rows: Sequence[Any], assignment_id: str) -> Optional[PreviousAssignment]:
    """From `segment_profiles` rows (k per assignment): the most recently assigned assignment
    other than `assignment_id`, or None when there is none."""
    others = [row for row in profile_rows if row[ASSIGNMENT_ID] != assignment_id]
    if not others:
        return None
    latest = max(others, key=lambda row: (row.assigned_at, row[ASSIGNMENT_ID]))[ASSIGNMENT_ID]
    rows = [row for row in others if row[ASSIGNMENT_ID] == latest]
    return PreviousAssignment(
        assignment_id=latest,
        segment_sizes={row[SEGMENT_ID]: row.customers for row in rows},
        segment_names={row[SEGMENT_ID]: row[SEGMENT_NAME] for row in rows},
        # Not counting `assignment_id`'s own rows: assigning it again must give the same ids.
        next_segment_id=max(row[SEGMENT_ID] for row in others) + 1,
    )


def label_assignments(
    scored: DataFrame, profiles: list[ClusterProfile], *, assignment_id: str, lineage: Lineage
) -> DataFrame:
    """The gold `segment_assignments` rows: stable ids and names from the profiles, lineage on every row."""
    ids = F.create_map(*[F.lit(x) for p in profiles for x in (p.cluster, p.segment_id)])
    names = F.create_map(*[F.lit(x) for p in profiles for x in (p.cluster, p.segment_name)])
    cluster = F.col(MODEL_CLUSTER_ID)
    return scored.select(
        F.lit(assignment_id).alias(ASSIGNMENT_ID),
        F.col(CUSTOMER_ID),
        ids[cluster].cast("int").alias(SEGMENT_ID),
        names[cluster].alias(SEGMENT_NAME),
        F.col(SEGMENT_PROBABILITY).cast("double"),
        # A runner-up cluster without customers has no segment id: null, like k=1.
        ids[F.col(SECOND_MODEL_CLUSTER_ID)].cast("int").alias(SECOND_SEGMENT_ID),
        F.col(SECOND_PROBABILITY).cast("double"),
        F.col(BOUNDARY),
        F.col(DISTANCE_TO_CENTROID).cast("double"),
        cluster,
        *lineage.columns(),
    )
