"""The gold transforms on small hand-built data with known answers: scoring, profiles, identity
matching, names, rules, SCD2 membership and migration."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from segmentation import tables
from segmentation.assign import SegmentMatch, match_segments, previous_assignment, score_customers
from segmentation.cli import matrix_lines
from segmentation.config import LakeConfig
from segmentation.history import MigrationSummary, migration
from segmentation.io import merge_scd2, read_table, table_history, table_ref
from segmentation.models import Preprocessing, build_pipeline
from segmentation.naming import VOCABULARY, assign_names
from segmentation.profiles import (
    ClusterCounts,
    ClusterProfile,
    FeatureStats,
    RulePredictions,
    profile_clusters,
)
from segmentation.rules import Condition, fit_segment_rules, render
from segmentation.tables import MODEL_CLUSTER_ID as CLUSTER


def test_scoring_gives_distance_to_the_own_centroid_and_a_distance_membership(spark):
    rows = [
        (f"c{i}", float(x), float(y)) for i, (x, y) in enumerate([(0, 0), (0, 2), (10, 0), (10, 2), (4, 1)])
    ]
    features = spark.createDataFrame(rows, "customer_id string, x double, y double")
    plain = Preprocessing(winsorize_quantiles=None, standardize=False)
    model = build_pipeline(features, ["x", "y"], plain, algorithm="kmeans", params={"k": 2}, seed=1).fit(
        features
    )
    scored = {r.customer_id: r for r in score_customers(model, features, boundary_probability=0.6).collect()}
    centers = np.array(model.stages[-2].clusterCenters())
    for customer_id, x, y in rows:
        distances = np.linalg.norm(centers - np.array([x, y]), axis=1)
        row = scored[customer_id]
        own = distances[row[CLUSTER]]
        other = distances[1 - row[CLUSTER]]
        assert row.distance_to_centroid == pytest.approx(own, rel=1e-12)
        # With two clusters, the membership is d_other^2 / (d_own^2 + d_other^2).
        assert row.segment_probability == pytest.approx(other**2 / (own**2 + other**2), rel=1e-12)
        assert row.second_probability == pytest.approx(own**2 / (own**2 + other**2), rel=1e-12)
    # (4, 1) lies between the two groups, (0, 0) near its own centroid.
    assert scored["c4"].segment_probability < scored["c0"].segment_probability


def test_mixture_confidence_is_the_maximum_posterior(spark):
    rows = [(f"c{i}", float(v)) for i, v in enumerate([0, 0.1, 0.2, 0.3, 9.7, 9.8, 9.9, 10, 5])]
    features = spark.createDataFrame(rows, "customer_id string, x double")
    plain = Preprocessing(winsorize_quantiles=None, standardize=False)
    model = build_pipeline(features, ["x"], plain, algorithm="gaussian_mixture", params={"k": 2}, seed=3).fit(
        features
    )
    expected = {
        r.customer_id: max(r.segment_probabilities.toArray()) for r in model.transform(features).collect()
    }
    for row in score_customers(model, features, boundary_probability=0.6).collect():
        assert row.segment_probability == pytest.approx(expected[row.customer_id], rel=1e-12)


def test_profiles_have_shares_means_medians_and_population_z_scores(spark):
    scored = spark.createDataFrame(
        [("a", 0, 10.0, 1.0), ("b", 0, 30.0, 3.0), ("c", 1, 60.0, 5.0), ("d", 1, 100.0, None)],
        f"customer_id string, {CLUSTER} int, monetary double, frequency double",
    )
    first, second = profile_clusters(scored, ["monetary", "frequency"], median_accuracy=10_000)
    assert (first.customers, first.customer_share, first.revenue_share) == (2, 0.5, 0.2)
    assert (second.revenue, second.revenue_share) == (160.0, 0.8)
    money = np.array([10.0, 30.0, 60.0, 100.0])
    assert first.features["monetary"].mean == 20.0
    assert first.features["monetary"].median == 10.0  # percentile_approx returns a member
    assert first.features["monetary"].z_score == pytest.approx((20.0 - money.mean()) / money.std())
    frequency = np.array([1.0, 3.0, 5.0])  # the null is left out, not read as 0
    assert second.features["frequency"].mean == 5.0
    assert second.features["frequency"].z_score == pytest.approx((5.0 - frequency.mean()) / frequency.std())


def test_matching_keeps_ids_of_overlapping_segments_and_numbers_the_rest_afresh():
    sizes = {0: 100, 1: 50, 2: 30}
    previous = {7: 100, 3: 60}
    overlaps = {(0, 3): 45, (0, 7): 55, (1, 3): 10, (1, 7): 40, (2, 3): 5}
    matches = match_segments(sizes, previous, overlaps, min_jaccard=0.3, next_id=9)
    # Jaccard: (0,7) 55/145=0.379, (0,3) 45/115=0.391, (1,7) 40/110=0.364, (1,3) 10/100=0.1
    assert matches[0] == SegmentMatch(3, 3, pytest.approx(45 / 115))
    assert matches[1] == SegmentMatch(7, 7, pytest.approx(40 / 110))
    assert matches[2] == SegmentMatch(9, 3, pytest.approx(5 / 85))
    strict = match_segments(sizes, previous, overlaps, min_jaccard=0.5, next_id=9)
    assert [strict[c].segment_id for c in (0, 1, 2)] == [9, 10, 11]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.permutations(range(6)), st.integers(0, 50))
def test_segmenting_the_same_customers_again_keeps_every_id(labels, permutation, first_id):
    """The same partition with the model's cluster numbers permuted maps back onto the
    previous segment ids exactly, with match quality 1."""
    previous_ids = {label: first_id + label for label in set(labels)}
    previous_sizes = {previous_ids[label]: labels.count(label) for label in set(labels)}
    sizes = {permutation[label]: labels.count(label) for label in set(labels)}
    overlaps = {(permutation[label], previous_ids[label]): labels.count(label) for label in set(labels)}
    matches = match_segments(sizes, previous_sizes, overlaps, min_jaccard=0.5, next_id=first_id + 6)
    for label in set(labels):
        assert matches[permutation[label]] == SegmentMatch(previous_ids[label], previous_ids[label], 1.0)


def _profile(segment_id: int, **z: float) -> ClusterProfile:
    features = {name: FeatureStats(name, 0.0, 0.0, value) for name, value in z.items()}
    return ClusterProfile(segment_id, 100, 0.0, 0.1, 0.1, features, segment_id=segment_id)


def test_names_follow_the_rfm_profile_and_kept_names_are_not_reused():
    champions = _profile(1, recency_days=-1.2, frequency=2.0, monetary=2.5, tenure_days=0.8)
    lost = _profile(2, recency_days=2.0, frequency=-1.0, monetary=-1.0, tenure_days=0.5)
    newcomers = _profile(3, recency_days=-1.0, frequency=-0.8, monetary=-0.5, tenure_days=-1.8)
    profiles = [champions, lost, newcomers]
    assign_names(profiles)
    assert [p.segment_name for p in profiles] == ["Champions", "Lost", "New customers"]

    lost.segment_name = "Champions"  # a kept name wins even where the profile disagrees
    champions.segment_name = newcomers.segment_name = ""
    assign_names(profiles, kept=[2])
    assert lost.segment_name == "Champions"
    assert champions.segment_name not in {"Champions", ""}
    assert len({p.segment_name for p in profiles}) == 3


RFM_FEATURES = ("recency_days", "frequency", "monetary", "avg_order_value", "tenure_days")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-3, 3), min_size=5, max_size=5), min_size=1, max_size=15))
def test_names_are_unique_and_deterministic(z_rows):
    def named():
        profiles = [
            _profile(
                i,
                **dict(
                    zip(
                        ["recency_days", "frequency", "monetary", "avg_order_value", "tenure_days"],
                        z,
                        strict=False,
                    )
                ),
            )
            for i, z in enumerate(z_rows)
        ]
        assign_names(profiles)
        return [p.segment_name for p in profiles]

    names = named()
    assert names == named()
    assert len(set(names)) == len(names)
    assert sum(name in VOCABULARY for name in names) == min(len(names), len(VOCABULARY))


def test_rules_merge_thresholds_per_feature():
    conditions = [
        Condition("recency_days", "<=", 90.5),
        Condition("frequency", ">", 3.5),
        Condition("recency_days", "<=", 30.25),
        Condition("recency_days", ">", 7.0),
    ]
    assert render(conditions) == "7 < recency_days <= 30.2 AND frequency > 3.5"
    assert render([Condition("monetary", ">", 12345.6)]) == "monetary > 12,346"
    assert render([]) == "all customers"


def test_rules_recover_a_planted_threshold_with_full_fidelity(spark):
    rows = [(f"c{i}", float(i), float(i % 7), 0 if i <= 40 else (1 if i % 7 < 3 else 2)) for i in range(100)]
    scored = spark.createDataFrame(
        rows, f"customer_id string, recency_days double, frequency double, {CLUSTER} int"
    )
    columns = ["recency_days", "frequency"]
    ruleset = fit_segment_rules(scored, columns, clusters=range(3), max_depth=2, seed=1)
    assert ruleset.texts()[0] == "recency_days <= 40.5"
    # Any recency threshold in [37, 41) is exact here (38, 39 and 40 have frequency > 2.5).
    for cluster, frequency in ((1, ("<=", 2.5)), (2, (">", 2.5))):
        (clause,) = ruleset.rules[cluster].clauses
        bounds = {c.feature: (c.operator, c.threshold) for c in clause.conditions}
        assert bounds["frequency"] == frequency and len(bounds) == 2
        assert bounds["recency_days"][0] == ">" and 37 <= bounds["recency_days"][1] < 41
    profiles = profile_clusters(
        scored.withColumn("monetary", F.lit(1.0)),
        columns,
        median_accuracy=100,
        counts=ClusterCounts(3, rules=RulePredictions(ruleset.matches(), ruleset.placed())),
    )
    assert sum(p.rule_placed for p in profiles) == 100
    assert [p.rule_hits for p in profiles] == [p.customers for p in profiles]
    assert [p.rule_predicted for p in profiles] == [p.customers for p in profiles]


MEMBERSHIP_SCHEMA = (
    "customer_id string, segment_id int, segment_name string, assignment_id string, model_version string"
)


def test_membership_is_scd2_over_three_versions_with_known_moves(spark, tmp_path):
    ref = table_ref(LakeConfig(root=str(tmp_path)), tables.SEGMENT_MEMBERSHIP)
    versions = [
        ("v1", dt.date(2025, 1, 31), [("a", 1, "One"), ("b", 1, "One"), ("c", 2, "Two")]),
        # b moves to 2, d is new
        ("v2", dt.date(2025, 2, 28), [("a", 1, "One"), ("b", 2, "Two"), ("c", 2, "Two"), ("d", 3, "Three")]),
        # a moves to 3, b stays, c is gone
        ("v3", dt.date(2025, 3, 31), [("a", 3, "Three"), ("b", 2, "Two"), ("d", 3, "Three")]),
    ]
    for assignment_id, as_of, members in versions:
        current = spark.createDataFrame([(*m, assignment_id, "1") for m in members], MEMBERSHIP_SCHEMA)
        merge_scd2(spark, ref, current, valid_from=as_of, user_metadata={"assignment_id": assignment_id})

    jan, feb, mar = (v[1] for v in versions)
    expected = spark.createDataFrame(
        [
            ("a", 1, "One", "v1", "1", jan, mar, False),
            ("a", 3, "Three", "v3", "1", mar, None, True),
            ("b", 1, "One", "v1", "1", jan, feb, False),
            ("b", 2, "Two", "v2", "1", feb, None, True),
            ("c", 2, "Two", "v1", "1", jan, mar, False),
            ("d", 3, "Three", "v2", "1", feb, None, True),
        ],
        f"{MEMBERSHIP_SCHEMA}, valid_from date, valid_to date, is_current boolean",
    )
    assertDataFrameEqual(read_table(spark, ref), expected)
    creation, *merges = table_history(spark, ref)
    assert creation["operation"] == "CREATE TABLE"
    assert [c["user_metadata"]["assignment_id"] for c in merges] == ["v1", "v2", "v3"]

    # Applying the latest assignment again changes nothing.
    current = spark.createDataFrame([(*m, "v3", "1") for m in versions[2][2]], MEMBERSHIP_SCHEMA)
    merge_scd2(spark, ref, current, valid_from=mar, user_metadata={"assignment_id": "v3"})
    assertDataFrameEqual(read_table(spark, ref), expected)


def test_migration_counts_moves_new_and_gone_customers(spark):
    schema = "customer_id string, segment_id int, segment_name string"
    before = spark.createDataFrame(
        [("a", 1, "One"), ("b", 1, "One"), ("c", 2, "Two"), ("e", 2, "Two")], schema
    )
    after = spark.createDataFrame(
        [("a", 1, "One"), ("b", 2, "Two"), ("c", 2, "Two"), ("d", 2, "Two")], schema
    )
    cells = migration(before, after)
    assertDataFrameEqual(
        cells,
        [
            Row(
                from_segment_id=1,
                from_segment_name="One",
                to_segment_id=1,
                to_segment_name="One",
                customers=1,
                share_of_from=0.5,
            ),
            Row(
                from_segment_id=1,
                from_segment_name="One",
                to_segment_id=2,
                to_segment_name="Two",
                customers=1,
                share_of_from=0.5,
            ),
            Row(
                from_segment_id=2,
                from_segment_name="Two",
                to_segment_id=2,
                to_segment_name="Two",
                customers=1,
                share_of_from=0.5,
            ),
            Row(
                from_segment_id=2,
                from_segment_name="Two",
                to_segment_id=None,
                to_segment_name=None,
                customers=1,
                share_of_from=0.5,
            ),
            Row(
                from_segment_id=None,
                from_segment_name=None,
                to_segment_id=2,
                to_segment_name="Two",
                customers=1,
                share_of_from=1.0,
            ),
        ],
    )
    summary = MigrationSummary.from_cells([row.asDict() for row in cells.collect()])
    assert (summary.new_customers, summary.gone_customers) == (1, 1)
    assert summary.retention == {1: 0.5, 2: 0.5}
    assert matrix_lines(summary)[1].split() == ["1", "One", "1", "(50%)", "1", "(50%)", "-"]


def test_assigning_an_assignment_again_numbers_new_segments_as_the_first_time():
    """New segment ids continue after the previous assignments' ids, not counting the
    assignment being assigned again, whose own new id (4) would otherwise push it to 5."""

    def row(assignment_id, segment_id, day):
        return Row(
            assignment_id=assignment_id,
            segment_id=segment_id,
            segment_name=f"s{segment_id}",
            customers=10,
            assigned_at=dt.datetime(2025, 1, day),
        )

    rows = [row("a", s, 1) for s in (1, 2, 3)] + [row("b", s, 2) for s in (1, 2, 3, 4)]
    again = previous_assignment(rows, "b")
    assert (again.assignment_id, again.next_segment_id) == ("a", 4)
    assert previous_assignment(rows, "c").next_segment_id == 5
