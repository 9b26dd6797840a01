"""Rules a marketer can read: for every segment, a shallow decision tree that tells its
customers from the rest, turned into `condition AND condition ... OR ...` on the original
feature values.

Why one tree per segment: a single multi-class tree of readable depth has fewer leaves than
it needs for k segments, so a large, spread-out segment (the Champions of the default data)
can end up predicted by no leaf at all. A one-against-the-rest tree per segment always has a
region to describe.

* Each tree (Spark MLlib `DecisionTreeClassifier`, depth `assign.rules_max_depth` <= 4, so at
  most four conditions per clause) is fitted on a seeded hash sample. Sibling leaves with the
  same prediction are merged into their parent. The leaves where the segment is the majority
  are its clauses; its rule is their disjunction. A segment that is the majority of no leaf
  gets a tree on weighted customers instead (the segment and the rest weigh the same), whose
  leaves mark where it is over-represented; its honest recall and precision say how well that
  describes it (`SegmentRule.majority` is False). Every segment has a rule.
* Thresholds are in original units and rounded for display (three significant figures, whole
  numbers from 100) before anything is measured, so the rule measured is the rule shown.
  Nulls read as 0, like the model's own preprocessing.
* Recall and precision of a segment's rule are measured on every customer, each rule on its
  own. Rules of different segments may overlap and may leave customers out, so for fidelity
  they are read as a decision list: every clause of every rule, most precise first (precision
  on the sample), the first clause a customer satisfies places the customer in its segment; a
  customer no clause covers is not placed. Fidelity is the share of all customers placed in
  the segment the model gave them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from typing import Optional, Union

from pyspark.ml.classification import DecisionTreeClassifier
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segmentation.tables import MODEL_CLUSTER_ID

_VECTOR = "_rule_features"
_LABEL = "_rule_label"
_WEIGHT = "_rule_weight"
_CONDITION = re.compile(r"(If|Else) \(feature (\d+) (<=|>) (\S+)\)")
_LEAF = re.compile(r"Predict: (\S+)")
_MAX_BINS = 64


@dataclass(frozen=True)
class Condition:
    feature: str
    operator: str  # "<=" or ">"
    threshold: float

    def column(self) -> Column:
        value = F.coalesce(F.col(self.feature).cast("double"), F.lit(0.0))
        bound = F.lit(float(self.threshold))
        return value <= bound if self.operator == "<=" else value > bound


@dataclass(frozen=True)
class Clause:
    """One leaf of a segment's tree: the conditions on the path to it, and how pure the leaf
    is on the sample the tree was fitted on."""

    conditions: tuple[Condition, ...]
    sample_customers: int = 0  # sample customers the clause covers
    sample_hits: int = 0  # of those, in the segment

    @property
    def sample_precision(self) -> float:
        return self.sample_hits / self.sample_customers if self.sample_customers else 0.0

    def column(self) -> Column:
        return reduce(lambda a, b: a & b, (c.column() for c in self.conditions), F.lit(True))

    @property
    def text(self) -> str:
        return render(list(self.conditions))


@dataclass(frozen=True)
class SegmentRule:
    """A segment's rule: its clauses, joined by OR. `majority` is False when the tree found no
    region where the segment is the majority and the rule is its best leaf."""

    cluster: int
    clauses: tuple[Clause, ...]
    majority: bool = True

    def column(self) -> Column:
        return reduce(lambda a, b: a | b, (c.column() for c in self.clauses), F.lit(False))

    @property
    def text(self) -> str:
        texts = [clause.text for clause in self.clauses]
        if len(texts) == 1:
            return texts[0]
        return " OR ".join(f"({text})" if " AND " in text else text for text in texts)


@dataclass(frozen=True)
class RuleSet:
    """Every segment's rule, and the decision list that places customers (module docstring)."""

    rules: dict[int, SegmentRule]

    def decision_list(self) -> list[tuple[int, Clause]]:
        """(cluster, clause) in the order the clauses are tried: most precise on the sample
        first, then the larger, then by cluster. Clauses that cover no sample customer of
        their segment can place nobody correctly and are left out."""
        entries = [(rule.cluster, clause) for rule in self.rules.values() for clause in rule.clauses]
        kept = [(cluster, clause) for cluster, clause in entries if clause.sample_hits > 0]
        return sorted(kept, key=lambda entry: (-entry[1].sample_precision, -entry[1].sample_hits, entry[0]))

    def matches(self) -> dict[int, Column]:
        """Per cluster, a boolean column: the customer satisfies the cluster's rule."""
        return {cluster: rule.column() for cluster, rule in self.rules.items()}

    def placed(self) -> Column:
        """The cluster the decision list places a customer in; null when no clause covers it."""
        placed = F.lit(None).cast("int")
        for cluster, clause in reversed(self.decision_list()):
            placed = F.when(clause.column(), F.lit(cluster)).otherwise(placed)
        return placed

    def texts(self) -> dict[int, str]:
        return {cluster: rule.text for cluster, rule in self.rules.items()}


