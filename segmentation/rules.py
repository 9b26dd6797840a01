"""Rules a marketer can read: a shallow decision tree that predicts the model's cluster from
the original feature values, turned into conditions per segment.

The tree is fitted on a seeded hash sample and scored on every customer; its fidelity is the
share of customers whose rules place them in the cluster the model gave them. Each leaf is a
conjunction of thresholds (in original units, rounded for display); a segment's rule is the
disjunction of its leaves. The tree reads nulls as 0, like the model's own preprocessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import DecisionTreeClassificationModel, DecisionTreeClassifier
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from segmentation.tables import MODEL_CLUSTER_ID

RULE_PREDICTION = "_rule_cluster"
_VECTOR = "_rule_features"
_LABEL = "_rule_label"
_CONDITION = re.compile(r"(If|Else) \(feature (\d+) (<=|>) (\S+)\)")
_LEAF = re.compile(r"Predict: (\S+)")


@dataclass(frozen=True)
class Condition:
    feature: str
    operator: str  # "<=" or ">"
    threshold: float


def _inputs(df: DataFrame, feature_columns: Sequence[str]) -> DataFrame:
    return df.withColumns(
        {_input_name(c): F.coalesce(F.col(c).cast("double"), F.lit(0.0)) for c in feature_columns}
    ).withColumn(_LABEL, F.col(MODEL_CLUSTER_ID).cast("double"))


def _input_name(column: str) -> str:
    return f"_rule_in_{column}"


def fit_rule_tree(
    sample: DataFrame, feature_columns: Sequence[str], *, max_depth: int, seed: int
) -> PipelineModel:
    tree = DecisionTreeClassifier(
        featuresCol=_VECTOR,
        labelCol=_LABEL,
        predictionCol=RULE_PREDICTION,
        rawPredictionCol="_rule_raw",
        probabilityCol="_rule_probability",
        maxDepth=max_depth,
        maxBins=64,
        seed=seed,
    )
    assembler = VectorAssembler(inputCols=[_input_name(c) for c in feature_columns], outputCol=_VECTOR)
    return Pipeline(stages=[assembler, tree]).fit(_inputs(sample, feature_columns))


def predict_rules(tree: PipelineModel, scored: DataFrame, feature_columns: Sequence[str]) -> DataFrame:
    """`scored` plus `_rule_cluster`, the cluster the rules place each customer in."""
    predicted = tree.transform(_inputs(scored, feature_columns))
    return predicted.select(*scored.columns, F.col(RULE_PREDICTION).cast("int").alias(RULE_PREDICTION))


def leaf_paths(
    tree: DecisionTreeClassificationModel, feature_columns: Sequence[str]
) -> list[tuple[int, list]]:
    """(predicted cluster, conditions from the root) for every leaf, read from the tree's
    public `toDebugString`, where each level is indented by one more space."""
    leaves: list[tuple[int, list[Condition]]] = []
    path: list[Condition] = []
    base = None
    for line in tree.toDebugString.splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        base = indent if base is None else base
        depth = indent - base
        condition, leaf = _CONDITION.search(line), _LEAF.search(line)
        if condition:
            del path[depth:]
            _, feature, operator, threshold = condition.groups()
            path.append(Condition(feature_columns[int(feature)], operator, float(threshold)))
        elif leaf:
            leaves.append((int(float(leaf.group(1))), list(path[:depth])))
    return leaves


def segment_rules(tree: PipelineModel, feature_columns: Sequence[str]) -> dict[int, str]:
    """Readable rule per cluster the tree predicts, e.g. `recency_days <= 30 AND frequency > 12`."""
    leaves = leaf_paths(tree.stages[-1], feature_columns)
    by_cluster: dict[int, list[str]] = {}
    for cluster, conditions in leaves:
        by_cluster.setdefault(cluster, []).append(render(conditions))
    rules = {}
    for cluster, paths in by_cluster.items():
        if len(paths) == 1:
            rules[cluster] = paths[0]
        else:
            rules[cluster] = " OR ".join(f"({path})" if " AND " in path else path for path in paths)
    return rules


def render(conditions: list[Condition]) -> str:
    """One leaf's path, each feature's thresholds merged into its tightest bounds."""
    if not conditions:
        return "all customers"
    bounds: dict[str, list] = {}
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
