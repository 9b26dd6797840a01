"""Readable rules, one decision tree per segment against the rest, on hand-built customers
whose segments are defined by known thresholds: the rules recover them exactly, every segment
has one, and the decision list's fidelity is what the rules really do."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from segmentation.profiles import ClusterCounts, RulePredictions, profile_clusters
from segmentation.rules import Clause, Condition, RuleSet, SegmentRule, fit_segment_rules, leaf_paths
from segmentation.tables import MODEL_CLUSTER_ID as CLUSTER

COLUMNS = ["recency_days", "frequency", "monetary"]
SCHEMA = f"customer_id string, recency_days int, frequency long, monetary double, {CLUSTER} int"


def planted(recency: int, frequency: int) -> int:
    """A: frequency >= 10 and recency <= 30 (two features); B: recency > 60 (one); C: the rest,
    which needs two clauses."""
    if frequency >= 10 and recency <= 30:
        return 0
    return 1 if recency > 60 else 2


@pytest.fixture(scope="module")
def customers(spark):
    # Recency in steps of 5 and frequency 0..19: few distinct values, so the tree's candidate
    # thresholds are the midpoints between neighbours (32.5 lies between 30 and 35).
    rows = [
        (f"c{r}_{f}", r, f, float(1 + f * 3), planted(r, f))
        for r in range(0, 100, 5)
        for f in range(20)
        for _ in range(2)
    ]
    return spark.createDataFrame([(f"{c}_{i}", *rest) for i, (c, *rest) in enumerate(rows)], SCHEMA)


def measured(ruleset: RuleSet, scored):
    profiles = profile_clusters(
        scored,
        COLUMNS,
        median_accuracy=100,
        counts=ClusterCounts(3, rules=RulePredictions(ruleset.matches(), ruleset.placed())),
    )
    by_cluster = {p.cluster: p for p in profiles}
    recall = {c: p.rule_hits / p.customers for c, p in by_cluster.items()}
    precision = {c: p.rule_hits / p.rule_predicted for c, p in by_cluster.items()}
    fidelity = sum(p.rule_placed for p in profiles) / sum(p.customers for p in profiles)
    return recall, precision, fidelity


def test_every_planted_segment_is_recovered_with_full_recall_and_precision(spark, customers):
    ruleset = fit_segment_rules(customers, COLUMNS, clusters=range(3), max_depth=4, seed=7)
    assert sorted(ruleset.rules) == [0, 1, 2]
    a, b, c = (ruleset.rules[cluster] for cluster in range(3))
    # Two conditions on different features, in original units.
    assert [set(clause.conditions) for clause in a.clauses] == [
        {Condition("recency_days", "<=", 32.5), Condition("frequency", ">", 9.5)}
    ]
    assert b.text == "recency_days > 62.5"
    assert all(rule.majority for rule in (a, b, c))
    assert len(c.clauses) == 2 and all(len(clause.conditions) <= 4 for clause in c.clauses)
    for rule in (a, b, c):
        assert rule.text and "all customers" not in rule.text

    recall, precision, fidelity = measured(ruleset, customers)
    assert recall == {0: 1.0, 1: 1.0, 2: 1.0}
    assert precision == {0: 1.0, 1: 1.0, 2: 1.0}
    assert fidelity == 1.0
    # The rule columns agree with the planted definition on every customer.
    disagreeing = customers.withColumn("placed", ruleset.placed()).filter(F.col("placed") != F.col(CLUSTER))
    assert disagreeing.count() == 0


def test_a_segment_that_is_nowhere_the_majority_still_gets_its_best_rule(spark, customers):
    """D shares every one of its feature values with three customers of C: no region has D as
    its majority, so its rule comes from a tree on weighted customers, with the honest recall
    and precision of that."""
    point = customers.filter((F.col("recency_days") == 45) & (F.col("frequency") == 3)).first()
    extra = [(f"d{i}", point.recency_days, point.frequency, point.monetary, 3) for i in range(2)]
    extra += [(f"e{i}", point.recency_days, point.frequency, point.monetary, 2) for i in range(4)]
    scored = customers.unionByName(spark.createDataFrame(extra, SCHEMA))
    ruleset = fit_segment_rules(scored, COLUMNS, clusters=range(4), max_depth=4, seed=7)
    d = ruleset.rules[3]
    assert not d.majority and len(d.clauses) == 1 and d.text != "all customers"
    # Its leaf holds both D customers and at least the 6 C customers at the same point.
    (clause,) = d.clauses
    assert clause.sample_hits == 2 and clause.sample_customers >= 8
    profiles = profile_clusters(
        scored,
        COLUMNS,
        median_accuracy=100,
        counts=ClusterCounts(4, rules=RulePredictions(ruleset.matches(), ruleset.placed())),
    )
    (d_profile,) = [p for p in profiles if p.cluster == 3]
    assert d_profile.rule_hits == 2  # recall 1.0
    assert d_profile.rule_predicted == clause.sample_customers  # the sample is every customer here
    # A, B and C keep their exact rules; the 2 D customers sit with C's at one point, where
    # the decision list places all 8 in one segment: C's clause is more precise, so C.
    assert sum(p.rule_placed for p in profiles) == scored.count() - 2


def test_overlapping_rules_are_read_as_a_decision_list_most_precise_clause_first(spark):
    x_at_most = lambda t: Condition("x", "<=", t)  # noqa: E731
    ruleset = RuleSet(
        {
            0: SegmentRule(0, (Clause((x_at_most(5.0),), sample_customers=10, sample_hits=9),)),
            1: SegmentRule(
                1,
                (
                    Clause((x_at_most(8.0),), sample_customers=20, sample_hits=19),
                    Clause((Condition("x", ">", 20.0),), sample_customers=4, sample_hits=1),
                ),
            ),
            # Covers no customer of its segment on the sample: never tried.
            2: SegmentRule(2, (Clause((x_at_most(100.0),), sample_customers=5, sample_hits=0),), False),
        }
    )
    assert [(c, clause.sample_precision) for c, clause in ruleset.decision_list()] == [
        (1, 0.95),
        (0, 0.9),
        (1, 0.25),
    ]
    frame = spark.createDataFrame([(3.0,), (7.0,), (9.0,), (25.0,), (None,)], "x double")
    placed = [row.placed for row in frame.select(ruleset.placed().alias("placed")).collect()]
    assert placed == [1, 1, None, 1, 1]  # null reads as 0, like the model's preprocessing
    matches = ruleset.matches()
    both = frame.select(matches[0].alias("a"), matches[1].alias("b")).collect()
    expected = [(True, True), (False, True), (False, False), (False, True), (True, True)]
    assert [(r.a, r.b) for r in both] == expected
    assert ruleset.texts() == {0: "x <= 5", 1: "x <= 8 OR x > 20", 2: "x <= 100"}


def test_sibling_leaves_with_the_same_prediction_merge_into_their_parent():
    debug = """DecisionTreeClassificationModel: uid=dtc, depth=2, numNodes=7, numClasses=2, numFeatures=2
  If (feature 0 <= 32.5)
   If (feature 1 <= 9.5)
    Predict: 0.0
   Else (feature 1 > 9.5)
    Predict: 1.0
  Else (feature 0 > 32.5)
   If (feature 1 <= 3.5)
    Predict: 0.0
   Else (feature 1 > 3.5)
    Predict: 0.0
"""
    columns = ["recency_days", "frequency"]
    r, f = "recency_days", "frequency"
    assert leaf_paths(debug, columns) == [
        (False, (Condition(r, "<=", 32.5), Condition(f, "<=", 9.5))),
        (True, (Condition(r, "<=", 32.5), Condition(f, ">", 9.5))),
        (False, (Condition(r, ">", 32.5),)),
    ]