def fit_segment_rules(
    sample: DataFrame, feature_columns: Sequence[str], *, clusters: Sequence[int], max_depth: int, seed: int
) -> RuleSet:
    """One tree per cluster in `clusters` against the rest, on `sample` (the feature columns
    and `model_cluster_id`), read into rules and scored on the sample for the decision list."""
    assembler = VectorAssembler(inputCols=[_input_name(c) for c in feature_columns], outputCol=_VECTOR)
    inputs = sample.select(
        F.col(MODEL_CLUSTER_ID),
        *[F.col(c) for c in feature_columns],
        *[F.coalesce(F.col(c).cast("double"), F.lit(0.0)).alias(_input_name(c)) for c in feature_columns],
    )
    # Cached: every tree and the leaf counts read the same sample, which is scored by the
    # clustering model and would otherwise be recomputed for each of them.
    assembled = assembler.transform(inputs).persist()
    try:
        sizes = {
            row[MODEL_CLUSTER_ID]: row["count"]
            for row in assembled.groupBy(MODEL_CLUSTER_ID).count().collect()
        }
        leaves, majority = {}, {}
        for cluster in clusters:
            fit = partial(_tree_paths, assembled, cluster, feature_columns, max_depth=max_depth, seed=seed)
            leaves[cluster], majority[cluster] = fit(), True
            balanced = _balanced(sizes, cluster)
            if balanced is not None and not any(positive for positive, _ in leaves[cluster]):
                leaves[cluster], majority[cluster] = fit(balanced=balanced), False
        counts = _leaf_counts(assembled, leaves)
    finally:
        assembled.unpersist()
    return RuleSet(
        {
            cluster: _rule(cluster, leaves[cluster], counts[cluster], majority=majority[cluster])
            for cluster in clusters
        }
    )


def _tree_paths(
    assembled: DataFrame,
    cluster: int,
    feature_columns: Sequence[str],
    *,
    max_depth: int,
    seed: int,
    balanced: Optional[tuple[float, float]] = None,
) -> list[tuple[bool, tuple[Condition, ...]]]:
    """The leaves of `cluster`'s tree against the rest; with `balanced` (weights of the
    cluster's customers and of the rest), a tree on weighted customers."""
    tree = DecisionTreeClassifier(
        featuresCol=_VECTOR, labelCol=_LABEL, maxDepth=max_depth, maxBins=_MAX_BINS, seed=seed
    )
    labelled = assembled.withColumn(_LABEL, _is(cluster).cast("double"))
    if balanced is not None:
        tree.setWeightCol(_WEIGHT)
        weight = F.when(_is(cluster), F.lit(balanced[0])).otherwise(F.lit(balanced[1]))
        labelled = labelled.withColumn(_WEIGHT, weight)
    return leaf_paths(tree.fit(labelled).toDebugString, feature_columns)


def _balanced(sizes: dict[int, int], cluster: int) -> Optional[tuple[float, float]]:
    """Weights that give the cluster and the rest the same total weight: a segment that is
    the majority nowhere is then predicted where it is over-represented, which is its best
    description within the depth. None when the sample has none of it, or only it."""
    total, own = sum(sizes.values()), sizes.get(cluster, 0)
    if own == 0 or own == total:
        return None
    return total / (2 * own), total / (2 * (total - own))


def _is(cluster: int) -> Column:
    return F.col(MODEL_CLUSTER_ID) == F.lit(cluster)


def _input_name(column: str) -> str:
    return f"_rule_in_{column}"


def _leaf_counts(
    assembled: DataFrame, leaves: dict[int, list[tuple[bool, tuple[Condition, ...]]]]
) -> dict[int, list[tuple[int, int]]]:
    """(customers, customers of the cluster) of every leaf of every tree, in one pass."""
    expressions = []
    for cluster, paths in leaves.items():
        for index, (_, conditions) in enumerate(paths):
            covered = Clause(conditions).column()
            expressions += [
                F.sum(F.when(covered, 1).otherwise(0)).alias(f"_n{cluster}_{index}"),
                F.sum(F.when(covered & _is(cluster), 1).otherwise(0)).alias(f"_h{cluster}_{index}"),
            ]
    row = assembled.agg(*expressions).first()
    return {
        cluster: [(row[f"_n{cluster}_{i}"] or 0, row[f"_h{cluster}_{i}"] or 0) for i in range(len(paths))]
        for cluster, paths in leaves.items()
    }


def _rule(
    cluster: int,
    paths: list[tuple[bool, tuple[Condition, ...]]],
    counts: list[tuple[int, int]],
    *,
    majority: bool,
) -> SegmentRule:
    """The leaves that predict the cluster; without any (the cluster is missing from the
    sample), the leaf with the largest share of it."""
    clauses = [
        (positive, Clause(conditions, customers, hits))
        for (positive, conditions), (customers, hits) in zip(paths, counts, strict=True)
    ]
    predicting = [clause for positive, clause in clauses if positive]
    if predicting:
        return SegmentRule(cluster, tuple(predicting), majority=majority)
    best = max((clause for _, clause in clauses), key=lambda c: (c.sample_precision, c.sample_hits))
    return SegmentRule(cluster, (best,), majority=False)


@dataclass(frozen=True)
class _Split:
    feature: int
    threshold: float
    left: _Node  # feature <= threshold
    right: _Node


@dataclass(frozen=True)
class _Leaf:
    positive: bool


_Node = Union[_Split, _Leaf]


def leaf_paths(debug_string: str, feature_columns: Sequence[str]) -> list[tuple[bool, tuple[Condition, ...]]]:
    """(the leaf predicts the segment, conditions from the root) for every leaf of a fitted
    one-against-the-rest tree, read from its public `toDebugString`. Sibling leaves with the
    same prediction are merged (Spark prunes them itself; merged here too so that the paths
    are as short as the tree allows, whatever Spark did)."""
    lines = iter(line.strip() for line in debug_string.splitlines()[1:] if line.strip())
    return list(_paths(_collapse(_parse(lines)), (), feature_columns))


def _parse(lines: Iterator[str]) -> _Node:
    """A subtree in the debug string's pre-order: `If (...)`, left subtree, `Else (...)`,
    right subtree; or `Predict: p`."""
    line = next(lines)
    leaf = _LEAF.match(line)
    if leaf:
        return _Leaf(float(leaf.group(1)) == 1.0)
    condition = _CONDITION.match(line)
    if condition is None or condition.group(1) != "If" or condition.group(3) != "<=":
        raise ValueError(f"unexpected line in a decision tree's debug string: {line!r}")
    left = _parse(lines)
    next(lines)  # the matching `Else (feature i > t)`
    return _Split(int(condition.group(2)), float(condition.group(4)), left, _parse(lines))


def _collapse(node: _Node) -> _Node:
    if isinstance(node, _Leaf):
        return node
    left, right = _collapse(node.left), _collapse(node.right)
    if isinstance(left, _Leaf) and isinstance(right, _Leaf) and left.positive == right.positive:
        return left
    return _Split(node.feature, node.threshold, left, right)


def _paths(
    node: _Node, path: tuple[Condition, ...], feature_columns: Sequence[str]
) -> Iterator[tuple[bool, tuple[Condition, ...]]]:
    if isinstance(node, _Leaf):
        yield node.positive, path
        return
    feature, threshold = feature_columns[node.feature], display_threshold(node.threshold)
    yield from _paths(node.left, (*path, Condition(feature, "<=", threshold)), feature_columns)
    yield from _paths(node.right, (*path, Condition(feature, ">", threshold)), feature_columns)


def display_threshold(value: float) -> float:
    """The threshold as the rule shows it: whole numbers from 100, else three significant
    figures.

    >>> display_threshold(40.5), display_threshold(1234.56), display_threshold(0.012345)
    (40.5, 1235.0, 0.0123)
    """
    return float(round(value)) if abs(value) >= 100 else float(f"{value:.3g}")


def render(conditions: list[Condition]) -> str:
    """One clause, each feature's thresholds merged into its tightest bounds."""
    if not conditions:
        return "all customers"
    bounds: dict[str, list[Optional[float]]] = {}
    for c in conditions:
        low, high = bounds.setdefault(c.feature, [None, None])
        if c.operator == ">":
            bounds[c.feature][0] = c.threshold if low is None else max(low, c.threshold)
        else:
            bounds[c.feature][1] = c.threshold if high is None else min(high, c.threshold)
    parts = []
    for feature, (low, high) in bounds.items():
        if low is not None and high is not None:
            parts.append(f"{_number(low)} < {feature} <= {_number(high)}")
        elif low is not None:
            parts.append(f"{feature} > {_number(low)}")
        else:
            parts.append(f"{feature} <= {_number(high)}")
    return " AND ".join(parts)


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
